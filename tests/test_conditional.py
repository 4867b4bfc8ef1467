"""Conditional MADE and MAF, p(x | y) (MAF paper §3.4), and the optional soft clamp of alpha.

The layers themselves (with a fixed context) are in the uniform property suite of tests/test_transforms.py
(``MAF-conditional-*``, ``IAF-conditional``, ``*-alpha-clamp``); here are the facts particular to a context:
it reaches every output, the first one included; the flow is a normalised density of x for every y; the
fast and reference solvers agree given y; fit, save/load and the Bayes-rule classifier work.
"""

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import jacobian
from autograd.test_util import check_grads
from helpers import perturb

import maf_numpy as mf
from maf_numpy import masks, testing, transforms


@pytest.fixture
def rng():
    return onp.random.default_rng(7)


def _flow(cls, D=3, C=2, rng=None, **options):
    options = {"hidden": (16, 16), "activation": "tanh", **options}
    flow = cls(D, C, rng=0, **options)
    flow.params = perturb(flow.params, rng, 0.3)
    return flow


def test_context_inputs_reach_every_output_through_the_masks():
    """The path counts from each context input (degree 0) to each output are positive, for every order
    and depth, the first output included: the degree-0 hidden units carry y to it. (Random hidden degrees
    may miss degree 0 in a layer, as they may miss any degree; the masks stay autoregressive.)"""
    for seed, (D, hidden, mode) in enumerate([(1, (4,), "sequential"), (4, (8, 8), "sequential"),
                                              (5, (3,), "sequential"), (3, (), "sequential"),
                                              (6, (4, 9), "sequential"), (4, (8, 8), "random")]):
        degrees = masks.made_degrees(D, hidden, "random", mode, rng=seed, conditional=True)
        C = masks.connectivity(masks.made_masks(degrees, context_dim=2))  # (D, D + 2)
        if mode == "sequential":
            assert onp.all(C[:, D:] > 0), f"D={D}, hidden={hidden}: a context input misses an output"
        allowed = degrees[0][None, :] < degrees[0][:, None]
        assert onp.all(C[:, :D][~allowed] == 0), "the context changed the autoregressive masks"


def test_the_first_dimension_density_changes_with_the_context(rng):
    """Regression: with hidden degrees from 1 (a plain MADE's), output 1 sees no hidden unit and
    p(x_1 | y) would ignore y. Here mu_1 and alpha_1 move with y, and so does the density of x_1."""
    made = _flow(mf.ConditionalMADE, D=3, C=2, rng=rng, standardize=False)
    x = rng.standard_normal((5, 3))
    first = made.made_layer.order[0]
    mu_a, alpha_a = made.conditionals(x, onp.array([1.0, 0.0]))
    mu_b, alpha_b = made.conditionals(x, onp.array([0.0, 1.0]))
    assert onp.all(onp.abs(mu_a[:, first] - mu_b[:, first]) > 1e-6)
    assert onp.all(onp.abs(alpha_a[:, first] - alpha_b[:, first]) > 1e-6)
    J = jacobian(lambda y: made.conditionals(x[:1], y[None, :])[0][0])(onp.array([0.3, -0.2]))
    assert onp.all(onp.abs(J) > 0), "some output's mu does not depend on y"


@pytest.mark.parametrize("cls", [mf.ConditionalMADE, mf.ConditionalMAF])
def test_the_conditional_density_integrates_to_one_on_a_grid_for_each_context(cls, rng):
    flow = _flow(cls, D=2, C=3, rng=rng)
    flow.layers[0].fit(rng.normal(0.0, 1.0, size=(100, 2)))
    for y in (onp.array([1.0, 0.0, 0.0]), onp.array([-0.5, 2.0, 0.3])):
        testing.assert_density_integrates_to_one(flow, y=y)


@pytest.mark.parametrize("cls", [mf.ConditionalMADE, mf.ConditionalMAF])
def test_inverse_undoes_forward_given_the_context(cls, rng):
    flow = _flow(cls, rng=rng)
    z, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))
    x, log_det_dxdz = flow.forward(z, y)
    z_back, log_det_dzdx = flow.inverse(x, y)
    assert onp.max(onp.abs(z_back - z)) < 1e-10
    onp.testing.assert_allclose(log_det_dxdz, -log_det_dzdx, atol=1e-10)


def test_log_det_equals_slogdet_of_the_jacobian_in_x_for_fixed_context(rng):
    flow = _flow(mf.ConditionalMAF, rng=rng)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    _, log_det = flow.inverse(x, y)
    for i in range(4):
        J = jacobian(lambda u, y_i=y[i:i + 1]: flow.inverse(u[None, :], y_i)[0][0])(x[i])
        assert abs(onp.linalg.slogdet(J)[1] - log_det[i]) < 1e-10


def test_sliced_sampling_equals_the_reference_solver_given_the_context(rng):
    for hidden_degrees in ("sequential", "random"):
        flow = _flow(mf.ConditionalMAF, D=5, C=3, rng=rng, hidden_degrees=hidden_degrees, orders="random")
        y = rng.standard_normal((7, 3))
        x_fast = flow.sample(7, y, rng=3)
        assert flow.passes == 5 * 5
        flow.fast = False  # the reference: D full passes per layer
        x_reference = flow.sample(7, y, rng=3)
        assert flow.passes == 5 * 5
        assert onp.max(onp.abs(x_fast - x_reference)) < 1e-12


def test_gradients_with_respect_to_params_and_context_match_central_differences(rng):
    flow = _flow(mf.ConditionalMAF, D=2, C=2, rng=rng, num_layers=2)
    x, y = rng.standard_normal((5, 2)), rng.standard_normal((5, 2))
    onp.random.seed(0)
    check_grads(lambda p: np.sum(flow.log_prob(x, y, params=p)), modes=["rev"], order=1)(flow.params)
    check_grads(lambda c: np.sum(flow.log_prob(x, c)), modes=["rev"], order=1)(y)


def test_a_one_row_context_is_used_for_every_point(rng):
    flow = _flow(mf.ConditionalMAF, rng=rng)
    x, y = rng.standard_normal((4, 3)), rng.standard_normal(2)
    onp.testing.assert_array_equal(flow.log_prob(x, y), flow.log_prob(x, onp.tile(y, (4, 1))))


def test_fit_learns_a_class_conditional_density_and_bayes_rule_classifies(rng):
    """Two classes, x | c ~ N(m_c, 0.5^2 I) in 2-D with m_0 = (-1.5, 0), m_1 = (1.5, 0): the conditional
    model's held-out NLL beats the unconditional MAF's, and Bayes' rule recovers the labels."""
    means = onp.array([[-1.5, 0.0], [1.5, 0.0]])
    labels = rng.integers(0, 2, 3000)
    x = means[labels] + 0.5 * rng.standard_normal((3000, 2))
    y = onp.eye(2)[labels]
    cmaf = mf.ConditionalMAF(2, 2, num_layers=2, hidden=(32, 32), rng=0)
    history = cmaf.fit(x[:2500], y[:2500], steps=400, lr=3e-3, progress=False, rng=0)
    assert history["status"] in ("completed", "early_stopped")
    maf = mf.MAF(2, num_layers=2, hidden=(32, 32), rng=0)
    maf.fit(x[:2500], steps=400, lr=3e-3, progress=False, rng=0)
    nll_conditional = -onp.mean(cmaf.log_prob(x[2500:], y[2500:]))
    nll_joint = -onp.mean(maf.log_prob(x[2500:]))
    true_conditional = 2 * (0.5 * onp.log(2 * onp.pi * 0.25) + 0.5)  # entropy of N(m, 0.25 I) in 2-D
    assert nll_conditional < nll_joint - 0.4, (nll_conditional, nll_joint)
    assert nll_conditional < true_conditional + 0.1
    posterior = cmaf.class_log_posterior(x[2500:])
    onp.testing.assert_allclose(onp.sum(onp.exp(posterior), axis=1), 1.0, atol=1e-12)
    accuracy = onp.mean(cmaf.predict(x[2500:]) == labels[2500:])
    assert accuracy > 0.98  # the Bayes-optimal accuracy is Phi(3) = 0.9987


def test_save_and_load_round_trip_a_conditional_maf_bit_for_bit(rng, tmp_path):
    flow = _flow(mf.ConditionalMAF, rng=rng, alpha_clamp=2.0)
    flow.save(tmp_path / "c.npz")
    loaded = mf.load(tmp_path / "c.npz")
    assert type(loaded) is mf.ConditionalMAF and loaded.context_dim == 2 and loaded.config == flow.config
    x, y = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    assert onp.array_equal(loaded.log_prob(x, y), flow.log_prob(x, y))


def test_bad_contexts_are_refused_with_the_argument_named(rng):
    flow = _flow(mf.ConditionalMAF, rng=rng)
    x = rng.standard_normal((4, 3))
    with pytest.raises(TypeError, match="y must be the context"):
        flow.log_prob(x, None)
    with pytest.raises(ValueError, match=r"y must have shape \(n, 2\)"):
        flow.log_prob(x, onp.zeros((4, 3)))
    with pytest.raises(ValueError, match="y must have one row per point"):
        flow.log_prob(x, onp.zeros((5, 2)))
    with pytest.raises(ValueError, match="y must be finite"):
        flow.sample(2, onp.array([onp.nan, 0.0]))
    with pytest.raises(TypeError, match="y must be a float array"):
        flow.log_prob(x, onp.zeros((4, 2), dtype=int))
    with pytest.raises(ValueError, match="context_dim must be"):
        mf.ConditionalMAF(3, 0)
    with pytest.raises(ValueError, match="y_train"):
        flow.fit(x, None, steps=1, progress=False)
    with pytest.raises(ValueError, match="y_train is only for a conditional flow"):
        mf.MAF(3).fit(x, steps=1, progress=False, y_train=onp.zeros((4, 2)))
    with pytest.raises(ValueError, match="log_prior must be"):
        flow.class_log_posterior(x, log_prior=onp.zeros(3))


# --- the optional soft clamp of alpha ----------------------------------------------------------------------
def test_soft_clamp_bounds_alpha_and_is_the_identity_near_zero():
    alpha = onp.linspace(-50, 50, 1001)
    clamped = transforms.soft_clamp(alpha, 3.0)
    assert onp.all(onp.abs(clamped) < 3.0)
    assert onp.all(onp.diff(clamped) > 0)  # increasing: still a valid log-scale
    small = onp.linspace(-1e-3, 1e-3, 11)
    onp.testing.assert_allclose(transforms.soft_clamp(small, 3.0), small, rtol=1e-7)


def test_a_clamped_flow_bounds_every_layer_scale_and_the_default_is_the_paper_form(rng):
    paper = mf.MAF(3, num_layers=2, hidden=(16,), rng=0)
    clamped = mf.MAF(3, num_layers=2, hidden=(16,), rng=0, alpha_clamp=0.5)
    params = perturb(paper.params, rng, 1.0)  # large weights: unclamped alphas beyond 0.5
    x = rng.standard_normal((20, 3))
    for layer, p in zip(clamped.layers[1:], params[1:]):
        _, alpha = layer.conditioner(p, x)
        _, alpha_raw = layer.network(p, x)
        assert onp.all(onp.abs(alpha) <= 0.5) and onp.max(onp.abs(alpha_raw)) > 1.0
        onp.testing.assert_allclose(alpha, 0.5 * onp.tanh(alpha_raw / 0.5))
    # every layer's |log-det| is at most D * c
    for log_det in clamped.trace_inverse(x, params)["log_dets"][1:]:
        assert onp.all(onp.abs(log_det) <= 3 * 0.5)
    assert "alpha_clamp" not in paper.config and paper.layers[1].alpha_clamp is None


def test_a_large_clamp_changes_nothing_where_alpha_is_small(rng):
    paper = mf.MAF(3, num_layers=2, hidden=(16,), rng=0)
    clamped = mf.MAF(3, num_layers=2, hidden=(16,), rng=0, alpha_clamp=1e4)
    x = rng.standard_normal((5, 3))
    onp.testing.assert_allclose(clamped.log_prob(x), paper.log_prob(x), atol=1e-9)


def test_alpha_clamp_must_be_a_positive_number():
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="alpha_clamp"):
            mf.MAF(2, alpha_clamp=bad)
    with pytest.raises(TypeError, match="alpha_clamp"):
        mf.MADE(2, alpha_clamp="3")


# --- the conditional MAF MoG: the MAF layers and the mixture base both read y ---------------------------------
def _mog(rng, D=2, C=3):
    flow = mf.ConditionalMAFMoG(D, C, num_layers=2, hidden=(12,), components=3, activation="tanh", rng=0)
    flow.params = perturb(flow.params, rng, 0.2)
    return flow


def test_the_conditional_maf_mog_density_integrates_to_one_for_each_context(rng):
    flow = _mog(rng)
    for y in (onp.array([1.0, 0.0, 0.0]), onp.array([0.0, -1.0, 2.0])):
        testing.assert_density_integrates_to_one(flow, y=y)


def test_the_mixture_base_of_the_first_dimension_changes_with_the_context(rng):
    flow = _mog(rng, D=3)
    x = rng.standard_normal((4, 3))
    first = flow.base.order[0]
    mu_a, alpha_a, log_w_a = flow.conditionals(x, onp.array([1.0, 0.0, 0.0]))
    mu_b, alpha_b, log_w_b = flow.conditionals(x, onp.array([0.0, 1.0, 0.0]))
    for a, b in ((mu_a, mu_b), (alpha_a, alpha_b), (log_w_a, log_w_b)):
        assert onp.all(onp.abs(a[:, first] - b[:, first]) > 1e-7)


def test_the_conditional_maf_mog_saves_loads_and_gradients_match_finite_differences(rng, tmp_path):
    flow = _mog(rng)
    x, y = rng.standard_normal((5, 2)), rng.standard_normal((5, 3))
    flow.save(tmp_path / "m.npz")
    loaded = mf.load(tmp_path / "m.npz")
    assert type(loaded) is mf.ConditionalMAFMoG
    assert onp.array_equal(loaded.log_prob(x, y), flow.log_prob(x, y))
    assert onp.array_equal(loaded.sample(3, y[:3], rng=1), flow.sample(3, y[:3], rng=1))
    onp.random.seed(0)
    check_grads(lambda p: np.sum(flow.log_prob(x, y, params=p)), modes=["rev"], order=1)(flow.params)
