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
from autograd.extend import defvjp, defvjp_argnums, primitive
from autograd.tracer import getval, isbox

from . import masks as _masks

__all__ = ["ACTIVATIONS", "masked_dense", "made_apply", "made_apply_by_layer", "made_pass", "init_made_params",
           "MADENetwork", "degree_slices", "solve_sliced"]


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


def made_apply(params, x, masks=None, activation="relu"):
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
    out = made_pass(params, x, masks, activation)
    return out[0], out[1]


def _holds_boxes(tree):
    if isinstance(tree, dict):
        return any(_holds_boxes(value) for value in tree.values())
    if isinstance(tree, (list, tuple)):
        return any(_holds_boxes(value) for value in tree)
    return isbox(tree)


@primitive
def made_pass(params, x, masks, activation):
    """The forward pass of :func:`made_apply` as one primitive: returns ``(mu, alpha, h_1, ..., h_L)``.

    The hidden activations are returned too, so that the backward pass can use them without recomputing
    the forward pass (:func:`made_apply` keeps only mu and alpha).
    """
    act = ACTIVATIONS[activation]
    hidden, h = [], x
    for W, b, M in zip(params["W"], params["b"], masks[:-1]):
        h = act(h @ (M * W) + b)
        hidden.append(h)
    M_V = masks[-1]
    mu = h @ (M_V * params["W_mu"]) + params["b_mu"]
    alpha = h @ (M_V * params["W_alpha"]) + params["b_alpha"]
    return (mu, alpha, *hidden)


def _made_pass_vjp(argnums, out, args, kwargs):
    """Backward pass of a MADE, by hand (reverse-mode chain rule, layer by layer from the heads down).

    With g_mu, g_alpha = d loss / d mu, d loss / d alpha and a_l the pre-activations::

        d W_mu = M_V * (h_L^T @ g_mu),   d b_mu = sum_n g_mu     (the same for alpha)
        g_h_L = g_mu @ (M_V * W_mu)^T + g_alpha @ (M_V * W_alpha)^T
        g_a_l = g_h_l * act'(a_l)        relu: 1[h_l > 0];  tanh: 1 - h_l^2
        d W_l = M_l * (h_{l-1}^T @ g_a_l),   d b_l = sum_n g_a_l,   g_h_{l-1} = g_a_l @ (M_l * W_l)^T

    and d loss / d x = g_h_0. Parameters and x share one backward pass when both are differentiated.
    """
    params, x, masks, activation = args
    mu, alpha, *hidden = out

    def vjp(g):
        g_mu, g_alpha, *g_hidden = g
        inputs = [x, *hidden]  # inputs[l] feeds layer l + 1 (h_0 = x)
        M_V = masks[-1]
        grad = {"W_mu": M_V * (inputs[-1].T @ g_mu), "b_mu": np.sum(g_mu, axis=0),
                "W_alpha": M_V * (inputs[-1].T @ g_alpha), "b_alpha": np.sum(g_alpha, axis=0)}
        g_h = g_mu @ (M_V * params["W_mu"]).T + g_alpha @ (M_V * params["W_alpha"]).T
        grad_W, grad_b = [], []
        for l in range(len(hidden) - 1, -1, -1):
            h = hidden[l]
            g_h = g_h + g_hidden[l]  # zero unless someone used the hidden activations themselves
            g_a = g_h * (h > 0) if activation == "relu" else g_h * (1 - h * h)
            grad_W.append(masks[l] * (inputs[l].T @ g_a))
            grad_b.append(np.sum(g_a, axis=0))
            if l > 0 or 1 in argnums:
                g_h = g_a @ (masks[l] * params["W"][l]).T
        grad["W"], grad["b"] = grad_W[::-1], grad_b[::-1]
        return tuple(grad if argnum == 0 else g_h for argnum in argnums)

    return vjp


defvjp_argnums(made_pass, _made_pass_vjp)


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
        return made_apply(params, self.inputs(x, y), self.masks, self.activation)

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
