"""Tests for maf_numpy.datasets: the toy samplers, their exact log-densities and entropies.

The densities are checked against the math (they integrate to 1 on a fine grid) and against their own
samplers (sample moments, Monte-Carlo entropy = quadrature entropy), so that a bug in either shows. The
blurred curves (moons, spirals), integrals over the curve parameter, are also checked against a brute-force
integral written independently here, and their Gauss-Legendre rule for having converged.
"""

import functools
import math
import warnings

import numpy as np
import pytest

from maf_numpy import datasets

NAMES = datasets.toy_names()
CLOSED_FORM = tuple(name for name in NAMES if datasets.has_closed_form(name))
CURVES = ("moons", "spirals")  # the blurred curves: log p by quadrature over the curve parameter
DEFAULT_NOISE = {"moons": 0.1, "8gaussians": 0.2, "spirals": 0.1, "rings": 0.08}  # fig1, checkerboard: none

FIG1_ENTROPY = np.log(2 * np.pi * np.e) + 0.5 * np.log(4.0)  # 3.5310


def cell_centres(lo1, hi1, lo2, hi2, h):
    """Centres of the h x h cells that tile [lo1, hi1] x [lo2, hi2]: shape (m, 2), and the cell area h^2."""
    c1 = lo1 + (np.arange(round((hi1 - lo1) / h)) + 0.5) * h
    c2 = lo2 + (np.arange(round((hi2 - lo2) / h)) + 0.5) * h
    X1, X2 = np.meshgrid(c1, c2, indexing="ij")
    return np.stack([X1.ravel(), X2.ravel()], axis=1), h * h


# Midpoint-rule grids wide enough that the mass outside is < 1e-4, fine enough for the narrowest feature
# (std 0.2 for 8gaussians, 0.08 for rings, 0.1 for moons and spirals). The checkerboard grid is aligned
# with its squares, so the midpoint rule is exact there.
GRIDS = {
    "fig1": (-6.0, 20.0, -10.0, 10.0, 0.02),
    "moons": (-4.0, 4.0, -4.0, 4.0, 0.02),
    "8gaussians": (-4.0, 4.0, -4.0, 4.0, 0.01),
    "checkerboard": (-3.0, 3.0, -3.0, 3.0, 0.25),
    "spirals": (-4.0, 4.0, -4.0, 4.0, 0.02),
    "rings": (-4.0, 4.0, -4.0, 4.0, 0.01),
}


def symmetric_log_prob(name, x, noise=None):
    """toy_log_prob at cell centres symmetric about 0 (x[::-1] = -x); for spirals, half by p(-x) = p(x).

    The spirals are the slowest toy and their density is symmetric under x -> -x (a test checks it), so
    only the first half of the cells is computed: the second half, their mirror images in reverse order,
    reuses it.
    """
    if name != "spirals":
        return datasets.toy_log_prob(name, x, noise=noise)
    assert x.shape[0] % 2 == 0 and np.allclose(x[::-1], -x, rtol=0, atol=1e-12)  # up to rounding
    half = datasets.toy_log_prob(name, x[: x.shape[0] // 2], noise=noise)
    return np.concatenate([half, half[::-1]])


@functools.lru_cache(maxsize=None)
def log_prob_on_grid(name):
    """log p at the cell centres of the toy's grid, and the cell area (computed once per test session)."""
    x, area = cell_centres(*GRIDS[name])
    return symmetric_log_prob(name, x), area


def test_registry_lists_the_six_toys_in_order_and_every_toy_has_a_closed_form_density():
    assert NAMES == ("fig1", "moons", "8gaussians", "checkerboard", "spirals", "rings")
    assert CLOSED_FORM == NAMES
    assert all(datasets.has_closed_form(name) is True for name in NAMES)
    assert set(GRIDS) == set(NAMES)


# --- samples ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("n", [1, 7, 1000])
def test_every_toy_returns_n_finite_float64_points_of_dimension_2(name, n):
    x = datasets.toy(name, n, rng=0)
    assert isinstance(x, np.ndarray)
    assert x.shape == (n, 2)
    assert x.dtype == np.float64
    assert np.all(np.isfinite(x))


def test_n_may_be_a_numpy_integer():
    assert datasets.toy("moons", np.int64(5), rng=0).shape == (5, 2)


@pytest.mark.parametrize("name", [name for name in NAMES if name != "fig1"])
def test_toys_other_than_fig1_lie_within_the_plotting_square(name):
    x = datasets.toy(name, 20_000, rng=1)
    assert np.mean(np.all(np.abs(x) <= 4.0, axis=1)) > 0.999
    assert np.all(np.abs(x.mean(axis=0)) < 0.1)  # roughly centred
    assert np.all((x.std(axis=0) > 0.4) & (x.std(axis=0) < 2.0))  # roughly standardised


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_samples_of_a_closed_form_toy_have_finite_log_density(name):
    x = datasets.toy(name, 5000, rng=2)
    assert np.all(np.isfinite(datasets.toy_log_prob(name, x)))


# --- randomness ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_gives_identical_arrays_and_different_seeds_differ(name):
    np.testing.assert_array_equal(datasets.toy(name, 50, rng=3), datasets.toy(name, 50, rng=3))
    np.testing.assert_array_equal(datasets.toy(name, 50, rng=3), datasets.toy(name, 50, rng=np.int64(3)))
    assert not np.array_equal(datasets.toy(name, 50, rng=3), datasets.toy(name, 50, rng=4))


@pytest.mark.parametrize("name", NAMES)
def test_a_generator_works_as_rng_and_continues_its_stream(name):
    np.testing.assert_array_equal(
        datasets.toy(name, 20, rng=np.random.default_rng(5)), datasets.toy(name, 20, rng=5)
    )
    gen = np.random.default_rng(5)
    assert not np.array_equal(datasets.toy(name, 20, rng=gen), datasets.toy(name, 20, rng=gen))


def test_rng_none_gives_fresh_randomness():
    assert not np.array_equal(datasets.toy("moons", 20), datasets.toy("moons", 20))


def test_as_generator_returns_a_generator_and_passes_a_generator_through():
    gen = np.random.default_rng(0)
    assert datasets.as_generator(gen) is gen
    for rng in (None, 0, 7, np.int32(7)):
        assert isinstance(datasets.as_generator(rng), np.random.Generator)


@pytest.mark.parametrize("rng", ["abc", 1.5, True, np.bool_(False), np.random.RandomState(0), [1, 2]])
def test_a_bad_rng_type_is_a_type_error_naming_rng(rng):
    with pytest.raises(TypeError, match="rng"):
        datasets.as_generator(rng)
    with pytest.raises(TypeError, match="rng"):
        datasets.toy("fig1", 3, rng=rng)


def test_a_negative_seed_is_a_value_error_naming_rng():
    with pytest.raises(ValueError, match="rng"):
        datasets.toy("fig1", 3, rng=-1)


# --- argument checks ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["nope", "Fig1", 3, None])
def test_an_unknown_name_is_a_value_error_naming_it_and_the_known_names(bad):
    for call in (
        lambda: datasets.toy(bad, 5),
        lambda: datasets.toy_log_prob(bad, np.zeros((1, 2))),
        lambda: datasets.toy_entropy(bad),
        lambda: datasets.has_closed_form(bad),
    ):
        with pytest.raises(ValueError) as info:
            call()
        assert repr(bad) in str(info.value)
        assert "8gaussians" in str(info.value)


@pytest.mark.parametrize("n, error", [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)])
def test_a_bad_n_is_an_error_naming_n(n, error):
    with pytest.raises(error, match=r"\bn\b"):
        datasets.toy("moons", n)


@pytest.mark.parametrize("n_mc, error", [(0, ValueError), (1e5, TypeError)])
def test_a_bad_n_mc_is_an_error_naming_n_mc(n_mc, error):
    with pytest.raises(error, match="n_mc"):
        datasets.toy_entropy("rings", n_mc=n_mc)


@pytest.mark.parametrize("x", [np.zeros(2), np.zeros((3, 3)), np.zeros((0, 2)), np.zeros((2, 2, 1))])
def test_log_prob_of_a_wrongly_shaped_x_is_a_value_error_naming_x(x):
    with pytest.raises(ValueError, match=r"\bx\b"):
        datasets.toy_log_prob("fig1", x)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_log_prob_of_a_non_finite_x_is_a_value_error_naming_x(bad):
    x = np.zeros((3, 2))
    x[1, 0] = bad
    with pytest.raises(ValueError, match=r"\bx\b"):
        datasets.toy_log_prob("8gaussians", x)


@pytest.mark.parametrize("x", [[[0.0, 0.0]], np.zeros((1, 2), dtype=int)])
def test_log_prob_of_a_non_float_array_is_a_type_error_naming_x(x):
    with pytest.raises(TypeError, match=r"\bx\b"):
        datasets.toy_log_prob("fig1", x)


# --- the exact densities ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_every_closed_form_density_integrates_to_one_on_a_fine_grid(name):
    log_p, area = log_prob_on_grid(name)
    assert log_p.dtype == np.float64
    assert abs(np.sum(np.exp(log_p)) * area - 1.0) < 1e-3


def test_the_checkerboard_density_is_one_eighth_on_black_squares_and_zero_elsewhere():
    log_p, area = log_prob_on_grid("checkerboard")
    assert set(np.unique(log_p)) == {-np.inf, -np.log(8.0)}
    assert np.sum(np.exp(log_p)) * area == pytest.approx(1.0, abs=1e-12)
    corners = np.array([[-1.5, -1.5], [-0.5, -1.5], [0.5, 0.5], [1.5, -0.5], [2.5, 0.5]])
    np.testing.assert_array_equal(datasets.toy_log_prob("checkerboard", corners) > -np.inf, [1, 0, 1, 1, 0])


def test_checkerboard_samples_fill_the_eight_black_squares_equally():
    x = datasets.toy("checkerboard", 80_000, rng=6)
    i, j = np.floor(x[:, 0]), np.floor(x[:, 1])
    assert np.all((i + j) % 2 == 0) and np.all(np.abs(x) <= 2.0)
    _, counts = np.unique(4 * (i + 2) + (j + 2), return_counts=True)
    assert len(counts) == 8
    assert np.all(np.abs(counts / len(x) - 1 / 8) < 0.01)


def test_fig1_samples_have_the_moments_of_the_paper_density():
    x1, x2 = datasets.toy("fig1", 200_000, rng=7).T
    # x2 = 2 z with z ~ N(0, 1); x1 = z^2 + eps: E = 1, Var = Var(z^2) + 1 = 2 + 1 = 3. Tolerances ~5 s.e.
    assert abs(x2.mean()) < 0.025
    assert abs(x2.var() - 4.0) < 0.07
    assert abs(x1.mean() - 1.0) < 0.02
    assert abs(x1.var() - 3.0) < 0.1
    assert abs(np.corrcoef(x1, x2)[0, 1]) < 0.02  # dependent but uncorrelated: E[x2^3] = 0


def test_fig1_monte_carlo_entropy_agrees_with_the_closed_form():
    x = datasets.toy("fig1", 200_000, rng=8)
    assert abs(-np.mean(datasets.toy_log_prob("fig1", x)) - FIG1_ENTROPY) < 0.02


def test_exact_entropies_are_the_closed_forms():
    assert datasets.toy_entropy("fig1") == pytest.approx(FIG1_ENTROPY, abs=1e-12)
    assert datasets.toy_entropy("fig1") == pytest.approx(3.5310, abs=1e-4)
    assert datasets.toy_entropy("checkerboard") == pytest.approx(np.log(8.0), abs=1e-12)


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_sample_histogram_matches_the_mass_the_density_puts_in_each_bin(name):
    # Sampler and density are written separately: bin both on a coarse 12 x 12 grid and compare.
    lo1, hi1, lo2, hi2, _ = GRIDS[name]
    bins = [np.linspace(lo1, hi1, 13), np.linspace(lo2, hi2, 13)]
    centres, _ = cell_centres(*GRIDS[name])
    log_p, area = log_prob_on_grid(name)
    mass, _, _ = np.histogram2d(centres[:, 0], centres[:, 1], bins=bins, weights=np.exp(log_p) * area)
    x = datasets.toy(name, 100_000, rng=10)
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=bins)
    assert np.max(np.abs(counts / len(x) - mass)) < 0.005  # largest bin mass ~0.06: s.e. < 0.001


@pytest.mark.parametrize("name, n_mc", [("8gaussians", 100_000), ("rings", 100_000), ("moons", 100_000),
                                         ("spirals", 30_000)])
def test_monte_carlo_entropy_from_the_sampler_matches_quadrature_of_the_density(name, n_mc):
    # -E_samples[log p] only equals -int p log p if the sampler really draws from p. The standard error of
    # the Monte-Carlo estimate is std(log p) / sqrt(n_mc) < 0.0045, so 0.02 is > 4 standard errors.
    log_p, area = log_prob_on_grid(name)
    p = np.exp(log_p)
    H_quadrature = -np.sum(np.where(p > 0, p * log_p, 0.0)) * area
    H_mc = datasets.toy_entropy(name, n_mc=n_mc, rng=9)
    assert isinstance(H_mc, float)
    assert abs(H_mc - H_quadrature) < 0.02
    assert datasets.toy_entropy(name, n_mc=1000, rng=1) == datasets.toy_entropy(name, n_mc=1000, rng=1)


def test_8gaussians_entropy_is_close_to_eight_separate_gaussians():
    # The components are 7.7 std apart: H ~ log 8 + log(2 pi e 0.2^2).
    assert datasets.toy_entropy("8gaussians", n_mc=50_000) == pytest.approx(
        np.log(8.0) + np.log(2 * np.pi * np.e * 0.04), abs=0.02
    )


def test_8gaussians_log_prob_far_away_is_finite_and_very_negative():
    log_p = datasets.toy_log_prob("8gaussians", np.array([[1e3, 1e3], [-1e150, 0.0]]))
    assert np.all(np.isfinite(log_p))
    assert np.all(log_p < -1e6)


def test_8gaussians_log_prob_at_a_mean_is_the_mixture_peak():
    expected = np.log(1 / 8) - np.log(2 * np.pi * 0.04)  # other components contribute < 1e-12
    assert datasets.toy_log_prob("8gaussians", np.array([[2.0, 0.0]]))[0] == pytest.approx(expected, abs=1e-9)


def test_rings_log_prob_is_rotation_invariant_and_zero_at_the_origin_without_warnings():
    angles = np.linspace(0, 2 * np.pi, 9)
    x = 1.5 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    log_p = datasets.toy_log_prob("rings", x)
    np.testing.assert_allclose(log_p, log_p[0], atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert datasets.toy_log_prob("rings", np.zeros((1, 2)))[0] == -np.inf
        assert np.isfinite(datasets.toy_log_prob("rings", np.array([[1e3, 0.0]])))[0]


# --- the default samplers are unchanged -----------------------------------------------------------------

# toy(name, 3, rng=2024) as drawn by the samplers before the noise argument existed (other code and saved
# figures depend on these streams). Exact on the machine that recorded them; the 1e-12 tolerance only
# allows another platform's last-bit differences in cos and sin (any change of the process moves them ~0.1).
RECORDED_SAMPLES = {
    "fig1": [[0.08536695160351282, 2.0577137479038026], [1.3031013235806836, 3.2838400813423005],
             [1.3821620346293764, 2.2934390591932274]],
    "moons": [[1.110858733854033, -0.5503539553289092], [-0.10072949201180209, -0.2984975255238419],
              [0.1274823153606648, 0.5029794729337757]],
    "8gaussians": [[1.643557468292418, 1.2195776592781817], [-1.692773581648469, -1.4007742913588754],
                   [2.1722701835880853, 0.1018373597691376]],
    "checkerboard": [[0.7033253519251272, 0.1422318152800518], [-1.1427071950469694, 0.07872553376199898],
                     [-0.7621918764732332, 1.1808238136968545]],
    "spirals": [[-0.25069982240749117, 2.882590736400641], [-0.5164088776922685, 1.4346636698120447],
                [0.7164013182597687, 1.403867715127719]],
    "rings": [[0.7091796792914777, -2.2078040754385673], [1.5401990276803341, -0.040634006825289],
              [1.0305749975783005, 1.281935009625903]],
}


def _original_sampler(name, n, seed):
    """The samplers as they were written before the noise argument, with their constants inlined."""
    rng = np.random.default_rng(seed)
    if name == "moons":
        t = rng.uniform(0.0, np.pi, n)
        outer = np.stack([np.cos(t), np.sin(t)], axis=1)
        inner = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
        x = np.where(rng.uniform(size=(n, 1)) < 0.5, outer, inner)
        return x + 0.1 * rng.standard_normal((n, 2)) - np.array([0.5, 0.25])
    if name == "8gaussians":
        angles = 2 * np.pi * np.arange(8) / 8
        means = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        return means[rng.integers(0, 8, size=n)] + 0.2 * rng.standard_normal((n, 2))
    if name == "spirals":
        t = np.sqrt(rng.uniform(size=n)) * 540 * (2 * np.pi) / 360
        d = np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) + 0.5 * rng.uniform(size=(n, 2))
        sign = np.where(rng.uniform(size=(n, 1)) < 0.5, 1.0, -1.0)
        return sign * d / 3 + 0.1 * rng.standard_normal((n, 2))
    assert name == "rings"
    radii = np.array([0.75, 1.5, 2.25])
    k = rng.choice(3, size=n, p=radii / radii.sum())
    theta = rng.uniform(0.0, 2 * np.pi, n)
    r = radii[k] + 0.08 * rng.standard_normal(n)
    return r[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)


@pytest.mark.parametrize("name", NAMES)
def test_default_samples_are_the_recorded_ones(name):
    np.testing.assert_allclose(datasets.toy(name, 3, rng=2024), RECORDED_SAMPLES[name], rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", list(DEFAULT_NOISE))
def test_default_noise_samples_are_bit_for_bit_those_of_the_original_sampler(name):
    for seed, n in ((0, 1), (1, 1000), (2024, 20_000)):
        original = _original_sampler(name, n, seed)
        np.testing.assert_array_equal(datasets.toy(name, n, rng=seed), original)
        np.testing.assert_array_equal(datasets.toy(name, n, rng=seed, noise=DEFAULT_NOISE[name]), original)


# --- the noise argument -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(DEFAULT_NOISE))
def test_noise_none_is_the_default_noise_for_samples_density_and_entropy(name):
    x = datasets.toy(name, 200, rng=11)
    np.testing.assert_array_equal(datasets.toy_log_prob(name, x),
                                  datasets.toy_log_prob(name, x, noise=DEFAULT_NOISE[name]))
    assert datasets.toy_entropy(name, n_mc=500) == datasets.toy_entropy(name, n_mc=500, noise=DEFAULT_NOISE[name])


@pytest.mark.parametrize("name", list(DEFAULT_NOISE))
def test_noise_scales_the_gaussian_part_of_the_sampler(name):
    # Same seed, other noise: the same draws with the Gaussian part rescaled, so x(2 s) - x(s) = x(s) - x(0+).
    s = DEFAULT_NOISE[name]
    x0, x1, x2 = (datasets.toy(name, 500, rng=12, noise=v) for v in (1e-300, s, 2 * s))
    if name == "rings":  # the noise is radial: compare radii
        x0, x1, x2 = (np.linalg.norm(x, axis=1) for x in (x0, x1, x2))
    np.testing.assert_allclose(x2 - x1, x1 - x0, atol=1e-12)
    assert np.std(x1 - x0) == pytest.approx(s, rel=0.15)  # the Gaussian part has std s per coordinate


@pytest.mark.parametrize("name", ["fig1", "checkerboard"])
def test_a_noise_for_a_toy_without_a_noise_level_is_a_value_error_saying_so(name):
    for call in (lambda: datasets.toy(name, 5, noise=0.1), lambda: datasets.toy_log_prob(name, np.zeros((1, 2)), 0.1),
                 lambda: datasets.toy_entropy(name, noise=0.1)):
        with pytest.raises(ValueError, match=r"noise.*no noise level"):
            call()


@pytest.mark.parametrize("noise, error", [(0.0, ValueError), (-0.1, ValueError), (np.nan, ValueError),
                                          (np.inf, ValueError), ("0.1", TypeError), (True, TypeError),
                                          ([0.1], TypeError), (0.1 + 0j, TypeError)])
def test_a_bad_noise_is_an_error_naming_noise(noise, error):
    for call in (lambda: datasets.toy("moons", 5, noise=noise),
                 lambda: datasets.toy_log_prob("spirals", np.zeros((1, 2)), noise=noise),
                 lambda: datasets.toy_entropy("rings", n_mc=10, noise=noise)):
        with pytest.raises(error, match=r"\bnoise\b"):
            call()


def test_noise_may_be_an_int_or_a_numpy_scalar():
    x = datasets.toy("8gaussians", 5, rng=0, noise=1)
    np.testing.assert_array_equal(x, datasets.toy("8gaussians", 5, rng=0, noise=np.float64(1.0)))
    np.testing.assert_array_equal(datasets.toy_log_prob("8gaussians", x, noise=np.int64(1)),
                                  datasets.toy_log_prob("8gaussians", x, noise=1.0))


# --- moons and spirals: the quadrature over the curve ---------------------------------------------------


def midpoint_integral(name, noise, half_width, h):
    """The midpoint rule for int p over [-half_width, half_width]^2 with h x h cells."""
    x, area = cell_centres(-half_width, half_width, -half_width, half_width, h)
    return np.sum(np.exp(symmetric_log_prob(name, x, noise))) * area


@pytest.mark.parametrize("name", CURVES)
@pytest.mark.parametrize("noise, half_width, h", [(None, 4.0, 0.02), (0.2, 4.6, 0.046)])
def test_blurred_curve_densities_integrate_to_one_to_1e_10(name, noise, half_width, h):
    # Both densities are a Gaussian blur (std s) of something, so by Poisson summation the midpoint rule's
    # error is the density's Fourier transform at 2 pi / h, damped by exp(-2 pi^2 s^2 / h^2) <= e^-370 for
    # s / h >= 4.3; the mass outside the box (>= 6.4 std from every data point) is < 1e-10. What remains
    # is the density's own error: the integral equals 1 to rounding (~1e-15 measured).
    if noise is None:
        log_p, area = log_prob_on_grid(name)  # the same grid: [-4, 4]^2, h = 0.02
        integral = np.sum(np.exp(log_p)) * area
    else:
        integral = midpoint_integral(name, noise, half_width, h)
    assert abs(integral - 1.0) < 1e-10


def _simpson(values, a, b):
    """Composite Simpson's rule over the last axis of ``values`` on [a, b] (an odd number of samples)."""
    weights = np.ones(values.shape[-1])
    weights[1:-1:2], weights[2:-1:2] = 4.0, 2.0
    return (b - a) / (values.shape[-1] - 1) / 3 * np.sum(weights * values, axis=-1)


_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _interval_prob(lo, hi):
    """P(lo < Z < hi), Z ~ N(0, 1), from math.erfc: reflected so that neither tail cancels."""
    flip = lo + hi < 0
    a, b = np.where(flip, -hi, lo), np.where(flip, -lo, hi)
    return 0.5 * (_ERFC(a / math.sqrt(2)).astype(float) - _ERFC(b / math.sqrt(2)).astype(float))


def _log_simpson(log_values, a, b):
    """log of Simpson's rule for the integral of exp(log_values) over [a, b], scaled by the max first."""
    shift = np.max(log_values)
    return shift + math.log(_simpson(np.exp(log_values - shift), a, b))


def brute_force_log_prob(name, x, noise, n=100_000):
    """log p(x) from the definition, by Simpson's rule with n + 1 samples of the curve parameter t."""
    log_p = []
    if name == "moons":
        t = np.linspace(0.0, np.pi, n + 1)
        curves = (np.stack([np.cos(t), np.sin(t)]), np.stack([1 - np.cos(t), 0.5 - np.sin(t)]))
        for xi in x + np.array([0.5, 0.25]):
            # p = sum over the curves of (1/2) (1/pi) int N(x; c(t), s^2 I) dt
            log_parts = [_log_simpson(-np.sum((xi[:, None] - c) ** 2, axis=0) / (2 * noise**2), 0.0, np.pi)
                         for c in curves]
            log_p.append(np.logaddexp(*log_parts) - math.log(2 * np.pi) - math.log(2 * np.pi * noise**2))
        return np.array(log_p)
    T, w = 3 * np.pi, 0.5 / 3
    t = np.linspace(0.0, T, n + 1)
    lower = np.stack([-np.cos(t) * t, np.sin(t) * t]) / 3  # the square's lower corner for the sign +1
    with np.errstate(divide="ignore"):  # t where the point is out of reach: an integrand of exactly 0
        for xi in x:
            log_parts = []
            for lo in (lower, -lower - w):  # sign +1, and its mirror image -1
                log_integrand = np.log(2 * t / T**2)
                for k in range(2):
                    log_integrand += np.log(_interval_prob((xi[k] - lo[k] - w) / noise, (xi[k] - lo[k]) / noise) / w)
                log_parts.append(_log_simpson(log_integrand, 0.0, T))
            log_p.append(np.logaddexp(*log_parts) - math.log(2.0))
    return np.array(log_p)


@pytest.mark.parametrize("name", CURVES)
@pytest.mark.parametrize("noise", [None, 0.05])
def test_blurred_curve_log_density_matches_a_brute_force_integral_over_the_curve(name, noise):
    # On the data (log p ~ -3), between the arms and off the data (log p ~ -40). Simpson's rule with 100,001
    # samples is converged to ~1e-14 here (its error is ~h^4 f'''' / 180 with h < 1e-4; 50,001 samples give
    # the same log p to 3e-15).
    x = np.array([[0.0, 0.0], [-1.5, 0.8], [2.5, -2.0]])
    expected = brute_force_log_prob(name, x, DEFAULT_NOISE[name] if noise is None else noise)
    np.testing.assert_allclose(datasets.toy_log_prob(name, x, noise=noise), expected, rtol=1e-11, atol=1e-11)


def _points_on_and_off_the_data(name, noise, rng):
    on = datasets.toy(name, 200, rng=rng, noise=noise)
    off = np.random.default_rng(rng).uniform(-6.0, 6.0, (200, 2))  # most of them far off (log p down to -2000)
    return on, off


@pytest.mark.parametrize("name", CURVES)
@pytest.mark.parametrize("noise", [0.1, 0.05, 0.3])
def test_gauss_legendre_rule_has_converged_doubling_panels_or_nodes_changes_log_p_by_less_than_1e_10(name, noise):
    log_prob = {"moons": datasets._log_prob_moons, "spirals": datasets._log_prob_spirals}[name]
    for x in _points_on_and_off_the_data(name, noise, rng=13):
        log_p = log_prob(x, noise)
        assert np.all(np.isfinite(log_p))
        np.testing.assert_allclose(log_prob(x, noise, panel_factor=2), log_p, rtol=0, atol=1e-10)
        np.testing.assert_allclose(log_prob(x, noise, nodes=2 * datasets._GL_NODES), log_p, rtol=0, atol=1e-10)


def test_skipping_panels_does_not_change_the_spirals_log_density():
    # The spirals skip terms provably below e^-40 of the largest; with nothing skipped the sum is the same.
    x = np.concatenate(_points_on_and_off_the_data("spirals", None, rng=14))
    skip = datasets._SKIP_NATS
    try:
        datasets._SKIP_NATS = np.inf
        everything = datasets.toy_log_prob("spirals", x)
    finally:
        datasets._SKIP_NATS = skip
    np.testing.assert_allclose(datasets.toy_log_prob("spirals", x), everything, rtol=1e-15, atol=1e-13)


def test_log_interval_prob_matches_math_erfc_and_stays_accurate_far_in_the_tail():
    def log_q(z, terms=300):  # log P(Z > z) by its continued fraction, accurate for z >= 10
        f = z
        for k in range(terms, 0, -1):
            f = z + k / f
        return -0.5 * z * z - 0.5 * math.log(2 * math.pi) - math.log(f)

    for h in (0.02, 0.4167, 0.8333, 3.0):
        m = np.concatenate([np.linspace(0.0, 60.0, 1201), [1e3, 1e6]])
        expected = []
        for mi in m:
            lo, hi = mi - h, mi + h
            if lo < 30:
                expected.append(math.log(_interval_prob(np.array([lo]), np.array([hi]))[0]))
            else:
                expected.append(log_q(lo) + math.log1p(-math.exp(log_q(hi) - log_q(lo))))
        got = datasets._log_interval_prob(m, h)
        np.testing.assert_allclose(got, expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("name", CURVES)
def test_blurred_curve_log_prob_far_away_is_finite_very_negative_and_warning_free(name):
    x = np.array([[30.0, -30.0], [1e3, 1e3], [-1e150, 0.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        log_p = datasets.toy_log_prob(name, x)
    assert np.all(np.isfinite(log_p))
    assert np.all(log_p < -4e4)
    # Far away only the nearest curve point matters: log p ~ -(distance)^2 / (2 s^2), here to < 1%.
    assert log_p[2] == pytest.approx(-0.5 * 1e300 / 0.01, rel=1e-2)


def test_spirals_density_is_symmetric_under_the_point_reflection():
    x = np.concatenate(_points_on_and_off_the_data("spirals", None, rng=15))
    np.testing.assert_allclose(datasets.toy_log_prob("spirals", -x), datasets.toy_log_prob("spirals", x),
                               rtol=1e-13, atol=1e-12)


@pytest.mark.parametrize("name", CURVES)
def test_toy_entropy_of_the_blurred_curves_is_a_reproducible_monte_carlo_estimate(name):
    H = datasets.toy_entropy(name, n_mc=5_000, rng=16)
    assert isinstance(H, float)
    assert H == datasets.toy_entropy(name, n_mc=5_000, rng=16)
    # The module table's values (200,000 samples); 0.05 is 5 standard errors of 5,000 samples.
    assert H == pytest.approx({"moons": 1.006, "spirals": 2.648}[name], abs=0.05)
    # A wider blur spreads the same curve: more entropy.
    assert datasets.toy_entropy(name, n_mc=5_000, rng=16, noise=0.2) > H + 0.3
