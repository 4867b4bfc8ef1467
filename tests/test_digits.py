"""Tests for the real-data part of maf_numpy.datasets: the digits split, dequantisation, the logit
transform, the likelihood reports and the two baselines.

Oracles: autograd's elementwise_grad and jacobian for the logit log-det, scikit-learn's own arrays for
the split, a hand computation for the reports, and the exact identity between a discrete model and the
piecewise-constant density it defines on [0, 1)^D (for which the dequantisation bound is an equality).
"""

import sys

import numpy as np
import pytest
from autograd import elementwise_grad, jacobian

from maf_numpy import datasets

LOG2_17 = np.log2(17.0)  # 4.0875 bits per pixel: the uniform model


@pytest.fixture(scope="module")
def data():
    return datasets.digits()


# --- the split --------------------------------------------------------------------------------------------


def test_digits_split_is_1200_297_300_of_int_pixels_0_to_16_and_labels_0_to_9(data):
    sizes = [(data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)]
    assert [(len(x), len(y)) for x, y in sizes] == [(1200, 1200), (297, 297), (300, 300)]
    for x, y in sizes:
        assert x.shape[1] == 64 and x.dtype == np.int64 and y.dtype == np.int64
        assert x.min() == 0 and x.max() == 16 and set(np.unique(y)) == set(range(10))


def test_digits_split_is_the_documented_permutation_of_sklearns_images(data):
    from sklearn.datasets import load_digits

    bunch = load_digits()
    permutation = np.random.default_rng(datasets.DIGITS_SEED).permutation(1797)
    x_all = np.concatenate([data.x_train, data.x_val, data.x_test])
    y_all = np.concatenate([data.y_train, data.y_val, data.y_test])
    np.testing.assert_array_equal(x_all, bunch.data[permutation])
    np.testing.assert_array_equal(y_all, bunch.target[permutation])


def test_digits_is_the_same_on_every_call_and_split_names_return_the_parts(data):
    again = datasets.digits()
    for a, b in zip(data, again):
        np.testing.assert_array_equal(a, b)
    for name, (x, y) in zip(("train", "val", "test"), [(data.x_train, data.y_train), (data.x_val, data.y_val),
                                                          (data.x_test, data.y_test)]):
        x2, y2 = datasets.digits(split=name)
        np.testing.assert_array_equal(x2, x)
        np.testing.assert_array_equal(y2, y)


def test_digits_rejects_an_unknown_split_name():
    with pytest.raises(ValueError, match="split"):
        datasets.digits(split="training")


def test_digits_without_scikit_learn_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # makes `from sklearn.datasets import` fail
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        datasets.digits()


# --- dequantisation -----------------------------------------------------------------------------------------


def test_dequantized_pixels_lie_in_their_own_bin_of_width_one_seventeenth(data):
    y = datasets.dequantize(data.x_val, rng=0)
    assert y.dtype == np.float64 and y.shape == data.x_val.shape
    assert np.all((y >= 0) & (y < 1))
    np.testing.assert_array_equal(np.floor(17 * y), data.x_val)
    u = 17 * y - data.x_val  # the noise: uniform on [0, 1)
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005


def test_dequantization_noise_is_fresh_on_every_call_and_reproducible_from_a_seed(data):
    rng = np.random.default_rng(0)
    first, second = datasets.dequantize(data.x_val, rng), datasets.dequantize(data.x_val, rng)
    assert not np.any(first == second)
    np.testing.assert_array_equal(datasets.dequantize(data.x_val, 5), datasets.dequantize(data.x_val, 5))


@pytest.mark.parametrize("bad", [np.array([[0.5, 1.0]]), np.array([[17, 0]]), np.array([[-1, 0]]),
                                 np.array([0, 1, 2])])
def test_dequantize_rejects_anything_but_integer_pixels_0_to_16(bad):
    with pytest.raises(ValueError, match="x must"):
        datasets.dequantize(bad, rng=0)


# --- the logit transform ------------------------------------------------------------------------------------


@pytest.mark.parametrize("lam", [1e-6, 0.05])
def test_logit_log_det_equals_sum_of_log_elementwise_derivatives_from_autograd(lam):
    y = np.random.default_rng(1).uniform(size=(5, 64))
    y[0, :3] = [0.0, 1e-9, 1 - 1e-9]  # the ends of [0, 1), where the squeeze matters
    dz_dy = elementwise_grad(lambda y: datasets.logit_transform(y, lam)[0])(y)
    _, log_det = datasets.logit_transform(y, lam)
    np.testing.assert_allclose(log_det, np.sum(np.log(dz_dy), axis=1), rtol=1e-12)
    s = lam + (1 - 2 * lam) * y  # the formula of the docstring, written out once more
    np.testing.assert_allclose(log_det, np.sum(np.log((1 - 2 * lam) / (s * (1 - s))), axis=1), rtol=1e-12)


def test_logit_log_det_equals_slogdet_of_the_full_autograd_jacobian():
    y = np.random.default_rng(2).uniform(size=8)
    J = jacobian(lambda y: datasets.logit_transform(y[None, :], 1e-6)[0][0])(y)
    sign, log_abs = np.linalg.slogdet(J)
    assert sign == 1 and np.count_nonzero(J - np.diag(np.diag(J))) == 0  # elementwise map: diagonal Jacobian
    np.testing.assert_allclose(datasets.logit_transform(y[None, :], 1e-6)[1][0], log_abs, rtol=1e-12)


@pytest.mark.parametrize("lam", [1e-6, 0.05])
def test_logit_transform_round_trips_and_its_inverse_has_the_opposite_log_det(lam):
    y = np.random.default_rng(3).uniform(size=(50, 64))
    z, log_det = datasets.logit_transform(y, lam)
    y_back, log_det_back = datasets.logit_transform_inverse(z, lam)
    np.testing.assert_allclose(y_back, y, atol=1e-10, rtol=0)
    np.testing.assert_allclose(log_det + log_det_back, 0.0, atol=1e-9)
    dy_dz = elementwise_grad(lambda z: datasets.logit_transform_inverse(z, lam)[0])(z)
    np.testing.assert_allclose(log_det_back, np.sum(np.log(dy_dz), axis=1), rtol=1e-10)


def test_logit_of_zero_and_almost_one_is_finite_with_the_default_lambda():
    z, log_det = datasets.logit_transform(np.array([[0.0, 1 - 1e-16]]))
    assert np.all(np.isfinite(z)) and np.isfinite(log_det[0])
    np.testing.assert_allclose(z[0], [np.log(1e-6 / (1 - 1e-6)), -np.log(1e-6 / (1 - 1e-6))], rtol=1e-6)


@pytest.mark.parametrize("lam", [-0.1, 0.5, "0.1"])
def test_dequantize_logit_rejects_a_lambda_outside_0_to_one_half(lam):
    with pytest.raises(ValueError, match="lam"):
        datasets.dequantize_logit(np.zeros((2, 3), dtype=int), rng=0, lam=lam)


# --- the training-time augmentation ---------------------------------------------------------------------


def test_augment_redraws_the_noise_on_every_call_and_stays_in_each_pixels_bin(data):
    augment = datasets.dequantize_logit_augment(1e-6)
    rng = np.random.default_rng(0)
    batch = data.x_train[:32].astype(np.float32)  # fit hands over rows in the flow's dtype
    z1, z2 = augment(batch, rng), augment(batch, rng)
    assert z1.dtype == np.float32 and z1.shape == batch.shape and not np.any(z1 == z2)
    y, _ = datasets.logit_transform_inverse(z1.astype(np.float64), 1e-6)
    np.testing.assert_array_equal(np.floor(17 * y + 1e-4 * (y < 0.5) - 1e-4 * (y > 0.5)), batch)  # float32 slack
    z3 = augment(data.x_train[:32], np.random.default_rng(0))
    assert z3.dtype == np.float64
    np.testing.assert_allclose(z3, z1, rtol=1e-5, atol=1e-5)  # the same seed gives the same noise
    np.testing.assert_array_equal(z3, datasets.dequantize_logit(data.x_train[:32], np.random.default_rng(0))[0])


# --- reports and bits per dimension ---------------------------------------------------------------------


def test_the_uniform_model_has_exactly_log2_17_bits_per_pixel(data):
    z, log_det = datasets.dequantize_logit(data.x_test, rng=0)
    report = datasets.report_continuous(-log_det, log_det)  # p_y = 1 on [0, 1)^D, so log p_z = -log|dz/dy|
    assert report.bpd == pytest.approx(LOG2_17, abs=1e-12) and report.bpd == pytest.approx(4.087, abs=5e-4)
    assert report.pixel_nats == 0.0 and report.discrete_nats == pytest.approx(-64 * np.log(17), abs=1e-9)
    assert report.bpd_2se == pytest.approx(0.0, abs=1e-12)
    uniform = datasets.CategoricalBaseline(np.full((64, 17), -np.log(17)))
    assert datasets.report_discrete(uniform.log_prob(data.x_test)).bpd == pytest.approx(LOG2_17, abs=1e-12)


def test_report_continuous_adds_the_log_det_subtracts_D_log_17_and_gives_2_standard_errors():
    log_p_z, log_det = np.array([-10.0, -12.0, -14.0]), np.array([1.0, 2.0, 6.0])
    report = datasets.report_continuous(log_p_z, log_det, D=4)
    # log p_y = [-9, -10, -8]: mean -9, std (ddof=1) 1, se 1/sqrt(3)
    assert report.n == 3 and report.D == 4
    assert report.logit_nats == pytest.approx(-12.0) and report.logit_2se == pytest.approx(2 * 2 / np.sqrt(3))
    assert report.pixel_nats == pytest.approx(-9.0) and report.pixel_2se == pytest.approx(2 / np.sqrt(3))
    assert report.discrete_nats == pytest.approx(-9.0 - 4 * np.log(17))
    assert report.discrete_2se == pytest.approx(2 / np.sqrt(3))
    assert report.bpd == pytest.approx((9.0 + 4 * np.log(17)) / (4 * np.log(2)))
    assert report.bpd_2se == pytest.approx(2 / np.sqrt(3) / (4 * np.log(2)))


def test_a_discrete_models_piecewise_constant_density_reports_its_exact_bits_per_pixel(data):
    """p_y(y) = 17^D P(floor(17 y)) makes the dequantisation bound an equality: both reports must agree."""
    model = datasets.CategoricalBaseline.fit(data.x_train)
    log_P = model.log_prob(data.x_test)
    z, log_det = datasets.dequantize_logit(data.x_test, rng=0)
    log_p_z = log_P + 64 * np.log(17) - log_det  # log p_y = log P + D log 17, then into the logit space
    continuous, discrete = datasets.report_continuous(log_p_z, log_det), datasets.report_discrete(log_P)
    assert continuous.bpd == pytest.approx(discrete.bpd, abs=1e-10)
    assert continuous.bpd_2se == pytest.approx(discrete.bpd_2se, abs=1e-10)
    assert discrete.logit_nats is None and discrete.pixel_nats is None


def test_reports_reject_mismatched_or_non_finite_per_image_values():
    with pytest.raises(ValueError, match="log_det"):
        datasets.report_continuous(np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="log_P"):
        datasets.report_discrete(np.array([0.0, np.nan]))
    with pytest.raises(ValueError, match="log_p_z"):
        datasets.report_continuous(np.zeros((3, 2)), np.zeros(3))


# --- the baselines -------------------------------------------------------------------------------------------


def test_gaussian_baseline_is_the_ml_fit_and_its_log_prob_is_the_normal_density():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((500, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 2.0, 0.3], [0.0, 0.0, 0.7]]) + 3.0
    model = datasets.GaussianBaseline.fit(z, ridge=1e-3)
    np.testing.assert_allclose(model.mean, z.mean(axis=0))
    np.testing.assert_allclose(model.cov, np.cov(z.T, bias=True) + 1e-3 * np.eye(3))
    x = rng.standard_normal((7, 3))
    diff = x - model.mean
    expected = (-0.5 * np.einsum("ni,ij,nj->n", diff, np.linalg.inv(model.cov), diff)
                - 0.5 * np.linalg.slogdet(2 * np.pi * model.cov)[1])
    np.testing.assert_allclose(model.log_prob(x), expected, rtol=1e-10)
    assert model.num_params == 3 + 6


def test_gaussian_baseline_mean_log_likelihood_is_maximal_at_the_ml_fit():
    z = np.random.default_rng(5).standard_normal((200, 2)) * [1.0, 3.0]
    model = datasets.GaussianBaseline.fit(z, ridge=0.0)
    best = model.log_prob(z).mean()
    for mean_shift, cov_scale in [(0.05, 1.0), (0.0, 1.05), (0.0, 0.95)]:
        other = datasets.GaussianBaseline(model.mean + mean_shift, model.cov * cov_scale)
        assert other.log_prob(z).mean() < best


def test_categorical_baseline_uses_add_one_smoothing_and_sums_to_one():
    x = np.array([[0, 16], [0, 3], [2, 3]])
    model = datasets.CategoricalBaseline.fit(x)
    np.testing.assert_allclose(np.exp(model.log_probs).sum(axis=1), 1.0)
    assert np.exp(model.log_probs[0, 0]) == pytest.approx(3 / 20)  # seen twice: (2 + 1) / (3 + 17)
    assert np.exp(model.log_probs[0, 5]) == pytest.approx(1 / 20)  # never seen: 1 / (3 + 17)
    assert model.log_prob(np.array([[0, 3]]))[0] == pytest.approx(np.log(3 / 20) + np.log(3 / 20))
    assert model.num_params == 2 * 16


def test_on_digits_both_baselines_beat_the_uniform_model_and_the_gaussian_beats_the_categorical(data):
    z_train, _ = datasets.dequantize_logit(data.x_train, rng=100)
    z_test, log_det = datasets.dequantize_logit(data.x_test, rng=102)
    gaussian = datasets.report_continuous(datasets.GaussianBaseline.fit(z_train).log_prob(z_test), log_det)
    categorical = datasets.report_discrete(datasets.CategoricalBaseline.fit(data.x_train).log_prob(data.x_test))
    assert 2.25 < gaussian.bpd < 2.40  # about 2.33
    assert 2.35 < categorical.bpd < 2.50  # about 2.42
    assert gaussian.bpd < categorical.bpd < LOG2_17
