"""Adam on a flat parameter vector (Kingma & Ba 2015, Algorithm 1), and the pytree <-> vector maps around it.

``fit`` (:mod:`maf_numpy.train`) and ``fit_vi`` (:mod:`maf_numpy.vi`) keep the parameters as one flat vector
theta during training: :func:`flat_vector` builds it from ``flow.params`` (and the gradient pytree),
:func:`plain_unflatten` cuts it back into the pytree that the flow's pure functions take, and
:func:`adam_step` updates it. A custom training loop can use the same three::

    unflatten, _ = plain_unflatten(flow.params)
    theta = flat_vector(flow.params, flow.dtype); m = np.zeros_like(theta); v = np.zeros_like(theta)
    for t in range(1, steps + 1):
        g = flat_vector(grad(loss)(unflatten(theta)), flow.dtype)
        theta, m, v = adam_step(theta, g, m, v, t, lr=1e-3)
    flow.params = unflatten(theta)

References
----------
D. P. Kingma, J. Ba. Adam: A Method for Stochastic Optimization. ICLR 2015, arXiv:1412.6980.
"""

import numpy as onp

__all__ = ["adam_step", "flat_vector", "plain_unflatten"]


def adam_step(theta, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam update (Kingma & Ba 2015, Algorithm 1) of the flat parameter vector theta.

        m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2                     (moment estimates)
        m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)                     (bias corrections)
        theta = theta - lr m_hat / (sqrt(v_hat) + eps)

    Line for line ``autograd.misc.optimizers.adam``. The inputs are not modified: a new theta, m and v are
    returned, so a training state interrupted half-way stays whole (``fit``).

    Parameters
    ----------
    theta, g, m, v : ndarray of shape (P,)
        Parameters, gradient, first and second moment estimates.
    t : int
        Step number, starting at 1 (for the bias correction).
    lr : float

    Returns
    -------
    theta, m, v : ndarray of shape (P,)
    """
    m = b1 * m + (1 - b1) * g  # first moment
    v = b2 * v + (1 - b2) * g**2  # second moment
    m_hat = m / (1 - b1**t)  # bias corrections
    v_hat = v / (1 - b2**t)
    return theta - lr * m_hat / (onp.sqrt(v_hat) + eps), m, v


def _leaves(tree):
    """The arrays of a parameter pytree in the order of ``autograd.misc.flatten`` (lists in order, dict keys
    sorted), raveled."""
    if isinstance(tree, (list, tuple)):
        return [leaf for value in tree for leaf in _leaves(value)]
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in _leaves(tree[key])]
    return [onp.ravel(tree)]


def plain_unflatten(tree):
    """``(unflatten, size)``: a function that cuts a flat vector back into a pytree shaped like ``tree`` (views,
    no copies), and the vector's length.

    The inverse of :func:`flat_vector`, in plain NumPy: ``autograd.misc.flatten``'s own ``unflatten`` is a
    backward pass through the flattening, dozens of autograd primitives per call (about 1 ms a step for a
    5-layer MAF, 15% of a small training step). Each leaf keeps its dtype.
    """
    if isinstance(tree, (list, tuple)):
        parts = [plain_unflatten(value) for value in tree]
        sizes = [size for _, size in parts]

        def unflatten(theta):
            out, start = [], 0
            for (function, _), size in zip(parts, sizes):
                out.append(function(theta[start:start + size]))
                start += size
            return type(tree)(out) if isinstance(tree, tuple) else out

        return unflatten, sum(sizes)
    if isinstance(tree, dict):
        keys = sorted(tree)
        parts = {key: plain_unflatten(tree[key]) for key in keys}

        def unflatten(theta):
            out, start = {}, 0
            for key in keys:
                function, size = parts[key]
                out[key] = function(theta[start:start + size])
                start += size
            return out

        return unflatten, sum(size for _, size in parts.values())
    shape, dtype = onp.shape(tree), onp.asarray(tree).dtype
    return (lambda theta: theta.reshape(shape).astype(dtype, copy=False)), int(onp.prod(shape, dtype=int))


def flat_vector(tree, dtype):
    """Concatenate a pytree's arrays into one vector of ``dtype``, in ``autograd.misc.flatten``'s order.

    ``flatten`` itself concatenates an empty *float64* array for a layer without parameters (the
    Standardize layer's ``{}``), which would silently promote a float32 flow's parameters, gradient and
    Adam state to float64; this keeps them in the flow's dtype, with one copy.
    """
    leaves = _leaves(tree)
    return onp.concatenate(leaves).astype(dtype, copy=False) if leaves else onp.zeros(0, dtype=dtype)
