"""The elementwise affine maps every autoregressive and coupling layer is built from, and the D-pass solver.

    generation     x_i = z_i * exp(alpha_i) + mu_i,      log|det dx/dz| = +sum_i alpha_i     (MAF §3.1)
    normalisation  z_i = (x_i - mu_i) * exp(-alpha_i),   log|det dz/dx| = -sum_i alpha_i     (MAF §3.1)

and their volume-preserving special case alpha = 0, the additive maps of NICE (Dinh, Krueger & Bengio 2015,
§3.2): x_i = z_i + mu_i, z_i = x_i - mu_i, log-det 0.

z is the base variable (the paper's u). In a MAF layer (mu_i, alpha_i) are functions of x_{<i}, so the
normalising direction is one network pass and the generating direction a recursion that
:func:`solve_autoregressive` solves in D passes; in an IAF layer it is the other way round (MAF §3.2).

References
----------
G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017,
arXiv:1705.07057. L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components Estimation. ICLR
2015 workshop, arXiv:1410.8516.
"""

import autograd.numpy as np

__all__ = ["affine_forward", "affine_inverse", "additive_forward", "additive_inverse", "solve_autoregressive",
           "soft_clamp"]


def affine_forward(z, mu, alpha):
    """Generate x from z with a given shift and log-scale (MAF §3.1; IAF, §3.2).

        x_i = z_i * exp(alpha_i) + mu_i,    log|det dx/dz| = sum_i alpha_i

    Parameters
    ----------
    z, mu, alpha : ndarray of shape (n, D)

    Returns
    -------
    x : ndarray of shape (n, D)
    log_det : ndarray of shape (n,)
        log|det dx/dz| of this map (the Jacobian is triangular with diagonal exp(alpha)).
    """
    x = z * np.exp(alpha) + mu
    log_det = np.sum(alpha, axis=-1)
    return x, log_det


def affine_inverse(x, mu, alpha):
    """Normalise x with a given shift and log-scale (MAF §3.1).

        z_i = (x_i - mu_i) * exp(-alpha_i),    log|det dz/dx| = -sum_i alpha_i

    Parameters
    ----------
    x, mu, alpha : ndarray of shape (n, D)

    Returns
    -------
    z : ndarray of shape (n, D)
        The base variable (the paper's u).
    log_det : ndarray of shape (n,)
        log|det dz/dx| of this map.
    """
    z = (x - mu) * np.exp(-alpha)
    log_det = -np.sum(alpha, axis=-1)
    return z, log_det


def additive_forward(z, mu):
    """Generate x from z with a given shift: the additive coupling law of NICE (Dinh et al. 2015, §3.2).

        x_i = z_i + mu_i,    log|det dx/dz| = 0

    :func:`affine_forward` with alpha = 0: the Jacobian is the identity, so the map preserves volume.

    Parameters
    ----------
    z, mu : ndarray of shape (n, D)

    Returns
    -------
    x : ndarray of shape (n, D)
    log_det : ndarray of shape (n,)
        Zeros, in z's dtype.
    """
    return z + mu, np.zeros(z.shape[0], dtype=z.dtype)


def additive_inverse(x, mu):
    """Normalise x with a given shift, the inverse of :func:`additive_forward` (NICE §3.2).

        z_i = x_i - mu_i,    log|det dz/dx| = 0

    Parameters
    ----------
    x, mu : ndarray of shape (n, D)

    Returns
    -------
    z : ndarray of shape (n, D)
    log_det : ndarray of shape (n,)
        Zeros, in x's dtype.
    """
    return x - mu, np.zeros(x.shape[0], dtype=x.dtype)


def solve_autoregressive(step, D, shape, degrees=None, dtype="float64"):
    """Solve v = step(v) for an autoregressive step by D passes from zeros (MAF §3.1, sampling).

    ``step(v)`` returns ``(v_new, log_det)`` where coordinate i of ``v_new`` depends only on coordinates
    of ``v`` of lower degree. Starting from zeros, pass 1 makes the coordinates of degree 1 exact (they
    depend on nothing); pass k makes degree k exact, because it reads only degrees < k, which are
    already exact. After D passes every coordinate is exact, and so is the log-det of the last pass.
    Nothing is assigned in place, so autograd differentiates through the loop.

    Used by ``MAFLayer.forward`` (x from z) and ``IAFLayer.inverse`` (z from x): the same solver for both.

    Parameters
    ----------
    step : callable
        ``v -> (v_new, log_det)`` with v of shape ``shape``.
    D : int
        Number of passes (the dimension).
    shape : tuple
        ``(n, D)``.
    degrees : ndarray of int, shape (D,), or None
        The coordinates' degrees (1..D). When given, coordinates of degree > k are reset to zero after
        pass k, so that a not-yet-exact value that overflowed cannot poison the exact ones.
    dtype : {"float64", "float32"}
        Type of the starting zeros (that of the layer's input, so float32 stays float32).

    Returns
    -------
    v : ndarray of shape (n, D)
    log_det : ndarray of shape (n,)
        The log-det returned by the last pass.
    """
    v = np.zeros(shape, dtype=dtype)
    for k in range(1, D + 1):
        v_new, log_det = step(v)
        # Keep only the coordinates that are exact after pass k: the others are recomputed later, and a
        # value that overflowed there would turn into NaN (inf * 0) in the next masked product.
        v = v_new if degrees is None else np.where(degrees <= k, v_new, 0.0)
    return v, log_det


def soft_clamp(alpha, c):
    """The optional soft clamp of the log-scale: ``c * tanh(alpha / c)``, elementwise (any shape).

    Smooth, increasing, equal to alpha near 0 (slope 1) and bounded by ``(-c, c)``, so one layer scales a
    coordinate by at most ``exp(c)``. The layer stays an exact bijection and its log-det is still
    ``sum(alpha)`` of the clamped alpha. The MAF paper uses the unconstrained ``exp(alpha)``, which stays
    the default (``alpha_clamp=None``); the clamp is a stabiliser for deep stacks or large learning rates,
    at the price of a bounded per-layer scale.
    """
    return c * np.tanh(alpha / c)
