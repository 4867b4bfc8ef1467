"""The exercises of lesson 03 (see ``lessons/solutions/`` for the complete notebook)."""

import functools
import numbers

import numpy as np

from .core import arrays_close, exercise, numbers_close  # noqa: F401 - the helpers every lesson module uses

# Exercise 03.1: the buggy MADE of the notebook, mf.made.MADENetwork(*LEAK_NET_ARGS, **LEAK_NET_KWARGS).
LEAK_NET_ARGS = (7, (4, 4))
LEAK_NET_KWARGS = {"order": "random", "hidden_degrees": "random", "rng": 21}
# Exercise 03.3: mf.transforms.MAFLayer(*LOGDET_LAYER_ARGS, **LOGDET_LAYER_KWARGS), its network's parameters
# drawn by init_params(np.random.default_rng(LOGDET_PARAMS_SEED), output_scale=1.0), and the point LOGDET_X.
LOGDET_LAYER_ARGS = (5, (16, 16))
LOGDET_LAYER_KWARGS = {"order": "random", "activation": "tanh", "rng": 5}
LOGDET_PARAMS_SEED = 6
LOGDET_X = np.array([0.5, -1.0, 1.5, 0.0, 2.0])


def buggy_output_mask(degrees):
    """The lesson's deliberate bug: the output mask with ``<=`` where MADE needs ``<``."""
    return (np.asarray(degrees[-1])[:, None] <= np.asarray(degrees[0])[None, :]).astype(float)


def _leaking_outputs(degrees, masks):
    """Indices i (index order) of the outputs that may depend on an input j with m(j) >= m(i), by the mask product."""
    import maf_numpy as mf
    C = mf.masks.connectivity(list(masks[:-1]) + [buggy_output_mask(degrees)])
    m = np.asarray(degrees[0])
    return sorted(int(i) for i in range(len(m)) if np.any(C[i][m >= m[i]] > 0))


def _int_set(answer, what):
    """The answer as a set of ints, or a message saying why it is not a collection of whole numbers."""
    if isinstance(answer, (str, bytes, dict)) or not hasattr(answer, "__iter__"):
        return None, f"{what} should be a list (or array) of whole numbers, got {type(answer).__name__}"
    items = list(answer)
    values = list(np.asarray(items).ravel()) if items else []
    if not all(isinstance(v, numbers.Integral) or (isinstance(v, numbers.Real) and float(v).is_integer())
               for v in values):
        return None, f"{what} should hold whole numbers"
    return {int(v) for v in values}, None


@exercise("03.1", "which outputs of the buggy MADE leak",
          "an output mu_i leaks when it can depend on an input x_j with m(j) >= m(i); the paths from inputs to "
          "outputs are counted by mf.masks.connectivity of the buggy masks (or look at a Jacobian).")
def _(answer):
    import maf_numpy as mf
    net = mf.made.MADENetwork(*LEAK_NET_ARGS, **LEAK_NET_KWARGS)
    expected = set(_leaking_outputs(net.degrees, net.masks))
    given, problem = _int_set(answer, "your answer")
    if problem:
        return problem
    if given == expected:
        return None
    D = LEAK_NET_ARGS[0]
    if given == {i + 1 for i in expected}:
        return "your indices are 1-based; give Python's 0-based indices i of x_i (x_1 is index 0)"
    if given == {int(net.degrees[0][i]) for i in expected}:
        return "those are the leaking outputs' degrees m(i); the exercise asks for their indices i"
    if not given <= set(range(D)):
        return f"every index should be in 0..{D - 1}"
    if not given:
        return "you found no leak: use the notebook's buggy output mask (<=), not net.masks[-1]"
    extra, missing = len(given - expected), len(expected - given)
    parts = ([f"{extra} of your outputs do not leak"] if extra else []) + (
        [f"you missed {missing} leaking output(s)"] if missing else [])
    return "; ".join(parts)


@functools.lru_cache(maxsize=1)
def _random_degree_sets():
    """Degrees [m^0, ..., m^L] of 60 random narrow MADEs (random orders and hidden degrees), seeded."""
    import maf_numpy as mf
    rng = np.random.default_rng(2024)
    cases = []
    for _ in range(60):
        D = int(rng.integers(2, 9))
        hidden = tuple(int(h) for h in rng.integers(1, 6, size=rng.integers(1, 4)))  # 1-3 layers of 1-5 units
        net = mf.made.MADENetwork(D, hidden, order="random", hidden_degrees="random", rng=rng)
        cases.append(([m.copy() for m in net.degrees], net.masks))
    return cases


@exercise("03.2", "the leak rule, from the degrees alone",
          "follow one path from input x_i to output mu_i: which degrees can the units on it have, given that the "
          "hidden masks use <= and the buggy output mask uses <= too?")
def _(answer):
    if not callable(answer):
        return f"your answer should be a function of the degrees, got {type(answer).__name__}"
    for degrees, masks in _random_degree_sets():
        expected = {int(degrees[0][i]) for i in _leaking_outputs(degrees, masks)}
        given, problem = _int_set(answer([m.copy() for m in degrees]), "what your function returned")
        if problem:
            return problem
        if given != expected:
            shown = [m.tolist() for m in degrees]
            extra, missing = sorted(given - expected), sorted(expected - given)
            said = (f"it lists degree(s) {extra} that do not leak" if extra else "") + (
                "; " if extra and missing else "") + (f"it misses leaking degree(s) {missing}" if missing else "")
            return f"wrong for the MADE with degrees {shown} (inputs, then each hidden layer): {said}"
    return None


def _logdet_layer():
    import maf_numpy as mf
    layer = mf.transforms.MAFLayer(*LOGDET_LAYER_ARGS, **LOGDET_LAYER_KWARGS)
    params = layer.network.init_params(np.random.default_rng(LOGDET_PARAMS_SEED), output_scale=1.0)
    return layer, params


@exercise("03.3", "log|det dz/dx| of a MAF layer's inverse at one point",
          "one pass of the layer's conditioner at x gives (mu, alpha); the Jacobian of x -> z is triangular in "
          "the ordering with diagonal exp(-alpha_i).")
def _(answer):
    from autograd import jacobian
    layer, params = _logdet_layer()
    J = jacobian(lambda x: layer.inverse(params, x[None])[0][0])(LOGDET_X)   # the oracle knows no triangles
    _, expected = np.linalg.slogdet(J)
    if isinstance(answer, np.ndarray) and answer.size == 1:
        answer = answer.reshape(())
    problem = numbers_close(answer, float(expected), rtol=1e-9, atol=1e-12, what="your log-determinant")
    if problem is None or "single real number" in problem or "finite" in problem:
        return problem
    if np.isclose(float(answer), float(np.exp(expected)), rtol=1e-9):
        return "that is |det dz/dx| itself; the exercise asks for its logarithm"
    if "wrong sign" in problem:
        return problem + ": log|det dx/dz| of the forward map is minus the one asked for"
    return problem
