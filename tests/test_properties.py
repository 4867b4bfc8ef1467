"""Property-based tests: random configurations of MADE, MAF, IAF and RealNVP, drawn from a fixed seed.

No test library: a seeded generator draws N_DRAWS configurations (D from 1 to 10, hidden widths
including none and narrower than D, every ordering mode and explicit permutations, both hidden-degree
modes, 1-4 layers, both activations, with and without Standardize, batches of 1-9 points), and every
draw must satisfy the properties every flow has:

- invertibility: forward(inverse(x)) == x and inverse(forward(z)) == z to 1e-10;
- log-det: what inverse and forward return equals slogdet of the autograd Jacobian, point by point;
- autoregressive structure: every layer's Jacobian, in both directions, is zero wherever an output
  would depend on an input of equal or higher degree (maf_numpy.testing).

Each test id and each failure message carries the draw's configuration, so ``build(config)`` reproduces
it. The draws are fixed (same seed, same number), so the file runs in the same few seconds every time.
"""

import contextlib

import numpy as onp
import pytest
from helpers import perturb

import maf_numpy as mf
from maf_numpy import testing

SEED = 20240917
N_DRAWS = 60
PERTURBATION = 0.1  # N(0, 0.1^2) noise on every parameter (0.2 lets a few deep ReLU draws overflow)
N_JACOBIAN_POINTS = 3  # Jacobians (one reverse pass per coordinate) of the first few points of each batch


def draw_config(rng):
    """One random configuration: a plain dict of Python values (printable, and rebuilt by ``build``)."""
    kind = str(rng.choice(["MADE", "MAF", "IAF", "RealNVP"]))
    D = int(rng.integers(2 if kind == "RealNVP" else 1, 11))
    hidden = tuple(int(H) for H in rng.integers(1, 2 * D + 3, size=rng.integers(0, 4)))  # may be () or < D
    config = {"kind": kind, "D": D, "hidden": hidden, "activation": str(rng.choice(["relu", "tanh"])),
              "standardize": bool(rng.integers(2)), "n": int(rng.integers(1, 10)), "seed": int(rng.integers(2**31))}
    if kind == "RealNVP":
        config["num_layers"] = int(rng.integers(1, 5))
        return config
    config["hidden_degrees"] = str(rng.choice(["sequential", "random"]))
    if kind == "MADE":
        modes = ["sequential", "reversed", "random", "permutation"]
        mode = str(rng.choice(modes))
        config["order"] = rng.permutation(D).tolist() if mode == "permutation" else mode
        return config
    config["num_layers"] = K = int(rng.integers(1, 5))
    mode = str(rng.choice(["alternate", "sequential", "reversed", "random", "permutations"]))
    config["orders"] = [rng.permutation(D).tolist() for _ in range(K)] if mode == "permutations" else mode
    return config


def build(config):
    """The flow of a configuration, with a Standardize layer fitted to N(0.5, 2^2) data and perturbed
    parameters, and a batch of config["n"] standard normal points (used as x and as z)."""
    rng = onp.random.default_rng(config["seed"])
    options = {key: config[key] for key in ("hidden", "activation", "standardize", "hidden_degrees", "order",
                                            "num_layers", "orders") if key in config}
    flow = getattr(mf, config["kind"])(config["D"], rng=int(rng.integers(2**31)), **options)
    data = rng.normal(0.5, 2.0, size=(50, config["D"]))
    if config["standardize"]:
        flow.layers[0].fit(data)
    flow.params = perturb(flow.params, rng, PERTURBATION)
    return flow, rng.standard_normal((config["n"], config["D"]))


def config_id(config):
    keys = ("kind", "D", "hidden", "num_layers", "n")
    return f"{config['kind']}-D{config['D']}-h{'x'.join(map(str, config['hidden'])) or '0'}-" + \
        "-".join(f"{key}{config[key]}" for key in keys[3:] if key in config)


CONFIGS = [draw_config(rng) for rng in [onp.random.default_rng(SEED)] for _ in range(N_DRAWS)]
DRAWS = [pytest.param(config, id=f"{k:02d}-{config_id(config)}") for k, config in enumerate(CONFIGS)]


@contextlib.contextmanager
def reproducible(config):
    """Re-raise a failed assertion with the configuration that reproduces it."""
    try:
        yield
    except AssertionError as error:
        raise AssertionError(f"{error}\n  failing draw (rebuild with build(config)): config = {config!r}") from None


def test_the_draws_cover_every_kind_and_the_edge_cases():
    """The fixed draws are not a lucky subset: every flow, D = 1 and D = 10, no hidden layer, a hidden
    layer narrower than D, explicit permutations, random hidden degrees, 1 and 4 layers, a batch of 1."""
    kinds = {config["kind"] for config in CONFIGS}
    assert kinds == {"MADE", "MAF", "IAF", "RealNVP"}
    Ds = {config["D"] for config in CONFIGS}
    assert {1, 10} <= Ds and {config["D"] for config in CONFIGS if config["kind"] == "RealNVP"} >= {2}
    assert any(config["hidden"] == () for config in CONFIGS)
    assert any(config["hidden"] and min(config["hidden"]) < config["D"] for config in CONFIGS)
    assert any(isinstance(config.get("order"), list) for config in CONFIGS)
    assert any(isinstance(config.get("orders"), list) for config in CONFIGS)
    assert any(config.get("hidden_degrees") == "random" for config in CONFIGS)
    assert {1, 4} <= {config.get("num_layers") for config in CONFIGS}
    assert any(config["n"] == 1 for config in CONFIGS)


@pytest.mark.parametrize("config", DRAWS)
def test_inverse_and_forward_undo_each_other(config):
    flow, x = build(config)
    with reproducible(config):
        testing.assert_round_trip(flow, x)


@pytest.mark.parametrize("config", DRAWS)
def test_log_dets_equal_slogdet_of_the_autograd_jacobian(config):
    flow, x = build(config)
    z = flow.inverse(x)[0]
    with reproducible(config):
        for direction, v in (("inverse", x), ("forward", z)):
            f = getattr(flow, direction)
            few = v[:N_JACOBIAN_POINTS]
            batch_log_det = f(v)[1]
            assert batch_log_det.shape == (len(v),), f"log_det has shape {batch_log_det.shape}"
            error = onp.max(onp.abs(f(few)[1] - batch_log_det[:len(few)]))
            assert error < testing.default_atol(v.dtype), f"log_det of a point depends on its batch by {error:.3e}"
            testing.assert_log_det_matches_jacobian(flow, few, direction)


@pytest.mark.parametrize("config", DRAWS)
def test_every_layer_jacobian_is_autoregressive_in_its_degrees(config):
    flow, x = build(config)
    trace = flow.trace_inverse(x[:2])
    for k, (layer, p) in enumerate(zip(flow.layers, flow.params)):
        u, v = trace["values"][k], trace["values"][k + 1]  # layer k maps u (data side) to v (base side)
        with reproducible({**config, "layer": k}):
            testing.assert_autoregressive(layer, u, params=p, direction="inverse")
            testing.assert_autoregressive(layer, v, params=p, direction="forward")


# --- a numerical hazard the random draws found ------------------------------------------------------
@pytest.mark.parametrize("layer_class", ["MAFLayer-forward", "IAFLayer-inverse"])
def test_the_d_pass_solver_is_not_poisoned_by_an_overflow_in_a_coordinate_not_yet_exact(layer_class):
    """The answer (1, 1, e) is modest, but pass 1 (from zeros) puts e^8 in the not-yet-exact coordinate 2,
    and pass 2 then computes exp(e^8) = inf for the not-yet-exact coordinate 3; pass 3 would overwrite it,
    if the masked matrix product did not multiply that inf by the mask's zeros."""
    from maf_numpy import transforms

    name, direction = layer_class.split("-")
    layer = getattr(transforms, name)(3, (), "sequential", "sequential", "relu", onp.random.default_rng(0))
    sign = 1.0 if direction == "forward" else -1.0  # the IAF inverse scales by exp(-alpha)
    params = {"W": [], "b": [], "W_mu": onp.zeros((3, 3)), "b_mu": onp.zeros(3),
              "W_alpha": sign * onp.array([[0.0, -8.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]),
              "b_alpha": sign * onp.array([0.0, 8.0, 0.0])}
    v = onp.ones((1, 3))  # alpha_1 = 0, alpha_2 = ±(8 - 8 v_1) = 0, alpha_3 = ±v_2 = ±1
    with onp.errstate(all="ignore"):
        solved, _ = getattr(layer, direction)(params, v)
    onp.testing.assert_allclose(solved, [[1.0, 1.0, onp.e]], rtol=1e-14)
