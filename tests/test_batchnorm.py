"""Batch normalisation as a bijector (transforms.BatchNorm) and flows built with ``batch_norm=True``.

The evaluation-mode layer is also in tests/helpers.py's LAYERS, so the uniform suite of tests/test_transforms.py
(round trip, log-det against slogdet of the autograd Jacobian, diagonal Jacobian, gradients against central
differences) runs on it. This file checks what is particular to it: the two modes and their difference, the
training-mode gradients, the evaluation statistics that ``refresh_state`` computes, training with ``fit``,
save/load, and bad input.
"""

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad, jacobian
from autograd.test_util import check_grads
from helpers import perturb

import maf_numpy as mf
from maf_numpy import testing
from maf_numpy.transforms import BatchNorm

D = 3


@pytest.fixture
def rng():
    return onp.random.default_rng(2024)


def make_layer(rng, D=D):
    layer = BatchNorm(D).set_statistics(rng.normal(1.0, 2.0, size=(40, D)))
    return layer, perturb(layer.init_params(rng), rng)


def make_flow(cls=mf.MAF, seed=0, D=2, num_layers=3, **options):
    """A flow with batch norm, perturbed parameters and statistics refreshed from N(0.5, 2^2) data."""
    rng = onp.random.default_rng(seed)
    flow = cls(D, num_layers=num_layers, hidden=(16,), activation="tanh", rng=seed, batch_norm=True, **options)
    x = rng.normal(0.5, 2.0, size=(200, D))
    flow.layers[0].fit(x)
    flow.params = perturb(flow.params, rng, 0.2)
    flow.refresh_state(x)
    return flow, rng


# --- the layer in its two modes --------------------------------------------------------------------
def test_training_mode_normalises_the_batch_to_beta_and_exp_log_gamma(rng):
    layer, params = make_layer(rng)
    layer.training = True
    z, _ = layer.inverse(params, rng.normal(5.0, 3.0, size=(500, D)))
    onp.testing.assert_allclose(z.mean(axis=0), params["beta"], atol=1e-12)
    onp.testing.assert_allclose(z.std(axis=0), onp.exp(params["log_gamma"]), rtol=1e-5)  # eps = 1e-5 in v + eps


def test_training_mode_log_density_of_a_point_depends_on_its_batch(rng):
    """The same point in two batches gets two log-densities in training mode, one in evaluation mode."""
    flow, rng = make_flow()
    x0 = onp.array([[0.3, -0.2]])
    batch_a = onp.concatenate([x0, rng.normal(0.0, 1.0, size=(31, 2))])
    batch_b = onp.concatenate([x0, rng.normal(2.0, 3.0, size=(31, 2))])
    flow.training = True
    log_p_a, log_p_b = flow.log_prob(batch_a)[0], flow.log_prob(batch_b)[0]
    assert abs(log_p_a - log_p_b) > 0.1, f"training mode: {log_p_a} vs {log_p_b}"
    flow.training = False
    log_p_a, log_p_b = flow.log_prob(batch_a)[0], flow.log_prob(batch_b)[0]
    assert abs(log_p_a - log_p_b) < 1e-12, f"evaluation mode must be per point: {log_p_a} vs {log_p_b}"
    assert abs(flow.log_prob(x0)[0] - log_p_a) < 1e-12  # (rounding of the batched matrix products aside)


def test_training_mode_log_det_is_the_same_for_every_point_of_the_batch(rng):
    layer, params = make_layer(rng)
    layer.training = True
    x = rng.normal(size=(9, D))
    log_det = layer.inverse(params, x)[1]
    m, v = x.mean(axis=0), x.var(axis=0)
    expected = onp.sum(params["log_gamma"] - 0.5 * onp.log(v + 1e-5))
    onp.testing.assert_allclose(log_det, onp.full(9, expected), rtol=0, atol=1e-12)
    onp.testing.assert_allclose(layer.inverse(params, x)[0],
                                (x - m) / onp.sqrt(v + 1e-5) * onp.exp(params["log_gamma"]) + params["beta"],
                                rtol=0, atol=1e-12)


def test_training_mode_jacobian_of_the_batch_couples_the_points(rng):
    """In training mode z_a depends on x_b (through m and v): the Jacobian of the whole batch has non-zero
    off-diagonal blocks, so the layer is not a map of each point; its log-det is that of the diagonal blocks
    with m and v held fixed (the MAF paper's training objective), which is exact in evaluation mode."""
    layer, params = make_layer(rng)
    layer.training = True
    x = rng.normal(size=(4, D))
    J = jacobian(lambda u: layer.inverse(params, u)[0])(x)  # (n, D, n, D)
    off_diagonal = max(onp.max(onp.abs(J[a, :, b, :])) for a in range(4) for b in range(4) if a != b)
    assert off_diagonal > 1e-3, f"the points of a training-mode batch should interact, |J_ab| <= {off_diagonal}"


def test_evaluation_mode_map_is_exactly_invertible_and_its_log_det_is_the_jacobians(rng):
    layer, params = make_layer(rng)
    x = rng.normal(1.0, 2.0, size=(7, D))
    testing.assert_round_trip(layer, x, params)
    testing.assert_log_det_matches_jacobian(layer, x, "inverse", params)
    testing.assert_log_det_matches_jacobian(layer, x, "forward", params)


@pytest.mark.parametrize("wrt", ["params", "x"])
def test_training_mode_gradients_match_central_differences(wrt, rng):
    """The loss of a batch, differentiated through the batch's own mean and variance."""
    layer, params = make_layer(rng)
    layer.training = True
    x = rng.normal(1.0, 2.0, size=(6, D))
    weights = rng.standard_normal(x.shape)

    def loss(p, u):
        z, log_det = layer.inverse(p, u)
        return np.sum(weights * z) + np.sum(z**2) / 2 - np.sum(log_det)

    onp.random.seed(0)  # check_grads draws its directions from NumPy's global generator
    if wrt == "params":
        check_grads(lambda p: loss(p, x), modes=["rev"], order=1)(params)
    else:
        check_grads(lambda u: loss(params, u), modes=["rev"], order=1)(x)


def test_flow_training_loss_gradient_matches_central_differences():
    flow, rng = make_flow(num_layers=2)
    x = rng.normal(0.5, 2.0, size=(16, 2))
    flow.training = True
    onp.random.seed(0)
    check_grads(lambda p: -np.sum(flow.log_prob(x, params=p)) / 16, modes=["rev"], order=1)(flow.params)


def test_forward_and_sampling_refuse_training_mode(rng):
    layer, params = make_layer(rng)
    layer.training = True
    with pytest.raises(RuntimeError, match="evaluation mode"):
        layer.forward(params, rng.normal(size=(3, D)))
    flow, _ = make_flow()
    flow.training = True
    with pytest.raises(RuntimeError, match="evaluation mode"):
        flow.sample(5, rng=0)


# --- flows with batch_norm=True ----------------------------------------------------------------------
@pytest.mark.parametrize("cls", [mf.MAF, mf.IAF, mf.RealNVP])
def test_a_batch_norm_sits_between_consecutive_layers_but_not_after_the_last(cls):
    flow = cls(2, num_layers=3, hidden=(8,), rng=0, batch_norm=True)
    names = [type(layer).__name__ for layer in flow.layers]
    core = names[1]
    assert names == ["Standardize", core, "BatchNorm", core, "BatchNorm", core]
    assert flow.config["batch_norm"] is True and flow.needs_refresh
    assert "batch_norm" not in cls(2, num_layers=3, hidden=(8,), rng=0).config  # other configs unchanged
    assert not cls(2, num_layers=3, hidden=(8,), rng=0).needs_refresh


def test_training_property_sets_every_batch_norm_and_defaults_to_false():
    flow, _ = make_flow()
    norms = [layer for layer in flow.layers if isinstance(layer, BatchNorm)]
    assert flow.training is False and not any(layer.training for layer in norms)
    flow.training = True
    assert all(layer.training for layer in norms)
    flow.training = False
    assert not any(layer.training for layer in norms)


@pytest.mark.parametrize("cls", [mf.MAF, mf.IAF, mf.RealNVP])
def test_evaluation_mode_flow_is_exactly_invertible_and_its_log_det_is_the_jacobians(cls):
    flow, rng = make_flow(cls)
    x = rng.normal(0.5, 2.0, size=(5, 2))
    testing.assert_round_trip(flow, x)
    testing.assert_log_det_matches_jacobian(flow, x, "inverse")


def test_refreshed_statistics_are_the_training_mode_statistics_of_the_whole_set():
    """After refresh_state(x), evaluation mode on x gives what training mode gives with x as one batch."""
    flow, rng = make_flow()
    x = rng.normal(0.5, 2.0, size=(300, 2))
    flow.refresh_state(x)
    z_eval, log_det_eval = flow.inverse(x)
    flow.training = True
    z_train, log_det_train = flow.inverse(x)
    flow.training = False
    onp.testing.assert_allclose(z_eval, z_train, rtol=0, atol=1e-12)
    onp.testing.assert_allclose(log_det_eval, log_det_train, rtol=0, atol=1e-12)
    assert all(layer.refreshed for layer in flow.layers if isinstance(layer, BatchNorm))


def test_refresh_state_in_chunks_equals_one_pass():
    flow, rng = make_flow()
    x = rng.normal(0.5, 2.0, size=(301, 2))
    flow.refresh_state(x)
    one = [(layer.mean.copy(), layer.var.copy()) for layer in flow.layers if isinstance(layer, BatchNorm)]
    flow.refresh_state(x, batch=64)
    for (mean, var), layer in zip(one, [layer for layer in flow.layers if isinstance(layer, BatchNorm)]):
        onp.testing.assert_allclose(layer.mean, mean, rtol=1e-13, atol=1e-13)
        onp.testing.assert_allclose(layer.var, var, rtol=1e-13)


def test_refresh_state_is_a_no_op_without_batch_norm():
    flow = mf.MAF(2, num_layers=2, hidden=(8,), rng=0)
    assert flow.refresh_state(onp.zeros((4, 2))) is flow


def test_fit_trains_a_batch_norm_flow_whose_evaluation_density_integrates_to_one(tmp_path):
    x = mf.datasets.toy("moons", 1500, rng=0)
    flow = mf.MAF(2, num_layers=3, hidden=(32, 32), activation="tanh", rng=0, batch_norm=True)
    history = flow.fit(x, steps=300, batch_size=128, lr=3e-3, rng=0, progress=False, patience=None)
    assert flow.training is False
    assert history["best_val_nll"] < history["val_nll"][0] - 0.3, history["val_nll"][:3]
    norms = [layer for layer in flow.layers if isinstance(layer, BatchNorm)]
    assert all(layer.refreshed for layer in norms)
    assert any(onp.max(onp.abs(layer.mean)) > 1e-3 for layer in norms)  # really the data's statistics
    # evaluation mode: a per-point density that integrates to 1 (quadrature on a grid covering the mass)
    testing.assert_density_integrates_to_one(flow, half_width=4.0, num=401, n_samples=50_000, tol=5e-3)
    # and the model saved after training comes back bit for bit
    flow.save(tmp_path / "bn.npz")
    loaded = mf.load(tmp_path / "bn.npz")
    assert onp.array_equal(loaded.log_prob(x[:50]), flow.log_prob(x[:50]))
    assert onp.array_equal(loaded.sample(20, rng=3), flow.sample(20, rng=3))
    for a, b in zip(loaded.layers, flow.layers):
        if isinstance(b, BatchNorm):
            assert onp.array_equal(a.mean, b.mean) and onp.array_equal(a.var, b.var) and a.refreshed


@pytest.mark.parametrize("cls", [mf.IAF, mf.RealNVP])
def test_save_then_load_gives_bit_identical_log_prob(cls, tmp_path):
    flow, rng = make_flow(cls)
    x = rng.normal(0.5, 2.0, size=(20, 2))
    flow.save(tmp_path / "model")
    loaded = mf.load(tmp_path / "model.npz")
    assert loaded.config == flow.config
    assert onp.array_equal(loaded.log_prob(x), flow.log_prob(x))


def leaf_dtypes(tree):
    if isinstance(tree, dict):
        return set().union(*map(leaf_dtypes, tree.values()))
    if isinstance(tree, (list, tuple)):
        return set().union(*map(leaf_dtypes, tree))
    return {tree.dtype}


def test_float32_flow_keeps_float32_through_both_modes():
    flow = mf.MAF(2, num_layers=3, hidden=(16,), rng=0, batch_norm=True, dtype="float32")
    x = onp.random.default_rng(0).normal(0.5, 2.0, size=(16, 2)).astype(onp.float32)
    flow.refresh_state(x)
    flow.training = True

    g = grad(lambda p: -np.sum(flow.log_prob(x, params=p)) / 16)(flow.params)
    flow.training = False
    assert leaf_dtypes(g) == {onp.dtype(onp.float32)} and g[2]["log_gamma"].dtype == onp.float32
    assert flow.log_prob(x).dtype == onp.float32
    assert all(layer.mean.dtype == onp.float32 for layer in flow.layers if isinstance(layer, BatchNorm))


# --- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("eps", [0.0, -1e-5, float("nan"), float("inf")])
def test_a_non_positive_or_non_finite_eps_is_refused(eps):
    with pytest.raises(ValueError, match="eps"):
        BatchNorm(3, eps=eps)


@pytest.mark.parametrize("bad, error", [(0, ValueError), (2.5, TypeError), (True, TypeError)])
def test_a_bad_dimension_is_refused(bad, error):
    with pytest.raises(error, match="D"):
        BatchNorm(bad)


def test_statistics_of_the_wrong_dimension_are_refused(rng):
    with pytest.raises(ValueError, match=r"shape \(n, 3\)"):
        BatchNorm(3).set_statistics(rng.normal(size=(10, 2)))
    flow, _ = make_flow()
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        flow.refresh_state(rng.normal(size=(10, 3)))


def test_bad_batch_norm_and_training_values_are_refused():
    with pytest.raises(TypeError, match="batch_norm"):
        mf.MAF(2, num_layers=2, batch_norm="yes")
    flow, _ = make_flow()
    with pytest.raises(TypeError, match="training"):
        flow.training = 1


@pytest.mark.parametrize("name, value, message", [("var", -1.0, "must be >= 0"), ("mean", onp.nan, "NaN or inf"),
                                                  ("var", onp.inf, "NaN or inf")])
def test_load_refuses_damaged_batch_norm_statistics(name, value, message, tmp_path):
    flow, _ = make_flow()
    flow.save(tmp_path / "model.npz")
    arrays = dict(onp.load(tmp_path / "model.npz", allow_pickle=False))
    k = next(k for k, layer in enumerate(flow.layers) if isinstance(layer, BatchNorm))
    arrays[f"state/{k}/{name}"] = onp.full(2, value)
    onp.savez(tmp_path / "damaged.npz", **arrays)
    with pytest.raises(ValueError, match=message):
        mf.load(tmp_path / "damaged.npz")


def test_an_interrupted_batch_norm_run_resumes_bit_identical_and_ends_in_evaluation_mode(monkeypatch, tmp_path):
    """fit leaves training mode even when a step is interrupted; the checkpoint carries the statistics and
    the resumed run ends where the uninterrupted one ends, statistics included."""
    from autograd import value_and_grad

    from maf_numpy import train

    x_train, x_val = mf.datasets.toy("moons", 300, rng=0), mf.datasets.toy("moons", 100, rng=1)
    options = {"steps": 40, "batch_size": 64, "lr": 3e-3, "val_every": 5, "progress": False}

    def make():
        return mf.RealNVP(2, num_layers=2, hidden=(8,), rng=0, batch_norm=True)

    reference = make()
    expected = reference.fit(x_train, x_val, rng=0, **options)

    def interrupt_at_call_23(loss):
        loss_and_grad, calls = value_and_grad(loss), [0]

        def wrapped(*args):
            calls[0] += 1
            if calls[0] == 23:
                raise KeyboardInterrupt("simulated")
            return loss_and_grad(*args)

        return wrapped

    path = tmp_path / "run.npz"
    with monkeypatch.context() as patch:
        patch.setattr(train, "value_and_grad", interrupt_at_call_23)
        interrupted = make()
        assert interrupted.fit(x_train, x_val, rng=0, checkpoint=path, **options)["status"] == "interrupted"
    assert interrupted.training is False
    flow = make()
    history = flow.fit(x_train, x_val, resume=path, **options)
    assert history["val_nll"] == expected["val_nll"] and history["best_step"] == expected["best_step"]
    assert onp.array_equal(flow.log_prob(x_val), reference.log_prob(x_val))
    norm = flow.layers[2]
    assert isinstance(norm, BatchNorm) and onp.array_equal(norm.var, reference.layers[2].var)
