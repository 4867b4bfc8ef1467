"""Order-agnostic MADE (MADE paper §4, "Order-agnostic training" and "Connectivity-agnostic training"): K mask
sets sharing one parameter dict, a mixture density that averages probabilities, one mask set per training step.

Oracles: a plain Gaussian MADE with the same order and degrees, the autograd Jacobian of (mu, alpha), an explicit
log(mean(exp(...))), quadrature on a 2-D grid, central differences, and the saved file read back."""

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import jacobian
from autograd.test_util import check_grads
from helpers import perturb

import maf_numpy as mf
from maf_numpy import testing
from maf_numpy.agnostic import OrderAgnosticMADE

D = 3


def build(dim=D, num_masks=4, seed=0, hidden=(16, 16), standardize=True):
    """A flow with a fitted Standardize layer and perturbed parameters (nothing relies on the initialisation)."""
    rng = onp.random.default_rng(seed)
    flow = OrderAgnosticMADE(dim, hidden, num_masks=num_masks, activation="tanh", standardize=standardize,
                             rng=int(rng.integers(1 << 30)))
    if standardize:
        flow.layers[0].fit(rng.normal(0.5, 2.0, size=(100, dim)))
    flow.params = perturb(flow.params, rng, 0.2)
    return flow


@pytest.fixture
def x():
    return onp.random.default_rng(99).normal(0.5, 2.0, size=(6, D))


def test_with_one_mask_set_it_equals_a_gaussian_made_with_that_order_exactly(x):
    flow = build(num_masks=1)
    made = mf.MADE(D, (16, 16), order=flow.orders[0], activation="tanh", rng=1)
    made.made_layer.set_state(flow.made_layer.made_layers[0].get_state())  # the same (random) hidden degrees
    made.layers[0].set_state(flow.layers[0].get_state())
    made.params = flow.params
    assert onp.array_equal(made.log_prob(x), flow.log_prob(x))
    assert onp.array_equal(made.log_prob(x), flow.log_prob_per_mask(x)[:, 0])


def test_the_mask_sets_have_different_orders_and_hidden_degrees():
    flow = build(dim=5, num_masks=4)
    layers = flow.made_layer.made_layers
    assert len({tuple(order) for order in flow.orders}) > 1
    assert all(not onp.array_equal(layers[0].degrees[1], layer.degrees[1]) for layer in layers[1:])
    for layer, order in zip(layers, flow.orders):
        assert onp.array_equal(onp.sort(order), onp.arange(5))
        assert onp.array_equal(layer.degrees[0][order], onp.arange(1, 6))  # order[k] has degree k + 1


@pytest.mark.parametrize("k", range(4))
def test_each_mask_set_is_autoregressive_in_its_own_order(k, x):
    """d(mu_i, alpha_i)/dx_j is zero unless x_j comes before x_i in mask set k's order (degree_j < degree_i)."""
    flow = build(num_masks=4)
    params = flow.params[-1]
    degrees = flow.made_layer.made_layers[k].degrees[0]
    allowed = degrees[None, :] < degrees[:, None]  # (output i, input j)
    for head in (0, 1):  # mu, alpha
        J = onp.stack([jacobian(lambda v, head=head: flow.made_layer.conditioner(params, v[None, :], k)[head][0])(point)
                       for point in x])  # (n, D, D)
        assert onp.max(onp.abs(J[:, ~allowed])) == 0.0, f"mask set {k} leaks (head {head})"
        assert onp.all(onp.abs(J[:, allowed]) > 0), f"mask set {k} cuts an allowed dependency (head {head})"


def test_ensemble_is_the_log_of_the_mean_of_the_mask_sets_probabilities(x):
    flow = build(num_masks=5)
    per_mask = flow.log_prob_per_mask(x)
    assert per_mask.shape == (len(x), 5) and onp.all(per_mask > -30)  # moderate values: exp() is safe
    expected = onp.log(onp.mean(onp.exp(per_mask), axis=1))
    onp.testing.assert_allclose(flow.log_prob(x), expected, rtol=0, atol=1e-12)
    # ... which is not the mean of the log-probabilities (a geometric mean, not normalised): Jensen, strictly
    assert onp.all(flow.log_prob(x) > onp.mean(per_mask, axis=1) + 1e-6)


def test_ensemble_log_prob_is_stable_far_from_the_data():
    flow = build(num_masks=3)
    log_prob = flow.log_prob(onp.full((2, D), 40.0))
    assert onp.all(onp.isfinite(log_prob)) and onp.all(log_prob < -100)


def test_density_costs_one_pass_per_mask_set_and_sampling_D_passes_per_mask_set_used(x):
    flow = build(num_masks=4)
    flow.log_prob(x)
    assert flow.passes == 4
    flow.sample(200, rng=0)  # all four mask sets are used
    assert flow.passes == 4 * D


def test_2d_density_integrates_to_one_on_a_grid():
    """Quadrature of exp(log_prob) on [-14, 14]^2 plus the mass outside it (from the flow's samples) is 1."""
    flow = build(dim=2, num_masks=3, seed=3)
    testing.assert_density_integrates_to_one(flow)


def test_each_sample_is_drawn_from_one_mask_set_chosen_uniformly():
    """The documented draws: k (n,) first, then z (n, D); point i is mask set k_i's MADE applied to z_i."""
    flow = build(num_masks=3)
    x = flow.sample(300, rng=7)
    rng = onp.random.default_rng(7)
    k = rng.integers(3, size=300)
    z = rng.standard_normal((300, D))
    assert set(onp.unique(k)) == {0, 1, 2}
    for j in range(3):
        u, _ = flow.made_layer.forward(flow.params[-1], z[k == j], j)
        expected, _ = flow.layers[0].forward({}, u)
        onp.testing.assert_allclose(x[k == j], expected, rtol=0, atol=1e-12)
    assert onp.array_equal(flow.sample(5, rng=3), flow.sample(5, rng=3))


def test_parameter_gradients_match_central_differences(x):
    flow = build(num_masks=3)
    onp.random.seed(0)
    check_grads(lambda p: -np.sum(flow.log_prob(x, params=p)) / len(x), modes=["rev"], order=1)(flow.params)
    check_grads(lambda p: -np.sum(flow.training_log_density(p, x, onp.random.default_rng(1))) / len(x),
                modes=["rev"], order=1)(flow.params)


def test_input_gradients_match_central_differences(x):
    flow = build(num_masks=3)
    onp.random.seed(0)
    check_grads(lambda v: np.sum(flow.log_density(flow.params, v)), modes=["rev"], order=1)(x)


def test_the_training_loss_uses_one_mask_set_drawn_from_the_step_generator(x):
    flow = build(num_masks=4)
    per_mask = flow.log_prob_per_mask(x)
    drawn = []
    for step in range(20):
        k = int(onp.random.default_rng(step).integers(4))  # what training_log_density draws from this generator
        flow.made_layer.calls = 0
        log_prob = flow.training_log_density(flow.params, x, onp.random.default_rng(step))
        assert flow.made_layer.calls == 1  # one mask set, one pass
        onp.testing.assert_allclose(log_prob, per_mask[:, k], rtol=0, atol=1e-13)
        drawn.append(k)
    assert len(set(drawn)) == 4  # different steps use different mask sets


def _fit_recording_masks(steps, seed):
    """fit a small flow, recording the mask set each training step draws (peeked from fit's step generator)."""
    x_train = mf.datasets.toy("fig1", 400, rng=0)
    flow = OrderAgnosticMADE(2, (8,), num_masks=4, rng=0)
    drawn, train_log_prob = [], flow.training_log_density

    def spy(params, x, rng):
        drawn.append(_peek(rng, flow.num_masks))
        return train_log_prob(params, x, rng)

    flow.training_log_density = spy
    before = -onp.mean(flow.log_prob(x_train))
    history = flow.fit(x_train, steps=steps, batch_size=50, lr=1e-2, progress=False, rng=seed)
    return drawn, flow, before, -onp.mean(flow.log_prob(x_train)), history


def test_fit_draws_one_mask_set_per_step_reproducibly_from_its_seed():
    drawn, flow, _, _, history = _fit_recording_masks(12, seed=3)
    assert len(drawn) == 12  # once per Adam step (validation uses the ensemble, not this)
    assert len(set(drawn)) > 1  # different steps, different mask sets
    again, flow_again, _, _, _ = _fit_recording_masks(12, seed=3)
    assert again == drawn
    assert onp.array_equal(flow_again.log_prob(onp.zeros((2, 2))), flow.log_prob(onp.zeros((2, 2))))
    other, _, _, _, _ = _fit_recording_masks(12, seed=4)
    assert other != drawn


def test_a_short_fit_with_one_mask_set_per_step_lowers_the_ensemble_nll():
    _, _, before, after, history = _fit_recording_masks(60, seed=0)
    assert after < before - 0.1, f"ensemble NLL {before:.3f} -> {after:.3f}"


def _peek(rng, K):
    """The mask index ``rng.integers(K)`` will draw, without moving ``rng``."""
    copy = onp.random.Generator(type(rng.bit_generator)())
    copy.bit_generator.state = rng.bit_generator.state
    return int(copy.integers(K))


def test_save_then_load_gives_the_same_model_bit_for_bit(tmp_path, x):
    flow = build(num_masks=4)
    flow.save(tmp_path / "agnostic.npz")
    loaded = mf.load(tmp_path / "agnostic.npz")
    assert type(loaded) is OrderAgnosticMADE and loaded.config == flow.config
    for a, b in zip(flow.made_layer.made_layers, loaded.made_layer.made_layers):
        assert all(onp.array_equal(m, n) for m, n in zip(a.degrees, b.degrees))
    assert onp.array_equal(loaded.log_prob_per_mask(x), flow.log_prob_per_mask(x))
    assert onp.array_equal(loaded.log_prob(x), flow.log_prob(x))
    assert onp.array_equal(loaded.sample(20, rng=1), flow.sample(20, rng=1))


def test_load_refuses_a_mask_set_whose_input_degrees_are_not_a_permutation(tmp_path):
    flow = build(num_masks=2)
    flow.save(tmp_path / "agnostic.npz")
    arrays = dict(onp.load(tmp_path / "agnostic.npz"))
    arrays["state/1/mask_1/degrees_0"] = onp.array([1, 1, 2])
    onp.savez(tmp_path / "tampered.npz", **arrays)
    with pytest.raises(ValueError, match="'state/1/mask_1/degrees_0' must be a permutation of 1..3"):
        mf.load(tmp_path / "tampered.npz")


def test_float32_stays_float32(x):
    flow = OrderAgnosticMADE(D, (16, 16), num_masks=3, rng=0, dtype="float32")
    assert flow.log_prob(x).dtype == onp.float32
    assert flow.log_prob_per_mask(x).dtype == onp.float32
    assert flow.sample(4, rng=0).dtype == onp.float32


@pytest.mark.parametrize("arguments, error, message", [
    ({"num_masks": 0}, ValueError, "num_masks must be >= 1"),
    ({"num_masks": -2}, ValueError, "num_masks must be >= 1"),
    ({"num_masks": 2.5}, TypeError, "num_masks must be an int"),
    ({"num_masks": True}, TypeError, "num_masks must be an int"),
    ({"dim": 0}, ValueError, "dim must be >= 1"),
    ({"hidden": (8, -1)}, ValueError, "hidden"),
    ({"activation": "sigmoid"}, ValueError, "activation"),
    ({"standardize": "yes"}, TypeError, "standardize"),
    ({"dtype": "float16"}, ValueError, "dtype"),
])
def test_bad_arguments_are_refused_naming_the_argument(arguments, error, message):
    with pytest.raises(error, match=message):
        OrderAgnosticMADE(**{"dim": 2, **arguments})


def test_bad_input_is_refused_and_there_is_no_single_bijection(x):
    flow = build(num_masks=2)
    with pytest.raises(ValueError, match="x"):
        flow.log_prob(onp.zeros((4, D + 1)))
    with pytest.raises(ValueError, match="x"):
        flow.log_prob_per_mask(onp.full((2, D), onp.nan))
    for method in (flow.inverse, flow.forward, flow.trace_inverse):
        with pytest.raises(NotImplementedError, match="mixture"):
            method(x)


def test_a_run_interrupted_and_resumed_from_its_checkpoint_draws_the_same_masks_and_ends_bit_identical(tmp_path):
    x_train = mf.datasets.toy("fig1", 400, rng=0)

    def run(interrupt_at=None, resume=None):
        flow = OrderAgnosticMADE(2, (8,), num_masks=4, rng=0)
        drawn, train_log_prob = [], flow.training_log_density

        def spy(params, x, rng):
            if len(drawn) == interrupt_at:
                raise KeyboardInterrupt
            drawn.append(_peek(rng, flow.num_masks))
            return train_log_prob(params, x, rng)

        flow.training_log_density = spy
        history = flow.fit(x_train, steps=20, batch_size=50, lr=1e-2, progress=False, rng=1, val_every=5,
                           checkpoint=tmp_path / "run.npz", resume=resume)
        return flow, drawn, history

    flow, drawn, _ = run()
    _, first, history = run(interrupt_at=8)
    assert history["status"] == "interrupted" and len(first) == 8
    resumed, second, history = run(resume=tmp_path / "run.npz")
    assert history["status"] == "completed" and first + second == drawn
    assert onp.array_equal(resumed.log_prob(x_train), flow.log_prob(x_train))
