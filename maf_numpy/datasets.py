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


# =========================================================================================================
# Real data: scikit-learn's 8x8 digits (lesson 9)
#
# 1,797 grey-level images of handwritten digits, 8 x 8 = 64 pixels with integer values 0..16, bundled
# with scikit-learn (no download). The pipeline, as in the MAF paper's experiments section (its MNIST
# protocol) and RealNVP §4.1:
#
#   x in {0..16}^D --dequantize--> y = (x + u) / 17 in [0, 1)^D --logit--> z = logit(lam + (1 - 2 lam) y)
#
# Dequantisation bound. A density p_y on [0, 1)^D defines a density p_y(v / 17) / 17^D on v = x + u in
# [0, 17)^D, and a discrete model P(x) = integral over the unit cube of that density at x + u. By Jensen,
#
#     log P(x) >= E_u[log p_y((x + u) / 17)] - D log 17,
#
# so a continuous model's average log p_y on dequantised test data, minus D log 17, is a lower bound on the
# discrete log-likelihood (Theis, van den Oord & Bethge 2016). A model trained in the logit space has
# log p_y(y) = log p_z(z) + log|det dz/dy|. Bits per dimension: bpd = -log2 P(x) / D; the uniform model
# (P(x) = 17^-D) gives exactly log2 17 = 4.087.
# =========================================================================================================

import collections  # noqa: E402

import autograd.numpy as anp  # noqa: E402

__all__ += ["DIGITS_LEVELS", "DIGITS_D", "DIGITS_SPLIT", "DIGITS_SEED", "DigitsData", "digits", "dequantize",
            "logit_transform", "logit_transform_inverse", "logit_log_det", "dequantize_logit",
            "dequantize_logit_augment", "LikelihoodReport", "report_continuous", "report_discrete",
            "bits_per_dim", "GaussianBaseline", "CategoricalBaseline"]

DIGITS_LEVELS = 17  # pixel values 0..16
DIGITS_D = 64  # 8 x 8 pixels
DIGITS_SPLIT = (1200, 297, 300)  # train, validation, test
DIGITS_SEED = 0  # seed of the fixed permutation behind the split
LOGIT_LAMBDA = 1e-6  # the MAF authors' MNIST value; their CIFAR-10 code and RealNVP use 0.05

DigitsData = collections.namedtuple("DigitsData", ["x_train", "y_train", "x_val", "y_val", "x_test", "y_test"])
DigitsData.__doc__ = """The digits split: pixels x_* (n, 64) int64 in 0..16 and labels y_* (n,) int64 in 0..9."""

LikelihoodReport = collections.namedtuple("LikelihoodReport", [
    "n", "D", "logit_nats", "logit_2se", "pixel_nats", "pixel_2se", "discrete_nats", "discrete_2se", "bpd",
    "bpd_2se"])
LikelihoodReport.__doc__ = """Mean test log-likelihood per image in nats, each with +-2 standard errors.

``logit_*``: log p_z(z) in the logit space; ``pixel_*``: log p_y(y) on the dequantised pixels in [0, 1)^D;
``discrete_*``: the discrete 0..16 pixel space (log p_y - D log 17, a lower bound for a continuous model,
exact for a discrete one); ``bpd``: bits per dimension -discrete_nats / (D log 2). Fields a model does not
have (the logit and pixel spaces of a discrete model) are None."""


def digits(split=None):
    """scikit-learn's 8x8 digits with the fixed train/validation/test split of this library.

    The 1,797 images are permuted once with ``numpy.random.default_rng(DIGITS_SEED)`` (seed 0); the first
    1,200 are the training set, the next 297 the validation set and the last 300 the test set. No
    randomness is involved at call time: every call returns the same arrays. scikit-learn is imported
    here (it is needed only for this function).

    Parameters
    ----------
    split : None or {"train", "val", "test"}
        None returns the whole split; a name returns that part only.

    Returns
    -------
    data : DigitsData
        If ``split`` is None: ``x_train`` (1200, 64), ``y_train`` (1200,), ``x_val`` (297, 64), ``y_val``
        (297,), ``x_test`` (300, 64), ``y_test`` (300,). Pixels are int64 in 0..16 (row-major 8 x 8
        images), labels int64 in 0..9.
    (x, y) : tuple of ndarray
        If ``split`` is a name: the pixels (n, 64) and labels (n,) of that part.

    Raises
    ------
    ImportError
        If scikit-learn is not installed.
    ValueError
        If ``split`` is not None, "train", "val" or "test".
    """
    if split is not None and split not in ("train", "val", "test"):
        raise ValueError(f"split must be None, 'train', 'val' or 'test', got {split!r}")
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise ImportError("maf_numpy.datasets.digits needs scikit-learn (its bundled 8x8 digits, no download): "
                          "pip install scikit-learn") from error
    bunch = load_digits()
    x = np.asarray(bunch.data).astype(np.int64)
    y = np.asarray(bunch.target).astype(np.int64)
    permutation = np.random.default_rng(DIGITS_SEED).permutation(x.shape[0])
    x, y = x[permutation], y[permutation]
    n_train, n_val, n_test = DIGITS_SPLIT
    if x.shape[0] != n_train + n_val + n_test:
        raise RuntimeError(f"expected {n_train + n_val + n_test} digits from scikit-learn, got {x.shape[0]}")
    cut1, cut2 = n_train, n_train + n_val
    data = DigitsData(x[:cut1], y[:cut1], x[cut1:cut2], y[cut1:cut2], x[cut2:], y[cut2:])
    if split is None:
        return data
    return {"train": (data.x_train, data.y_train), "val": (data.x_val, data.y_val),
            "test": (data.x_test, data.y_test)}[split]


def _check_pixels(x, levels=DIGITS_LEVELS, name="x"):
    """x must be an (n, D) array of integer values 0..levels-1 (int dtype, or floats holding integers)."""
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of pixel values of shape (n, D), got {type(x).__name__}")
    if x.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold integer pixel values 0..{levels - 1} (int or float dtype), "
                        f"got dtype {x.dtype}")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must have shape (n, D) with n >= 1, got {x.shape}")
    if not (np.all(x == np.round(x)) and np.all((x >= 0) & (x <= levels - 1))):
        raise ValueError(f"{name} must hold integer pixel values in 0..{levels - 1} (the raw digits, before "
                         f"dequantisation), got values in [{np.min(x)}, {np.max(x)}]")
    return x


def _check_lam(lam):
    if isinstance(lam, (bool, np.bool_)) or not isinstance(lam, numbers.Real) or not 0 <= lam < 0.5:
        raise ValueError(f"lam must be a number in [0, 0.5), got {lam!r}")
    return float(lam)


def dequantize(x, rng=None, levels=DIGITS_LEVELS):
    """Uniform dequantisation y = (x + u) / levels, u ~ U[0, 1)^D (Theis et al. 2016; RealNVP §4.1).

    Each integer pixel value k becomes a point of [k / levels, (k + 1) / levels), so the data get a density
    on [0, 1)^D; see the section comment for the bound log P(x) >= E_u log p(y) - D log levels.

    Parameters
    ----------
    x : ndarray, shape (n, D)
        Integer pixel values 0..levels-1 (int dtype, or floats holding integers).
    rng : None, int or numpy.random.Generator
        Source of the noise u; a fresh draw on every call.
    levels : int
        Number of pixel levels (17 for the digits).

    Returns
    -------
    y : ndarray, shape (n, D), float64
        In [0, 1).
    """
    levels = _check_positive_int(levels, "levels")
    x = _check_pixels(x, levels)
    u = as_generator(rng).uniform(size=x.shape)
    return (x + u) / levels


def logit_transform(y, lam=LOGIT_LAMBDA):
    """The logit transform z = logit(s), s = lam + (1 - 2 lam) y, and its log-determinant.

    As in RealNVP §4.1 and the MAF paper's experiments section: the squeeze into [lam, 1 - lam] keeps the
    logit finite at y = 0. The map acts on each pixel, so its Jacobian is diagonal:

        dz_i / dy_i = (1 - 2 lam) / (s_i (1 - s_i)),   log|det dz/dy| = sum_i log((1 - 2 lam) / (s_i (1 - s_i)))

    Differentiable with autograd (no checks, no in-place writes).

    Parameters
    ----------
    y : ndarray, shape (n, D)
        Dequantised pixels in [0, 1).
    lam : float
        Squeeze, in [0, 0.5).

    Returns
    -------
    z : ndarray, shape (n, D)
    log_det : ndarray, shape (n,)
        log|det dz/dy| per row.
    """
    s = lam + (1 - 2 * lam) * y
    log_s, log_1ms = anp.log(s), anp.log1p(-s)
    z = log_s - log_1ms
    return z, logit_log_det(y, lam)


def logit_log_det(y, lam=LOGIT_LAMBDA):
    """log|det dz/dy| = sum_i [log(1 - 2 lam) - log s_i - log(1 - s_i)] of the logit transform, shape (n,)."""
    s = lam + (1 - 2 * lam) * y
    return anp.sum(anp.log1p(-2 * lam) - anp.log(s) - anp.log1p(-s), axis=-1)


def logit_transform_inverse(z, lam=LOGIT_LAMBDA):
    """The inverse of :func:`logit_transform`: y = (sigmoid(z) - lam) / (1 - 2 lam), and log|det dy/dz|.

    With s = sigmoid(z): log|det dy/dz| = sum_i [log s_i + log(1 - s_i) - log(1 - 2 lam)], the negative of
    the forward log-det at the same point. log s and log(1 - s) are computed as -softplus(-z) and
    -softplus(z), so large |z| does not overflow.

    Parameters
    ----------
    z : ndarray, shape (n, D)
    lam : float

    Returns
    -------
    y : ndarray, shape (n, D)
    log_det : ndarray, shape (n,)
    """
    log_s = -anp.logaddexp(0.0, -z)
    log_1ms = -anp.logaddexp(0.0, z)
    y = (anp.exp(log_s) - lam) / (1 - 2 * lam)
    return y, anp.sum(log_s + log_1ms - anp.log1p(-2 * lam), axis=-1)


def dequantize_logit(x, rng=None, lam=LOGIT_LAMBDA, levels=DIGITS_LEVELS):
    """Dequantise then logit-transform raw pixels: the whole preprocessing pipeline in one call.

    Parameters
    ----------
    x : ndarray, shape (n, D)
        Integer pixel values 0..levels-1.
    rng : None, int or numpy.random.Generator
        Source of the dequantisation noise.
    lam : float
        The logit squeeze.
    levels : int

    Returns
    -------
    z : ndarray, shape (n, D), float64
        The data in the logit space, where the flow is trained.
    log_det : ndarray, shape (n,)
        log|det dz/dy| of the logit transform (add it to log p_z(z) to get log p_y(y)).
    """
    lam = _check_lam(lam)
    return logit_transform(dequantize(x, rng, levels), lam)


def dequantize_logit_augment(lam=LOGIT_LAMBDA, levels=DIGITS_LEVELS):
    """A training-time augmentation for ``fit(..., augment=augment)``: fresh dequantisation noise every call.

    With the noise drawn once, a flow can memorise it on a small data set such as the digits; redrawing it
    for every minibatch makes the training loss an unbiased estimate of E_u[-log p_y] instead.

    Parameters
    ----------
    lam : float
        The logit squeeze.
    levels : int

    Returns
    -------
    augment : callable
        ``augment(x_batch, rng) -> z_batch``: ``x_batch`` (n, D) raw pixel values 0..levels-1 (int, or float
        holding integers, e.g. the float32 rows fit hands over), ``rng`` a numpy Generator; returns the
        logit-space batch (n, D) in ``x_batch``'s float dtype (float64 for an int batch).

    Notes
    -----
    Validation and test data are transformed once, with fixed noise, by the caller
    (:func:`dequantize_logit`). A flow's Standardize layer should be fitted in the logit space, e.g.
    ``flow.layers[0].fit(z_train)`` on one transformed copy of the training data before ``fit``; fit does
    not refit an already fitted layer.
    """
    lam = _check_lam(lam)
    levels = _check_positive_int(levels, "levels")

    def augment(x_batch, rng):
        z, _ = logit_transform(dequantize(x_batch, rng, levels), lam)
        dtype = x_batch.dtype if x_batch.dtype.kind == "f" else np.float64
        return z.astype(dtype, copy=False)

    return augment


def _mean_2se(values):
    """Mean and twice its standard error, std(values, ddof=1) / sqrt(n), as Python floats."""
    values = np.asarray(values, dtype=np.float64)
    se = np.std(values, ddof=1) / np.sqrt(values.size) if values.size > 1 else np.nan
    return float(np.mean(values)), float(2 * se)


def _check_per_image(values, name):
    values = np.asarray(values)
    if values.ndim != 1 or values.size == 0 or values.dtype.kind not in "iuf":
        raise ValueError(f"{name} must be a non-empty 1-D array of per-image values, got shape {values.shape} "
                         f"and dtype {values.dtype}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must be finite, got {int(np.sum(~np.isfinite(values)))} NaN or inf value(s)")
    return values.astype(np.float64)


def bits_per_dim(log_P, D):
    """bpd = -log2 P(x) / D = -log P(x) / (D log 2), for a discrete log-likelihood in nats (scalar or array)."""
    return -np.asarray(log_P, dtype=np.float64) / (D * np.log(2.0))


def report_continuous(log_p_z, log_det, D=DIGITS_D, levels=DIGITS_LEVELS):
    """Test log-likelihood of a model of the logit-space data, in the three spaces and in bits per dimension.

    Per image: log p_y(y) = log p_z(z) + log|det dz/dy| (the pixel space [0, 1)^D), and the discrete bound
    log P(x) >= log p_y(y) - D log levels. Each space is summarised by the mean over the images with +-2
    standard errors (the noise of a finite test set; the bound and the dequantisation noise add their own,
    smaller, bias and variance).

    Parameters
    ----------
    log_p_z : ndarray, shape (n,)
        The model's log-density of each test image in the logit space (nats).
    log_det : ndarray, shape (n,)
        log|det dz/dy| of the logit transform of each image (from :func:`dequantize_logit`).
    D : int
        Pixels per image.
    levels : int

    Returns
    -------
    LikelihoodReport
    """
    log_p_z = _check_per_image(log_p_z, "log_p_z")
    log_det = _check_per_image(log_det, "log_det")
    if log_det.shape != log_p_z.shape:
        raise ValueError(f"log_det must have the shape of log_p_z {log_p_z.shape}, got {log_det.shape}")
    D, levels = _check_positive_int(D, "D"), _check_positive_int(levels, "levels")
    log_p_y = log_p_z + log_det
    log_P = log_p_y - D * np.log(levels)
    return LikelihoodReport(log_p_z.size, D, *_mean_2se(log_p_z), *_mean_2se(log_p_y), *_mean_2se(log_P),
                            *_mean_2se(bits_per_dim(log_P, D)))


def report_discrete(log_P, D=DIGITS_D):
    """Test log-likelihood of a discrete model (exact log P(x) per image): nats and bits per dimension.

    Parameters
    ----------
    log_P : ndarray, shape (n,)
        log P(x) of each test image in nats.
    D : int

    Returns
    -------
    LikelihoodReport
        With ``logit_*`` and ``pixel_*`` None.
    """
    log_P = _check_per_image(log_P, "log_P")
    D = _check_positive_int(D, "D")
    return LikelihoodReport(log_P.size, D, None, None, None, None, *_mean_2se(log_P),
                            *_mean_2se(bits_per_dim(log_P, D)))


class GaussianBaseline:
    """A full-covariance Gaussian N(z; mean, cov), fitted in closed form by maximum likelihood.

    mean = the sample mean, cov = the ML (divide by n) sample covariance + ``ridge`` * I; the ridge keeps
    cov positive definite when a coordinate is (nearly) constant. On the digits it is fitted in the logit
    space, like the flows, and reported with :func:`report_continuous`.

    Parameters
    ----------
    mean : ndarray, shape (D,)
    cov : ndarray, shape (D, D)
        Symmetric positive definite.
    """

    def __init__(self, mean, cov):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.cov = np.asarray(cov, dtype=np.float64)
        self.D = self.mean.shape[0]
        self.chol = np.linalg.cholesky(self.cov)  # cov = L L^T; raises LinAlgError if not positive definite

    @classmethod
    def fit(cls, z, ridge=1e-6):
        """Maximum-likelihood fit to the rows of z, shape (n, D); ``ridge`` >= 0 is added to the diagonal."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[0] < 2:
            raise ValueError(f"z must have shape (n, D) with n >= 2, got {z.shape}")
        if isinstance(ridge, (bool, np.bool_)) or not isinstance(ridge, numbers.Real) or ridge < 0:
            raise ValueError(f"ridge must be a number >= 0, got {ridge!r}")
        mean = z.mean(axis=0)
        centred = z - mean
        cov = centred.T @ centred / z.shape[0] + ridge * np.eye(z.shape[1])
        return cls(mean, cov)

    @property
    def num_params(self):
        """D means and D (D + 1) / 2 covariance entries."""
        return self.D + self.D * (self.D + 1) // 2

    def log_prob(self, z):
        """log N(z; mean, cov) = -|L^-1 (z - mean)|^2 / 2 - sum log diag L - (D/2) log(2 pi); shape (n,)."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim != 2 or z.shape[1] != self.D:
            raise ValueError(f"z must have shape (n, {self.D}), got {z.shape}")
        w = np.linalg.solve(self.chol, (z - self.mean).T)  # (D, n), L w = z - mean
        return -0.5 * np.sum(w**2, axis=0) - np.sum(np.log(np.diag(self.chol))) - 0.5 * self.D * LOG_2PI


class CategoricalBaseline:
    """Independent per-pixel categoricals, P(x) = prod_i P_i(x_i), with add-one (Laplace) smoothing.

    P_i(k) = (count of value k at pixel i + smoothing) / (n + levels * smoothing): a discrete model, so its
    log P(x) is exact (report it with :func:`report_discrete`). Smoothing keeps a value never seen at a
    pixel in training from getting probability 0 on the test set.

    Parameters
    ----------
    log_probs : ndarray, shape (D, levels)
        log P_i(k); each row sums (after exp) to 1.
    """

    def __init__(self, log_probs):
        self.log_probs = np.asarray(log_probs, dtype=np.float64)
        self.D, self.levels = self.log_probs.shape

    @classmethod
    def fit(cls, x, levels=DIGITS_LEVELS, smoothing=1.0):
        """Count the values 0..levels-1 of each pixel of x (n, D) and smooth; returns the fitted model."""
        levels = _check_positive_int(levels, "levels")
        x = _check_pixels(x, levels).astype(np.int64)
        if isinstance(smoothing, (bool, np.bool_)) or not isinstance(smoothing, numbers.Real) or smoothing < 0:
            raise ValueError(f"smoothing must be a number >= 0, got {smoothing!r}")
        counts = np.stack([np.sum(x == k, axis=0) for k in range(levels)], axis=1)  # (D, levels)
        probs = (counts + smoothing) / (x.shape[0] + levels * smoothing)
        with np.errstate(divide="ignore"):
            return cls(np.log(probs))

    @property
    def num_params(self):
        """D (levels - 1) free probabilities."""
        return self.D * (self.levels - 1)

    def log_prob(self, x):
        """log P(x) = sum_i log P_i(x_i) for integer pixels x (n, D); shape (n,)."""
        x = _check_pixels(x, self.levels).astype(np.int64)
        if x.shape[1] != self.D:
            raise ValueError(f"x must have shape (n, {self.D}), got {x.shape}")
        return np.sum(self.log_probs[np.arange(self.D), x], axis=1)
