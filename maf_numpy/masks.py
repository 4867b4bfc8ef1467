"""MADE orderings, degrees and masks (Germain et al. 2015, §4). Pure functions, no network code.

Every unit of a MADE gets a *degree* m(k). The D inputs get the degrees 1..D: their position in the
autoregressive ordering. A hidden unit of degree m may only see units of degree <= m, and the output for
the input of degree d may only see hidden units of degree < d (strictly), so that output d depends on the
inputs of degree < d and nothing else: the autoregressive property (MADE §4).

    hidden mask   M^l[k, k'] = 1[ m^{l-1}(k) <= m^l(k') ]      shape (H_{l-1}, H_l)
    output mask   M^V[k, d]  = 1[ m^L(k) <  m^0(d) ]           shape (H_L, D)

Masks are laid out (fan_in, fan_out) so that a masked layer reads ``h @ (M * W)`` left to right. The
product of the masks counts the paths from every input to every output; its zero pattern is the MADE's
connectivity, strictly lower triangular once rows and columns are sorted by degree.

Orderings: ``order`` is a permutation of ``range(D)`` that lists the variables in the order they are
generated; ``order[0]`` is generated first. Variable ``i`` then has input degree ``position of i in order
+ 1``. Lesson: ``lessons/02_made_masks_and_degrees.ipynb``.

References
----------
M. Germain, K. Gregor, I. Murray, H. Larochelle. MADE: Masked Autoencoder for Distribution Estimation.
ICML 2015, arXiv:1502.03509.
"""

import numpy as np

from .validation import as_generator

__all__ = [
    "ORDERS",
    "HIDDEN_DEGREE_MODES",
    "make_order",
    "input_degrees",
    "hidden_degrees",
    "made_degrees",
    "made_masks",
    "connectivity",
    "two_group_degrees",
]

ORDERS = ("sequential", "reversed", "random")
HIDDEN_DEGREE_MODES = ("sequential", "random")


def make_order(D, order="sequential", rng=None):
    """Return the variable ordering as a permutation of range(D) (MADE §4, "order-agnostic training").

    Parameters
    ----------
    D : int
        Number of variables.
    order : {"sequential", "reversed", "random"} or sequence of int
        ``"sequential"`` is ``0, 1, ..., D-1``; ``"reversed"`` is ``D-1, ..., 0``; ``"random"`` draws a
        permutation from ``rng``; a sequence must itself be a permutation of ``range(D)``.
    rng : int, numpy.random.Generator or None
        Used only by ``"random"``.

    Returns
    -------
    order : ndarray of int, shape (D,)
        ``order[k]`` is the index of the variable generated k-th.
    """
    if isinstance(order, str):
        if order == "sequential":
            return np.arange(D)
        if order == "reversed":
            return np.arange(D)[::-1].copy()
        if order == "random":
            return as_generator(rng).permutation(D)
        raise ValueError(f"order must be one of {ORDERS} or a permutation of range({D}), got {order!r}")
    try:
        perm = np.asarray(order)
    except Exception as error:  # noqa: BLE001 - any unconvertible object is a bad order
        raise TypeError(f"order must be a string or a permutation of range({D}), got {order!r}") from error
    if perm.dtype.kind not in "iu" or perm.shape != (D,) or not np.array_equal(np.sort(perm), np.arange(D)):
        raise ValueError(f"order must be one of {ORDERS} or a permutation of range({D}), got {order!r}")
    return perm.astype(int)


def input_degrees(order):
    """Degrees of the inputs: variable i gets its (1-based) position in the ordering, m^0(i) in 1..D.

    Parameters
    ----------
    order : ndarray of int, shape (D,)
        A permutation of range(D) (see :func:`make_order`).

    Returns
    -------
    m0 : ndarray of int, shape (D,)
        ``m0[order[k]] = k + 1``.
    """
    order = np.asarray(order)
    m0 = np.empty(len(order), dtype=int)
    m0[order] = np.arange(1, len(order) + 1)
    return m0


def hidden_degrees(D, H, mode="sequential", m_prev=None, rng=None, lowest=1):
    """Degrees of one hidden layer of H units (MADE §4).

    ``"sequential"`` cycles through 1..D-1 (``1, 2, ..., D-1, 1, 2, ...``) when ``H >= D-1``, so every
    degree is held by about H/(D-1) units. A layer narrower than D-1 cannot hold every degree; it then
    spreads its degrees evenly from D-1 down to 1, both ends included, so that every input still reaches
    an output (through the unit of degree D-1) and, with at least two units, every output but the first
    still sees an input (through the unit of degree 1). ``"random"`` draws each degree uniformly from
    ``[min(m_prev), D-1]`` as the MADE paper does; in a narrow layer some inputs may then reach no
    output at all.

    A degree of D would be useless (no output has degree > D), so hidden degrees stop at D-1. For D = 1
    there is no valid degree: every hidden unit gets degree 0 and sees no input, so the single output is a
    learnt constant, which is right for a 1-D autoregressive model.

    A conditional MADE (MAF paper §3.4) passes ``lowest=0``: its context inputs have degree 0 (every unit
    may read them), and hidden units of degree 0 read only the context. They are what lets the context
    reach the *first* output (degree 1 sees only units of degree < 1). Degrees then run over 0..D-1.

    Parameters
    ----------
    D : int
        Number of inputs.
    H : int
        Number of hidden units in this layer.
    mode : {"sequential", "random"}
    m_prev : ndarray of int or None
        Degrees of the previous layer (needed by ``"random"``).
    rng : int, numpy.random.Generator or None
    lowest : {1, 0}
        The lowest hidden degree: 1 for a MADE, 0 for a conditional MADE (see above).

    Returns
    -------
    m : ndarray of int, shape (H,)
    """
    if D == 1:
        return np.zeros(H, dtype=int)
    if mode == "sequential":
        if H >= D - lowest:
            return np.arange(H) % (D - lowest) + lowest
        # D-1 first: a lone unit links all inputs
        return (D - 1 - np.round(np.linspace(0, D - 1 - lowest, H))).astype(int)
    if mode == "random":
        low = lowest if m_prev is None else min(max(int(np.min(m_prev)), lowest), D - 1)
        return as_generator(rng).integers(low, D, size=H)  # uniform on [low, D-1]
    raise ValueError(f"hidden_degrees (mode) must be one of {HIDDEN_DEGREE_MODES}, got {mode!r}")


def made_degrees(D, hidden, order="sequential", hidden_mode="sequential", rng=None, conditional=False):
    """All degrees of a MADE: ``[m^0, m^1, ..., m^L]`` for inputs and L hidden layers.

    Parameters
    ----------
    D : int
    hidden : sequence of int
        Hidden layer widths ``(H_1, ..., H_L)``.
    order : str or sequence of int
        See :func:`make_order`.
    hidden_mode : {"sequential", "random"}
        See :func:`hidden_degrees`.
    rng : int, numpy.random.Generator or None
        One generator is used for the order and every hidden layer, so a seed fixes them all.
    conditional : bool
        Hidden degrees from 0 (units that read only the context inputs, of degree 0) instead of 1.

    Returns
    -------
    degrees : list of ndarray of int
        ``degrees[0]`` has shape (D,), ``degrees[l]`` has shape (H_l,). The context inputs of a conditional
        MADE are not listed: their degree is 0 (see :func:`made_masks`).
    """
    rng = as_generator(rng)
    lowest = 0 if conditional else 1
    degrees = [input_degrees(make_order(D, order, rng))]
    m_prev = np.append(degrees[0], 0) if conditional else degrees[0]
    for H in hidden:
        degrees.append(hidden_degrees(D, H, hidden_mode, m_prev, rng, lowest))
        m_prev = degrees[-1]
    return degrees


def made_masks(degrees, context_dim=0):
    """Build the MADE masks from degrees: ``<=`` for hidden layers, strict ``<`` for the output (MADE §4).

    Parameters
    ----------
    degrees : list of ndarray of int
        ``[m^0, m^1, ..., m^L]``: input degrees (D,) then hidden degrees (H_l,).
    context_dim : int
        Number C of context inputs of a conditional MADE (MAF paper §3.4), placed after the D inputs, with
        degree 0: every hidden unit may read them (0 <= m), and so may every output when L = 0.

    Returns
    -------
    masks : list of ndarray of float64
        ``L + 1`` matrices: ``masks[l]`` of shape (H_l, H_{l+1}) for the hidden layers (with H_0 = D + C),
        and the output mask ``masks[-1]`` of shape (H_L, D), shared by the mu and alpha heads.
    """
    m = [np.asarray(d) for d in degrees]
    m_in = np.concatenate([m[0], np.zeros(context_dim, dtype=int)])
    units = [m_in] + m[1:]  # the degrees of each layer's units, inputs first
    hidden = [(units[l - 1][:, None] <= units[l][None, :]).astype(float) for l in range(1, len(units))]
    # Strict: output d must not see a hidden unit that saw input d itself.
    output = (units[-1][:, None] < m[0][None, :]).astype(float)
    return hidden + [output]


def connectivity(masks):
    """Count paths from each input to each output through the masks: ``(M^1 M^2 ... M^V)^T``.

    Parameters
    ----------
    masks : list of ndarray
        As returned by :func:`made_masks`.

    Returns
    -------
    C : ndarray of shape (D, D)
        ``C[i, j]`` is the number of paths from input j to output i, laid out like a Jacobian
        ``d out_i / d in_j``. Output i may depend on input j only if ``C[i, j] > 0``; in a correct MADE
        that needs ``degree(j) < degree(i)``.
    """
    P = masks[0]
    for M in masks[1:]:
        P = P @ M
    return P.T


def two_group_degrees(D, A, hidden):
    """Degrees of a MADE whose inputs take only two values: an affine coupling layer (MAF §3.3; Dinh et al. 2017).

    The conditioning group A gets input degree 1, every other coordinate (group B) degree 2, and every hidden
    unit degree 1. :func:`made_masks` then connects every A input to every hidden unit (1 <= 1), no B input
    to any (2 > 1), every hidden unit to every B output (1 < 2) and no hidden unit to any A output (1 < 1 is
    false): each B output sees all of A and nothing of B, each A output sees no input at all. This is the
    RealNVP conditioner written as a MADE; the A outputs are left with their biases only, which the coupling
    layer (:class:`maf_numpy.transforms.MADECoupling`) sets to zero.

    Parameters
    ----------
    D : int
        Number of inputs, at least 2.
    A : int or sequence of int
        The conditioning group. An int d means the first d coordinates ``0, ..., d-1``; a sequence lists the
        (distinct) indices of A. A must hold at least one and at most D - 1 coordinates.
    hidden : sequence of int
        Hidden widths ``(H_1, ..., H_L)``; may be empty (then each B output reads the A inputs linearly).

    Returns
    -------
    degrees : list of ndarray of int
        ``[m^0, m^1, ..., m^L]``: ``m^0`` of shape (D,) with 1 on A and 2 on B, ``m^l`` of shape (H_l,), all 1.
    """
    if isinstance(D, (bool, np.bool_)) or not isinstance(D, (int, np.integer)) or D < 2:
        raise ValueError(f"D must be an int of at least 2 (a coupling layer splits x in two), got {D!r}")
    if isinstance(A, (int, np.integer)) and not isinstance(A, (bool, np.bool_)):
        if not 1 <= A <= D - 1:
            raise ValueError(f"A (the size d of the conditioning group) must be in 1..{D - 1}, got {A}")
        group = np.arange(int(A))
    else:
        try:
            group = np.asarray(A)
        except Exception as error:  # noqa: BLE001 - any unconvertible object is a bad group
            raise TypeError(f"A must be an int d or a sequence of indices in range({D}), got {A!r}") from error
        if (group.ndim != 1 or group.dtype.kind not in "iu" or not 1 <= len(group) <= D - 1
                or len(np.unique(group)) != len(group) or group.min() < 0 or group.max() >= D):
            raise ValueError(f"A must list between 1 and {D - 1} distinct indices in range({D}), got {A!r}")
    m0 = np.full(D, 2, dtype=int)
    m0[group] = 1
    return [m0] + [np.ones(int(H), dtype=int) for H in hidden]
