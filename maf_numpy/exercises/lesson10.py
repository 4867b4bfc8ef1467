"""The exercises of lesson 10 (see ``lessons/solutions/`` for the complete notebook).

The checkers build the student's layer class and run :mod:`maf_numpy.testing`'s property checks on it at
parameters of their own (seeded), so a layer is judged by what it computes, not by how it is written.
"""

import os
import tempfile

import numpy as np

from .core import arrays_close, exercise, numbers_close  # noqa: F401 - the helpers every lesson module uses

PROTOCOL = ("init_params", "forward", "inverse", "config", "get_state", "set_state")


def _first_lines(error, n=2):
    """The first ``n`` lines of an assertion message (the property that failed, and where)."""
    return " ".join(line.strip() for line in str(error).splitlines()[:n])


def _build(answer, name, *args):
    """(layer, None) built from the class ``answer``, or (None, a message saying why it could not be)."""
    if answer is None or not isinstance(answer, type):
        what = "an instance" if hasattr(answer, "forward") else type(answer).__name__
        return None, f"{name} should be the class itself (e.g. {name} = SomeClass), got {what}"
    try:
        layer = answer(*args)
    except Exception as error:  # noqa: BLE001 - report any failure of the student's constructor
        return None, f"{name}({', '.join(map(str, args))}) raised {type(error).__name__}: {error}"
    missing = [method for method in PROTOCOL if not callable(getattr(layer, method, None))]
    if missing:
        return None, f"the layer lacks the protocol methods {missing}"
    if not hasattr(layer, "calls"):
        return None, "the layer has no 'calls' attribute (the pass counter; 0 for a layer without a network)"
    return layer, None


def _run_properties(layer, v, params):
    """None if round trip, both log-dets and the gradients pass maf_numpy.testing; else the first failure."""
    from .. import testing
    checks = (("round trip", lambda: testing.assert_round_trip(layer, v, params)),
              ("log-dets", lambda: testing.assert_log_det_matches_jacobian(layer, v, "both", params)),
              ("gradients", lambda: testing.assert_gradients_match_finite_differences(layer, v, params)))
    for name, run in checks:
        try:
            run()
        except AssertionError as error:
            return f"maf_numpy.testing's {name} check fails: {_first_lines(error)}"
    return None


# --- 10.1: a sinh-arcsinh layer -------------------------------------------------------------------------
def _sinh_arcsinh(z, a, b):
    return np.sinh((np.arcsinh(z) + a) * np.exp(b))


def _sinh_arcsinh_inverse(x, a, b):
    return np.sinh(np.arcsinh(x) * np.exp(-b) - a)


@exercise("10.1", "a sinh-arcsinh layer written to the layer protocol",
          "forward: u = (arcsinh z + a) e^b, x = sinh(u); differentiate x_i with respect to z_i by the chain rule "
          "(d arcsinh(z)/dz = 1 / sqrt(1 + z^2), d sinh(u)/du = cosh u); inverse undoes each step in reverse "
          "order, and its log-det is minus the forward's at the z it returns")
def _(answer):
    layer, problem = _build(answer, "MyLayer", 3)
    if problem:
        return problem
    if getattr(layer, "D", None) != 3:
        return "MyLayer(3).D should be 3, the dimension given to the constructor"
    rng = np.random.default_rng(10)
    start = layer.init_params(rng)
    if not isinstance(start, dict) or set(start) != {"a", "b"}:
        keys = sorted(start) if isinstance(start, dict) else type(start).__name__
        return f"init_params should return a dict with the keys 'a' and 'b', got {keys}"
    if any(np.shape(start[key]) != (3,) for key in start):
        return "init_params should give 'a' and 'b' the shape (D,), one number per coordinate"
    z = 1.5 * rng.standard_normal((6, 3))
    if not np.allclose(np.asarray(layer.forward(start, z)[0]), z, atol=1e-12):
        return "the initial parameters should give the identity map, x = z (a = 0, b = 0)"
    params = {"a": np.array([0.4, -0.6, 0.15]), "b": np.array([0.3, -0.45, 0.6])}
    x, log_det = layer.forward(params, z)
    x, log_det = np.asarray(x, dtype=float), np.asarray(log_det, dtype=float)
    if x.shape != z.shape:
        return f"forward(params, z) should return x of the shape of z {z.shape}, got {x.shape}"
    if log_det.shape != (len(z),):
        return f"forward's log-det should have shape (n,) = ({len(z)},), one number per point, got {log_det.shape}"
    if np.allclose(x, _sinh_arcsinh_inverse(z, params["a"], params["b"]), atol=1e-9):
        return "forward computes the normalising map x -> z; forward is generative, z -> x"
    problem = arrays_close(x, _sinh_arcsinh(z, params["a"], params["b"]), rtol=1e-9, atol=1e-9,
                           what="x = forward(params, z)")
    if problem:
        return problem + " (x = sinh((arcsinh(z) + a) exp(b)))"
    problem = _run_properties(layer, z, params)
    if problem:
        return problem
    try:
        rebuilt = answer(**layer.config())
        layer.set_state(layer.get_state())
    except Exception as error:  # noqa: BLE001
        return f"rebuilding the layer from its config() or get_state()/set_state() failed: {type(error).__name__}: " \
               f"{error}"
    if getattr(rebuilt, "D", None) != 3:
        return "config() should return the constructor's keyword arguments (here {'D': 3})"
    return None


# --- 10.2: fix a buggy layer ----------------------------------------------------------------------------
def _banana(z, c, s):
    return np.stack([z[:, 0], z[:, 1] * np.exp(s) + c * z[:, 0] ** 2], axis=1)


@exercise("10.2", "fix the buggy banana layer",
          "read which checks fail and at which coordinate; forward is right, so undo its steps one by one in "
          "reverse order, and remember which map each log-det belongs to")
def _(answer):
    layer, problem = _build(answer, "FixedBanana", 2)
    if problem:
        return problem
    rng = np.random.default_rng(11)
    params = {"c": np.array([0.7]), "s": np.array([0.4])}
    z = 1.2 * rng.standard_normal((6, 2))
    x = np.asarray(layer.forward(params, z)[0], dtype=float)
    problem = arrays_close(x, _banana(z, params["c"], params["s"]), rtol=1e-9, atol=1e-9,
                           what="x = forward(params, z)")
    if problem:
        return problem + ": forward was right (x1 = z1, x2 = z2 exp(s) + c z1^2); keep it and fix the rest"
    return _run_properties(layer, z, params)


# --- 10.3: train, save and load a flow with a layer of your own ----------------------------------------
@exercise("10.3", "a trained flow with a layer of your own, saved and loaded bit for bit",
          "mf.Flow(2, [...MAF layers and MyLayer(2)...], rng=0); mf.register_layer(MyLayer) before saving; fit on "
          "the moons; flow.save(path) and mf.load(path)")
def _(answer):
    from .. import datasets, load
    from ..flows import Flow
    from ..npz import LAYER_CLASSES
    if not isinstance(answer, Flow):
        return f"my_flow should be a flow built with mf.Flow(2, layers, ...), got {type(answer).__name__}"
    if answer.dim != 2:
        return f"my_flow should be a flow of the 2-D moons, got dim = {answer.dim}"
    own = [layer for layer in answer.layers if not type(layer).__module__.startswith("maf_numpy")]
    if not own:
        return "my_flow has no layer of your own: put MyLayer(2) among its layers"
    for layer in own:
        name = type(layer).__name__
        if LAYER_CLASSES.get(name) is not type(layer):
            return f"the class {name} is not registered: call mf.register_layer({name}) before saving"
    x = datasets.toy("moons", 2000, rng=1010)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "my_flow.npz")
        answer.save(path)
        loaded = load(path)
    if not np.array_equal(loaded.log_prob(x), answer.log_prob(x)):
        return "the loaded flow's log_prob differs from my_flow's: check config() and get_state()/set_state()"
    nll = -float(np.mean(answer.log_prob(x)))
    gaussian = 0.5 * float(np.linalg.slogdet(2 * np.pi * np.e * np.cov(x.T))[1])
    if not np.isfinite(nll) or nll >= gaussian:
        return f"on fresh moons my_flow's NLL is {nll:.3f} nats, no better than one Gaussian's {gaussian:.3f}: " \
               "train it (fit) before assigning it"
    return None
