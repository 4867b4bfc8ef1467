"""Tests for maf_numpy.datasets: the toy samplers, their exact log-densities and entropies.

The densities are checked against the math (they integrate to 1 on a fine grid) and against their own
samplers (sample moments, Monte-Carlo entropy = quadrature entropy), so that a bug in either shows.
"""

import functools
import warnings

import numpy as np
import pytest

from maf_numpy import datasets

NAMES = datasets.toy_names()
CLOSED_FORM = tuple(name for name in NAMES if datasets.has_closed_form(name))
NO_CLOSED_FORM = tuple(name for name in NAMES if not datasets.has_closed_form(name))

FIG1_ENTROPY = np.log(2 * np.pi * np.e) + 0.5 * np.log(4.0)  # 3.5310


def cell_centres(lo1, hi1, lo2, hi2, h):
    """Centres of the h x h cells that tile [lo1, hi1] x [lo2, hi2]: shape (m, 2), and the cell area h^2."""
    c1 = lo1 + (np.arange(round((hi1 - lo1) / h)) + 0.5) * h
    c2 = lo2 + (np.arange(round((hi2 - lo2) / h)) + 0.5) * h
    X1, X2 = np.meshgrid(c1, c2, indexing="ij")
    return np.stack([X1.ravel(), X2.ravel()], axis=1), h * h


# Midpoint-rule grids wide enough that the mass outside is < 1e-4, fine enough for the narrowest feature
# (std 0.2 for 8gaussians, 0.08 for rings). The checkerboard grid is aligned with its squares, so the
# midpoint rule is exact there.
GRIDS = {
    "fig1": (-6.0, 20.0, -10.0, 10.0, 0.02),
    "8gaussians": (-4.0, 4.0, -4.0, 4.0, 0.01),
    "checkerboard": (-3.0, 3.0, -3.0, 3.0, 0.25),
    "rings": (-4.0, 4.0, -4.0, 4.0, 0.01),
}


@functools.lru_cache(maxsize=None)
def log_prob_on_grid(name):
    """log p at the cell centres of the toy's grid, and the cell area (computed once per test session)."""
    x, area = cell_centres(*GRIDS[name])
    return datasets.toy_log_prob(name, x), area


def test_registry_lists_the_six_toys_in_order_and_which_have_a_closed_form():
    assert NAMES == ("fig1", "moons", "8gaussians", "checkerboard", "spirals", "rings")
    assert set(CLOSED_FORM) == set(GRIDS)
    assert NO_CLOSED_FORM == ("moons", "spirals")


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


@pytest.mark.parametrize("name", NO_CLOSED_FORM)
def test_log_prob_and_entropy_of_a_toy_without_closed_form_say_so(name):
    with pytest.raises(ValueError, match="no closed form"):
        datasets.toy_log_prob(name, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="no closed form"):
        datasets.toy_entropy(name)


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


@pytest.mark.parametrize("name", ["8gaussians", "rings"])
def test_monte_carlo_entropy_from_the_sampler_matches_quadrature_of_the_density(name):
    # -E_samples[log p] only equals -int p log p if the sampler really draws from p.
    log_p, area = log_prob_on_grid(name)
    p = np.exp(log_p)
    H_quadrature = -np.sum(np.where(p > 0, p * log_p, 0.0)) * area
    H_mc = datasets.toy_entropy(name, n_mc=100_000, rng=9)
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
