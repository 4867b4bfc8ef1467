"""Named 2D toy densities for the lessons and the demo.

Each toy is a sampler ``toy(name, n, rng, noise)`` that returns float64 points of shape (n, 2). Every toy
has an exact log-density ``toy_log_prob(name, x, noise)`` and a differential entropy
``toy_entropy(name, ..., noise)``, H[p] = -E_p[log p(x)] (exact where that has a closed form too, else a
Monte-Carlo average of -log p over samples). A trained model's quality can then be reported on a common
scale:

    KL(p || q) = E_p[-log q(x)] - H[p]  =  held-out NLL  -  true entropy      (in nats, >= 0)

============  ========================================================  =========  ========  =====================
name          density                                                   noise      log p(x)  entropy H[p] (nats)
============  ========================================================  =========  ========  =====================
fig1          MAF paper Fig. 1: x2 ~ N(0, 4), x1 | x2 ~ N(x2^2 / 4, 1)  none       exact     exact, 3.5310
moons         two interleaving half circles (sklearn's make_moons)      0.1        exact*    Monte Carlo, ~1.006
8gaussians    8 Gaussians on a circle of radius 2                       0.2        exact     Monte Carlo, ~1.701
checkerboard  uniform on the 8 black squares of a 4x4 board             none       exact     exact, log 8 = 2.0794
spirals       two interleaved spirals (FFJORD's "2spirals")             0.1        exact*    Monte Carlo, ~2.648
rings         3 noisy concentric circles, radii 0.75, 1.5, 2.25         0.08       exact     Monte Carlo, ~2.233
============  ========================================================  =========  ========  =====================

noise: the default of the ``noise`` argument, the std of the toy's Gaussian blur (for rings the std of the
radius); "none": the toy has no noise level, and a ``noise`` argument is an error. The entropies are at the
default noise; the Monte-Carlo ones are ``toy_entropy``'s reproducible estimates (seed 0, 200,000 samples,
standard error < 0.002). exact*: a one-dimensional integral over the curve, by Gauss-Legendre quadrature
converged to machine precision (see "How moons and spirals are integrated" below).

Definitions (eps ~ N(0, I_2); s is the noise; N(x; m, C) the normal density; Phi the standard normal CDF):

fig1
    x2 = 2 z, x1 = x2^2 / 4 + z' with z, z' ~ N(0, 1).  p(x) = N(x2; 0, 4) N(x1; x2^2 / 4, 1).
moons
    t ~ U(0, pi); with probability 1/2 the outer point c(t) = (cos t, sin t), else the inner point
    c(t) = (1 - cos t, 0.5 - sin t); x = c(t) + s eps - (0.5, 0.25) (the shift centres the data).
    p(x) = (1/2) sum over the two curves of (1/pi) int_0^pi N(x; c(t) - (0.5, 0.25), s^2 I) dt.
8gaussians
    k ~ U{0, ..., 7}, x = mu_k + s eps with mu_k = 2 (cos(2 pi k / 8), sin(2 pi k / 8)).
    p(x) = (1/8) sum_k N(x; mu_k, s^2 I).
checkerboard
    Uniform on the unit squares [i, i+1) x [j, j+1), i, j in {-2, -1, 0, 1}, i + j even.
    p(x) = 1/8 on them, 0 elsewhere.
spirals
    u ~ U(0, 1), t = 3 pi sqrt(u), so t has density q(t) = 2 t / (3 pi)^2 on [0, 3 pi];
    d = (-t cos t, t sin t) + v / 2 with v ~ U[0, 1]^2; a sign sigma = +1 or -1 with probability 1/2;
    x = sigma d / 3 + s eps. Given (sigma, t), each coordinate x_k is uniform on an interval of width w = 1/6
    (from a_k = c_k(t) / 3 to a_k + w for sigma = +1, with c(t) = (-t cos t, t sin t); mirrored through 0
    for sigma = -1) plus N(0, s^2), whose density is
    B_k(x_k) = [Phi((x_k - a_k) / s) - Phi((x_k - a_k - w) / s)] / w.
    p(x) = (1/2) sum_sigma int_0^{3 pi} q(t) B_1(x_1) B_2(x_2) dt.
rings
    theta ~ U(0, 2 pi), ring k with probability w_k proportional to R_k = 0.75, 1.5, 2.25, r ~ N(R_k, s^2),
    x = r (cos theta, sin theta). p(x) = [p_r(rho) + p_r(-rho)] / (2 pi rho), rho = |x|,
    p_r = sum_k w_k N(.; R_k, s^2).

How moons and spirals are integrated. A composite Gauss-Legendre rule over the curve parameter t (16 nodes
per panel) turns p(x) = int q(t) k(x; t) dt into a finite mixture sum_j W_j k(x; t_j), summed in log space
(a log-sum-exp of log W_j + log k(x; t_j)), so that a point far from the data gets an accurate log p, not
-inf. moons: 16 equal panels per half circle; spirals: 50 panels of equal width in u = (t / 3 pi)^2 (about
equal arc length). Both are split geometrically toward the ends of the curve, where a far point's integrand
is a sharp boundary layer, and scale with 0.1 / noise (the integrand's features are ~noise wide). The
spirals' kernel, a product of two normal-CDF differences, is computed from erfc in a form that cannot
underflow (``_log_interval_prob``, relative error < 1e-14). Doubling the panels or the nodes changes log p
by less than 1e-11 on and off the data in [-6, 6]^2 (the tests check < 1e-10 there); farther out, where
|log p| is in the thousands, the relative change is ~1e-11 at distance 30 and below 1e-6 at any distance,
and log p is finite for every x with |x| < 1e154. For speed, the spirals skip the terms that are provably
more than 40 nats below the largest one (under 1e-14 of p in total). On one core, 50,000 points take about
0.1 s (moons) and 1 s (spirals); below noise 0.1 the moons' cost grows like 1 / noise.

All points lie roughly in [-4, 4]^2 (fig1's x1 reaches ~10 and beyond: it is the exception). Nothing here
is differentiated, so plain NumPy is used; scipy is not needed (the error function is written here).
``as_generator`` turns the ``rng`` argument accepted throughout the library into a
``numpy.random.Generator``.

References
----------
G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017,
arXiv:1705.07057 (Figure 1).
W. Grathwohl, R. T. Q. Chen, J. Bettencourt, I. Sutskever, D. Duvenaud. FFJORD: Free-form Continuous
Dynamics for Scalable Reversible Generative Models. ICLR 2019, arXiv:1810.01367 (toy data sets).
S. L. Moshier. Cephes Math Library 2.2 (1992), ndtr.c: the rational approximations of erf and erfc.
"""

import functools
import math
import numbers

import numpy as np

from .densities import LOG_2PI, logsumexp
from .validation import as_generator

__all__ = ["as_generator", "toy", "toy_names", "toy_log_prob", "toy_entropy", "has_closed_form"]

def _normal_log_pdf(x, mean, std):
    """log N(x; mean, std^2), elementwise (broadcasts)."""
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * LOG_2PI


# ---------------------------------------------------------------------------------------------------------
# The normal tail Q(z) = P(Z > z) = erfc(z / sqrt 2) / 2, vectorised. NumPy has no erf and scipy is not a
# dependency, so it is written here from Cephes' rational approximations (S. L. Moshier, ndtr.c; relative
# error < 1e-13 on their domains):
#
#     erf(y)                  = y T(y^2) / U(y^2)         for |y| < 1
#     erfcx(y) = e^{y^2} erfc(y) = P(y) / Q(y)            for 1 <= y < 8,      R(y) / S(y) for y >= 8
#
# erfcx ~ 1 / (y sqrt(pi)) is a moderate number however large y is, so log Q(z) = -z^2/2 + log(erfcx / 2)
# never underflows: the far tails are computed in log space from erfcx.
# ---------------------------------------------------------------------------------------------------------

_ERF_T = (9.60497373987051638749e0, 9.00260197203842689217e1, 2.23200534594684319226e3, 7.00332514112805075473e3,
          5.55923013010394962768e4)
_ERF_U = (1.0, 3.35617141647503099647e1, 5.21357949780152679795e2, 4.59432382970980127987e3,
          2.26290000613890934246e4, 4.92673942608635921086e4)
_ERFCX_P = (2.46196981473530512524e-10, 5.64189564831068821977e-1, 7.46321056442269912687e0,
            4.86371970985681366614e1, 1.96520832956077098242e2, 5.26445194995477358631e2,
            9.34528527171957607540e2, 1.02755188689515710272e3, 5.57535335369399327526e2)
_ERFCX_Q = (1.0, 1.32281951154744992508e1, 8.67072140885989742329e1, 3.54937778887819891062e2,
            9.75708501743205489753e2, 1.82390916687909736289e3, 2.24633760818710981792e3,
            1.65666309194161350182e3, 5.57535340817727675546e2)
_ERFCX_R = (5.64189583547755073984e-1, 1.27536670759978104416e0, 5.01905042251180477414e0,
            6.16021097993053585195e0, 7.40974269950448939160e0, 2.97886665372100240670e0)
_ERFCX_S = (1.0, 2.26052863220117276590e0, 9.39603524938001434673e0, 1.20489539808096656605e1,
            1.70814450747565897222e1, 9.60896809063285878198e0, 3.36907645100081516050e0)
_SQRT_HALF = math.sqrt(0.5)
_SQRT_2PI = math.sqrt(2 * math.pi)


def _polynomial(y, coefficients):
    """c[0] y^d + c[1] y^(d-1) + ... + c[d] by Horner's rule, in place on one buffer (d >= 1)."""
    result = coefficients[0] * y
    result += coefficients[1]
    for c in coefficients[2:]:
        result *= y
        result += c
    return result


def _erfcx(y):
    """The scaled complementary error function exp(y^2) erfc(y) for y >= 1 (1-D array).

    Beyond 8, R(y) / S(y) is evaluated as u R~(u) / S~(u) in u = 1 / y (the coefficients reversed), which
    cannot overflow however large y is and tends to u / sqrt(pi).
    """
    result = _polynomial(np.minimum(y, 8.0), _ERFCX_P)  # the points beyond 8 are redone below
    result /= _polynomial(np.minimum(y, 8.0), _ERFCX_Q)
    far = y >= 8.0
    if far.any():
        u = 1.0 / y[far]
        result[far] = u * _polynomial(u, _ERFCX_R[::-1]) / _polynomial(u, _ERFCX_S[::-1])
    return result


def _normal_sf(z):
    """Q(z) = P(Z > z), Z ~ N(0, 1), for a 1-D array of any z (underflows to 0 beyond z ~ 38)."""
    y = z * _SQRT_HALF
    result = np.empty_like(y)
    middle, right, left = np.abs(y) < 1.0, y >= 1.0, y <= -1.0
    y_mid = y[middle]
    result[middle] = 0.5 - 0.5 * y_mid * _polynomial(y_mid**2, _ERF_T) / _polynomial(y_mid**2, _ERF_U)
    y_right = y[right]
    result[right] = 0.5 * np.exp(-(y_right**2)) * _erfcx(y_right)
    y_left = -y[left]
    result[left] = 1.0 - 0.5 * np.exp(-(y_left**2)) * _erfcx(y_left)
    return result


def _log_interval_prob(m, h):
    """log P(m - h < Z < m + h) for Z ~ N(0, 1), m >= 0 (any shape) and h > 0, accurate far in the tail.

    P = Q(m - h) - Q(m + h). When both ends lie in the upper tail (m - h >= sqrt 2), write Q(z) =
    exp(-z^2/2) erfcx(z / sqrt 2) / 2, so with y_- = (m - h) / sqrt 2 and y_+ = (m + h) / sqrt 2

        log P = -(m - h)^2 / 2 - log 2 + log[erfcx(y_-) - exp(-2 m h) erfcx(y_+)],

    which is finite and accurate for any finite m: no difference of two underflowing numbers, and the
    bracket is at least erfcx(y_-) (1 - exp(-2 sqrt(2) h)) since erfcx decreases. Closer in,
    Q(m - h) >= Q(sqrt 2) = 0.079 and the plain difference of the two tails is accurate.

    Parameters
    ----------
    m : ndarray, shape (...)
        Distances, >= 0.
    h : float
        Half-width of the interval, > 0.

    Returns
    -------
    log_prob : ndarray, shape (...)
    """
    flat = np.asarray(m, dtype=np.float64).ravel()
    result = np.empty_like(flat)
    tail = flat >= h + math.sqrt(2.0)
    m_tail = flat[tail]
    y_lo = (m_tail - h) * _SQRT_HALF
    bracket = _erfcx(y_lo)
    bracket -= np.exp(-2.0 * h * m_tail) * _erfcx((m_tail + h) * _SQRT_HALF)
    result[tail] = np.log(bracket) - y_lo**2 - math.log(2.0)
    m_near = flat[~tail]
    sf = _normal_sf(np.concatenate([m_near - h, m_near + h]))  # Q(m - h), then Q(m + h)
    result[~tail] = np.log(sf[:m_near.size] - sf[m_near.size:])
    return result.reshape(np.shape(m))


# ---------------------------------------------------------------------------------------------------------
# Blurred curves (moons, spirals): a quadrature over the curve parameter t turns p(x) into a finite mixture.
#
# Both densities are p(x) = int q(t) k(x; t) dt, a kernel k centred on the curve. A composite Gauss-Legendre
# rule (nodes t_j, weights g_j) makes p(x) = sum_j W_j k(x; t_j), W_j = g_j q(t_j) (times the probability
# 1/2 of each moon or sign); the log-weights log W_j and the log-kernel are added and log-sum-exp'ed, so a
# point far from the data gets its log p, not -inf.
#
# moons:   k = N(x; c_j, s^2 I): log k is a quadratic in x, so all terms of a block of points are one
#          matrix product (dense: every point against every node).
# spirals: k = prod_k P(m_k - h < Z < m_k + h) / w with m_k = |x_k - c_jk| / s, h = w / (2 s), c_j the centre
#          of the uniform square. Each term costs four erfc evaluations, so only the terms that can matter
#          are evaluated. Since P(m - h < Z < m + h) <= Q(m - h) <= exp(-max(m - h, 0)^2 / 2), the distance
#          from x to the bounding box of a panel's centres bounds every term of that panel from above. Once
#          the exact terms of the most promising panel are known, every panel whose bound is more than
#          _SKIP_NATS below the largest of them is skipped, and so is every node of the remaining panels
#          whose own (sharper) bound is. Each skipped term is < e^-40 ~ 4e-18 of p; all of them, < 1e-14.
# ---------------------------------------------------------------------------------------------------------

_GL_NODES = 16  # Gauss-Legendre nodes per panel
_SKIP_NATS = 40.0  # a spiral panel is skipped when all its terms are provably this far below the largest one
_BLOCK = 256  # points per block: the work arrays, (block, nodes) and (block * panels, nodes), stay in cache


def _gauss_legendre_panels(edges, nodes=_GL_NODES):
    """Nodes t and log-weights of the composite Gauss-Legendre rule on the panels between ``edges``.

    Parameters
    ----------
    edges : ndarray, shape (J + 1,)
        Increasing panel boundaries.
    nodes : int
        Nodes per panel (the rule is exact for polynomials of degree 2 nodes - 1 on each panel).

    Returns
    -------
    t : ndarray, shape (J, nodes)
    log_w : ndarray, shape (J, nodes)
        log of the weights: sum_j exp(log_w_j) g(t_j) ~ int g(t) dt over [edges[0], edges[-1]].
    """
    g, g_w = np.polynomial.legendre.leggauss(nodes)  # on [-1, 1]
    lo, hi = edges[:-1, None], edges[1:, None]
    half = (hi - lo) / 2
    return half * g + (lo + hi) / 2, np.log(half * g_w)


def _refine_ends(edges, levels_start, levels_end):
    """Split the first and last panel of ``edges`` (J + 1,) geometrically: panels halving toward each end."""
    first, last = edges[1] - edges[0], edges[-1] - edges[-2]
    return np.unique(np.concatenate([edges, edges[0] + first * 0.5 ** np.arange(1, levels_start + 1),
                                     edges[-1] - last * 0.5 ** np.arange(1, levels_end + 1)]))


def _rule_size(noise, panels, levels, min_panels):
    """Panels and end-refinement levels for this noise, of a rule with ``panels`` and ``levels`` at noise 0.1.

    The integrand's features are ~noise wide along the curve, so the panels scale like 0.1 / noise (at
    least ``min_panels``); a far point's boundary layer at an end of the curve is ~noise^2 wide, so the
    ends get log2(0.1 / noise) more halvings (at least one).
    """
    factor = 0.1 / noise
    return max(min_panels, int(math.ceil(panels * factor))), max(1, levels + int(math.ceil(math.log2(factor))))


def _log_gaussian_mixture(x, centres, log_w, noise):
    """log sum_j exp(log_w_j) N(x; c_j, noise^2 I) at the points x, every point against every centre.

    log N(x; c, s^2 I) = (x . c - |c|^2 / 2 - |x|^2 / 2) / s^2 - log(2 pi s^2): one matrix product per
    block of points, then a log-sum-exp over the centres.

    Parameters
    ----------
    x : ndarray, shape (n, 2)
    centres : ndarray, shape (m, 2)
    log_w : ndarray, shape (m,)
    noise : float
        The std s.

    Returns
    -------
    log_p : ndarray, shape (n,)
    """
    inv_var = 1.0 / noise**2
    offset = log_w - 0.5 * inv_var * np.sum(centres**2, axis=1)  # (m,)
    scaled = centres.T * inv_var  # (2, m)
    log_p = np.empty(x.shape[0])
    for start in range(0, x.shape[0], _BLOCK):
        xb = x[start:start + _BLOCK]
        terms = xb @ scaled  # (b, m)
        terms += offset
        shift = np.max(terms, axis=1, keepdims=True)
        terms -= shift
        np.exp(terms, out=terms)
        log_p[start:start + _BLOCK] = (np.log(np.sum(terms, axis=1)) + shift[:, 0]
                                       - 0.5 * inv_var * np.sum(xb**2, axis=1))
    return log_p - np.log(2 * np.pi * noise**2)


def _log_box_mixture(x, rule, noise, width):
    """log sum_j W_j prod_k B_jk(x_k), B the density of U(square of side ``width``) + N(0, noise^2), pruned.

    Parameters
    ----------
    x : ndarray, shape (n, 2)
    rule : dict
        ``centres`` (2, J, K): the squares' centres per coordinate, J panels of K nodes; ``log_w`` (J, K):
        log W_j; ``lo`` and ``hi`` (2, J): each panel's bounding box of centres; ``log_w_max`` (J,).
    noise : float
        The Gaussian's std s.
    width : float
        The side w of the squares.

    Returns
    -------
    log_p : ndarray, shape (n,)
    """
    (c1, c2), log_w = rule["centres"], rule["log_w"]
    h = width / (2 * noise)
    log_norm = -2 * np.log(width)
    log_p = np.empty(x.shape[0])
    for start in range(0, x.shape[0], _BLOCK):
        x1, x2 = x[start:start + _BLOCK, 0, None], x[start:start + _BLOCK, 1, None]  # (b, 1)
        # Upper bound of every term of each panel, (b, J): m_k - h >= (distance to the box) / s - h.
        bound = rule["log_w_max"] + log_norm
        for xk, lo, hi in ((x1, rule["lo"][0], rule["hi"][0]), (x2, rule["lo"][1], rule["hi"][1])):
            excess = np.maximum(np.maximum(lo - xk, xk - hi) / noise - h, 0.0)
            bound = bound - 0.5 * excess**2
        # The exact terms of each point's most promising panel: a lower bound of its largest term, (b,).
        best = np.argmax(bound, axis=1)
        m_best = np.abs(np.stack([x1 - c1[best], x2 - c2[best]])) / noise  # (2, b, K)
        largest = np.max(log_w[best] + np.sum(_log_interval_prob(m_best, h), axis=0), axis=1) + log_norm
        # Skip below this; the margin 1e-12 |largest| covers the rounding of bounds and terms of size ~1e17.
        threshold = largest - _SKIP_NATS - 1e-12 * np.abs(largest)
        # The panels that can matter (each point's best panel among them), as (point, panel) pairs.
        point, panel = np.nonzero(bound >= threshold[:, None])  # (P,) each, sorted by point
        m1, m2 = np.abs(x1[point] - c1[panel]) / noise, np.abs(x2[point] - c2[panel]) / noise  # (P, K)
        # Their nodes that can matter, by the sharper bound log f(m) <= -z^2/2 - log max(1, z sqrt(2 pi)),
        # z = max(m - h, 0) (from Q(z) <= exp(-z^2/2) and Q(z) <= phi(z) / z).
        log_w_pairs = log_w[panel]
        node_bound = log_w_pairs + log_norm
        for mk in (m1, m2):
            z = np.maximum(mk - h, 0.0)
            node_bound -= 0.5 * z**2 + np.log(np.maximum(1.0, z * _SQRT_2PI))
        keep = np.flatnonzero(node_bound >= threshold[point, None])  # flat indices into (P, K)
        log_f = _log_interval_prob(np.concatenate([m1.take(keep), m2.take(keep)]), h)
        terms = np.full(m1.shape, -np.inf)  # (P, K), without log_norm
        terms.put(keep, log_w_pairs.take(keep) + log_f[:keep.size] + log_f[keep.size:])
        # log-sum-exp over each point's terms, shifted by the point's own largest term.
        starts = np.flatnonzero(np.diff(point, prepend=-1))  # first pair of each point
        shift = np.maximum.reduceat(np.max(terms, axis=1), starts)  # (b,)
        shift = np.where(np.isfinite(shift), shift, 0.0)  # all terms -inf (|x| ~ 1e154): -inf, not NaN
        terms -= shift[point, None]
        total = np.bincount(point, weights=np.sum(np.exp(terms), axis=1))
        with np.errstate(divide="ignore"):
            log_p[start:start + _BLOCK] = shift + np.log(total) + log_norm
    return log_p


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
# moons: sklearn's make_moons, noise 0.1, centred. t ~ U(0, pi); outer c(t) = (cos t, sin t) or inner
# c(t) = (1 - cos t, 0.5 - sin t) with probability 1/2 each; x = c(t) + s eps - (0.5, 0.25). So
#
#     p(x) = (1/2) sum_curves (1/pi) int_0^pi N(x; c(t) - (0.5, 0.25), s^2 I) dt.
#
# Quadrature, at noise 0.1: per moon 16 equal panels of 16 Gauss-Legendre nodes, and 6 halving panels at
# each end (scaled with the noise by _rule_size). Near the curve the integrand is a bump of width s in t;
# for a far point at distance D from a circle's centre it is exp(D cos(t - phi) / s^2), a bump of width
# s / sqrt(D), or a boundary layer of width ~s^2 / D at an end of the half circle, hence the refined ends.
# All points are evaluated against all nodes (896 at noise 0.1): cheap, since the kernel is a Gaussian.
# ---------------------------------------------------------------------------------------------------------

_NOISE_MOONS = 0.1
_SHIFT_MOONS = np.array([0.5, 0.25])  # E[x] = (1/2, (2/pi + 1/2 - 2/pi) / 2) = (0.5, 0.25)


def _sample_moons(n, rng, noise):
    t = rng.uniform(0.0, np.pi, n)
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    x = np.where(rng.uniform(size=(n, 1)) < 0.5, outer, inner)
    x = x + noise * rng.standard_normal((n, 2))
    return x - _SHIFT_MOONS


@functools.lru_cache(maxsize=16)
def _moons_rule(noise, panel_factor=1, nodes=_GL_NODES):
    """Centres (m, 2) and log-weights (m,) of the moons' quadrature mixture (both moons) for this noise."""
    panels, levels = _rule_size(noise, 16, 6, min_panels=4)
    edges = np.linspace(0.0, np.pi, panels * panel_factor + 1)
    t, log_w = _gauss_legendre_panels(_refine_ends(edges, levels, levels), nodes)
    t, log_w = t.ravel(), log_w.ravel() - np.log(np.pi) - np.log(2.0)  # t ~ U(0, pi); each moon w.p. 1/2
    outer = np.stack([np.cos(t), np.sin(t)], axis=1)
    inner = np.stack([1 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    return np.concatenate([outer, inner]) - _SHIFT_MOONS, np.concatenate([log_w, log_w])


def _log_prob_moons(x, noise, panel_factor=1, nodes=_GL_NODES):
    centres, log_w = _moons_rule(noise, panel_factor, nodes)
    with np.errstate(over="ignore"):  # |x| beyond ~1e154: log p = -inf, quietly
        return _log_gaussian_mixture(x, centres, log_w, noise)


# ---------------------------------------------------------------------------------------------------------
# 8gaussians: p(x) = (1/8) sum_k N(x; mu_k, s^2 I), mu_k = 2 (cos(2 pi k / 8), sin(2 pi k / 8)), s = 0.2.
# ---------------------------------------------------------------------------------------------------------

_ANGLES_8 = 2 * np.pi * np.arange(8) / 8
_MEANS_8 = 2.0 * np.stack([np.cos(_ANGLES_8), np.sin(_ANGLES_8)], axis=1)  # (8, 2)
_STD_8 = 0.2


def _sample_8gaussians(n, rng, noise):
    k = rng.integers(0, 8, size=n)
    return _MEANS_8[k] + noise * rng.standard_normal((n, 2))


def _log_prob_8gaussians(x, noise):
    # log N(x; mu_k, s^2 I) for every point and component: shape (n, 8), then log-sum-exp over k.
    log_components = _normal_log_pdf(x[:, None, :], _MEANS_8[None, :, :], noise).sum(axis=2)
    return logsumexp(log_components - np.log(8.0), axis=1)


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
# spirals: FFJORD's "2spirals". u ~ U(0, 1), t = 3 pi sqrt(u), so P(t <= tau) = (tau / 3 pi)^2 and t has
# density q(t) = 2 t / (3 pi)^2 on [0, 3 pi]. d = c(t) + v / 2 with c(t) = (-t cos t, t sin t) and
# v ~ U[0, 1]^2; a sign sigma = +-1; x = sigma d / 3 + s eps. Given (sigma, t), x_k is uniform on an
# interval of width w = 1/6 with centre sigma (c_k(t) / 3 + w / 2), plus N(0, s^2):
#
#     B(z) = [Phi((z - a) / s) - Phi((z - a - w) / s)] / w = P(m - h < Z < m + h) / w,
#     m = |z - centre| / s, h = w / (2 s),
#
#     p(x) = (1/2) sum_sigma int_0^{3 pi} q(t) B(x_1) B(x_2) dt.
#
# The sign sigma = -1 mirrors the centres: the rule holds both spirals. Quadrature, at noise 0.1: 50 panels
# with edges 3 pi sqrt(j / 50) (equal steps in u = (t / 3 pi)^2, about equal arc length, since the spiral's
# speed |c'(t)| / 3 ~ t / 3 grows like t), split into 8 halving panels at the outer end (a far point's
# boundary layer) and 3 at the centre, 16 Gauss-Legendre nodes each (1,952 nodes for both signs), scaled
# with the noise by _rule_size. Far from the origin the integrand's bump is ~s wide in arc length.
# ---------------------------------------------------------------------------------------------------------

_NOISE_SPIRALS = 0.1
_T_SPIRALS = 3 * np.pi  # 540 degrees
_WIDTH_SPIRALS = 0.5 / 3  # side of the uniform square


def _sample_spirals(n, rng, noise):
    t = np.sqrt(rng.uniform(size=n)) * 540 * (2 * np.pi) / 360  # angle along the spiral, up to 3 pi
    d = np.stack([-np.cos(t) * t, np.sin(t) * t], axis=1) + 0.5 * rng.uniform(size=(n, 2))
    sign = np.where(rng.uniform(size=(n, 1)) < 0.5, 1.0, -1.0)  # second spiral: the point reflection -d
    return sign * d / 3 + noise * rng.standard_normal((n, 2))


@functools.lru_cache(maxsize=16)
def _spirals_rule(noise, panel_factor=1, nodes=_GL_NODES):
    """The spirals' quadrature mixture (both signs) for this noise, as ``_log_box_mixture`` takes it."""
    panels, levels = _rule_size(noise, 50, 8, min_panels=6)
    edges = _T_SPIRALS * np.sqrt(np.linspace(0.0, 1.0, panels * panel_factor + 1))
    t, log_w = _gauss_legendre_panels(_refine_ends(edges, max(1, levels - 5), levels), nodes)
    log_w = log_w + np.log(2 * t / _T_SPIRALS**2) - np.log(2.0)  # density of t; sign +-1 w.p. 1/2
    centres = np.stack([-np.cos(t) * t, np.sin(t) * t]) / 3 + _WIDTH_SPIRALS / 2  # (2, J, K), sign +1
    centres = np.concatenate([centres, -centres], axis=1)  # sign -1: the mirror image
    log_w = np.concatenate([log_w, log_w])
    return {"centres": centres, "log_w": log_w, "lo": centres.min(axis=2), "hi": centres.max(axis=2),
            "log_w_max": log_w.max(axis=1)}


def _log_prob_spirals(x, noise, panel_factor=1, nodes=_GL_NODES):
    with np.errstate(over="ignore"):  # |x| beyond ~1e154: log p = -inf, quietly
        return _log_box_mixture(x, _spirals_rule(noise, panel_factor, nodes), noise, _WIDTH_SPIRALS)


# ---------------------------------------------------------------------------------------------------------
# rings: angle theta ~ U(0, 2 pi), ring k with probability w_k proportional to R_k, radius r ~ N(R_k, s^2),
# x = r (cos theta, sin theta), s = 0.08.
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


def _sample_rings(n, rng, noise):
    k = rng.choice(len(_RADII), size=n, p=_WEIGHTS)
    theta = rng.uniform(0.0, 2 * np.pi, n)
    r = _RADII[k] + noise * rng.standard_normal(n)
    return r[:, None] * np.stack([np.cos(theta), np.sin(theta)], axis=1)


def _log_prob_rings(x, noise):
    rho = np.sqrt(np.sum(x**2, axis=1))
    means = np.concatenate([_RADII, -_RADII])  # (6,)
    log_w = np.log(np.concatenate([_WEIGHTS, _WEIGHTS]))
    log_p_rho = logsumexp(log_w + _normal_log_pdf(rho[:, None], means, noise), axis=1)
    with np.errstate(divide="ignore"):
        log_p = log_p_rho - np.log(2 * np.pi * rho)
    return np.where(rho > 0, log_p, -np.inf)


# ---------------------------------------------------------------------------------------------------------
# Registry: name -> (sampler, exact log-density, default noise or None). Order = the order of toy_names().
# A toy with a noise level has sampler(n, rng, noise) and log_prob(x, noise); the others drop noise.
# ---------------------------------------------------------------------------------------------------------

_TOYS = {
    "fig1": (_sample_fig1, _log_prob_fig1, None),
    "moons": (_sample_moons, _log_prob_moons, _NOISE_MOONS),
    "8gaussians": (_sample_8gaussians, _log_prob_8gaussians, _STD_8),
    "checkerboard": (_sample_checkerboard, _log_prob_checkerboard, None),
    "spirals": (_sample_spirals, _log_prob_spirals, _NOISE_SPIRALS),
    "rings": (_sample_rings, _log_prob_rings, _STD_RING),
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


def _check_noise(name, noise):
    """The noise level to use for toy ``name``: its default for None, else a validated positive float."""
    default = _TOYS[name][2]
    if noise is None:
        return default
    if default is None:
        raise ValueError(f"noise must be None for toy {name!r}: it has no noise level (toys with one: "
                         f"{', '.join(k for k in _TOYS if _TOYS[k][2] is not None)}), got noise={noise!r}")
    if isinstance(noise, (bool, np.bool_)) or not isinstance(noise, numbers.Real):
        raise TypeError(f"noise must be a positive float or None, got {type(noise).__name__} {noise!r}")
    if not (math.isfinite(noise) and noise > 0):
        raise ValueError(f"noise must be a positive finite float, got {noise!r}")
    return float(noise)


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

    True for every toy: moons and spirals are integrals over their curve, computed to machine precision.

    Parameters
    ----------
    name : str
        One of ``toy_names()``.

    Returns
    -------
    bool
    """
    return _TOYS[_check_name(name)][1] is not None


def toy(name, n, rng=None, noise=None):
    """Draw ``n`` points from the toy density ``name``.

    The toys, with their noise defaults (the module docstring gives each generative process and density):

    - "fig1": x2 ~ N(0, 4), x1 | x2 ~ N(x2^2 / 4, 1) (MAF paper, Figure 1). No noise level.
    - "moons": t ~ U(0, pi), the outer (cos t, sin t) or inner (1 - cos t, 0.5 - sin t) half circle with
      probability 1/2, plus N(0, noise^2 I), minus (0.5, 0.25). noise = 0.1.
    - "8gaussians": one of 8 Gaussians of std ``noise`` = 0.2 at 2 (cos(2 pi k / 8), sin(2 pi k / 8)).
    - "checkerboard": uniform on the 8 black unit squares of a 4 x 4 board on [-2, 2]^2. No noise level.
    - "spirals": t = 3 pi sqrt(u), u ~ U(0, 1); d = (-t cos t, t sin t) + U[0, 0.5]^2; x = +-d / 3 (sign
      w.p. 1/2) plus N(0, noise^2 I). noise = 0.1.
    - "rings": radius N(R_k, noise^2) with R_k = 0.75, 1.5, 2.25 chosen w.p. proportional to R_k, uniform
      angle. noise = 0.08.

    Parameters
    ----------
    name : str
        One of ``toy_names()``: "fig1", "moons", "8gaussians", "checkerboard", "spirals", "rings".
    n : int
        Number of points, >= 1.
    rng : None, int or numpy.random.Generator
        Randomness (see ``as_generator``). The same name, n, noise and int seed give the same array.
    noise : None or float
        The toy's noise level (a positive float), None for its default above. fig1 and checkerboard have
        none: any value but None is an error for them.

    Returns
    -------
    x : ndarray, shape (n, 2), float64
        Column 0 is x1, column 1 is x2.

    Raises
    ------
    ValueError
        For an unknown name, n < 1, a noise that is not positive and finite, or a noise for a toy
        without a noise level.
    TypeError
        If n is not an int or noise is not a real number.
    """
    sample, _, default_noise = _TOYS[_check_name(name)]
    n = _check_positive_int(n, "n")
    noise = _check_noise(name, noise)
    rng = as_generator(rng)
    x = sample(n, rng) if default_noise is None else sample(n, rng, noise)
    return np.asarray(x, dtype=np.float64)


def toy_log_prob(name, x, noise=None):
    """Evaluate the exact log-density log p(x) of the toy ``name`` at the points ``x``.

    moons and spirals are integrals over their curve parameter, evaluated by Gauss-Legendre quadrature
    converged to machine precision, in log space (see the module docstring); 50,000 points take about
    0.1 s (moons) and 1 s (spirals) on one core. The moons' cost grows like 1 / noise below noise 0.1.

    Parameters
    ----------
    name : str
        One of ``toy_names()`` (all have a closed-form density: ``has_closed_form(name)`` is True).
    x : ndarray, shape (n, 2), float
        Finite points, one per row.
    noise : None or float
        The toy's noise level, as in ``toy``; None for its default.

    Returns
    -------
    log_p : ndarray, shape (n,), float64
        log p(x) in nats; ``-inf`` where p is zero (outside the checkerboard's black squares), and where
        x is so far out that a squared distance overflows (|x| beyond ~1e154; fig1: |x2| beyond ~1e77).

    Raises
    ------
    ValueError
        If x has the wrong shape or is not finite, or for a bad noise (see ``toy``).
    TypeError
        If x is not a float NumPy array.
    """
    _, log_prob, default_noise = _TOYS[_check_name(name)]
    noise = _check_noise(name, noise)
    x = _check_points(x)
    return log_prob(x) if default_noise is None else log_prob(x, noise)


def toy_entropy(name, n_mc=200_000, rng=0, noise=None):
    """Return the differential entropy H[p] = -E_p[log p(x)] of the toy ``name``, in nats.

    Exact where it has a closed form (fig1: log(2 pi e) + log(4) / 2 = 3.5310; checkerboard: log of the
    area of the support, log 8 = 2.0794). Otherwise the Monte-Carlo estimate -mean(log p(x_i)) over
    ``n_mc`` samples x_i ~ p, whose standard error is std(log p) / sqrt(n_mc) (under 0.003 nats for the
    default n_mc; the spirals' 200,000 log-densities take a few seconds).

    Parameters
    ----------
    name : str
        One of ``toy_names()``.
    n_mc : int
        Number of Monte-Carlo samples (unused when the entropy is exact).
    rng : None, int or numpy.random.Generator
        Randomness of the Monte-Carlo samples; the default seed 0 makes the estimate reproducible.
    noise : None or float
        The toy's noise level, as in ``toy``; None for its default.

    Returns
    -------
    H : float
        Differential entropy in nats.

    Raises
    ------
    ValueError
        For a bad name, n_mc or noise (see ``toy``).
    TypeError
        If n_mc is not an int or noise is not a real number.
    """
    name = _check_name(name)
    noise = _check_noise(name, noise)
    n_mc = _check_positive_int(n_mc, "n_mc")
    rng = as_generator(rng)
    if name in _EXACT_ENTROPY:
        return _EXACT_ENTROPY[name]
    x = toy(name, n_mc, rng, noise=noise)
    return float(-np.mean(toy_log_prob(name, x, noise=noise)))


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
