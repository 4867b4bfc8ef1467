"""Whole flows (MADE, MAF, IAF, RealNVP) against the same properties: round trip, log-det against slogdet,
change of variables, normalisation on a grid, samples whose inverse is standard normal, pass counts, and
gradients through the public methods."""

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad
from autograd.test_util import check_grads
from helpers import FLOWS

import maf_numpy as mf
from maf_numpy import testing

D = 3


def build(name, dim=D, seed=0):
    return FLOWS[name](dim, onp.random.default_rng(seed))


@pytest.fixture
def x():
    return onp.random.default_rng(99).normal(0.5, 2.0, size=(6, D))


@pytest.mark.parametrize("name", FLOWS)
def test_inverse_undoes_forward(name, x):
    flow = build(name)
    testing.assert_round_trip(flow, x)


@pytest.mark.parametrize("direction", ["inverse", "forward"])
@pytest.mark.parametrize("name", FLOWS)
def test_log_det_equals_slogdet_of_autograd_jacobian(name, direction, x):
    flow = build(name)
    testing.assert_log_det_matches_jacobian(flow, x, direction)


@pytest.mark.parametrize("name", FLOWS)
def test_log_prob_is_base_log_density_of_z_plus_log_det(name, x):
    flow = build(name)
    z, log_det_dzdx = flow.inverse(x)
    expected = -0.5 * onp.sum(z**2, axis=1) - 0.5 * D * onp.log(2 * onp.pi) + log_det_dzdx
    onp.testing.assert_allclose(flow.log_prob(x), expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", FLOWS)
def test_2d_density_integrates_to_one_on_a_grid(name):
    """Quadrature of exp(log_prob) on [-14, 14]^2, plus the mass outside the grid estimated from the
    flow's own samples (random weights give some layers heavy tails), adds up to 1."""
    flow = build(name, dim=2, seed=3)
    testing.assert_density_integrates_to_one(flow, n_samples=200_000)


@pytest.mark.parametrize("name", FLOWS)
def test_inverse_of_samples_is_standard_normal(name):
    flow = build(name)
    x = flow.sample(20000, rng=5)
    z, _ = flow.inverse(x)
    assert onp.all(onp.abs(z.mean(axis=0)) < 0.04)
    assert onp.all(onp.abs(onp.cov(z.T) - onp.eye(D)) < 0.05)
    # Each coordinate's empirical CDF against the standard normal's (Kolmogorov-Smirnov distance).
    from math import erf

    normal_cdf = onp.vectorize(lambda v: 0.5 * (1 + erf(v / onp.sqrt(2))))
    for column in z.T:
        s = onp.sort(column)
        ks = onp.max(onp.abs(normal_cdf(s) - onp.arange(1, len(s) + 1) / len(s)))
        assert ks < 0.015


@pytest.mark.parametrize("name", FLOWS)
def test_samples_are_not_standard_normal_themselves(name):
    """Guards the previous test against a flow that is (nearly) the identity."""
    x = build(name).sample(5000, rng=1)
    assert onp.max(onp.abs(x.mean(axis=0))) > 0.1 or onp.max(onp.abs(onp.cov(x.T) - onp.eye(D))) > 0.2


@pytest.mark.parametrize("name", FLOWS)
def test_sampling_is_reproducible_from_a_seed(name):
    flow = build(name)
    assert onp.array_equal(flow.sample(5, rng=3), flow.sample(5, rng=3))
    assert not onp.array_equal(flow.sample(5, rng=3), flow.sample(5, rng=4))


@pytest.mark.parametrize("name", FLOWS)
def test_parameter_gradients_match_central_differences(name, x):
    flow = build(name)
    onp.random.seed(0)
    check_grads(lambda p: -np.sum(flow.log_prob(x, params=p)) / len(x), modes=["rev"], order=1)(flow.params)


@pytest.mark.parametrize("name", FLOWS)
def test_gradient_flows_through_sampling(name):
    flow = build(name)
    z = onp.random.default_rng(0).standard_normal((4, D))
    onp.random.seed(0)
    check_grads(lambda p: np.sum(np.tanh(flow.forward(z, params=p)[0])), modes=["rev"], order=1)(flow.params)


def test_the_design_doc_gradient_one_liner_works(x):
    flow = mf.MAF(dim=D, num_layers=2, hidden=(8,), rng=0)
    g = grad(lambda p: -np.mean(flow.log_prob(x, params=p)))(flow.params)
    assert len(g) == len(flow.params) and g[1]["W"][0].shape == flow.params[1]["W"][0].shape


@pytest.mark.parametrize("cls, density_passes, sample_passes", [
    (mf.MAF, lambda K, D: K, lambda K, D: K * D),
    (mf.IAF, lambda K, D: K * D, lambda K, D: K),
    (mf.RealNVP, lambda K, D: K, lambda K, D: K),
])
@pytest.mark.parametrize("K, dim", [(1, 2), (5, 4), (3, 8)])
def test_pass_counts_are_K_for_density_and_K_times_D_for_maf_sampling(cls, density_passes, sample_passes, K, dim):
    flow = cls(dim, num_layers=K, hidden=(8,), rng=0)
    x = onp.random.default_rng(0).standard_normal((3, dim))
    flow.log_prob(x)
    assert flow.passes == density_passes(K, dim)
    flow.sample(3, rng=0)
    assert flow.passes == sample_passes(K, dim)
    assert flow.passes_per_layer[0] == 0  # the Standardize layer has no conditioner


def test_made_density_is_one_pass_and_sampling_D_passes():
    made = mf.MADE(6, hidden=(8,), rng=0)
    made.log_prob(onp.zeros((2, 6)))
    assert made.passes == 1
    made.sample(2, rng=0)
    assert made.passes == 6


def test_iaf_sample_and_log_prob_agrees_with_log_prob_of_its_samples():
    flow = build("IAF")
    x, log_p = flow.sample_and_log_prob(50, rng=2)
    assert flow.passes == 3  # one pass per layer
    onp.testing.assert_allclose(flow.log_prob(x), log_p, rtol=0, atol=1e-10)
    assert flow.passes == 3 * D
    assert onp.array_equal(x, flow.sample(50, rng=2))


@pytest.mark.parametrize("name", FLOWS)
def test_trace_inverse_goes_from_x_to_z_layer_by_layer(name, x):
    flow = build(name)
    trace = flow.trace_inverse(x)
    z, log_det = flow.inverse(x)
    assert len(trace["values"]) == len(flow.layers) + 1
    assert onp.array_equal(trace["values"][0], x) and onp.allclose(trace["values"][-1], z, atol=1e-14)
    onp.testing.assert_allclose(onp.sum(trace["log_dets"], axis=0), log_det, atol=1e-12)
    assert sum(trace["passes"]) == flow.passes


@pytest.mark.parametrize("name", FLOWS)
def test_trace_forward_goes_from_z_to_x_and_mirrors_trace_inverse(name, x):
    flow = build(name)
    z, _ = flow.inverse(x)
    forward_values = flow.trace_forward(z)["values"]
    inverse_values = flow.trace_inverse(x)["values"]
    for a, b in zip(forward_values, inverse_values[::-1]):
        onp.testing.assert_allclose(a, b, atol=1e-10)


def test_maf_layers_alternate_their_ordering_by_default():
    flow = mf.MAF(4, num_layers=3, hidden=(8,), rng=0)
    orders = [layer.order.tolist() for layer in flow.layers[1:]]
    assert orders == [[0, 1, 2, 3], [3, 2, 1, 0], [0, 1, 2, 3]]


def test_random_orders_differ_between_layers_and_follow_the_seed():
    a = mf.MAF(6, num_layers=3, hidden=(8,), orders="random", rng=5)
    b = mf.MAF(6, num_layers=3, hidden=(8,), orders="random", rng=5)
    orders = [layer.order.tolist() for layer in a.layers[1:]]
    assert orders == [layer.order.tolist() for layer in b.layers[1:]]
    assert len({tuple(o) for o in orders}) > 1


def test_realnvp_alternates_the_halves():
    flow = mf.RealNVP(4, num_layers=2, hidden=(8,), rng=0)
    assert flow.layers[1].A.tolist() == [0, 1] and flow.layers[2].A.tolist() == [2, 3]


def test_repr_shows_the_structure():
    text = repr(mf.MAF(2, num_layers=2, hidden=(64, 64), rng=0))
    assert text.startswith("MAF(dim=2, num_layers=2, hidden=(64, 64), orders=[[0, 1], [1, 0]]")


def test_one_dimensional_maf_and_iaf_are_affine_maps():
    for cls in (mf.MAF, mf.IAF):
        flow = cls(1, num_layers=2, hidden=(4,), rng=0)
        x = onp.linspace(-3, 3, 7)[:, None]
        testing.assert_round_trip(flow, x)
        assert onp.all(onp.isfinite(flow.log_prob(x)))


def test_logsumexp_is_exact_for_huge_and_minus_infinite_entries_and_its_gradient_is_the_softmax():
    from autograd import grad

    from maf_numpy.flows import logsumexp

    a = onp.array([[1000.0, 1000.0, -onp.inf], [-onp.inf, -onp.inf, -onp.inf], [0.5, -2.0, 3.0]])
    out = logsumexp(a, axis=1)
    assert out[0] == pytest.approx(1000.0 + onp.log(2.0), abs=1e-12) and out[1] == -onp.inf
    assert out[2] == pytest.approx(onp.log(onp.sum(onp.exp(a[2]))), abs=1e-12)
    assert logsumexp(a[2:], axis=1, keepdims=True).shape == (1, 1)
    g = grad(lambda v: logsumexp(v, axis=0))(a[2])
    onp.testing.assert_allclose(g, onp.exp(a[2]) / onp.sum(onp.exp(a[2])), atol=1e-15)


def test_importing_the_library_loads_neither_scipy_nor_scikit_learn():
    """The library needs numpy and autograd only; scikit-learn (and the scipy it brings) only for digits()."""
    import subprocess
    import sys

    code = "import sys, maf_numpy; print(sorted(m for m in ('scipy', 'sklearn') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
