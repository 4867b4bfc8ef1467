"""The MADE pass as one autograd primitive, and block-triangular products for wide MADEs.

What :func:`maf_numpy.made.made_apply` computes, faster, for flows built with ``fast=True``:

- :func:`made_pass`: the whole masked network as one autograd primitive with its backward pass written out
  by hand (one autograd node per network instead of dozens: a small training step is about 1.3x faster).
  In plain NumPy with in-place bias, activation and masking when nothing is traced; when the gradient or
  the parameters are themselves traced (a second derivative) its backward pass is written with autograd's
  NumPy, so that it can be differentiated again.
- :func:`made_pass_blocked`: the same pass with the units sorted by degree, so that every mask is block
  triangular and the zero blocks of ``M * W`` are skipped (:func:`block_plan`): a MADE need not pay for the
  weights its masks cut. Used from D >= ``MIN_DIM_FOR_BLOCKS`` and a hidden layer of at least
  ``MIN_WIDTH_FOR_BLOCKS`` units, where the products dominate the time.

Both return the same numbers as :func:`maf_numpy.made.made_apply` up to rounding (the sums may run in another
order); ``tests/test_fast.py`` checks values, gradients and second derivatives against it.
"""

import weakref

import autograd.numpy as np
import numpy as onp
from autograd import grad as _grad
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import isbox

from ..made import made_apply

__all__ = ["made_pass", "made_pass_blocked", "block_plan", "blocked_products_pay", "block_plan_for", "fused_made",
           "made_outputs", "made_pass_vjp", "made_pass_blocked_vjp", "holds_boxes", "MIN_WIDTH_FOR_BLOCKS",
           "MIN_DIM_FOR_BLOCKS"]

MIN_WIDTH_FOR_BLOCKS = 256  # block-triangular products from a hidden layer this wide ...
MIN_DIM_FOR_BLOCKS = 16  # ... and this many inputs (benchmarks/README.md: below, the extra NumPy calls cost more)


def holds_boxes(tree):
    """Whether a pytree (nested dicts and lists) holds a traced array anywhere."""
    if isinstance(tree, dict):
        return any(holds_boxes(value) for value in tree.values())
    if isinstance(tree, (list, tuple)):
        return any(holds_boxes(value) for value in tree)
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


# The activations of maf_numpy.made.ACTIVATIONS written into their (plain, fresh) argument: ReLU as a * (a > 0),
# like made.relu (np.maximum checks for NaN and is slower), with the same numbers, sign of zero included.
ACTIVATIONS_IN_PLACE = {"relu": lambda a: onp.multiply(a, a > 0, out=a), "tanh": lambda a: onp.tanh(a, out=a)}


@primitive
def made_pass(params, x, masks, activation):
    """The forward pass of :func:`made_apply` as one primitive: returns ``(mu, alpha, h_1, ..., h_L)``.

    The hidden activations are returned too, so that the backward pass can use them without recomputing
    the forward pass (:func:`fused_made` keeps only mu and alpha). Plain NumPy (a primitive's forward pass
    always sees plain arrays): the bias and the activation are applied in place, and both heads are one
    product (:func:`_heads`).
    """
    act = ACTIVATIONS_IN_PLACE[activation]
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


def made_pass_vjp(argnums, out, args, kwargs):
    """Backward pass of a MADE, by hand (reverse-mode chain rule, layer by layer from the heads down).

    With g_mu, g_alpha = d loss / d mu, d loss / d alpha and a_l the pre-activations::

        d W_mu = M_V * (h_L^T @ g_mu),   d b_mu = sum_n g_mu     (the same for alpha)
        g_h_L = g_mu @ (M_V * W_mu)^T + g_alpha @ (M_V * W_alpha)^T
        g_a_l = g_h_l * act'(a_l)        relu: 1[h_l > 0];  tanh: 1 - h_l^2
        d W_l = M_l * (h_{l-1}^T @ g_a_l),   d b_l = sum_n g_a_l,   g_h_{l-1} = g_a_l @ (M_l * W_l)^T

    and d loss / d x = g_h_0. Parameters and x share one backward pass when both are differentiated. With
    plain arrays it runs in plain NumPy (:func:`_plain_vjp`: both heads as one product, in-place
    scaling); when the gradient or the parameters are traced (a second derivative) it is written with
    autograd's NumPy below, so that it can be differentiated again.
    """
    params, x, masks, activation = args
    mu, alpha, *hidden = out

    def vjp(g):
        g_mu, g_alpha, *g_hidden = g
        if not (isbox(g_mu) or isbox(g_alpha) or holds_boxes(params) or isbox(x)
                or any(isbox(g_l) for g_l in g_hidden)):
            return _plain_vjp(argnums, params, x, masks, activation, hidden, g_mu, g_alpha, g_hidden)
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


def _plain_vjp(argnums, params, x, masks, activation, hidden, g_mu, g_alpha, g_hidden):
    """:func:`made_pass_vjp` in plain NumPy: the same formulas, both heads as one product, the activation's
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


defvjp_argnums(made_pass, made_pass_vjp)


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


@primitive
def made_pass_blocked(params, x, plan, activation):
    """:func:`made_pass` with block-triangular products (:func:`block_plan`): the same numbers up to rounding.

    Returns ``(mu, alpha, h_1, ..., h_L, V_1, ..., V_{L+1})``: after mu and alpha, what the backward pass
    reuses, the hidden activations and the masked weights ``V_l = M_l * W_l`` (the last one both heads side
    by side), their units sorted by degree. Only mu and alpha may be used downstream: the backward pass
    ignores the gradient of the rest (:func:`made_apply` returns only mu and alpha).
    """
    act = ACTIVATIONS_IN_PLACE[activation]
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
            h = act(a)  # in place: a is not needed again
            hidden.append(h)
    out = a[:, layers[L]["inv_out"]]
    D = out.shape[1] // 2
    return (out[:, :D], out[:, D:], *hidden, *weights)


def made_pass_blocked_vjp(argnums, out, args, kwargs):
    """Backward pass of :func:`made_pass_blocked`: that of :func:`made_pass` (see :func:`made_pass_vjp`),
    block by block in sorted order; each weight gradient is unsorted at the end.

    Plain NumPy with in-place writes: when the incoming gradient or the parameters are themselves traced
    (a second derivative), it differentiates :func:`made_apply` with autograd instead.
    """
    params, x, plan, activation = args
    layers, L = plan["layers"], len(plan["layers"]) - 1
    hidden, weights = out[2:2 + L], out[2 + L:]

    def vjp(g):
        g_mu, g_alpha = g[0], g[1]
        if isbox(g_mu) or isbox(g_alpha) or holds_boxes(params) or isbox(x):
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


defvjp_argnums(made_pass_blocked, made_pass_blocked_vjp)


def _vjp_by_layer(argnums, params, x, plan, activation, g_mu, g_alpha):
    """The backward pass of :func:`made_pass_blocked` by autograd through :func:`made_apply`
    (differentiable again), from the masks the plan carries."""
    masks = plan["masks"]

    def value(p, v):
        mu, alpha = made_apply(p, v, masks, activation)
        return np.sum(g_mu * mu) + np.sum(g_alpha * alpha)

    return tuple(grad_fn(params, x) for grad_fn in [_grad(value, argnum) for argnum in argnums])



def blocked_products_pay(degrees):
    """Whether :func:`made_pass_blocked` is worth it for a MADE with these degrees: when the inputs are many
    (D >= ``MIN_DIM_FOR_BLOCKS``) and some hidden layer is wide (>= ``MIN_WIDTH_FOR_BLOCKS`` units), so that the
    matrix products dominate the time and the skipped blocks are large. Smaller networks keep the plain
    products, whose fewer NumPy calls cost less there (``benchmarks/README.md``)."""
    widths = [len(m) for m in degrees[1:]]
    wide = bool(widths) and max(widths) >= MIN_WIDTH_FOR_BLOCKS
    return wide and len(degrees[0]) >= MIN_DIM_FOR_BLOCKS


_PLANS = weakref.WeakKeyDictionary()  # network -> (its degrees list when planned, the plan or None)


def block_plan_for(network):
    """The :func:`block_plan` of a :class:`maf_numpy.made.MADENetwork`, built once per set of degrees (a new
    ``set_degrees``, as ``load`` does, builds a new one), or None where blocked products do not pay or the
    network reads a context (its inputs are not only the D coordinates)."""
    cached = _PLANS.get(network)
    if cached is None or cached[0] is not network.degrees:
        pays = network.context_dim == 0 and blocked_products_pay(network.degrees)
        cached = (network.degrees, block_plan(network.degrees, network.masks) if pays else None)
        _PLANS[network] = cached
    return cached[1]


def made_outputs(network, params, x):
    """The outputs of :func:`made_pass` (or :func:`made_pass_blocked` where the block plan pays) at the network's
    full input x (n, D + C), not counted: ``(mu, alpha, ...)``, what a fused layer primitive saves."""
    plan = block_plan_for(network)
    if plan is None:
        return made_pass(params, x, network.masks, network.activation)
    return made_pass_blocked(params, x, plan, network.activation)


def fused_made(network, params, v, y=None):
    """``network(params, v, y)`` (one counted pass of :func:`maf_numpy.made.made_apply`) as one primitive:
    :func:`made_pass`, or :func:`made_pass_blocked` where the block plan pays. Returns (mu, alpha), each (n, D).
    ``params`` must be plain arrays, or traced as a whole (not a plain dict holding traced arrays)."""
    network.calls += 1
    out = made_outputs(network, params, network.inputs(v, y))
    return out[0], out[1]
