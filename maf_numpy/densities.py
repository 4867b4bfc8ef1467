"""Base-density math shared by the flows: the standard normal and a stable log-sum-exp.

    log N(z; 0, I) = -|z|^2 / 2 - (D/2) log(2 pi)                               (MAF paper §2.2, the base)
    logsumexp(a) = m + log sum exp(a - m),   m = max(a)                          (mixtures: MADE MoG, ensembles)
"""

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

__all__ = ["LOG_2PI", "standard_normal_log_prob", "logsumexp"]

LOG_2PI = float(np.log(2 * np.pi))


def standard_normal_log_prob(z):
    """log N(z; 0, I) = -|z|^2 / 2 - (D/2) log(2 pi), for z of shape (n, D); returns shape (n,)."""
    return -0.5 * np.sum(z**2, axis=-1) - 0.5 * z.shape[-1] * LOG_2PI


def logsumexp(a, axis=-1, keepdims=False):
    """log sum exp(a) along ``axis``, as m + log sum exp(a - m) with m the largest entry: nothing large is
    exponentiated. m is a constant for autograd, so the gradient is exactly the softmax of a. A slice that is
    all -inf gives -inf. Any shape; the axis is removed unless ``keepdims``."""
    m = onp.max(getval(a), axis=axis, keepdims=True)
    m = onp.where(onp.isfinite(m), m, 0.0).astype(getval(a).dtype)
    with onp.errstate(divide="ignore"):  # log 0 = -inf for an all -inf slice: the intended answer
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)
