"""Variational inference: the ELBO estimate, its gradient, fit_vi and the lesson's two targets.

The funnel is normalised (log Z = 0), so ELBO = -KL(q || p) <= 0; the best diagonal Gaussian reaches
-0.768 nats there (closed form: v's scale s solves s^2 (2 + 1 / 1.35^2) = 1), which an IAF must beat.
"""

import warnings

import autograd.numpy as np
import numpy as onp
import pytest
from autograd.misc import flatten
from autograd.test_util import check_grads

import maf_numpy as mf
from maf_numpy import vi
from tests.helpers import perturb

BEST_DIAGONAL_GAUSSIAN_ELBO = -0.768
HISTORY_KEYS = {"step", "elbo", "elbo_smoothed", "time", "passes_per_step", "best_step", "best_elbo",
                "steps_run", "status", "message", "warnings"}


def small_flow(cls=mf.IAF, seed=0, **options):
    options = {"num_layers": 2, "hidden": (8,), "standardize": False, "rng": seed, **options}
    return cls(2, **options)


# --- the targets ---------------------------------------------------------------------------------------
def test_funnel_log_density_integrates_to_one_on_a_grid():
    v = onp.linspace(-9, 9, 1201)
    # mu | v has scale exp(v): integrate mu in units of that scale, t = mu / exp(v), dmu = exp(v) dt.
    t = onp.linspace(-9, 9, 1201)
    V, T = onp.meshgrid(v, t, indexing="ij")
    x = onp.stack([(T * onp.exp(V)).ravel(), V.ravel()], axis=1)
    integrand = onp.exp(vi.funnel_log_density(x)).reshape(V.shape) * onp.exp(V)
    total = integrand.sum() * (v[1] - v[0]) * (t[1] - t[0])
    assert total == pytest.approx(1.0, abs=1e-6)


def test_funnel_log_density_is_the_product_of_its_two_gaussians():
    rng = onp.random.default_rng(0)
    x = rng.normal(size=(5, 2))
    mu, v = x[:, 0], x[:, 1]
    expected = (-0.5 * (v / 1.35) ** 2 - onp.log(1.35 * onp.sqrt(2 * onp.pi))
                - 0.5 * (mu / onp.exp(v)) ** 2 - onp.log(onp.exp(v) * onp.sqrt(2 * onp.pi)))
    onp.testing.assert_allclose(vi.funnel_log_density(x), expected, rtol=1e-13)


def test_ring_log_energy_is_largest_on_the_circle_of_radius_sqrt2():
    angles = onp.linspace(0, 2 * onp.pi, 9)[:-1]
    on_ring = onp.sqrt(2) * onp.stack([onp.cos(angles), onp.sin(angles)], axis=1)
    assert onp.all(vi.ring_log_energy(on_ring) > vi.ring_log_energy(1.5 * on_ring))
    assert onp.all(vi.ring_log_energy(on_ring) > vi.ring_log_energy(0.5 * on_ring))


def test_best_diagonal_gaussian_on_the_funnel_has_elbo_minus_0768():
    s_v2 = 1 / (2 + 1 / 1.35**2)  # the optimum; then s_mu^2 = exp(-2 s_v^2) and the means are 0
    scale = onp.sqrt([onp.exp(-2 * s_v2), s_v2])
    x = scale * onp.random.default_rng(0).standard_normal((1_000_000, 2))
    entropy = onp.sum(onp.log(scale)) + (1 + onp.log(2 * onp.pi))
    elbo = onp.mean(vi.funnel_log_density(x)) + entropy
    assert elbo == pytest.approx(BEST_DIAGONAL_GAUSSIAN_ELBO, abs=5e-3)


# --- the ELBO ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [mf.IAF, mf.MAF, mf.RealNVP], ids=["IAF", "MAF", "RealNVP"])
def test_elbo_of_a_flow_against_its_own_log_prob_is_zero_per_sample(cls):
    rng = onp.random.default_rng(0)
    flow = cls(2, num_layers=2, hidden=(8,), standardize=False, rng=0)
    flow.params = perturb(flow.params, rng, 0.3)
    z = rng.standard_normal((50, 2))
    terms = vi.elbo_per_sample(flow, flow.log_prob, z)
    onp.testing.assert_allclose(terms, 0.0, atol=1e-10)


def test_elbo_of_a_flow_is_at_most_log_z_for_the_normalised_funnel():
    rng = onp.random.default_rng(1)
    for seed in range(3):
        flow = small_flow(seed=seed)
        flow.params = perturb(flow.params, rng, 0.3)
        estimate, standard_error = vi.elbo(flow, vi.funnel_log_density, 4000, rng=seed)
        assert estimate <= 0.0 + 3 * standard_error, f"ELBO {estimate:.4f} +- {standard_error:.4f} > log Z = 0"


def test_elbo_counts_one_pass_per_layer_for_iaf_and_d_per_layer_for_maf():
    z = onp.random.default_rng(0).standard_normal((10, 2))
    iaf, maf = small_flow(mf.IAF, num_layers=3), small_flow(mf.MAF, num_layers=3)
    vi.elbo_per_sample(iaf, vi.funnel_log_density, z)
    vi.elbo_per_sample(maf, vi.funnel_log_density, z)
    assert (iaf.passes, maf.passes) == (3, 3 * 2)


def test_elbo_gradient_matches_central_differences_at_fixed_z():
    rng = onp.random.default_rng(2)
    flow = small_flow(activation="tanh")
    flow.params = perturb(flow.params, rng, 0.3)
    z = rng.standard_normal((20, 2))
    onp.random.seed(0)  # check_grads draws its random direction from NumPy's global generator

    def mean_elbo(params):
        return np.sum(vi.elbo_per_sample(flow, vi.funnel_log_density, z, params)) / z.shape[0]

    check_grads(mean_elbo, modes=["rev"], order=1)(flow.params)


def test_elbo_standard_error_is_zero_for_one_sample_and_estimates_are_reproducible():
    flow = small_flow()
    assert vi.elbo(flow, vi.funnel_log_density, 1, rng=0)[1] == 0.0
    assert vi.elbo(flow, vi.funnel_log_density, 100, rng=3) == vi.elbo(flow, vi.funnel_log_density, 100, rng=3)


# --- fit_vi --------------------------------------------------------------------------------------------
def test_fit_vi_raises_an_iafs_elbo_on_the_funnel_above_the_best_diagonal_gaussian():
    flow = small_flow()
    before, _ = vi.elbo(flow, vi.funnel_log_density, 4000, rng=1)
    history = vi.fit_vi(flow, vi.funnel_log_density, steps=400, n_samples=64, lr=1e-2, rng=0, progress=False)
    after, standard_error = vi.elbo(flow, vi.funnel_log_density, 10_000, rng=1)
    assert set(history) == HISTORY_KEYS and history["status"] == "completed"
    assert history["passes_per_step"] == 2
    assert after > BEST_DIAGONAL_GAUSSIAN_ELBO + 3 * standard_error, f"ELBO {after:.4f} (before {before:.4f})"
    assert after <= 0.0 + 3 * standard_error


def test_fit_vi_history_has_one_record_per_step_and_keeps_the_best_parameters():
    flow = small_flow()
    history = vi.fit_vi(flow, vi.funnel_log_density, steps=30, n_samples=16, lr=1e-2, rng=0, progress=False)
    assert history["step"] == list(range(1, 31)) and history["steps_run"] == 30
    assert len(history["elbo"]) == len(history["elbo_smoothed"]) == len(history["time"]) == 30
    assert history["best_elbo"] == max(history["elbo_smoothed"])


def test_fit_vi_is_reproducible_from_a_seed():
    flows = [small_flow(), small_flow()]
    for flow in flows:
        vi.fit_vi(flow, vi.funnel_log_density, steps=20, n_samples=16, rng=5, progress=False)
    onp.testing.assert_array_equal(flatten(flows[0].params)[0], flatten(flows[1].params)[0])


def test_fit_vi_stops_with_a_warning_and_keeps_finite_parameters_on_a_non_finite_loss():
    calls = {"n": 0}

    def target_that_breaks(x):
        calls["n"] += 1
        return vi.funnel_log_density(x) + (np.inf if calls["n"] > 6 else 0.0)

    flow = small_flow()
    with pytest.warns(RuntimeWarning, match="not finite"):
        history = vi.fit_vi(flow, target_that_breaks, steps=50, n_samples=8, rng=0, progress=False)
    assert history["status"] == "diverged" and history["steps_run"] < 50
    assert onp.all(onp.isfinite(flatten(flow.params)[0]))


def test_a_diverging_fit_vi_prints_one_message_not_numpy_warnings():
    """lr = 10 overflows exp(alpha) at step 2: NumPy's RuntimeWarnings are counted in the history and named in
    the one divergence warning instead of streaming out."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = vi.fit_vi(small_flow(), vi.funnel_log_density, steps=50, n_samples=8, lr=10.0, rng=0,
                            progress=False)
    assert history["status"] == "diverged"
    assert [w.category for w in caught] == [RuntimeWarning], [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert message == history["message"] and message.startswith("VI diverged at step 2")
    assert "floating-point warnings at step 2" in message and "history['warnings']" in message
    assert history["warnings"] and all(record["first_step"] == 2 for record in history["warnings"])
    assert any(record["message"] == "overflow encountered in exp" for record in history["warnings"])


def test_fit_vi_prints_progress_lines(capsys):
    vi.fit_vi(small_flow(), vi.funnel_log_density, steps=20, n_samples=8, rng=0, progress=True)
    assert "ELBO" in capsys.readouterr().out


# --- bad input -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, error, name", [
    pytest.param(lambda f: vi.elbo(f, "funnel", 10), TypeError, "log_target", id="log_target-not-callable"),
    pytest.param(lambda f: vi.elbo(f, lambda x: x, 10), ValueError, "log_target", id="log_target-wrong-shape"),
    pytest.param(lambda f: vi.elbo(f, lambda x: np.sum(x), 10), ValueError, "log_target", id="log_target-scalar"),
    pytest.param(lambda f: vi.elbo(f, vi.funnel_log_density, 0), ValueError, "n", id="n-zero"),
    pytest.param(lambda f: vi.elbo(f, vi.funnel_log_density, 2.5), TypeError, "n", id="n-float"),
    pytest.param(lambda f: vi.elbo("flow", vi.funnel_log_density, 10), TypeError, "flow", id="flow-not-a-flow"),
    pytest.param(lambda f: vi.elbo_per_sample(f, vi.funnel_log_density, onp.zeros((3, 3))), ValueError, "z",
                 id="z-wrong-shape"),
    pytest.param(lambda f: vi.fit_vi(f, vi.funnel_log_density, steps=0), ValueError, "steps", id="steps-zero"),
    pytest.param(lambda f: vi.fit_vi(f, vi.funnel_log_density, lr=-1.0), ValueError, "lr", id="lr-negative"),
    pytest.param(lambda f: vi.fit_vi(f, vi.funnel_log_density, lr=float("nan")), ValueError, "lr", id="lr-nan"),
    pytest.param(lambda f: vi.fit_vi(f, vi.funnel_log_density, n_samples=0), ValueError, "n_samples",
                 id="n_samples-zero"),
    pytest.param(lambda f: vi.fit_vi(f, vi.funnel_log_density, smoothing=1.0), ValueError, "smoothing",
                 id="smoothing-one"),
    pytest.param(lambda f: vi.fit_vi(f, lambda x: x[:, :1], steps=3), ValueError, "log_target",
                 id="fit_vi-log_target-wrong-shape"),
])
def test_bad_input_raises_an_error_naming_the_argument(call, error, name):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(error, match=name):
            call(small_flow())


def test_fit_vi_keeps_the_best_parameters_and_says_so_when_interrupted():
    calls = {"n": 0}

    def target_interrupted_at_step_5(x):
        calls["n"] += 1
        if calls["n"] == 6:  # call 1 is fit_vi's own shape check
            raise KeyboardInterrupt
        return vi.funnel_log_density(x)

    flow = small_flow()
    history = vi.fit_vi(flow, target_interrupted_at_step_5, steps=50, n_samples=8, rng=0, progress=False)
    assert history["status"] == "interrupted" and history["steps_run"] == 4
    assert onp.all(onp.isfinite(flatten(flow.params)[0]))
