"""MADE MoG and MAF MoG (maf_numpy.mog): mixture conditionals, their density, sampling and plumbing.

The flow-level checks of tests/helpers.FLOWS assume a standard normal base (log_prob = log N(z; 0, I) +
log-det, the inverse of samples is standard normal), so these flows get their own versions here; their MAF
layers are the ones the uniform suite already checks.
"""

from math import erf

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad, jacobian
from autograd.test_util import check_grads
from helpers import perturb

import maf_numpy as mf
from maf_numpy.mog import MADEMoG, MAFMoG, mog_log_prob

D = 3
C = 4


def made_mog(dim=D, components=C, seed=0, **options):
    options = {"hidden": (16, 16), "activation": "tanh", **options}
    return MADEMoG(dim, components=components, rng=seed, **options)


def maf_mog(dim=D, components=C, seed=0, **options):
    options = {"num_layers": 2, "hidden": (16, 16), "activation": "tanh", **options}
    return MAFMoG(dim, components=components, rng=seed, **options)


BUILDERS = {"MADEMoG": made_mog, "MAFMoG": maf_mog}


def build(name, dim=D, seed=0, scale=0.2, **options):
    """A flow with a fitted Standardize layer and perturbed parameters (no reliance on the initialisation)."""
    rng = onp.random.default_rng(seed + 100)
    flow = BUILDERS[name](dim, seed=seed, **options)
    if options.get("standardize", True):
        flow.layers[0].fit(rng.normal(0.5, 2.0, size=(100, dim)))
    flow.params = perturb(flow.params, rng, scale)
    return flow


@pytest.fixture
def x():
    return onp.random.default_rng(99).normal(0.5, 2.0, size=(6, D))


# --- the mixture conditionals ---------------------------------------------------------------------
@pytest.mark.parametrize("order", ["sequential", "random"])
def test_one_component_made_mog_equals_the_gaussian_made(order, x):
    made = mf.MADE(D, hidden=(16, 16), order=order, activation="tanh", rng=4)
    made.layers[0].fit(onp.random.default_rng(0).normal(1.0, 3.0, size=(50, D)))
    made.params = perturb(made.params, onp.random.default_rng(1), 0.3)
    mog = MADEMoG(D, hidden=(16, 16), components=1, order=made.config["order"], activation="tanh", rng=5)
    mog.layers[0].set_state(made.layers[0].get_state())
    logits = {"W_logit": onp.ones((16, D)), "b_logit": onp.full(D, 7.0)}  # a single weight is 1 whatever they are
    mog.params = [{}, {**made.params[1], **logits}]
    assert all(onp.array_equal(a, b) for a, b in zip(mog.degrees, made.degrees))
    onp.testing.assert_allclose(mog.log_prob(x), made.log_prob(x), rtol=0, atol=1e-12)
    mu, alpha, log_w = mog.conditionals(x)
    mu_made, alpha_made = made.conditionals(x)
    assert onp.array_equal(mu[..., 0], mu_made) and onp.array_equal(alpha[..., 0], alpha_made)
    assert onp.all(log_w == 0.0)


@pytest.mark.parametrize("scale", [0.3, 30.0])
@pytest.mark.parametrize("name", BUILDERS)
def test_mixture_weights_sum_to_one(name, scale, x):
    """Also with huge logits (scale 30), where a softmax written with exp would overflow."""
    flow = build(name, scale=scale)
    with onp.errstate(over="ignore"):
        _, _, log_w = flow.conditionals(x)
    assert log_w.shape == (len(x), D, C)
    onp.testing.assert_allclose(onp.sum(onp.exp(log_w), axis=-1), 1.0, rtol=0, atol=1e-12)


def test_log_density_far_from_every_component_is_finite():
    """log-sum-exp: at x = 1e3 every component's density underflows to 0, its log does not."""
    flow = build("MADEMoG", activation="relu")
    log_p = flow.log_prob(onp.full((2, D), 1e3))
    assert onp.all(onp.isfinite(log_p)) and onp.all(log_p < -1e3)


def test_mog_log_prob_equals_the_mixture_formula_written_with_exp():
    rng = onp.random.default_rng(0)
    x, mu, alpha, logit = rng.normal(size=(5, D)), rng.normal(size=(5, D, C)), rng.normal(size=(5, D, C)) * 0.3, \
        rng.normal(size=(5, D, C))
    w = onp.exp(logit) / onp.sum(onp.exp(logit), axis=-1, keepdims=True)
    sigma = onp.exp(alpha)
    density = onp.exp(-0.5 * ((x[..., None] - mu) / sigma) ** 2) / (sigma * onp.sqrt(2 * onp.pi))
    expected = onp.sum(onp.log(onp.sum(w * density, axis=-1)), axis=-1)
    onp.testing.assert_allclose(mog_log_prob(x, mu, alpha, onp.log(w)), expected, rtol=1e-12)


@pytest.mark.parametrize("options", [
    {"order": "sequential"}, {"order": "reversed"}, {"order": "random"},
    {"order": "random", "hidden_degrees": "random"}, {"hidden": (2,), "order": "random"}, {"hidden": ()},
], ids=["sequential", "reversed", "random-order", "random-degrees", "narrow-hidden", "no-hidden"])
def test_conditional_of_each_variable_depends_only_on_earlier_variables(options):
    """d (mu_i, alpha_i, log w_i) / d x_j is zero unless x_j comes before x_i in the ordering, and not all
    zero where it may be non-zero (the Jacobian of the conditionals' parameters, by autograd)."""
    D = 4
    flow = build("MADEMoG", dim=D, seed=2, scale=0.5, **options)
    degrees = flow.degrees[0]
    x = onp.random.default_rng(3).normal(size=(1, D))

    def conditionals(v):
        return np.concatenate(flow.base.conditionals(flow.params[-1], v[None, :]), axis=-1)[0]  # (D, 3C)

    J = jacobian(conditionals)(x[0])  # (D, 3C, D)
    allowed = degrees[None, :] < degrees[:, None]  # [i, j]: x_j comes before x_i
    leak = onp.max(onp.abs(J.transpose(0, 2, 1)[~allowed]))
    assert leak == 0.0, f"a conditional depends on a variable of equal or later degree (|J| = {leak:.3e})"
    reached = onp.abs(J.transpose(0, 2, 1)[allowed]).max(axis=-1) > 0
    # A hidden layer narrower than D - 1 cannot carry every allowed dependence (masks.hidden_degrees).
    wide = min(flow.base.network.hidden, default=D) >= D - 1
    assert onp.all(reached) if wide else onp.any(reached), "an allowed dependence is missing"


def test_log_density_of_the_first_variable_in_the_order_is_its_marginal():
    """Integrating x_2 out of a 2-D MADE MoG with order (1, 0) leaves p(x_1), which depends on nothing:
    the marginal on a grid equals exp of the first conditional's mixture log-density."""
    flow = build("MADEMoG", dim=2, seed=6, scale=0.3, order=[1, 0], standardize=False)
    t = onp.linspace(-12, 12, 801)
    x1 = onp.array([-1.0, 0.3, 1.7])
    marginal = [onp.sum(onp.exp(flow.log_prob(onp.stack([t, onp.full_like(t, v)], axis=1)))) * (t[1] - t[0])
                for v in x1]
    mu, alpha, log_w = flow.conditionals(onp.stack([onp.zeros(3), x1], axis=1))
    first = mog_log_prob(x1[:, None], mu[:, 1:], alpha[:, 1:], log_w[:, 1:])
    onp.testing.assert_allclose(marginal, onp.exp(first), rtol=2e-4)


# --- the flows --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILDERS)
def test_2d_density_integrates_to_one_on_a_grid(name):
    """Quadrature of exp(log_prob) on [-14, 14]^2 plus the mass outside, estimated from samples."""
    flow = build(name, dim=2, seed=3)
    mf.testing.assert_density_integrates_to_one(flow)


@pytest.mark.parametrize("name", BUILDERS)
def test_sample_moments_match_the_moments_of_the_density_on_a_grid(name):
    """sample and log_prob describe the same distribution: E[f(x) 1{x in the grid's square}] for f = 1, x_1,
    x_2, x_1^2, x_2^2, x_1 x_2 from 100k samples agree with the same integrals of exp(log_prob) on the grid, to
    5 standard errors (the square only: random MAF layers can give heavy tails)."""
    flow = build(name, dim=2, seed=3)
    t = onp.linspace(-14, 14, 561)
    X1, X2 = onp.meshgrid(t, t)
    grid = onp.stack([X1.ravel(), X2.ravel()], axis=1)

    def features(v):
        inside = onp.all(onp.abs(v) <= 14 + 0.5 * (t[1] - t[0]), axis=1)
        return inside[:, None] * onp.stack([onp.ones(len(v)), v[:, 0], v[:, 1], v[:, 0] ** 2, v[:, 1] ** 2,
                                            v[:, 0] * v[:, 1]], axis=1)

    expected = onp.exp(flow.log_prob(grid)) @ features(grid) * (t[1] - t[0]) ** 2
    f = features(flow.sample(100_000, rng=1))
    error = onp.abs(f.mean(axis=0) - expected) / (f.std(axis=0) / onp.sqrt(len(f)) + 1e-4)
    assert onp.all(error < 5), f"sample moments {f.mean(axis=0)} vs density moments {expected}"


def test_one_dimensional_mixture_has_the_known_density_and_samples():
    """A 1-D MADE MoG is a fixed mixture (its network sees no input): 0.3 N(-2, 0.5^2) + 0.7 N(2, 1)."""
    flow = MADEMoG(1, hidden=(8,), components=2, standardize=False, rng=0)
    flow.params = [{**flow.params[0], "b_mu": onp.array([-2.0, 2.0]), "b_alpha": onp.log([0.5, 1.0]),
                    "b_logit": onp.log([0.3, 0.7])}]
    x = onp.linspace(-5, 5, 11)[:, None]

    def normal(v, m, s):
        return onp.exp(-0.5 * ((v - m) / s) ** 2) / (s * onp.sqrt(2 * onp.pi))

    expected = onp.log(0.3 * normal(x[:, 0], -2, 0.5) + 0.7 * normal(x[:, 0], 2, 1.0))
    onp.testing.assert_allclose(flow.log_prob(x), expected, rtol=1e-12)
    s = flow.sample(200_000, rng=0)[:, 0]
    mean, var = 0.3 * -2 + 0.7 * 2, 0.3 * (0.25 + 4) + 0.7 * (1 + 4) - 0.8**2
    assert abs(s.mean() - mean) < 5 * onp.sqrt(var / len(s))
    assert abs(s.var() - var) < 0.06
    below_zero = 0.3 * 0.5 * (1 + erf(4 / onp.sqrt(2))) + 0.7 * 0.5 * (1 + erf(-2 / onp.sqrt(2)))  # P(x < 0)
    assert abs(onp.mean(s < 0) - below_zero) < 5 * onp.sqrt(below_zero * (1 - below_zero) / len(s))


@pytest.mark.parametrize("name", BUILDERS)
def test_sampling_is_reproducible_from_a_seed(name):
    flow = build(name)
    assert onp.array_equal(flow.sample(5, rng=3), flow.sample(5, rng=3))
    assert not onp.array_equal(flow.sample(5, rng=3), flow.sample(5, rng=4))


def test_maf_mog_log_prob_is_made_mog_log_density_of_z_plus_log_det(x):
    flow = build("MAFMoG")
    z, log_det_dzdx = flow.inverse(x)
    expected = flow.base.log_prob(flow.params[-1], z) + log_det_dzdx
    onp.testing.assert_allclose(flow.log_prob(x), expected, rtol=0, atol=1e-12)
    mf.testing.assert_round_trip(flow, x)


def test_maf_mog_with_identity_maf_layers_is_the_made_mog_of_its_base(x):
    """Zero output heads make every MAF layer the identity (mu = alpha = 0): only the base is left."""
    flow = build("MAFMoG")
    made_mog = MADEMoG(D, hidden=(16, 16), components=C, order=flow.config["orders"][-1], activation="tanh", rng=0)
    made_mog.layers[0].set_state(flow.layers[0].get_state())
    made_mog.params = [{}, flow.params[-1]]
    identity = [{**p, **{key: onp.zeros_like(p[key]) for key in ("W_mu", "b_mu", "W_alpha", "b_alpha")}}
                for p in flow.params[1:-1]]
    flow.params = [{}, *identity, flow.params[-1]]
    onp.testing.assert_allclose(flow.log_prob(x), made_mog.log_prob(x), rtol=0, atol=1e-12)
    assert onp.array_equal(flow.sample(7, rng=2), made_mog.sample(7, rng=2))


def test_the_base_continues_the_alternating_orders():
    flow = MAFMoG(3, num_layers=2, hidden=(8,), rng=0)
    orders = [layer.order.tolist() for layer in flow.layers[1:]] + [flow.base.order.tolist()]
    assert orders == [[0, 1, 2], [2, 1, 0], [0, 1, 2]]


@pytest.mark.parametrize("K, dim", [(1, 2), (3, 4)])
def test_pass_counts_are_K_plus_1_for_density_and_K_D_plus_D_for_sampling(K, dim):
    flow = MAFMoG(dim, num_layers=K, hidden=(8,), components=3, rng=0)
    flow.log_prob(onp.zeros((2, dim)))
    assert flow.passes == K + 1
    flow.sample(2, rng=0)
    assert flow.passes == K * dim + dim
    made_mog = MADEMoG(dim, hidden=(8,), components=3, rng=0)
    made_mog.log_prob(onp.zeros((2, dim)))
    assert made_mog.passes == 1
    made_mog.sample(2, rng=0)
    assert made_mog.passes == dim


# --- gradients ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILDERS)
def test_parameter_gradients_match_central_differences(name, x):
    flow = build(name)
    onp.random.seed(0)  # check_grads draws its random directions from NumPy's global generator
    check_grads(lambda p: -np.sum(flow.log_prob(x, params=p)) / len(x), modes=["rev"], order=1)(flow.params)


@pytest.mark.parametrize("name", BUILDERS)
def test_input_gradients_match_central_differences(name, x):
    flow = build(name)
    onp.random.seed(1)
    check_grads(lambda v: np.sum(flow.log_prob(v)), modes=["rev"], order=1)(x)


def test_gradient_flows_through_the_gaussian_draw_of_sampling():
    """The component choice is piecewise constant; the draw mu + exp(alpha) eps is differentiable."""
    flow = build("MAFMoG")
    onp.random.seed(2)
    check_grads(lambda p: np.sum(np.tanh(flow.sample(4, rng=0, params=p))), modes=["rev"], order=1)(flow.params)


# --- training, float32, save and load ----------------------------------------------------------------
@pytest.mark.parametrize("name", BUILDERS)
def test_fit_lowers_the_validation_loss_and_fits_the_standardize_layer(name):
    x_train = mf.datasets.toy("fig1", 600, rng=0)
    x_val = mf.datasets.toy("fig1", 200, rng=1)
    flow = BUILDERS[name](2, components=3, seed=0, hidden=(16,))
    history = flow.fit(x_train, x_val, steps=60, batch_size=100, lr=1e-2, rng=0, progress=False)
    assert flow.layers[0].fitted
    assert history["best_val_nll"] < history["val_nll"][0] - 0.1


def test_fresh_components_start_at_different_means():
    """Equal initial means would give the components of the first dimension equal gradients for ever."""
    b_mu = made_mog().params[-1]["b_mu"].reshape(D, C)
    assert onp.all(onp.std(b_mu, axis=1) > 0)


def test_fitting_a_bimodal_density_separates_the_components():
    """1-D data from 0.5 N(-2, 0.5^2) + 0.5 N(2, 0.5^2): a two-component MADE MoG learns both modes, which a
    single Gaussian cannot (its best NLL, that of N(0, 4.25), is 0.72 nats worse)."""
    rng = onp.random.default_rng(0)
    x = (rng.choice([-2.0, 2.0], size=(2000, 1)) + 0.5 * rng.standard_normal((2000, 1)))
    flow = MADEMoG(1, hidden=(8,), components=2, rng=0)
    flow.fit(x, steps=300, batch_size=200, lr=3e-2, rng=0, progress=False)
    exact_entropy = 0.5 * onp.log(2 * onp.pi * onp.e * 0.25) + onp.log(2)  # the modes barely overlap
    nll = -onp.mean(flow.log_prob(x))
    assert nll < exact_entropy + 0.05, f"NLL {nll:.3f} vs entropy {exact_entropy:.3f}"


@pytest.mark.parametrize("name", BUILDERS)
def test_float32_flow_computes_and_differentiates_in_float32(name, x):
    flow = BUILDERS[name](components=3, dtype="float32")
    assert flow.log_prob(x).dtype == onp.float32 and flow.sample(3, rng=0).dtype == onp.float32
    gradient = grad(lambda p: -np.sum(flow.log_prob(x.astype(onp.float32), params=p)) / len(x))(flow.params)
    assert gradient[-1]["W_logit"].dtype == onp.float32


@pytest.mark.parametrize("name", BUILDERS)
def test_save_then_load_gives_bit_identical_log_prob_and_samples(name, tmp_path, x):
    flow = build(name, orders="random", hidden_degrees="random") if name == "MAFMoG" else \
        build(name, order="random", hidden_degrees="random")
    path = tmp_path / "model.npz"
    flow.save(path)
    loaded = mf.load(path)
    assert type(loaded) is type(flow) and loaded.config == flow.config
    assert onp.array_equal(loaded.log_prob(x), flow.log_prob(x))
    assert onp.array_equal(loaded.sample(20, rng=1), flow.sample(20, rng=1))
    assert all(onp.array_equal(a, b) for a, b in zip(loaded.base.degrees, flow.base.degrees))


# --- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [MADEMoG, MAFMoG])
@pytest.mark.parametrize("components, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError),
                                               (True, TypeError), ("10", TypeError), (None, TypeError)])
def test_components_must_be_a_positive_int(cls, components, error):
    with pytest.raises(error, match="components"):
        cls(2, hidden=(8,), components=components, rng=0)


@pytest.mark.parametrize("arguments, match", [
    ({"dim": 0}, "dim"), ({"hidden": (8, 0)}, "hidden"), ({"activation": "sigmoid"}, "activation"),
    ({"hidden_degrees": "odd"}, "hidden_degrees"), ({"dtype": "float16"}, "dtype"),
    ({"standardize": "yes"}, "standardize"),
])
@pytest.mark.parametrize("cls", [MADEMoG, MAFMoG])
def test_bad_arguments_are_refused_naming_the_argument(cls, arguments, match):
    with pytest.raises((TypeError, ValueError), match=match):
        cls(**{"dim": 2, "hidden": (8,), "rng": 0, **arguments})


def test_bad_orders_and_num_layers_are_refused():
    with pytest.raises(ValueError, match="order"):
        MADEMoG(3, order=[0, 0, 1], rng=0)
    with pytest.raises(ValueError, match="orders"):
        MAFMoG(2, num_layers=2, orders=[[0, 1], [1, 0]], rng=0)  # K + 1 = 3 orderings needed
    with pytest.raises(ValueError, match="num_layers"):
        MAFMoG(2, num_layers=0, rng=0)


@pytest.mark.parametrize("name", BUILDERS)
@pytest.mark.parametrize("bad, error", [
    (onp.zeros((4, D + 1)), ValueError), (onp.full((2, D), onp.nan), ValueError),
    (onp.zeros((2, D), dtype=int), TypeError), ([[0.0] * D], TypeError),
])
def test_bad_x_is_refused_naming_x(name, bad, error):
    flow = build(name)
    for method in (flow.log_prob, flow.conditionals, flow.inverse):
        with pytest.raises(error, match="x"):
            method(bad)


@pytest.mark.parametrize("name", BUILDERS)
def test_params_of_the_wrong_structure_are_refused(name, x):
    flow = build(name)
    params = [*flow.params[:-1], {key: value for key, value in flow.params[-1].items() if key != "W_logit"}]
    with pytest.raises(ValueError, match="params"):
        flow.log_prob(x, params=params)
