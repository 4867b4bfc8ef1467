"""Every single layer against the same properties (zuko's uniform suite): round trip, log-det against
slogdet of the autograd Jacobian, the Jacobian's autoregressive zero pattern, gradients against central
differences. Then the facts particular to each layer: pass counts, the D-pass solver's invariant and the
MAF / IAF duality."""

import autograd.numpy as np
import numpy as onp
import pytest
from autograd.test_util import check_grads
from helpers import LAYERS, perturb

from maf_numpy import testing, transforms
from maf_numpy.made import made_apply

D = 5


@pytest.fixture
def rng():
    return onp.random.default_rng(1234)


def build(name, rng, dim=D):
    layer, params = LAYERS[name](dim, rng)
    v = rng.standard_normal((7, dim))
    return layer, params, v


@pytest.mark.parametrize("name", LAYERS)
def test_inverse_undoes_forward(name, rng):
    layer, params, v = build(name, rng)
    testing.assert_round_trip(layer, v, params)


@pytest.mark.parametrize("name", LAYERS)
def test_forward_and_inverse_log_dets_are_negatives(name, rng):
    layer, params, z = build(name, rng)
    x, log_det_dxdz = layer.forward(params, z)
    _, log_det_dzdx = layer.inverse(params, x)
    assert log_det_dxdz.shape == (z.shape[0],)
    onp.testing.assert_allclose(log_det_dxdz, -log_det_dzdx, rtol=0, atol=1e-12)


@pytest.mark.parametrize("direction", ["inverse", "forward"])
@pytest.mark.parametrize("name", LAYERS)
def test_log_det_equals_slogdet_of_autograd_jacobian(name, direction, rng):
    layer, params, v = build(name, rng)
    testing.assert_log_det_matches_jacobian(layer, v, direction, params)


@pytest.mark.parametrize("direction", ["inverse", "forward"])
@pytest.mark.parametrize("name", LAYERS)
def test_jacobian_is_triangular_in_the_ordering(name, direction, rng):
    layer, params, v = build(name, rng)
    J = testing.assert_autoregressive(layer, v, params=params, direction=direction)[direction]
    if name.startswith(("MAF", "IAF", "coupling")) and not name.endswith(("narrow-hidden", "random-degrees")):
        # Sequential hidden degrees at least D-1 wide connect every allowed pair (random ones may not).
        below = onp.asarray(layer.input_degrees)[None, :] < onp.asarray(layer.input_degrees)[:, None]
        reached = onp.max(onp.abs(J), axis=0)[below]
        assert onp.all(reached > 0), "an allowed dependence is missing: the layer is too sparse"


@pytest.mark.parametrize("direction", ["inverse", "forward"])
@pytest.mark.parametrize("name", [n for n in LAYERS if n != "standardize"])
def test_parameter_gradients_match_central_differences(name, direction, rng):
    layer, params, v = build(name, rng, dim=3)
    weights = rng.standard_normal(v.shape)

    def objective(p):
        out, log_det = getattr(layer, direction)(p, v)
        return np.sum(weights * out) + np.sum(log_det)

    onp.random.seed(0)  # check_grads draws its random directions from NumPy's global generator
    check_grads(objective, modes=["rev"], order=1)(params)


@pytest.mark.parametrize("name", [n for n in LAYERS if n not in ("standardize", "batch-norm-evaluation-mode")])
def test_input_gradients_match_central_differences(name, rng):
    layer, params, v = build(name, rng, dim=3)
    onp.random.seed(0)
    check_grads(lambda u: np.sum(np.sin(layer.forward(params, u)[0])), modes=["rev"], order=1)(v)
    check_grads(lambda u: np.sum(layer.inverse(params, u)[1]), modes=["rev"], order=1)(v)


@pytest.mark.parametrize("cls, forward_calls, inverse_calls",
                         [(transforms.MAFLayer, D, 1), (transforms.IAFLayer, 1, D)])
def test_pass_counts_are_one_for_the_parallel_direction_and_D_for_the_sequential(
        cls, forward_calls, inverse_calls, rng):
    layer = cls(D, (16,), "sequential", rng=rng)
    params = layer.init_params(rng)
    layer.calls = 0
    x, _ = layer.forward(params, rng.standard_normal((4, D)))
    assert layer.calls == forward_calls
    layer.calls = 0
    layer.inverse(params, x)
    assert layer.calls == inverse_calls


def test_coupling_takes_one_pass_in_both_directions(rng):
    layer, params, v = build("coupling", rng)
    layer.calls = 0
    layer.inverse(params, layer.forward(params, v)[0])
    assert layer.calls == 2


def test_d_pass_forward_fixes_one_more_coordinate_per_pass(rng):
    layer, params, z = build("MAF-random-order", rng)
    x_exact, _ = layer.forward(params, z)
    degrees = layer.input_degrees

    def step(x):
        mu, alpha = layer.conditioner(params, x)
        return transforms.affine_forward(z, mu, alpha)

    for k in range(1, D + 1):
        x_k, _ = transforms.solve_autoregressive(step, k, z.shape)
        exact = onp.all(onp.abs(x_k - x_exact) < 1e-12, axis=0)
        assert onp.array_equal(exact[degrees <= k], onp.ones(k, dtype=bool)), f"pass {k}: degree <= {k} not exact"
        if k < D:  # generic weights: the next coordinate is not exact yet
            assert not exact[degrees == k + 1].all(), f"pass {k}: degree {k + 1} is exact too early"


def test_maf_inverse_is_an_iaf_shaped_affine_map(rng):
    """The MAF-inverse-is-IAF-shaped identity: z = (x - mu) exp(-alpha) = x exp(alpha') + mu' with
    alpha' = -alpha, mu' = -mu exp(-alpha), both functions of x_{<i}: a MAF's density pass is one IAF step in
    its input x."""
    layer, params, x = build("MAF-random-order", rng)
    z, log_det_dzdx = layer.inverse(params, x)
    mu, alpha = layer.conditioner(params, x)
    z_iaf, log_det_iaf = transforms.affine_forward(x, -mu * np.exp(-alpha), -alpha)
    onp.testing.assert_allclose(z_iaf, z, rtol=0, atol=1e-12)
    onp.testing.assert_allclose(log_det_iaf, log_det_dzdx, rtol=0, atol=1e-12)


def test_iaf_inverse_is_a_maf_shaped_affine_map(rng):
    """And back: an IAF's normalising pass z = (x - mu(z)) exp(-alpha(z)) is a MAF step whose
    conditioner reads the *output* z, so it needs the same D-pass solver as MAF sampling."""
    layer, params, x = build("IAF-random-order", rng)
    z, log_det_dzdx = layer.inverse(params, x)
    mu, alpha = layer.conditioner(params, z)  # conditioner of the solution
    z_maf, log_det_maf = transforms.affine_inverse(x, mu, alpha)
    onp.testing.assert_allclose(z_maf, z, rtol=0, atol=1e-12)
    onp.testing.assert_allclose(log_det_maf, log_det_dzdx, rtol=0, atol=1e-12)


def test_made_conditioner_of_an_autoregressive_layer_is_made_apply(rng):
    layer, params, x = build("MAF-sequential", rng)
    mu, alpha = layer.conditioner(params, x)
    mu2, alpha2 = made_apply(params, x, layer.masks, "tanh")
    assert onp.array_equal(mu, mu2) and onp.array_equal(alpha, alpha2)


def test_coupling_layer_in_two_dimensions_is_a_maf_layer_up_to_the_first_coordinate(rng):
    """With D = 2 a coupling layer leaves x_1 alone and transforms x_2 by a function of x_1; a MAF layer
    with the order (x_1, x_2) does the same plus a constant affine map of x_1."""
    coupling = transforms.AffineCoupling(2, (8,), activation="tanh")
    params = perturb(coupling.init_params(rng), rng)
    x = rng.standard_normal((6, 2))
    z, _ = coupling.inverse(params, x)
    assert onp.array_equal(z[:, 0], x[:, 0])
    mu, alpha = made_apply(params, x[:, :1], None, "tanh")
    onp.testing.assert_allclose(z[:, 1], (x[:, 1] - mu[:, 0]) * onp.exp(-alpha[:, 0]), atol=1e-14)


def test_standardize_log_det_is_minus_sum_log_scale(rng):
    layer, params, x = build("standardize", rng)
    _, log_det = layer.inverse(params, x)
    onp.testing.assert_allclose(log_det, -onp.sum(onp.log(layer.scale)) * onp.ones(len(x)))
