"""The degree-sliced D-pass solver: MAF sampling and IAF density evaluation with about one pass of arithmetic.

The reference, :func:`maf_numpy.transforms.affine.solve_autoregressive`, re-runs the *whole* MADE D times:
pass k makes the coordinates of degree k exact. But pass k changes only what depends on the coordinates that
pass k - 1 made exact. A hidden unit of degree m reads the units below it of degree <= m, and an output of
degree d the hidden units of degree < d. So, with every layer's units sorted by degree (a permutation of a
layer's units changes nothing, once the next weight matrix's rows are permuted alike), step j computes, in
every hidden layer, only the block of units of degree j, from the units of degree <= j below it (all final
by then), and then the outputs of degree j + 1, from the hidden units of degree <= j, and those coordinates.

Sequential latency: still one dependent step per degree. Work: every hidden unit's pre-activation and every
output is computed exactly once, from the units below it that the mask lets it see, so the arithmetic adds up
to about one masked pass, instead of D. Inside a block the masks are all ones, so no mask is multiplied in.
Degrees may be tied (several coordinates of one degree, e.g. a coupling layer's two groups) or skip values:
the coordinates of one degree are computed together, and a degree that no unit has is an empty block.

Plain NumPy with in-place writes into preallocated blocks: autograd cannot trace it, so :mod:`maf_numpy.fast`
uses it only when neither the parameters, the input nor the context is being differentiated.
"""

import weakref

import numpy as onp

from .made import ACTIVATIONS_IN_PLACE

__all__ = ["degree_slices", "slices_for", "solve_sliced", "maf_combine", "iaf_combine", "clamped"]


def degree_slices(degrees):
    """Sort every layer's units by degree and find where each degree's block starts and ends.

    Parameters
    ----------
    degrees : list of ndarray of int
        ``[m^0, m^1, ..., m^L]``: the network's input degrees (a conditional MADE's C context inputs
        appended with degree 0) and hidden degrees.

    Returns
    -------
    dict with
        ``perm``: list of L + 1 index arrays sorting each layer's units by degree (stable);
        ``start``, ``end``: lists of L + 1 int arrays of length ``top + 2`` (``top``: the largest input
        degree): in sorted layer l, the units of degree j are ``start[l][j]:end[l][j]``, and those of
        degree <= j are ``:end[l][j]``;
        ``top``: the largest input degree.
    """
    top = int(onp.max(degrees[0]))
    j = onp.arange(top + 2)
    perm, start, end = [], [], []
    for m in degrees:
        m = onp.asarray(m)
        p = onp.argsort(m, kind="stable")
        perm.append(p)
        start.append(onp.searchsorted(m[p], j, side="left"))
        end.append(onp.searchsorted(m[p], j, side="right"))
    return {"perm": perm, "start": start, "end": end, "top": top}


_SLICES = weakref.WeakKeyDictionary()  # network -> (its degrees list when sliced, the slices)


def slices_for(network):
    """The :func:`degree_slices` of a :class:`maf_numpy.made.MADENetwork` (context inputs included), built once
    per set of degrees."""
    cached = _SLICES.get(network)
    if cached is None or cached[0] is not network.degrees:
        m_in = onp.concatenate([network.degrees[0], onp.zeros(network.context_dim, dtype=int)])
        cached = (network.degrees, degree_slices([m_in, *network.degrees[1:]]))
        _SLICES[network] = cached
    return cached[1]


def maf_combine(z, mu, alpha):
    """MAF sampling's step on the coordinates of one degree, (n, k) or (n,) each: affine_forward without the sum."""
    return z * onp.exp(alpha) + mu, alpha


def iaf_combine(x, mu, alpha):
    """IAF density evaluation's step on the coordinates of one degree: affine_inverse without the sum."""
    return (x - mu) * onp.exp(-alpha), -alpha


def clamped(combine, c):
    """``combine`` with alpha replaced by soft_clamp(alpha, c) = c tanh(alpha / c) first (c None: unchanged)."""
    if c is None:
        return combine
    return lambda u, mu, alpha: combine(u, mu, c * onp.tanh(alpha / c))


def solve_sliced(params, u, combine, slices, activation="relu", y=None):
    """Solve ``v_i = combine(u_i, mu_i(v_{<i}), alpha_i(v_{<i}))`` for every coordinate, degree by degree.

    MAF sampling uses :func:`maf_combine` (u = z, v = x); IAF density evaluation :func:`iaf_combine` (u = x,
    v = z). The same result as the reference solver up to rounding (see the module docstring).

    Parameters
    ----------
    params : dict
        The MADE's parameters, plain arrays.
    u : ndarray of shape (n, D)
        The given side: z for MAF sampling, x for IAF density evaluation.
    combine : callable
        ``(u, mu, alpha) -> (v, log_det_terms)`` on arrays of shape (n, k) or (n,), elementwise.
    slices : dict
        From :func:`degree_slices` (:func:`slices_for`).
    activation : {"relu", "tanh"}
    y : ndarray of shape (n, C) or None
        The context of a conditional MADE: inputs of degree 0, known from the start.

    Returns
    -------
    v : ndarray of shape (n, D)
    log_det : ndarray of shape (n,)
        The sum of ``log_det_terms`` over the coordinates: the log-det of the solved map.
    """
    perm, start, end = slices["perm"], slices["start"], slices["end"]
    n, D = u.shape
    C, L = len(perm[0]) - D, len(perm) - 1
    order = perm[0][C:]  # the context (degree 0) sorts first, then the coordinates by degree
    dtype = onp.result_type(u, params["W_mu"])
    act = ACTIVATIONS_IN_PLACE[activation]
    # The weights, rows and columns sorted by degree: gathered once per solve (one copy of the weights).
    W = [onp.asarray(W_l)[perm[l]][:, perm[l + 1]] for l, W_l in enumerate(params["W"])]
    b = [onp.asarray(b_l)[perm[l + 1]] for l, b_l in enumerate(params["b"])]
    W_mu = onp.asarray(params["W_mu"])[perm[L]][:, order]
    W_alpha = onp.asarray(params["W_alpha"])[perm[L]][:, order]
    b_mu, b_alpha = onp.asarray(params["b_mu"])[order], onp.asarray(params["b_alpha"])[order]
    u_sorted = onp.asarray(u)[:, order]
    v = onp.zeros((n, C + D), dtype=dtype)  # sorted: the context, then the coordinates by degree
    if C:
        v[:, :C] = onp.asarray(y)[:, perm[0][:C] - D]  # the context, known from the start
    h = [v] + [onp.zeros((n, W_l.shape[1]), dtype=dtype) for W_l in W]  # sorted hidden units
    log_det = onp.zeros(n, dtype=dtype)
    for j in range(slices["top"]):  # every unit of degree <= j below is final now
        for l in range(1, L + 1):  # the hidden units of degree j, layer by layer
            s, e, seen = start[l][j], end[l][j], end[l - 1][j]
            if e > s:
                h[l][:, s:e] = act(h[l - 1][:, :seen] @ W[l - 1][:seen, s:e] + b[l - 1][s:e])
        s, e = start[0][j + 1] - C, end[0][j + 1] - C  # the coordinates of degree j + 1 ...
        seen = end[L][j]  # ... read the units of degree <= j of the last hidden layer
        if e - s == 1:  # one coordinate (a MAF or IAF layer): matrix-vector products, faster than one column
            mu = h[L][:, :seen] @ W_mu[:seen, s] + b_mu[s]
            alpha = h[L][:, :seen] @ W_alpha[:seen, s] + b_alpha[s]
            v[:, C + s], log_det_terms = combine(u_sorted[:, s], mu, alpha)
            log_det += log_det_terms
        elif e > s:  # tied degrees: the block of coordinates at once
            mu = h[L][:, :seen] @ W_mu[:seen, s:e] + b_mu[s:e]
            alpha = h[L][:, :seen] @ W_alpha[:seen, s:e] + b_alpha[s:e]
            v[:, C + s:C + e], log_det_terms = combine(u_sorted[:, s:e], mu, alpha)
            log_det += onp.sum(log_det_terms, axis=1)
    return v[:, C:][:, onp.argsort(order)], log_det
