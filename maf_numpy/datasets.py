"""Named 2D toy densities for the lessons and the demo.

Each toy is a sampler ``toy(name, n, rng)`` that returns float64 points of shape (n, 2). Where the
density has a closed form, ``toy_log_prob(name, x)`` evaluates it exactly and ``toy_entropy(name)`` gives
its differential entropy H[p] = -E_p[log p(x)] (exact where that has a closed form too, else a Monte-Carlo
average of -log p over samples). A trained model's quality can then be reported on a common scale:

    KL(p || q) = E_p[-log q(x)] - H[p]  =  held-out NLL  -  true entropy      (in nats, >= 0)

============  ========================================================  ========  =====================
name          density                                                   log p(x)  entropy H[p] (nats)
============  ========================================================  ========  =====================
fig1          MAF paper Fig. 1: x2 ~ N(0, 4), x1 | x2 ~ N(x2^2 / 4, 1)  exact     exact, 3.5310
moons         two interleaving half circles (sklearn's make_moons)      none      none
8gaussians    8 Gaussians of std 0.2 on a circle of radius 2            exact     Monte Carlo, ~1.700
checkerboard  uniform on the 8 black squares of a 4x4 board             exact     exact, log 8 = 2.0794
spirals       two interleaved spirals (FFJORD's "2spirals")             none      none
rings         3 noisy concentric circles, radii 0.75, 1.5, 2.25         exact     Monte Carlo, ~2.234
============  ========================================================  ========  =====================

All points lie roughly in [-4, 4]^2 (fig1's x1 reaches ~10 and beyond: it is the exception). Nothing here
is differentiated, so plain NumPy is used. ``as_generator`` turns the ``rng`` argument accepted throughout
the library into a ``numpy.random.Generator``.

References
----------
G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017,
arXiv:1705.07057 (Figure 1).
W. Grathwohl, R. T. Q. Chen, J. Bettencourt, I. Sutskever, D. Duvenaud. FFJORD: Free-form Continuous
Dynamics for Scalable Reversible Generative Models. ICLR 2019, arXiv:1810.01367 (toy data sets).
"""

import numbers

import numpy as np

from .validation import as_generator

__all__ = ["as_generator", "toy", "toy_names", "toy_log_prob", "toy_entropy", "has_closed_form"]

LOG_2PI = np.log(2 * np.pi)


def _logsumexp(a, axis=-1):
    """log(sum(exp(a))) along ``axis`` without overflow or underflow: shift by the max first."""
    a_max = np.max(a, axis=axis, keepdims=True)
    a_max = np.where(np.isfinite(a_max), a_max, 0.0)  # all -inf: return -inf, not NaN
    return np.log(np.sum(np.exp(a - a_max), axis=axis)) + np.squeeze(a_max, axis=axis)


def _normal_log_pdf(x, mean, std):
    """log N(x; mean, std^2), elementwise (broadcasts)."""
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * LOG_2PI


# ---------------------------------------------------------------------------------------------------------
# fig1: the MAF paper's Figure 1. x2 ~ N(0, 2^2), x1 | x2 ~ N(x2^2 / 4, 1).
# ---------------------------------------------------------------------------------------------------------


def _sample_fig1(n, rng):
    x2 = 2.0 * rng.standard_normal(n)
    x1 = x2**2 / 4 + rng.standard_normal(n)
    return np.stack([x1, x2], axis=1)


def _log_prob_fig1(x):
    x1, x2 = x[:, 0], x[:, 1]
    return _normal_log_pdf(x2, 0.0, 2.0) + _normal_log_pdf(x1, x2**2 / 4, 1.0)


# H = H[x2] + H[x1 | x2] = 0.5 log(2 pi e 4) + 0.5 log(2 pi e) = log(2 pi e) + 0.5 log 4
_ENTROPY_FIG1 = np.log(2 * np.pi * np.e) + 0.5 * np.log(4.0)


# ---------------------------------------------------------------------------------------------------------
# moons: sklearn's make_moons, noise 0.1, centred. The density is a Gaussian blur of two curves: no closed
# form (it would be an integral over the curve parameter t).
# ---------------------------------------------------------------------------------------------------------


def _sample_moons(n, rng):
    t = rng.uniform(0.0, np.pi, n)
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.where(rng.uniform(size=(n, 1)) < 0.5, outer, inner)
    x = x + 0.1 * rng.standard_normal((n, 2))
    return x - np.array([0.5, 0.25])  # E[x] = (1/2, (2/pi + 1/2 - 2/pi) / 2) = (0.5, 0.25)


# ---------------------------------------------------------------------------------------------------------
# 8gaussians: p(x) = (1/8) sum_k N(x; mu_k, 0.2^2 I), mu_k = 2 (cos(2 pi k / 8), sin(2 pi k / 8)).
# ---------------------------------------------------------------------------------------------------------

_ANGLES_8 = 2 * np.pi * np.arange(8) / 8
_MEANS_8 = 2.0 * np.stack([np.cos(_ANGLES_8), np.sin(_ANGLES_8)], axis=1)  # (8, 2)
_STD_8 = 0.2


def _sample_8gaussians(n, rng):
    k = rng.integers(0, 8, size=n)
    return _MEANS_8[k] + _STD_8 * rng.standard_normal((n, 2))


def _log_prob_8gaussians(x):
    # log N(x; mu_k, s^2 I) for every point and component: shape (n, 8), then log-sum-exp over k.
    log_components = _normal_log_pdf(x[:, None, :], _MEANS_8[None, :, :], _STD_8).sum(axis=2)
    return _logsumexp(log_components - np.log(8.0), axis=1)


# ---------------------------------------------------------------------------------------------------------
# checkerboard: uniform on the unit squares [i, i+1) x [j, j+1), i, j in {-2, -1, 0, 1}, with i + j even.
# ---------------------------------------------------------------------------------------------------------


def _sample_checkerboard(n, rng):
    x1 = rng.uniform(-2.0, 2.0, n)  # picks the column i = floor(x1) uniformly
    i = np.floor(x1)
    j = -2 + 2 * rng.integers(0, 2, size=n) + i % 2  # a black row of column i: i + j even
    x2 = j + rng.uniform(0.0, 1.0, n)
    return np.stack([x1, x2], axis=1)


def _log_prob_checkerboard(x):
    inside = np.all((x >= -2.0) & (x < 2.0), axis=1)
    black = (np.floor(x[:, 0]) + np.floor(x[:, 1])) % 2 == 0
    return np.where(inside & black, -np.log(8.0), -np.inf)  # 8 unit squares: area 8


# ---------------------------------------------------------------------------------------------------------
# spirals: FFJORD's "2spirals". No closed form (a blurred, uniformly-jittered curve).
# ---------------------------------------------------------------------------------------------------------


def _sample_spirals(n, rng):
    t = np.sqrt(rng.uniform(size=n)) * 540 * (2 * np.pi) / 360  # angle along the spiral, up to 3 pi
    d = np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) + 0.5 * rng.uniform(size=(n, 2))
    sign = np.where(rng.uniform(size=(n, 1)) < 0.5, 1.0, -1.0)  # second spiral: the point reflection -d
    return sign * d / 3 + 0.1 * rng.standard_normal((n, 2))


# ---------------------------------------------------------------------------------------------------------
# rings: angle theta ~ U(0, 2 pi), ring k with probability w_k proportional to R_k, radius r ~ N(R_k, s^2),
# x = r (cos theta, sin theta).
#
# Exact density, by the change of variables (r, theta) -> x, whose Jacobian determinant is |r|: a point x at
# distance rho from the origin is reached from r = rho and from r = -rho (at the opposite angle), so
#
#     p(x) = [p_r(rho) + p_r(-rho)] / (2 pi rho),    p_r = sum_k w_k N(. ; R_k, s^2),
#
# i.e. a 1D mixture of 6 Gaussians (means +-R_k) evaluated at rho, divided by the circumference 2 pi rho.
# It is infinite at the origin (an integrable 1/rho spike of mass ~1e-19); a density may be changed on a
# single point without changing any probability, so we set p(0) = 0 there to keep plots finite.
# ---------------------------------------------------------------------------------------------------------

_RADII = np.array([0.75, 1.5, 2.25])
_WEIGHTS = _RADII / _RADII.sum()  # 1/6, 2/6, 3/6: the same density of points per unit length on each ring
_STD_RING = 0.08


def _sample_rings(n, rng):
    k = rng.choice(len(_RADII), size=n, p=_WEIGHTS)
    theta = rng.uniform(0.0, 2 * np.pi, n)
    r = _RADII[k] + _STD_RING * rng.standard_normal(n)
    return r[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)


def _log_prob_rings(x):
    rho = np.sqrt(np.sum(x**2, axis=1))
    means = np.concatenate([_RADII, -_RADII])  # (6,)
    log_w = np.log(np.concatenate([_WEIGHTS, _WEIGHTS]))
    log_p_rho = _logsumexp(log_w + _normal_log_pdf(rho[:, None], means, _STD_RING), axis=1)
    with np.errstate(divide="ignore"):
        log_p = log_p_rho - np.log(2 * np.pi * rho)
    return np.where(rho > 0, log_p, -np.inf)


# ---------------------------------------------------------------------------------------------------------
# Registry: name -> (sampler, exact log-density or None). Order = the order of toy_names().
# ---------------------------------------------------------------------------------------------------------

_TOYS = {
    "fig1": (_sample_fig1, _log_prob_fig1),
    "moons": (_sample_moons, None),
    "8gaussians": (_sample_8gaussians, _log_prob_8gaussians),
    "checkerboard": (_sample_checkerboard, _log_prob_checkerboard),
    "spirals": (_sample_spirals, None),
    "rings": (_sample_rings, _log_prob_rings),
}

_EXACT_ENTROPY = {"fig1": float(_ENTROPY_FIG1), "checkerboard": float(np.log(8.0))}


def _check_name(name):
    if not isinstance(name, str) or name not in _TOYS:
        raise ValueError(f"name must be one of {', '.join(map(repr, _TOYS))}; got {name!r}")
    return name


def _check_positive_int(value, arg):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{arg} must be a positive int, got {type(value).__name__} {value!r}")
    if value < 1:
        raise ValueError(f"{arg} must be a positive int, got {value}")
    return int(value)


def _check_points(x):
    if not isinstance(x, np.ndarray):
        raise TypeError(f"x must be a NumPy float array of shape (n, 2), got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise TypeError(f"x must be a float array of shape (n, 2), got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[1] != 2 or x.shape[0] == 0:
        hint = "; for one point use x[None, :]" if x.shape == (2,) else ""
        raise ValueError(f"x must have shape (n, 2) with n >= 1, got {x.shape}{hint}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"x must be finite, got {int(np.sum(~np.isfinite(x)))} NaN or inf value(s)")
    return x.astype(np.float64, copy=False)


def toy_names():
    """Return the names of the toy densities.

    Returns
    -------
    names : tuple of str
        ``("fig1", "moons", "8gaussians", "checkerboard", "spirals", "rings")``.
    """
    return tuple(_TOYS)


def has_closed_form(name):
    """Return whether toy ``name`` has an exact log-density (``toy_log_prob`` works for it).

    Parameters
    ----------
    name : str
        One of ``toy_names()``.

    Returns
    -------
    bool
    """
    return _TOYS[_check_name(name)][1] is not None


def toy(name, n, rng=None):
    """Draw ``n`` points from the toy density ``name``.

    Parameters
    ----------
    name : str
        One of ``toy_names()``: "fig1", "moons", "8gaussians", "checkerboard", "spirals", "rings".
    n : int
        Number of points, >= 1.
    rng : None, int or numpy.random.Generator
        Randomness (see ``as_generator``). The same name, n and int seed give the same array.

    Returns
    -------
    x : ndarray, shape (n, 2), float64
        Column 0 is x1, column 1 is x2.
    """
    sample, _ = _TOYS[_check_name(name)]
    n = _check_positive_int(n, "n")
    return np.asarray(sample(n, as_generator(rng)), dtype=np.float64)


def toy_log_prob(name, x):
    """Evaluate the exact log-density log p(x) of the toy ``name`` at the points ``x``.

    Parameters
    ----------
    name : str
        A toy with a closed-form density: ``has_closed_form(name)`` is True.
    x : ndarray, shape (n, 2), float
        Finite points, one per row.

    Returns
    -------
    log_p : ndarray, shape (n,), float64
        log p(x) in nats; ``-inf`` where p is zero (outside the checkerboard's black squares).

    Raises
    ------
    ValueError
        If the density of ``name`` has no closed form (moons, spirals), or x has the wrong shape or is
        not finite.
    TypeError
        If x is not a float NumPy array.
    """
    _, log_prob = _TOYS[_check_name(name)]
    if log_prob is None:
        closed = [k for k in _TOYS if _TOYS[k][1] is not None]
        raise ValueError(
            f"the density of toy {name!r} has no closed form, so toy_log_prob cannot evaluate it; "
            f"toys with one: {', '.join(closed)}"
        )
    return log_prob(_check_points(x))


def toy_entropy(name, n_mc=200_000, rng=0):
    """Return the differential entropy H[p] = -E_p[log p(x)] of the toy ``name``, in nats.

    Exact where it has a closed form (fig1: log(2 pi e) + log(4) / 2 = 3.5310; checkerboard: log of the
    area of the support, log 8 = 2.0794). Otherwise, if the log-density is known, the Monte-Carlo estimate
    -mean(log p(x_i)) over ``n_mc`` samples x_i ~ p, whose standard error is std(log p) / sqrt(n_mc)
    (about 0.003 nats for the default n_mc).

    Parameters
    ----------
    name : str
        A toy with a closed-form density: ``has_closed_form(name)`` is True.
    n_mc : int
        Number of Monte-Carlo samples (unused when the entropy is exact).
    rng : None, int or numpy.random.Generator
        Randomness of the Monte-Carlo samples; the default seed 0 makes the estimate reproducible.

    Returns
    -------
    H : float
        Differential entropy in nats.

    Raises
    ------
    ValueError
        If the density of ``name`` has no closed form (moons, spirals).
    """
    name = _check_name(name)
    n_mc = _check_positive_int(n_mc, "n_mc")
    rng = as_generator(rng)
    if name in _EXACT_ENTROPY:
        return _EXACT_ENTROPY[name]
    if not has_closed_form(name):
        raise ValueError(f"the density of toy {name!r} has no closed form, so its entropy is not available")
    x = toy(name, n_mc, rng)
    return float(-np.mean(toy_log_prob(name, x)))
