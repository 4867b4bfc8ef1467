"""fit: maximum likelihood with minibatch Adam, early stopping, the divergence guard, progress lines.

The Figure 1 tests reproduce the MAF paper's opening story (§1, Figure 1) on the density
x2 ~ N(0, 4), x1 | x2 ~ N(x2^2 / 4, 1), whose entropy is 3.531 nats, so that held-out NLL - 3.531 is the
KL divergence from the data to the model: a MAF gets within a few hundredths of a nat; a single Gaussian
MADE that generates x1 first cannot (p(x1) is not Gaussian), while one that generates x2 first can.
"""

import warnings

import autograd.numpy as anp
import numpy as onp
import pytest

import maf_numpy as mf
from maf_numpy import datasets

ENTROPY_FIG1 = 3.531
HISTORY_KEYS = {"step", "train_nll", "val_nll", "time", "best_step", "best_val_nll", "steps_run", "status",
                "message", "val_source", "warnings"}


@pytest.fixture(scope="module")
def fig1():
    """10 000 training points and 20 000 fresh test points of the Figure 1 density."""
    return datasets.toy("fig1", 10_000, rng=0), datasets.toy("fig1", 20_000, rng=1)


def test_the_fig1_entropy_is_the_number_the_thresholds_use():
    assert datasets.toy_entropy("fig1") == pytest.approx(ENTROPY_FIG1, abs=5e-4)


def test_fit_brings_a_maf_within_five_hundredths_of_a_nat_of_the_fig1_entropy(fig1):
    x_train, x_test = fig1
    flow = mf.MAF(dim=2, num_layers=5, hidden=(64, 64), rng=0)
    history = flow.fit(x_train, steps=1500, batch_size=256, lr=3e-3, rng=0, progress=False)
    test_nll = -onp.mean(flow.log_prob(x_test))
    assert history["status"] in ("completed", "early_stopped")
    assert test_nll < ENTROPY_FIG1 + 0.05, f"test NLL {test_nll:.4f} (entropy {ENTROPY_FIG1})"


@pytest.mark.parametrize("order, bound", [
    pytest.param([0, 1], lambda nll: nll > ENTROPY_FIG1 + 0.2, id="x1-first-stays-clearly-worse"),
    pytest.param([1, 0], lambda nll: nll < ENTROPY_FIG1 + 0.05, id="x2-first-gets-close"),
])
def test_a_gaussian_made_fits_fig1_only_in_the_right_order(fig1, order, bound):
    x_train, x_test = fig1
    made = mf.MADE(dim=2, hidden=(64, 64), order=order, rng=0)
    made.fit(x_train, steps=1500, batch_size=256, lr=3e-3, rng=0, progress=False)
    test_nll = -onp.mean(made.log_prob(x_test))
    assert bound(test_nll), f"order {order}: test NLL {test_nll:.4f} (entropy {ENTROPY_FIG1})"


# --- the history and the best parameters ---------------------------------------------------------------
def small_maf(seed=0):
    return mf.MAF(2, num_layers=2, hidden=(16, 16), rng=seed)


@pytest.fixture(scope="module")
def moons():
    return datasets.toy("moons", 1000, rng=0), datasets.toy("moons", 500, rng=1)


def mean_nll(flow, x):
    return -onp.mean(flow.log_prob(x))


def test_history_has_the_documented_keys_and_one_entry_per_validation(moons):
    x_train, x_val = moons
    history = small_maf().fit(x_train, x_val, steps=60, val_every=10, rng=0, progress=False, patience=None)
    assert set(history) == HISTORY_KEYS
    assert history["step"] == [10, 20, 30, 40, 50, 60]
    assert len(history["train_nll"]) == len(history["val_nll"]) == len(history["time"]) == 6
    assert onp.all(onp.isfinite(history["train_nll"])) and onp.all(onp.diff(history["time"]) >= 0)
    assert history["steps_run"] == 60 and history["status"] == "completed" and history["message"] == ""
    assert history["val_source"] == "x_val" and history["warnings"] == []


def test_the_final_params_are_the_best_seen_and_give_best_val_nll(moons):
    x_train, x_val = moons
    flow = small_maf()
    initial = mean_nll(flow, x_val)
    history = flow.fit(x_train, x_val, steps=80, val_every=10, lr=1e-2, rng=0, progress=False, patience=None)
    best = history["best_val_nll"]
    if history["best_step"] > 0:
        assert best == min(history["val_nll"]) < initial
        assert history["val_nll"][history["step"].index(history["best_step"])] == best
    else:  # nothing beat the initial parameters
        assert best == pytest.approx(initial, rel=1e-12) and best <= min(history["val_nll"])
    assert mean_nll(flow, x_val) == pytest.approx(best, rel=1e-12)  # recomputed from the final params


def test_without_x_val_a_fraction_of_x_train_is_held_out_and_reported(moons):
    x_train, _ = moons
    history = small_maf().fit(x_train, steps=5, val_fraction=0.2, rng=0, progress=False)
    assert history["val_source"].startswith("200 points (20%) held out of x_train")


# --- early stopping and the divergence guard ----------------------------------------------------------
def test_early_stopping_stops_when_overfitting_a_tiny_training_set(moons):
    x_train, x_val = moons
    flow = mf.MAF(2, num_layers=3, hidden=(64, 64), rng=0)
    history = flow.fit(x_train[:50], x_val, steps=3000, batch_size=50, lr=3e-3, val_every=20, patience=2,
                       rng=0, progress=False)
    assert history["status"] == "early_stopped"
    assert history["steps_run"] < 3000 and history["steps_run"] == history["step"][-1]
    assert "stopped early" in history["message"]
    best_index = history["step"].index(history["best_step"]) if history["best_step"] else -1
    assert len(history["val_nll"]) - 1 - best_index == 2  # exactly `patience` validations without gain
    assert mean_nll(flow, x_val) == pytest.approx(history["best_val_nll"], rel=1e-12)


def test_patience_none_never_stops_early_and_still_restores_the_best_step(moons):
    """Overfitting 50 points: validation gets worse after step 20, training runs on, the best is kept."""
    x_train, x_val = moons
    flow = mf.MAF(2, num_layers=3, hidden=(64, 64), rng=0)
    history = flow.fit(x_train[:50], x_val, steps=120, batch_size=50, lr=3e-3, val_every=20, patience=None,
                       rng=0, progress=False)
    assert history["status"] == "completed" and history["steps_run"] == 120
    assert 0 < history["best_step"] < 120 and history["val_nll"][-1] > history["best_val_nll"]
    assert mean_nll(flow, x_val) == pytest.approx(history["best_val_nll"], rel=1e-12)


def flat_params(flow):
    from autograd.misc import flatten

    return flatten(flow.params)[0]


@pytest.mark.parametrize("lr", [1e6, 10.0], ids=["lr-1e6", "lr-10"])
def test_a_diverging_fit_warns_stops_and_keeps_the_best_finite_params(moons, lr):
    x_train, x_val = moons
    flow = small_maf()
    before = flat_params(flow).copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # NumPy's own overflow warnings
        warnings.filterwarnings("error", message=".*diverged.*", category=RuntimeWarning)
        with pytest.raises(RuntimeWarning, match="diverged at step .*not finite.*restored the best"):
            flow.fit(x_train, x_val, steps=200, lr=lr, val_every=1, rng=0, progress=False)
    # Again without turning the warning into an error, to look at the result.
    flow = small_maf()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = flow.fit(x_train, x_val, steps=200, lr=lr, val_every=1, rng=0, progress=False)
    assert [w.category for w in caught if "diverged" in str(w.message)] == [RuntimeWarning]
    assert history["status"] == "diverged" and "diverged" in history["message"]
    assert history["steps_run"] < 200
    after = flat_params(flow)
    assert onp.all(onp.isfinite(after)) and onp.all(onp.isfinite(flow.log_prob(x_val)))
    if history["best_step"] == 0:  # nothing was better than the start: the start is restored exactly
        assert onp.array_equal(after, before)
    assert mean_nll(flow, x_val) == pytest.approx(history["best_val_nll"], rel=1e-12)


def test_a_flow_whose_loss_is_not_finite_from_the_start_is_left_unchanged(moons):
    x_train, x_val = moons
    flow = small_maf()
    flow.params[-1]["b_alpha"] = onp.full(2, -800.0)  # exp(-alpha) overflows: the loss is inf
    before = flat_params(flow).copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        history = flow.fit(x_train, x_val, steps=20, rng=0, progress=False)
    assert history["status"] == "diverged" and history["steps_run"] == 0
    assert onp.array_equal(flat_params(flow), before)


# --- NumPy's floating-point warnings: collected, reported once ------------------------------------------
FLOAT_WARNING_KEYS = {"message", "during", "count", "first_step", "last_step", "n_steps"}


class UnitGaussian:
    """The smallest object ``fit`` accepts (``params``, ``dim``, ``log_density``): N(mu, I) with mu learnt."""

    dim = 2

    def __init__(self):
        self.params = {"mu": onp.zeros(2)}

    def log_density(self, params, x, y=None):
        return -0.5 * anp.sum((x - params["mu"]) ** 2, axis=1) - onp.log(2 * onp.pi)

    def fit(self, *args, **options):
        return mf.train.fit(self, *args, **options)


class HarmlessOverflow(UnitGaussian):
    """Overflows an exp at every evaluation, harmlessly (min(inf, 0) = 0): the loss stays finite, as when
    an intermediate value of a layer leaves float range and is then squashed."""

    def log_density(self, params, x, y=None):
        return super().log_density(params, x) + onp.minimum(onp.exp(onp.float64(1000.0)), 0.0)


class Chatty(UnitGaussian):
    """Raises a DeprecationWarning and a UserWarning at every evaluation: not ours to collect."""

    def log_density(self, params, x, y=None):
        warnings.warn("a deprecated way of computing a density", DeprecationWarning, stacklevel=1)
        warnings.warn("a note from the model", UserWarning, stacklevel=1)
        return super().log_density(params, x)


def fit_recording(flow, *args, **options):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = flow.fit(*args, **options)
    return history, caught


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "reference"])
def test_a_diverging_fit_prints_one_message_not_numpy_warnings(moons, fast):
    """lr = 0.5 overflows exp(alpha) at step 2: NumPy raises about ten RuntimeWarnings on internal lines
    (layers, made.py, autograd); fit keeps them in the history and says it all in the divergence warning."""
    x_train, x_val = moons
    flow = mf.MAF(2, num_layers=2, hidden=(16, 16), rng=0, fast=fast)
    history, caught = fit_recording(flow, x_train, x_val, steps=50, lr=0.5, val_every=5, rng=0, progress=False)
    assert history["status"] == "diverged"
    assert [w.category for w in caught] == [RuntimeWarning], [str(w.message) for w in caught]
    message = str(caught[0].message)
    assert message == history["message"]
    assert message.startswith("training diverged at step 2: the training loss or its gradient is not finite")
    assert "floating-point warnings at step 2, in the loss and gradient" in message
    assert "overflow encountered in" in message and "history['warnings']" in message
    assert "smaller lr" in message and "alpha_clamp" in message
    records = history["warnings"]
    assert records and all(set(record) == FLOAT_WARNING_KEYS for record in records)
    assert all(record["during"] == "loss and gradient" and record["first_step"] == record["last_step"] == 2
               for record in records)
    assert any(record["message"].startswith("overflow encountered in") for record in records)
    assert len({(record["message"], record["during"]) for record in records}) == len(records)  # deduplicated
    assert f"NumPy raised {sum(record['count'] for record in records)} floating-point warnings" in message


def test_float_warnings_of_a_run_that_completes_are_counted_and_summarised_in_one_warning(moons):
    x_train, x_val = moons
    history, caught = fit_recording(HarmlessOverflow(), x_train, x_val, steps=20, val_every=5, rng=0,
                                    progress=False)
    assert history["status"] == "completed"
    assert sorted(history["warnings"], key=lambda r: r["during"]) == [
        {"message": "overflow encountered in exp", "during": "loss and gradient", "count": 20, "first_step": 1,
         "last_step": 20, "n_steps": 20},
        {"message": "overflow encountered in exp", "during": "validation", "count": 5, "first_step": 0,
         "last_step": 20, "n_steps": 5},  # before step 1, then at steps 5, 10, 15 and 20
    ]
    assert [w.category for w in caught] == [RuntimeWarning]
    message = str(caught[0].message)
    assert message.startswith("training completed after 20 steps, but NumPy raised 25 floating-point warnings "
                              "between steps 0 and 20 (kept in history['warnings']")
    assert "overflow encountered in exp (20 times, at 20 steps between 1 and 20, in the loss and gradient)" in message
    assert "smaller lr" in message and history["message"] == ""


def test_user_warnings_pass_through_fit(moons):
    """Warnings that are not NumPy's floating-point ones reach the caller as they would without fit: every
    one under "always", once per line under "default", as an exception under "error"; the float warnings
    of the caller's own callback are shown (once per line), not collected."""
    x_train, x_val = moons
    options = {"steps": 10, "val_every": 5, "rng": 0, "progress": False}

    def callback(step, history, flow):
        onp.exp(onp.float64(1000.0))  # the caller's own overflow

    history, caught = fit_recording(Chatty(), x_train, x_val, callback=callback, **options)
    evaluations = 10 + 3  # one loss per step, validations before step 1 and at steps 5 and 10
    texts = [(w.category, str(w.message)) for w in caught]
    assert texts.count((DeprecationWarning, "a deprecated way of computing a density")) == evaluations
    assert texts.count((UserWarning, "a note from the model")) == evaluations
    (overflow,) = [w for w in caught if w.category is RuntimeWarning]
    assert str(overflow.message) == "overflow encountered in exp" and overflow.filename == __file__
    assert history["status"] == "completed" and history["warnings"] == []

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        Chatty().fit(x_train, x_val, **options)
    assert [str(w.message) for w in caught].count("a note from the model") == 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("error", UserWarning)
        with pytest.raises(UserWarning, match="a note from the model"):
            Chatty().fit(x_train, x_val, **options)


def test_a_clean_fit_raises_no_warning_and_leaves_the_warning_machinery_as_it_was(moons):
    x_train, x_val = moons
    filters, show = list(warnings.filters), warnings.showwarning
    history, caught = fit_recording(small_maf(), x_train, x_val, steps=20, val_every=5, rng=0, progress=False)
    assert caught == [] and history["warnings"] == []
    assert warnings.filters == filters and warnings.showwarning is show


# --- progress -----------------------------------------------------------------------------------------
def test_progress_prints_step_train_and_val_nll_at_every_validation(moons, capsys):
    x_train, x_val = moons
    small_maf().fit(x_train, x_val, steps=30, val_every=10, rng=0, progress=True, patience=None)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3
    for line in lines:
        assert "step" in line and "train NLL" in line and "val NLL" in line


def test_progress_false_prints_nothing(moons, capsys):
    x_train, x_val = moons
    small_maf().fit(x_train, x_val, steps=30, val_every=10, rng=0, progress=False)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


# --- standardisation: fitted by fit, densities in the data's units ------------------------------------
def test_fit_fits_the_standardize_layer_to_x_train(moons):
    x_train, x_val = moons
    x_train = x_train * [3.0, 0.5] + [10.0, -4.0]
    flow = small_maf()
    assert not flow.layers[0].fitted
    flow.fit(x_train, x_val * [3.0, 0.5] + [10.0, -4.0], steps=2, rng=0, progress=False)
    assert flow.layers[0].fitted
    onp.testing.assert_allclose(flow.layers[0].shift, x_train.mean(axis=0), rtol=1e-12)
    onp.testing.assert_allclose(flow.layers[0].scale, x_train.std(axis=0), rtol=1e-12)


def test_a_second_fit_keeps_the_standardize_layer_of_the_first(moons):
    x_train, x_val = moons
    flow = small_maf()
    flow.fit(x_train, x_val, steps=2, rng=0, progress=False)
    shift = flow.layers[0].shift.copy()
    flow.fit(x_train + 5.0, x_val + 5.0, steps=2, rng=0, progress=False)
    assert onp.array_equal(flow.layers[0].shift, shift)


def test_log_prob_is_in_the_data_units_rescaling_by_10_costs_D_log_10_exactly():
    """Same network, Standardize fitted to x and to 10 x: log p(10 x) = log p(x) - D log 10."""
    x = datasets.toy("fig1", 500, rng=0)
    a, b = small_maf(), small_maf()
    a.layers[0].fit(x)
    b.layers[0].fit(10 * x)
    onp.testing.assert_allclose(b.log_prob(10 * x), a.log_prob(x) - 2 * onp.log(10), rtol=0, atol=1e-10)


def test_fitting_data_scaled_by_10_changes_the_test_nll_by_D_log_10(moons):
    x_train, x_val = moons
    x_test = datasets.toy("moons", 2000, rng=2)
    nll = {}
    for scale in (1.0, 10.0):
        flow = small_maf()
        flow.fit(scale * x_train, scale * x_val, steps=200, rng=0, progress=False)
        nll[scale] = mean_nll(flow, scale * x_test)
    assert nll[10.0] - nll[1.0] == pytest.approx(2 * onp.log(10), abs=0.05)


# --- reproducibility ----------------------------------------------------------------------------------
def test_the_same_seeds_give_the_same_history_and_params(moons):
    x_train, _ = moons
    runs = []
    for _ in range(2):
        flow = small_maf(seed=0)
        history = flow.fit(x_train, steps=40, val_every=10, rng=7, progress=False)
        runs.append((history, flat_params(flow)))
    (h1, p1), (h2, p2) = runs
    for key in HISTORY_KEYS - {"time"}:
        assert h1[key] == h2[key], key
    assert onp.array_equal(p1, p2)


def test_a_different_fit_seed_shuffles_differently(moons):
    x_train, _ = moons
    params = []
    for seed in (7, 8):
        flow = small_maf(seed=0)
        flow.fit(x_train, steps=20, rng=seed, progress=False, patience=None)
        params.append(flat_params(flow))
    assert not onp.array_equal(*params)


# --- augment: a transformation of every training minibatch with fresh randomness ----------------------------
def test_augment_sees_every_minibatch_with_a_fresh_generator_reproducibly():
    x = datasets.toy("moons", 200, rng=0)
    calls = []

    def augment(x_batch, rng):
        noise = rng.uniform(size=x_batch.shape)
        calls.append((x_batch.shape[0], float(noise[0, 0])))
        return x_batch + 0.01 * noise

    def run():
        calls.clear()
        flow = mf.MAF(2, num_layers=1, hidden=(8,), rng=0)
        flow.fit(x, x[:50], steps=12, batch_size=32, progress=False, rng=0, augment=augment)
        return flow, list(calls)

    flow_a, calls_a = run()
    flow_b, calls_b = run()
    # one call for the points that fit the Standardize layer, then one per step, each with new noise
    assert len(calls_a) == 1 + 12 and calls_a[0][0] == 200 and all(n == 32 for n, _ in calls_a[1:])
    assert len({u for _, u in calls_a}) == len(calls_a), "two calls drew the same noise"
    assert calls_a == calls_b
    assert all(onp.array_equal(a, b) for a, b in zip(flow_a.params[1].values(), flow_b.params[1].values())
               if not isinstance(a, list))


def test_augment_transforms_a_held_out_split_once_with_fixed_noise():
    x = datasets.toy("moons", 100, rng=0)
    shapes = []

    def augment(x_batch, rng):
        shapes.append(x_batch.shape[0])
        return x_batch + 1e-3 * rng.standard_normal(x_batch.shape)

    flow = mf.MAF(2, num_layers=1, hidden=(8,), rng=0)
    history = flow.fit(x, steps=3, batch_size=16, progress=False, rng=0, val_fraction=0.2, augment=augment)
    assert shapes == [80, 20, 16, 16, 16]  # Standardize's points, the held-out points, three minibatches
    assert "held out" in history["val_source"]


def test_a_bad_augment_is_refused_with_the_argument_named():
    x = datasets.toy("moons", 100, rng=0)
    flow = mf.MAF(2, num_layers=1, hidden=(8,), rng=0)
    with pytest.raises(TypeError, match="augment must be a callable"):
        flow.fit(x, steps=2, progress=False, augment="dequantize")
    with pytest.raises(ValueError, match=r"augment must return a float array of shape \(90, 2\)"):
        flow.fit(x, steps=2, progress=False, augment=lambda x_batch, rng: x_batch[:, :1])


# --- ema: validate and keep a moving average of the parameters -------------------------------------------------
def test_ema_keeps_the_moving_average_of_the_adam_iterates(monkeypatch):
    """avg_0 = theta_0, avg_t = ema avg_{t-1} + (1 - ema) theta_t; validated and kept instead of theta_t.
    The iterates themselves are those of the run without ema (the average never feeds back)."""
    from autograd.misc import flatten

    from maf_numpy import train

    x = datasets.toy("moons", 300, rng=0)
    iterates = []
    original = train.adam_step

    def recording(*args, **kwargs):
        out = original(*args, **kwargs)
        iterates.append(out[0].copy())
        return out

    monkeypatch.setattr(train, "adam_step", recording)
    monkeypatch.setattr(train, "chunked_adam_step", recording)
    flow = mf.MAF(2, num_layers=1, hidden=(8,), rng=0)
    theta_0 = flatten(flow.params)[0].copy()
    history = flow.fit(x, x[:100], steps=3, val_every=3, batch_size=64, lr=1e-2, rng=0, progress=False, ema=0.5,
                       patience=None)
    assert history["best_step"] == 3 and len(iterates) == 3
    expected = 0.125 * theta_0 + 0.125 * iterates[0] + 0.25 * iterates[1] + 0.5 * iterates[2]
    onp.testing.assert_allclose(flatten(flow.params)[0], expected, rtol=0, atol=1e-14)
    assert history["best_val_nll"] == pytest.approx(-onp.mean(flow.log_prob(x[:100])), abs=1e-12)


def test_ema_is_resumed_bit_identical_and_a_float32_average_stays_float32(monkeypatch, tmp_path):
    from autograd.misc import flatten
    from test_checkpoints import fit_interrupted_at

    x = datasets.toy("moons", 300, rng=0)
    options = {"steps": 40, "batch_size": 64, "lr": 3e-3, "val_every": 5, "progress": False, "ema": 0.9}
    reference = mf.MAF(2, num_layers=2, hidden=(8,), rng=0, dtype="float32")
    expected = reference.fit(x, x[:100], rng=0, **options)
    path = tmp_path / "run.npz"
    fit_interrupted_at(monkeypatch, mf.MAF(2, num_layers=2, hidden=(8,), rng=0, dtype="float32"), 17, x, x[:100],
                       rng=0, checkpoint=path, **options)
    flow = mf.MAF(2, num_layers=2, hidden=(8,), rng=0, dtype="float32")
    history = flow.fit(x, x[:100], resume=path, **options)
    assert onp.array_equal(flatten(flow.params)[0], flatten(reference.params)[0])
    assert history["best_val_nll"] == expected["best_val_nll"]
    assert all(leaf.dtype == onp.float32 for leaf in [flow.params[1]["W_mu"], *flow.params[1]["W"]])
    assert onp.load(path)["theta_avg"].dtype == onp.float32


def test_ema_must_be_a_number_in_zero_one():
    x = datasets.toy("moons", 100, rng=0)
    for bad in (0.0, 1.0, 1.5, -0.2):
        with pytest.raises(ValueError, match="ema"):
            mf.MAF(2, num_layers=1, hidden=(8,), rng=0).fit(x, steps=1, progress=False, ema=bad)
    with pytest.raises(TypeError, match="ema"):
        mf.MAF(2, num_layers=1, hidden=(8,), rng=0).fit(x, steps=1, progress=False, ema="0.9")


def test_the_default_schedule_holds_lr_for_70_percent_of_the_steps_then_cools_down_to_lr_over_100():
    from maf_numpy.train import _step_size

    options = {"lr": 3e-3, "steps": 1000, "lr_decay": True, "lr_schedule": "cooldown"}
    lrs = onp.array([_step_size(step, options) for step in range(1, 1001)])
    assert onp.all(lrs[:700] == 3e-3)  # steps 1..700: constant
    assert onp.all(onp.diff(lrs[699:]) < 0)  # then strictly decreasing ...
    assert abs(lrs[-1] - 3e-5) < 1e-15  # ... to lr / 100 at the last step
    assert abs(_step_size(850, options) - 3e-3 * (0.01 + 0.99 * 0.5)) < 1e-15  # half way down at mid-cooldown
    assert _step_size(500, {**options, "lr_decay": False}) == 3e-3


def test_fit_defaults_are_the_documented_ones():
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(mf.train.fit).parameters.items()}
    assert (defaults["lr"], defaults["lr_decay"], defaults["patience"], defaults["ema"]) == (3e-3, True, None, None)
    assert inspect.signature(mf.MAF(2, rng=0).fit).parameters["lr"].default == 3e-3  # flow.fit shows the same
