"""The MADE network: a masked MLP with two output heads, mu and alpha (MAF paper §3.1).

A Gaussian MADE (Germain et al. 2015) models each conditional of the chain rule as a Gaussian,

    p(x_i | x_{1:i-1}) = N(x_i | mu_i, (exp alpha_i)^2),   mu_i = f_mu_i(x_{1:i-1}),  alpha_i = f_alpha_i(x_{1:i-1})

and computes all the mu_i and alpha_i in one pass of a masked network. The masks (``masks.py``) make
output i depend only on inputs of lower degree. This module holds the network only: the structure
(widths, degrees, masks) lives in a small object, the numbers in a plain dict of arrays, and the math in
the pure function :func:`made_apply`, so that ``autograd.grad`` can differentiate it with respect to the
parameters and ``autograd.jacobian`` with respect to the input.

Parameters of one MADE with ``hidden=(H_1, ..., H_L)``::

    {"W": [W_1, ..., W_L], "b": [b_1, ..., b_L],     # W_1: (D, H_1), W_l: (H_{l-1}, H_l)
     "W_mu": (H_L, D), "b_mu": (D,), "W_alpha": (H_L, D), "b_alpha": (D,)}

Each masked layer is one autograd primitive, :func:`masked_dense`, whose backward pass is written out by
hand (fewer autograd nodes: a faster training step, DESIGN §7). :func:`solve_sliced` is the fast D-pass
solver of MAF sampling and IAF density evaluation: the same D sequential steps, about one pass of work.
:func:`made_pass_blocked` is the same pass for wide networks, with the units sorted by degree so that every
mask is block triangular and the zero blocks of ``M * W`` are skipped (:func:`block_plan`): a MADE need
not pay for the weights its masks cut.

The same function with ``masks=None`` is a plain MLP; the affine coupling layer of RealNVP uses it as its
conditioner (a MADE whose inputs have only two degrees).

References
----------
M. Germain, K. Gregor, I. Murray, H. Larochelle. MADE: Masked Autoencoder for Distribution Estimation.
ICML 2015. G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation.
NeurIPS 2017, arXiv:1705.07057.
"""

import autograd.numpy as np
import numpy as onp
from autograd import grad as _grad
from autograd.extend import defvjp, defvjp_argnums, primitive
from autograd.tracer import getval, isbox

from . import masks as _masks

__all__ = ["ACTIVATIONS", "masked_dense", "made_apply", "made_apply_by_layer", "made_pass", "init_made_params",
           "MADENetwork", "degree_slices", "solve_sliced", "block_plan", "blocked_products_pay", "made_pass_blocked",
           "BLOCKED_PRODUCTS"]


def _relu(a):
    # h * (h > 0) rather than np.maximum: autograd's backward pass is cheaper (DESIGN §7).
    return a * (a > 0)


ACTIVATIONS = {"relu": _relu, "tanh": np.tanh}


@primitive
def masked_dense(h, W, b, M):
    """One masked dense layer, ``h @ (M * W) + b``, as a single autograd primitive with its own backward pass.

    Written as three NumPy operations, autograd records three nodes (product, matrix product, sum) and
    runs three VJPs; here the backward pass is written out by hand, which is also the whole backward pass
    of a masked layer in three lines. With g = d loss / d out, shape (n, H_out)::

        d loss / d h = g @ (M * W)^T            (n, H_in)
        d loss / d W = M * (h^T @ g)            (H_in, H_out): the mask zeroes the gradient of cut weights
        d loss / d b = sum over the batch of g  (H_out,)

    ``tests/test_fast_paths.py`` checks these against autograd's own gradient of the three-operation form.
    The VJPs are written with autograd's NumPy, so they can be differentiated again.

    Parameters
    ----------
    h : ndarray of shape (n, H_in)
    W : ndarray of shape (H_in, H_out)
    b : ndarray of shape (H_out,)
    M : ndarray of shape (H_in, H_out) or float
        The 0/1 mask (a constant; 1.0 for an unmasked layer).

    Returns
    -------
    ndarray of shape (n, H_out)
    """
    return h @ (M * W) + b


defvjp(masked_dense,
       lambda out, h, W, b, M: lambda g: g @ (M * W).T,
       lambda out, h, W, b, M: lambda g: M * (h.T @ g),
       lambda out, h, W, b, M: lambda g: np.sum(g, axis=0))


def made_apply(params, x, masks=None, activation="relu", plan=None):
    """Compute the Gaussian conditionals' parameters in one masked pass (MAF §3.1).

        h_l = act(h_{l-1} @ (M_l * W_l) + b_l),   mu = h_L @ (M_V * W_mu) + b_mu,
        alpha = h_L @ (M_V * W_alpha) + b_alpha

    The whole pass is one autograd primitive, :func:`made_pass`, with its backward pass written out by hand:
    one autograd node per network instead of dozens (each parameter look-up in a traced dict or list is a
    node too), which makes a small training step about 1.3x faster. :func:`made_apply_by_layer` is the same
    computation written layer by layer; it is used instead when ``params`` is a plain container holding
    traced arrays (built inside a traced function), which a primitive cannot see into.

    Parameters
    ----------
    params : dict
        ``{"W": [...], "b": [...], "W_mu", "b_mu", "W_alpha", "b_alpha"}`` (see the module docstring).
    x : ndarray of shape (n, D_in)
    masks : list of ndarray or None
        ``L + 1`` masks from :func:`maf_numpy.masks.made_masks`; the last one masks both heads. ``None``
        means a fully connected network.
    activation : {"relu", "tanh"}
    plan : dict or None
        A :func:`block_plan` of these masks: then the pass runs :func:`made_pass_blocked`, which skips the
        zero blocks of the masked weights (the same numbers up to rounding). ``None``: the plain products.

    Returns
    -------
    mu, alpha : ndarray of shape (n, D_out)
        Shift and log-scale. With MADE masks, ``mu[:, i]`` and ``alpha[:, i]`` depend only on the inputs
        whose degree is lower than that of input i.
    """
    if masks is None:
        masks = [1.0] * (len(getval(params)["W"]) + 1)
    if not isbox(params) and _holds_boxes(params):
        return made_apply_by_layer(params, x, masks, activation)
    if plan is None:
        out = made_pass(params, x, masks, activation)
    else:
        out = made_pass_blocked(params, x, plan, activation)
    return out[0], out[1]


def _holds_boxes(tree):
    if isinstance(tree, dict):
        return any(_holds_boxes(value) for value in tree.values())
    if isinstance(tree, (list, tuple)):
        return any(_holds_boxes(value) for value in tree)
    return isbox(tree)


def _masked(M, W):
    """``M * W``, skipping the copy when the layer is unmasked (M is the float 1.0: a plain MLP, RealNVP)."""
    return W if isinstance(M, float) and M == 1.0 else M * W


def _heads(params, M_V):
    """Both output heads as one masked weight matrix ``[M_V * W_mu | M_V * W_alpha]`` (H_L, 2 D) and one bias
    (2 D,): one product per pass instead of two."""
    V = onp.concatenate([params["W_mu"], params["W_alpha"]], axis=1)
    if not (isinstance(M_V, float) and M_V == 1.0):
        D = V.shape[1] // 2
        V[:, :D] *= M_V
        V[:, D:] *= M_V
    return V, onp.concatenate([params["b_mu"], params["b_alpha"]])


_ACTIVATIONS_IN_PLACE = {"relu": lambda a: onp.multiply(a, a > 0, out=a), "tanh": lambda a: onp.tanh(a, out=a)}


@primitive
def made_pass(params, x, masks, activation):
    """The forward pass of :func:`made_apply` as one primitive: returns ``(mu, alpha, h_1, ..., h_L)``.

    The hidden activations are returned too, so that the backward pass can use them without recomputing
    the forward pass (:func:`made_apply` keeps only mu and alpha). Plain NumPy (a primitive's forward pass
    always sees plain arrays): the bias and the activation are applied in place, and both heads are one
    product (:func:`_heads`).
    """
    act = _ACTIVATIONS_IN_PLACE[activation]
    hidden, h = [], x
    for W, b, M in zip(params["W"], params["b"], masks[:-1]):
        a = h @ _masked(M, W)
        a += b
        h = act(a)
        hidden.append(h)
    V, b_V = _heads(params, masks[-1])
    out = h @ V
    out += b_V
    D = V.shape[1] // 2
    return (out[:, :D], out[:, D:], *hidden)


def _made_pass_vjp(argnums, out, args, kwargs):
    """Backward pass of a MADE, by hand (reverse-mode chain rule, layer by layer from the heads down).

    With g_mu, g_alpha = d loss / d mu, d loss / d alpha and a_l the pre-activations::

        d W_mu = M_V * (h_L^T @ g_mu),   d b_mu = sum_n g_mu     (the same for alpha)
        g_h_L = g_mu @ (M_V * W_mu)^T + g_alpha @ (M_V * W_alpha)^T
        g_a_l = g_h_l * act'(a_l)        relu: 1[h_l > 0];  tanh: 1 - h_l^2
        d W_l = M_l * (h_{l-1}^T @ g_a_l),   d b_l = sum_n g_a_l,   g_h_{l-1} = g_a_l @ (M_l * W_l)^T

    and d loss / d x = g_h_0. Parameters and x share one backward pass when both are differentiated. With
    plain arrays it runs in plain NumPy (:func:`_made_pass_vjp_plain`: both heads as one product, in-place
    scaling); when the gradient or the parameters are traced (a second derivative) it is written with
    autograd's NumPy below, so that it can be differentiated again.
    """
    params, x, masks, activation = args
    mu, alpha, *hidden = out

    def vjp(g):
        g_mu, g_alpha, *g_hidden = g
        if not (isbox(g_mu) or isbox(g_alpha) or _holds_boxes(params) or isbox(x)
                or any(isbox(g_l) for g_l in g_hidden)):
            return _made_pass_vjp_plain(argnums, params, x, masks, activation, hidden, g_mu, g_alpha, g_hidden)
        inputs = [x, *hidden]  # inputs[l] feeds layer l + 1 (h_0 = x)
        M_V = masks[-1]
        wrt_params = 0 in argnums  # with respect to x only (an IAF's implicit backward pass): no weight gradients
        grad = {"W_mu": _masked(M_V, inputs[-1].T @ g_mu), "b_mu": np.sum(g_mu, axis=0),
                "W_alpha": _masked(M_V, inputs[-1].T @ g_alpha),
                "b_alpha": np.sum(g_alpha, axis=0)} if wrt_params else {}
        g_h = g_mu @ _masked(M_V, params["W_mu"]).T + g_alpha @ _masked(M_V, params["W_alpha"]).T
        grad_W, grad_b = [], []
        for l in range(len(hidden) - 1, -1, -1):
            h = hidden[l]
            if g_hidden[l] is not None:  # None or zero unless someone used the hidden activations themselves
                g_h = g_h + g_hidden[l]
            g_a = g_h * (h > 0) if activation == "relu" else g_h * (1 - h * h)
            if wrt_params:
                grad_W.append(_masked(masks[l], inputs[l].T @ g_a))
                grad_b.append(np.sum(g_a, axis=0))
            if l > 0 or 1 in argnums:
                g_h = g_a @ _masked(masks[l], params["W"][l]).T
        grad["W"], grad["b"] = grad_W[::-1], grad_b[::-1]
        return tuple(grad if argnum == 0 else g_h for argnum in argnums)

    return vjp


def _made_pass_vjp_plain(argnums, params, x, masks, activation, hidden, g_mu, g_alpha, g_hidden):
    """:func:`_made_pass_vjp` in plain NumPy: the same formulas, both heads as one product, the activation's
    derivative and the masks applied in place to this pass's own arrays."""
    x = onp.asarray(x)
    inputs = [x, *hidden]  # inputs[l] feeds layer l + 1 (h_0 = x)
    V, _ = _heads(params, masks[-1])
    D = V.shape[1] // 2
    dtype = onp.result_type(inputs[-1], V)
    g_out = onp.empty((inputs[-1].shape[0], 2 * D), dtype=dtype)  # [g_mu | g_alpha]
    for part, g_part in ((g_out[:, :D], g_mu), (g_out[:, D:], g_alpha)):
        part[...] = 0 if g_part is None else g_part
    wrt_params = 0 in argnums  # with respect to x only (an IAF's implicit backward pass): no weight gradients
    grad = {}
    if wrt_params:
        dV = _masked_in_place(inputs[-1].T @ g_out, masks[-1], D)
        db = onp.sum(g_out, axis=0)
        grad = {"W_mu": dV[:, :D], "b_mu": db[:D], "W_alpha": dV[:, D:], "b_alpha": db[D:]}
    g_h = g_out @ V.T
    grad_W, grad_b = [], []
    for l in range(len(hidden) - 1, -1, -1):
        h = hidden[l]
        if g_hidden[l] is not None:  # None or zero unless someone used the hidden activations themselves
            g_h = g_h + g_hidden[l]
        g_a = onp.multiply(g_h, h > 0, out=g_h) if activation == "relu" else g_h * (1 - h * h)
        if wrt_params:
            grad_W.append(_masked_in_place(inputs[l].T @ g_a, masks[l]))
            grad_b.append(onp.sum(g_a, axis=0))
        if l > 0 or 1 in argnums:
            g_h = g_a @ _masked(masks[l], params["W"][l]).T
    grad["W"], grad["b"] = grad_W[::-1], grad_b[::-1]
    return tuple(grad if argnum == 0 else g_h for argnum in argnums)


def _masked_in_place(dW, M, D=None):
    """``M * dW`` written into dW (a fresh gradient); with D, M masks both halves ``dW[:, :D]``, ``dW[:, D:]``."""
    if isinstance(M, float) and M == 1.0:
        return dW
    if D is None:
        dW *= M
    else:
        dW[:, :D] *= M
        dW[:, D:] *= M
    return dW


defvjp_argnums(made_pass, _made_pass_vjp)


# ---------------------------------------------------------------------------------------------------
# Block-triangular products: a MADE need not pay for the weights its masks zero.
# ---------------------------------------------------------------------------------------------------
def block_plan(degrees, masks, num_blocks=4):
    """Plan the block-triangular masked products of a MADE (MAF §3.1; MADE §4).

    A permutation of a layer's units changes nothing mathematically. Sorted by degree, every MADE mask is
    block triangular: a unit of degree m reads only the units below it of degree <= m (an output of degree
    i those of degree < i), which are a prefix of the sorted rows. So split the sorted columns of each
    masked product into ``num_blocks`` blocks of about equal width; block b needs only the rows up to the
    last one its mask lets it read, ``r_b``. The forward product ``h @ (M * W)`` and both products of the
    backward pass then skip the zero part of ``M * W``: with degrees spread evenly, block b reads about
    ``(b + 1) / B`` of the rows, so the arithmetic drops to about ``(B + 1) / (2 B)`` of the full product
    (B = 4: 62%). The plan is exact for any mask: ``r_b`` is read off the mask, not assumed.

    The two output heads are planned as one product, ``[W_mu | W_alpha]``, columns sorted by degree.

    Parameters
    ----------
    degrees : list of ndarray of int
        ``[m^0, ..., m^L]``.
    masks : list of ndarray
        The L + 1 masks from :func:`maf_numpy.masks.made_masks`.
    num_blocks : int

    Returns
    -------
    plan : dict
        ``"layers"``: per product, ``"p_in"``, ``"p_out"`` (permutations sorting its rows and columns by
        degree), their inverses ``"inv_in"``, ``"inv_out"``, the sorted mask ``"M"``, the column blocks
        ``"blocks"`` as ``(c0, c1, r_b)`` and ``"fraction"`` (the share of the full product's arithmetic the
        blocks do); ``"fraction"``: the same for the whole network; ``"masks"``: the masks.
    """
    L = len(degrees) - 1
    layers, work, full = [], 0, 0
    for l in range(L + 1):
        M = onp.asarray(masks[l])
        m_in = onp.asarray(degrees[l])
        m_out = onp.asarray(degrees[l + 1] if l < L else degrees[0])
        if l == L:  # both heads side by side: columns [mu_1 .. mu_D, alpha_1 .. alpha_D]
            M, m_out = onp.concatenate([M, M], axis=1), onp.concatenate([m_out, m_out])
        p_in, p_out = onp.argsort(m_in, kind="stable"), onp.argsort(m_out, kind="stable")
        M_sorted = onp.ascontiguousarray(M[p_in][:, p_out])
        edges = onp.unique(onp.round(onp.linspace(0, len(p_out), num_blocks + 1)).astype(int))
        blocks, layer_work = [], 0
        for c0, c1 in zip(edges[:-1].tolist(), edges[1:].tolist()):
            rows = onp.flatnonzero(M_sorted[:, c0:c1].any(axis=1))
            r = int(rows[-1]) + 1 if rows.size else 0
            blocks.append((c0, c1, r))
            layer_work += r * (c1 - c0)
        layers.append({"p_in": p_in, "p_out": p_out, "inv_in": onp.argsort(p_in), "inv_out": onp.argsort(p_out),
                       "M": M_sorted, "blocks": blocks, "row_blocks": _row_blocks(blocks),
                       "fraction": layer_work / M.size})
        work, full = work + layer_work, full + M.size
    return {"layers": layers, "fraction": work / full, "masks": list(masks)}


def _row_blocks(blocks):
    """The transposed view of a product's column blocks, for the backward product ``g_a @ V^T``: row
    segments ``(r0, r1, c0)`` such that rows r0:r1 of V are read by the columns c0: only (their columns
    before c0 are zero), and rows past the last segment by no column. None unless the blocks' row counts
    ``r_b`` grow with b, as they do for a MADE's sorted masks (then each row segment is one product)."""
    rows = [r for _, _, r in blocks]
    if rows != sorted(rows):
        return None
    segments, r0 = [], 0
    for c0, _, r in blocks:
        if r > r0:
            segments.append((r0, r, c0))
            r0 = r
    return segments


BLOCKED_PRODUCTS = {"min_width": 256, "min_dim": 16}


def blocked_products_pay(degrees):
    """Whether :func:`made_pass_blocked` is worth it for a MADE with these degrees: when the inputs are many
    (D >= ``BLOCKED_PRODUCTS["min_dim"]``) and some hidden layer is wide (>= ``BLOCKED_PRODUCTS["min_width"]``
    units), so that the matrix products dominate the time and the skipped blocks are large. Smaller
    networks keep the plain products, whose fewer NumPy calls cost less there (``benchmarks/README.md``).
    Setting ``BLOCKED_PRODUCTS["min_width"]`` to a huge number turns the blocked products off for networks
    built afterwards."""
    widths = [len(m) for m in degrees[1:]]
    wide = bool(widths) and max(widths) >= BLOCKED_PRODUCTS["min_width"]
    return wide and len(degrees[0]) >= BLOCKED_PRODUCTS["min_dim"]


def _sorted_weights(params, l, layer):
    """Product l's masked weights with rows and columns sorted by degree, ``M * W`` (a fresh array), and
    its bias in sorted order. Product L is both heads side by side."""
    if l < len(params["W"]):
        W, b = params["W"][l], params["b"][l]
    else:
        W = onp.concatenate([params["W_mu"], params["W_alpha"]], axis=1)
        b = onp.concatenate([params["b_mu"], params["b_alpha"]])
    W_sorted = W[layer["p_in"]].take(layer["p_out"], axis=1)  # row gather, then a column take: both fast
    W_sorted *= layer["M"]
    return W_sorted, b[layer["p_out"]]


def _relu_in_place(a, out):
    """ReLU of a plain array into ``out``: ``a * (a > 0)`` as :func:`_relu`, without the temporary (faster than
    ``np.maximum``, which checks for NaN)."""
    return onp.multiply(a, a > 0, out=out)


@primitive
def made_pass_blocked(params, x, plan, activation):
    """:func:`made_pass` with block-triangular products (:func:`block_plan`): the same numbers up to rounding.

    Returns ``(mu, alpha, h_1, ..., h_L, V_1, ..., V_{L+1})``: after mu and alpha, what the backward pass
    reuses, the hidden activations and the masked weights ``V_l = M_l * W_l`` (the last one both heads side
    by side), their units sorted by degree. Only mu and alpha may be used downstream: the backward pass
    ignores the gradient of the rest (:func:`made_apply` returns only mu and alpha).
    """
    act = {"relu": _relu_in_place, "tanh": onp.tanh}[activation]
    layers, L = plan["layers"], len(plan["layers"]) - 1
    h = onp.asarray(x)[:, layers[0]["p_in"]]
    hidden, weights = [], []
    for l, layer in enumerate(layers):
        V, b = _sorted_weights(params, l, layer)
        weights.append(V)
        a = onp.empty((h.shape[0], V.shape[1]), dtype=onp.result_type(h, V))
        for c0, c1, r in layer["blocks"]:  # block c0:c1 of the columns reads rows :r only
            onp.matmul(h[:, :r], V[:r, c0:c1], out=a[:, c0:c1])
        a += b
        if l < L:
            h = act(a, out=a)  # in place: a is not needed again
            hidden.append(h)
    out = a[:, layers[L]["inv_out"]]
    D = out.shape[1] // 2
    return (out[:, :D], out[:, D:], *hidden, *weights)


def _made_pass_blocked_vjp(argnums, out, args, kwargs):
    """Backward pass of :func:`made_pass_blocked`: that of :func:`made_pass` (see :func:`_made_pass_vjp`),
    block by block in sorted order; each weight gradient is unsorted at the end.

    Plain NumPy with in-place writes: when the incoming gradient or the parameters are themselves traced
    (a second derivative), it differentiates :func:`made_apply_by_layer` with autograd instead.
    """
    params, x, plan, activation = args
    layers, L = plan["layers"], len(plan["layers"]) - 1
    hidden, weights = out[2:2 + L], out[2 + L:]

    def vjp(g):
        g_mu, g_alpha = g[0], g[1]
        if isbox(g_mu) or isbox(g_alpha) or _holds_boxes(params) or isbox(x):
            return _vjp_by_layer(argnums, params, x, plan, activation, g_mu, g_alpha)
        inputs = [onp.asarray(x)[:, layers[0]["p_in"]], *hidden]
        g_a = onp.concatenate([g_mu, g_alpha], axis=1)[:, layers[L]["p_out"]]
        grad = {"W": [None] * L, "b": [None] * L}
        g_h = None
        for l in range(L, -1, -1):
            layer = layers[l]
            if l < L:  # g_h is this pass's own array: scale it in place
                h = hidden[l]
                g_a = onp.multiply(g_h, h > 0, out=g_h) if activation == "relu" else g_h * (1 - h * h)
            h_in = inputs[l]
            dtype = onp.result_type(h_in, g_a)
            dW = onp.empty((h_in.shape[1], g_a.shape[1]), dtype=dtype) if 0 in argnums else None
            if dW is not None:
                for c0, c1, r in layer["blocks"]:
                    onp.matmul(h_in[:, :r].T, g_a[:, c0:c1], out=dW[:r, c0:c1])
                    dW[r:, c0:c1] = 0
            if l > 0 or 1 in argnums:
                g_h = _input_gradient(g_a, weights[l], layer, h_in.shape, dtype)
            if dW is None:
                continue
            dW *= layer["M"]
            dW = dW[layer["inv_in"]].take(layer["inv_out"], axis=1)
            db = onp.sum(g_a, axis=0)[layer["inv_out"]]
            if l == L:
                D = dW.shape[1] // 2
                grad.update(W_mu=dW[:, :D], b_mu=db[:D], W_alpha=dW[:, D:], b_alpha=db[D:])
            else:
                grad["W"][l], grad["b"][l] = dW, db
        g_x = g_h[:, layers[0]["inv_in"]] if 1 in argnums else None
        return tuple(grad if argnum == 0 else g_x for argnum in argnums)

    return vjp


def _input_gradient(g_a, V, layer, shape, dtype):
    """``g_a @ V^T`` (n, H_in) for a block-triangular V (sorted units): one product per row segment of V,
    written in place (``layer["row_blocks"]``), or block by block when the plan has no row segments."""
    g_h = onp.empty(shape, dtype=dtype)
    segments = layer["row_blocks"]
    if segments is None:
        g_h[...] = 0
        for c0, c1, r in layer["blocks"]:
            if r > 0:
                g_h[:, :r] += g_a[:, c0:c1] @ V[:r, c0:c1].T
        return g_h
    r1 = 0
    for r0, r1, c0 in segments:  # rows r0:r1 of V are zero in the columns before c0
        onp.matmul(g_a[:, c0:], V[r0:r1, c0:].T, out=g_h[:, r0:r1])
    g_h[:, r1:] = 0  # inputs that no output reads
    return g_h


defvjp_argnums(made_pass_blocked, _made_pass_blocked_vjp)


def _vjp_by_layer(argnums, params, x, plan, activation, g_mu, g_alpha):
    """The backward pass of :func:`made_pass_blocked` by autograd through :func:`made_apply_by_layer`
    (differentiable again), from the masks the plan carries."""
    masks = plan["masks"]

    def value(p, v):
        mu, alpha = made_apply_by_layer(p, v, masks, activation)
        return np.sum(g_mu * mu) + np.sum(g_alpha * alpha)

    return tuple(grad_fn(params, x) for grad_fn in [_grad(value, argnum) for argnum in argnums])


def made_apply_by_layer(params, x, masks=None, activation="relu"):
    """Compute the Gaussian conditionals' parameters in one masked pass, layer by layer (MAF §3.1).

    The readable form of :func:`made_apply` (same arguments, same returns, same numbers), with autograd
    recording every layer:

        h_l = act(h_{l-1} @ (M_l * W_l) + b_l),   mu = h_L @ (M_V * W_mu) + b_mu,
        alpha = h_L @ (M_V * W_alpha) + b_alpha
    """
    act = ACTIVATIONS[activation]
    if masks is None:
        masks = [1.0] * (len(params["W"]) + 1)
    h = x
    for W, b, M in zip(params["W"], params["b"], masks[:-1]):
        h = act(masked_dense(h, W, b, M))  # h @ (M * W) + b, shape (n, H_l)
    M_V = masks[-1]  # the output mask is shared by both heads
    mu = masked_dense(h, params["W_mu"], params["b_mu"], M_V)
    alpha = masked_dense(h, params["W_alpha"], params["b_alpha"], M_V)
    return mu, alpha


def init_made_params(D_in, hidden, D_out, rng, output_scale=0.1, dtype="float64"):
    """Draw initial parameters: W ~ N(0, 1/fan_in), zero biases, small output heads.

    The output weights are scaled by ``output_scale`` so that a fresh layer is close to the identity
    map (mu ~ 0, alpha ~ 0): deep stacks then start well conditioned. They are not zero, so a freshly
    built layer already has a non-trivial Jacobian for the tests to check.

    Parameters
    ----------
    D_in, D_out : int
        Input and output widths (both D for a MADE).
    hidden : sequence of int
    rng : numpy.random.Generator
    output_scale : float
    dtype : {"float64", "float32"}
        Type of every array (drawn in float64, then cast, so both types start from the same numbers).

    Returns
    -------
    params : dict of ndarray of ``dtype``
    """
    widths = [D_in, *hidden]
    params = {"W": [], "b": []}
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        params["W"].append(rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(fan_in, fan_out)))
        params["b"].append(np.zeros(fan_out))
    H_L = widths[-1]
    for head in ("mu", "alpha"):
        params["W_" + head] = rng.normal(0.0, output_scale / np.sqrt(H_L), size=(H_L, D_out))
        params["b_" + head] = np.zeros(D_out)
    return {key: [onp.asarray(a, dtype=dtype) for a in value] if isinstance(value, list) else
            onp.asarray(value, dtype=dtype) for key, value in params.items()}


class MADENetwork:
    """Structure of a Gaussian MADE network: sizes, degrees and masks, built once.

    Parameters
    ----------
    D : int
        Number of inputs (and of outputs per head).
    hidden : tuple of int
        Hidden widths ``(H_1, ..., H_L)``; may be empty (a masked linear map).
    order : str or sequence of int
        ``"sequential"``, ``"reversed"``, ``"random"`` or a permutation of ``range(D)``
        (see :func:`maf_numpy.masks.make_order`).
    hidden_degrees : {"sequential", "random"}
        How hidden degrees are assigned (see :func:`maf_numpy.masks.hidden_degrees`).
    activation : {"relu", "tanh"}
    rng : numpy.random.Generator
        Draws a random order or random hidden degrees.
    degrees : list of ndarray or None
        Explicit degrees ``[m^0, ..., m^L]``, overriding ``order`` and ``hidden_degrees`` (used by the
        lessons for the MADE paper's Figure 1, and by ``load``).
    dtype : {"float64", "float32"}
        Type of the masks and of fresh parameters (a float64 mask would turn a float32 pass into float64).
    context_dim : int
        Number C of context inputs y of a conditional MADE (MAF paper §3.4; 0: none). The network reads
        ``[x, y]`` (n, D + C); the context inputs have degree 0 and hidden degrees start at 0, so every
        output, the first one included, may depend on y (:func:`maf_numpy.masks.hidden_degrees`).

    Attributes
    ----------
    degrees : list of ndarray of int
    masks : list of ndarray of ``dtype``
    order : ndarray of int, shape (D,)
        Variables in generation order (``order[0]`` first).
    calls : int
        Number of network evaluations so far; the flows reset and read it to count passes.
    slices : dict
        The units sorted by degree, for the degree-sliced solver (:func:`degree_slices`, :meth:`solve`).
    plan : dict or None
        The :func:`block_plan` of the masks when block-triangular products pay for this size
        (:func:`blocked_products_pay`), else None (plain masked products). Set it to None to compare.
    """

    def __init__(self, D, hidden, order="sequential", hidden_degrees="sequential", activation="relu",
                 rng=None, degrees=None, dtype="float64", context_dim=0):
        self.D = D
        self.context_dim = context_dim
        self.hidden = tuple(hidden)
        self.activation = activation
        self.dtype = onp.dtype(dtype)
        if degrees is None:
            degrees = _masks.made_degrees(D, self.hidden, order, hidden_degrees, rng, conditional=context_dim > 0)
        self.set_degrees(degrees)
        self.calls = 0

    def set_degrees(self, degrees):
        """Install degrees and build the masks from them (once; every call reuses them)."""
        self.degrees = [np.asarray(m, dtype=int) for m in degrees]
        self.masks = [M.astype(self.dtype) for M in _masks.made_masks(self.degrees, self.context_dim)]
        self.order = np.argsort(self.degrees[0], kind="stable")
        m_in = onp.concatenate([self.degrees[0], onp.zeros(self.context_dim, dtype=int)])
        self.slices = degree_slices([m_in, *self.degrees[1:]])
        # block-triangular products where they pay (not for a conditional MADE: its inputs include the context)
        pays = self.context_dim == 0 and blocked_products_pay(self.degrees)
        self.plan = block_plan(self.degrees, self.masks) if pays else None

    def init_params(self, rng, output_scale=0.1):
        """Fresh parameters for this network (see :func:`init_made_params`)."""
        return init_made_params(self.D + self.context_dim, self.hidden, self.D, rng, output_scale, self.dtype)

    def inputs(self, x, y=None):
        """The network's input: x (n, D), or ``[x, y]`` (n, D + C) for a conditional MADE."""
        if self.context_dim == 0:
            return x
        return np.concatenate([x, y], axis=1)

    def __call__(self, params, x, y=None):
        """One masked pass: ``(mu, alpha) = made_apply(params, x)``, each of shape (n, D); a conditional
        MADE reads ``[x, y]``."""
        self.calls += 1
        return made_apply(params, self.inputs(x, y), self.masks, self.activation, self.plan)

    def solve(self, params, u, combine, y=None):
        """Solve the autoregressive system of a MAF layer's sampling (or an IAF layer's density) with
        degree-sliced passes: see :func:`solve_sliced`. Counts D calls (one per sequential step)."""
        self.calls += self.D
        return solve_sliced(params, u, combine, self.slices, self.activation, y)

    def __repr__(self):
        return f"MADENetwork(D={self.D}, hidden={self.hidden}, order={self.order.tolist()})"


# ---------------------------------------------------------------------------------------------------
# The fast D-pass solver: degree-sliced sequential passes (plain NumPy, not differentiable).
# ---------------------------------------------------------------------------------------------------
def degree_slices(degrees):
    """Sort every layer's units by degree and find where each degree's block starts and ends.

    A permutation of the units of a layer changes nothing mathematically (permute the rows of the next
    weight matrix alike), so :func:`solve_sliced` works on the sorted network, where the units of degree
    <= j are a prefix and the units of degree j a contiguous block. The stored ``degrees`` and ``masks``
    (and the parameters) keep their own order: the weights are gathered into sorted order once per solve.

    Parameters
    ----------
    degrees : list of ndarray of int
        ``[m^0, m^1, ..., m^L]`` with ``m^0`` a permutation of 1..D.

    Returns
    -------
    dict with
        ``perm``: list of L + 1 index arrays sorting each layer's units by degree (``perm[0]`` is the order);
        ``start``, ``end``: lists of L + 1 int arrays of length D + 1: in sorted layer l, the units of degree
        j are ``start[l][j]:end[l][j]``, and those of degree <= j are ``:end[l][j]``.
    """
    perm, start, end = [], [], []
    j = onp.arange(len(degrees[0]) + 1)
    for m in degrees:
        m = onp.asarray(m)
        p = onp.argsort(m, kind="stable")
        perm.append(p)
        start.append(onp.searchsorted(m[p], j, side="left"))
        end.append(onp.searchsorted(m[p], j, side="right"))
    return {"perm": perm, "start": start, "end": end}


def solve_sliced(params, u, combine, slices, activation="relu", y=None):
    """Degree-sliced D-pass solver: sequential latency of D passes, total work of about one pass (MAF §3.1).

    Solves ``v_i = combine(u_i, mu_i(v_{<i}), alpha_i(v_{<i}))`` for every coordinate, where (mu, alpha) is
    the MADE. MAF sampling uses ``combine = (z, mu, alpha) -> z exp(alpha) + mu`` (v = x); IAF density
    evaluation ``combine = (x, mu, alpha) -> (x - mu) exp(-alpha)`` (v = z). The readable reference,
    :func:`maf_numpy.transforms.solve_autoregressive`, re-runs the *whole* network D times: pass k makes the
    coordinate of degree k exact. But pass k changes only what depends on the coordinate of degree k - 1
    that pass k - 1 made exact: the hidden units of degree k - 1 (a unit of degree m reads inputs of degree
    <= m), and the output of degree k. Units of lower degree did not change; units of higher degree are not
    needed yet. So step k here computes, in every hidden layer, only the block of units of degree k - 1
    (from the units of degree <= k - 1 below it, all final by now), then mu and alpha of the coordinate of
    degree k from the hidden units of degree < k, then that coordinate.

    Sequential latency: still D dependent steps (the k-th needs the (k-1)-th), each a short chain of small
    matrix products. Work: every hidden unit's pre-activation and every output is computed exactly once,
    from the units below it that the mask lets it see, so the arithmetic adds up to about one masked
    network pass (half of one unmasked pass), instead of D. Inside a block the masks are all ones (every
    unit of degree <= j may feed a unit of degree j; every hidden unit of degree < k may feed output k),
    so no mask is multiplied in. ``flow.passes`` still counts one pass per sequential step: D per solve.

    Plain NumPy with in-place writes into preallocated blocks: autograd cannot trace it, so the layers use
    it only when neither the parameters nor the input are being differentiated, and use the reference
    otherwise. Both give the same numbers up to rounding (the sums run in another order).

    Parameters
    ----------
    params : dict
        The MADE's parameters (see the module docstring), plain arrays.
    u : ndarray of shape (n, D)
        The given side: z for MAF sampling, x for IAF density evaluation.
    combine : callable
        ``(u_i, mu_i, alpha_i) -> (v_i, log_det_i)`` on arrays of shape (n,), elementwise.
    slices : dict
        From :func:`degree_slices` (``MADENetwork.slices``), built from the input degrees with the C context
        inputs' zeros appended for a conditional MADE.
    activation : {"relu", "tanh"}
    y : ndarray of shape (n, C) or None
        The context of a conditional MADE: inputs of degree 0, known from the start.

    Returns
    -------
    v : ndarray of shape (n, D)
    log_det : ndarray of shape (n,)
        Sum over coordinates of ``log_det_i``: the log-det of the solved map.
    """
    perm, start, end = slices["perm"], slices["start"], slices["end"]
    n, D = u.shape
    C, L = len(perm[0]) - D, len(perm) - 1
    order = perm[0][C:]  # the context (degree 0) sorts first; then sorted input C + k - 1 has degree k
    dtype = onp.result_type(u, params["W_mu"])
    act = {"relu": _relu, "tanh": onp.tanh}[activation]
    # The weights, rows and columns sorted by degree: gathered once per solve (one copy of the weights).
    W = [onp.asarray(W_l)[perm[l]][:, perm[l + 1]] for l, W_l in enumerate(params["W"])]
    b = [onp.asarray(b_l)[perm[l + 1]] for l, b_l in enumerate(params["b"])]
    W_mu = onp.asarray(params["W_mu"])[perm[L]][:, order]
    W_alpha = onp.asarray(params["W_alpha"])[perm[L]][:, order]
    b_mu, b_alpha = onp.asarray(params["b_mu"])[order], onp.asarray(params["b_alpha"])[order]
    u_sorted = onp.asarray(u)[:, order]
    v = onp.zeros((n, C + D), dtype=dtype)  # v[:, C + k - 1]: the coordinate of degree k, in sorted order
    if C:
        v[:, :C] = onp.asarray(y)[:, perm[0][:C] - D]  # the context, known from the start
    h = [v] + [onp.zeros((n, W_l.shape[1]), dtype=dtype) for W_l in W]  # sorted hidden units
    log_det = onp.zeros(n, dtype=dtype)
    for k in range(1, D + 1):
        j = k - 1  # the degree that became exact at the previous step (0: only the context)
        for l in range(1, L + 1):  # hidden units of degree j, layer by layer
            s, e, seen = start[l][j], end[l][j], end[l - 1][j]
            if e > s:
                h[l][:, s:e] = act(h[l - 1][:, :seen] @ W[l - 1][:seen, s:e] + b[l - 1][s:e])
        seen = end[L][j]  # output k reads the units of degree < k
        h_seen = h[L][:, :seen]
        mu = h_seen @ W_mu[:seen, j] + b_mu[j]
        alpha = h_seen @ W_alpha[:seen, j] + b_alpha[j]
        v[:, C + j], log_det_k = combine(u_sorted[:, j], mu, alpha)
        log_det += log_det_k
    return v[:, C:][:, onp.argsort(order)], log_det
