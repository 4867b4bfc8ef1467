"""Adam's update chunk by chunk into preallocated arrays: :func:`maf_numpy.optim.adam_step`, bit for bit.

The reference computes Kingma & Ba's Algorithm 1 in five NumPy lines, which stream a dozen full-length
temporaries through memory (at 1.8M parameters, 10 ms of a 56 ms training step). This computes the same
operations in the same order, so the same numbers bit for bit (``tests/test_fast.py``), on chunks whose
temporaries stay in the CPU cache. The inputs are not modified: a new theta, m and v are returned, as a
training state interrupted half-way must stay whole (``fit``).
"""

import numpy as onp

from ..optim import adam_step as adam_step_reference

__all__ = ["adam_step", "CHUNK_BYTES"]

CHUNK_BYTES = 2**19  # per array, so that a chunk's seven arrays and two temporaries fit in a 2-4 MB cache


def adam_step(theta, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8, chunk_bytes=CHUNK_BYTES):
    """One Adam update of the flat vector theta, as :func:`maf_numpy.optim.adam_step` (same arguments and
    returns), chunk by chunk. Inputs it cannot serve bit for bit (NumPy scalars, mixed dtypes, other shapes)
    go to the reference, which applies NumPy's own promotion rules."""
    arrays = (theta, g, m, v)
    scalars = (lr, b1, b2, eps)
    if not (all(type(a) is onp.ndarray and a.ndim == 1 and a.dtype == theta.dtype and a.shape == theta.shape
                for a in arrays) and theta.dtype in (onp.float32, onp.float64)
            and all(type(s) in (int, float) for s in scalars) and type(t) is int):
        return adam_step_reference(theta, g, m, v, t, lr, b1, b2, eps)
    c1, c2 = 1 - b1**t, 1 - b2**t
    theta_new, m_new, v_new = onp.empty_like(theta), onp.empty_like(m), onp.empty_like(v)
    chunk = max(1, min(theta.size, chunk_bytes // theta.itemsize))
    a, b = onp.empty(chunk, dtype=theta.dtype), onp.empty(chunk, dtype=theta.dtype)
    for start in range(0, theta.size, chunk):
        s = slice(start, start + chunk)
        n = min(chunk, theta.size - start)
        a_s, b_s, m_s, v_s = a[:n], b[:n], m_new[s], v_new[s]
        onp.multiply(m[s], b1, out=m_s)  # m = b1 * m + (1 - b1) * g
        onp.multiply(g[s], 1 - b1, out=a_s)
        onp.add(m_s, a_s, out=m_s)
        onp.square(g[s], out=a_s)  # v = b2 * v + (1 - b2) * g**2
        onp.multiply(a_s, 1 - b2, out=a_s)
        onp.multiply(v[s], b2, out=v_s)
        onp.add(v_s, a_s, out=v_s)
        onp.divide(v_s, c2, out=a_s)  # sqrt(v_hat) + eps
        onp.sqrt(a_s, out=a_s)
        onp.add(a_s, eps, out=a_s)
        onp.divide(m_s, c1, out=b_s)  # lr * m_hat / (sqrt(v_hat) + eps)
        onp.multiply(b_s, lr, out=b_s)  # (lr * m_hat, as the reference multiplies first)
        onp.divide(b_s, a_s, out=b_s)
        onp.subtract(theta[s], b_s, out=theta_new[s])
    return theta_new, m_new, v_new
