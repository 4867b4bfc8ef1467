"""Bijective layers: affine autoregressive (MAF, IAF), affine coupling (RealNVP), standardisation.

**Direction convention (read this once).** ``forward`` is *generative*, z -> x; ``inverse`` is
*normalising*, x -> z, as in the MAF paper (§3.1: x = f(u)), Bishop & Bishop ch. 18, TFP and Pyro.
(nflows uses the opposite words.) z is the base variable, the paper's u. Every map returns its output
and the log-determinant of *that* map::

    forward(params, z) -> (x, log|det dx/dz|)        inverse(params, x) -> (z, log|det dz/dx|)

The two log-dets are negatives of each other. Layers index the batch first: x, z of shape (n, D), log_det
of shape (n,).

| layer         | mu_i, alpha_i from | forward z -> x           | inverse x -> z           |
| ------------- | ------------------ | ------------------------ | ------------------------ |
| MAFLayer      | x_{<i}             | D passes (MAF §3.1)      | 1 pass (MAF §3.1)        |
| IAFLayer      | z_{<i}             | 1 pass (MAF §3.2)        | D passes                 |
| AffineCoupling| x_{1:d} = z_{1:d}  | 1 pass (MAF §3.3)        | 1 pass                   |
| MADECoupling  | the same, as a two-group MADE | 1 pass (MAF §3.3) | 1 pass                   |

Each layer holds its structure (sizes, degrees, masks); its numbers are passed in as ``params``, a dict
of arrays, so that the methods are pure functions of ``(params, input)`` that autograd can differentiate.
Nothing is assigned in place. Lessons: ``lessons/04_...`` (one pass against D passes), ``lessons/06_...``
(IAF), ``lessons/07_...`` (coupling).

References
----------
G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017,
arXiv:1705.07057. D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever, M. Welling. Improved
Variational Inference with Inverse Autoregressive Flow. NeurIPS 2016. L. Dinh, J. Sohl-Dickstein,
S. Bengio. Density estimation using Real NVP. ICLR 2017.
"""

import contextlib

import autograd.numpy as np
import numpy as onp
from autograd import make_vjp
from autograd.extend import defvjp, defvjp_argnums, primitive
from autograd.tracer import isbox

from .made import (
    MADENetwork,
    _holds_boxes,
    _made_pass_blocked_vjp,
    _made_pass_vjp,
    init_made_params,
    made_apply,
    made_apply_by_layer,
    made_pass,
    made_pass_blocked,
    solve_sliced,
)
from .masks import two_group_degrees
from .validation import check_dtype, check_positive_float, check_positive_int

__all__ = [
    "affine_forward",
    "affine_inverse",
    "solve_autoregressive",
    "SEQUENTIAL_SOLVERS",
    "set_sequential_solver",
    "sequential_solver",
    "soft_clamp",
    "MADELayerBase",
    "MAFLayer",
    "IAFLayer",
    "AffineCoupling",
    "MADECoupling",
    "Standardize",
    "BatchNorm",
]


# ---------------------------------------------------------------------------------------------------
# The two elementwise affine maps every layer here is built from.
# ---------------------------------------------------------------------------------------------------
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
    return x, np.sum(alpha, axis=-1)


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
    return z, -np.sum(alpha, axis=-1)


def solve_autoregressive(step, D, shape, degrees=None, dtype="float64"):
    """Solve v = step(v) for an autoregressive step by D passes from zeros (MAF §3.1, sampling).

    ``step(v)`` returns ``(v_new, log_det)`` where coordinate i of ``v_new`` depends only on coordinates
    of ``v`` of lower degree. Starting from zeros, pass 1 makes the coordinate of degree 1 exact (it
    depends on nothing); pass k makes degree k exact, because it reads only degrees < k, which are
    already exact. After D passes every coordinate is exact, and so is the log-det of the last pass.
    Nothing is assigned in place, so autograd differentiates through the loop.

    Used by ``MAFLayer.forward`` (x from z) and ``IAFLayer.inverse`` (z from x): the same solver for both,
    whenever autograd is tracing. This is the readable specification; with plain arrays the layers run
    :func:`maf_numpy.made.solve_sliced`, which gives the same result with about one pass of arithmetic.

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


SEQUENTIAL_SOLVERS = ("sliced", "reference")
_SOLVER = {"name": "sliced"}


def set_sequential_solver(name):
    """Choose how MAF sampling and IAF density evaluation solve their D sequential passes, for every layer.

    ``"sliced"`` (the default): the degree-sliced solver, :func:`maf_numpy.made.solve_sliced`, whenever
    nothing is differentiated (about one pass of work). ``"reference"``: always the readable
    :func:`solve_autoregressive`, D full passes (what lessons 04 and 08 time). Both count D passes per layer
    and give the same numbers up to rounding. Returns the previous choice.
    """
    if name not in SEQUENTIAL_SOLVERS:
        raise ValueError(f"name must be one of {SEQUENTIAL_SOLVERS}, got {name!r}")
    previous, _SOLVER["name"] = _SOLVER["name"], name
    return previous


@contextlib.contextmanager
def sequential_solver(name):
    """``with sequential_solver("reference"): ...`` runs the block with that solver (see
    :func:`set_sequential_solver`), then restores the previous one."""
    previous = set_sequential_solver(name)
    try:
        yield
    finally:
        set_sequential_solver(previous)


def _use_sliced(params, v, y=None):
    return _SOLVER["name"] == "sliced" and not is_traced(params, v) and not isbox(y)


def is_traced(params, v):
    """True when autograd is differentiating through ``params`` (a pytree) or ``v``: then only the
    reference solver, written with autograd's NumPy and no in-place writes, may be used."""
    if isbox(v):
        return True
    if isinstance(params, dict):
        return any(is_traced(value, None) for value in params.values())
    if isinstance(params, (list, tuple)):
        return any(is_traced(value, None) for value in params)
    return isbox(params)


# ---------------------------------------------------------------------------------------------------
# Affine autoregressive layers: MAF and IAF share the network, the maps and the solver.
# ---------------------------------------------------------------------------------------------------
def soft_clamp(alpha, c):
    """The optional soft clamp of the log-scale: ``c * tanh(alpha / c)``, elementwise (any shape).

    Smooth, increasing, equal to alpha near 0 (slope 1) and bounded by ``(-c, c)``, so one layer scales a
    coordinate by at most ``exp(c)``. The layer stays an exact bijection and its log-det is still
    ``sum(alpha)`` of the clamped alpha. The MAF paper uses the unconstrained ``exp(alpha)``, which stays
    the default (``alpha_clamp=None``); the clamp is a stabiliser for deep stacks or large learning rates,
    at the price of a bounded per-layer scale (DESIGN §5).
    """
    return c * np.tanh(alpha / c)


def _clamped(combine, c):
    """A sliced-solver ``combine`` whose alpha goes through :func:`soft_clamp` first."""
    if c is None:
        return combine
    return lambda u_i, mu_i, alpha_i: combine(u_i, mu_i, c * onp.tanh(alpha_i / c))


class MADELayerBase:
    """What a layer holding one MADE network (``self.network``) exposes of it: its degrees, masks, order, dtype,
    the number of passes (``calls``, read and reset by the flows) and fresh parameters. Shared by the MAF and
    IAF layers and by the MADE MoG base (:class:`maf_numpy.mog.MADEMoGBase`)."""

    @property
    def degrees(self):
        return self.network.degrees

    @property
    def masks(self):
        return self.network.masks

    @property
    def dtype(self):
        return self.network.dtype

    @property
    def order(self):
        return self.network.order

    @property
    def calls(self):
        """Number of network evaluations so far; the flows reset it to count passes."""
        return self.network.calls

    @calls.setter
    def calls(self, value):
        self.network.calls = value

    def init_params(self, rng):
        return self.network.init_params(rng)

    def get_state(self):
        return {f"degrees_{l}": m for l, m in enumerate(self.network.degrees)}

    def set_state(self, state):
        self.network.set_degrees([state[f"degrees_{l}"] for l in range(len(self.network.hidden) + 1)])


class _AffineAutoregressive(MADELayerBase):
    """Shared structure of MAFLayer and IAFLayer: one MADE network (see :class:`MADENetwork`).

    ``context_dim = C > 0`` makes the layer conditional (MAF paper §3.4): its MADE reads ``[v, y]`` and
    ``forward``/``inverse`` take the context ``y`` (n, C). ``alpha_clamp = c`` replaces alpha by
    :func:`soft_clamp` ``(alpha, c)``; None (the default) is the paper's unconstrained form.
    """

    def __init__(self, D, hidden=(64, 64), order="sequential", hidden_degrees="sequential",
                 activation="relu", rng=None, degrees=None, dtype="float64", context_dim=0, alpha_clamp=None):
        self.D = D
        self.context_dim = context_dim
        self.alpha_clamp = alpha_clamp
        self.network = MADENetwork(D, hidden, order, hidden_degrees, activation, rng, degrees, dtype, context_dim)

    @property
    def input_degrees(self):
        """Degree of each coordinate, shape (D,): coordinate i of the output depends on coordinate j
        of the input only if ``input_degrees[j] < input_degrees[i]`` or ``i == j``."""
        return self.network.degrees[0]

    def conditioner(self, params, v, y=None):
        """(mu, alpha) = MADE(v) (or MADE([v, y]) when conditional), each (n, D): one network pass, counted
        in ``network.calls``; alpha soft-clamped when ``alpha_clamp`` is set."""
        mu, alpha = self.network(params, v, y)
        if self.alpha_clamp is not None:
            alpha = soft_clamp(alpha, self.alpha_clamp)
        return mu, alpha

    @property
    def _plain(self):
        """No context and no clamp: the fused primitives (:func:`_maf_normalise`, :func:`_iaf_fixed_point`),
        which call the MADE directly, apply."""
        return self.context_dim == 0 and self.alpha_clamp is None

    def _solve(self, params, u, combine, y):
        """The degree-sliced D-pass solver (see :func:`maf_numpy.made.solve_sliced`)."""
        return self.network.solve(params, u, _clamped(combine, self.alpha_clamp), y)

    def __repr__(self):
        return (f"{type(self).__name__}(D={self.D}, hidden={self.network.hidden}, "
                f"order={self.order.tolist()})")


def _maf_combine(z_i, mu_i, alpha_i):
    """One coordinate of :func:`affine_forward`, for the sliced solver: (x_i, its log-det term)."""
    return z_i * onp.exp(alpha_i) + mu_i, alpha_i


def _iaf_combine(x_i, mu_i, alpha_i):
    """One coordinate of :func:`affine_inverse`, for the sliced solver: (z_i, its log-det term)."""
    return (x_i - mu_i) * onp.exp(-alpha_i), -alpha_i


# The two affine maps and their log-det as single autograd primitives, with their backward passes written
# out (DESIGN §7): (x - mu) * exp(-alpha) is otherwise five autograd nodes and -sum(alpha) two, each costing
# Python time in a small training step. Same numbers as affine_inverse / affine_forward, bit for bit;
# ``tests/test_fast_paths.py`` checks the gradients against autograd's own.
@primitive
def _normalise(x, mu, alpha):
    """z = (x - mu) * exp(-alpha), elementwise (the z of :func:`affine_inverse`)."""
    return (x - mu) * np.exp(-alpha)


def _normalise_vjp(argnums, z, args, kwargs):
    # dz/dx = exp(-alpha), dz/dmu = -exp(-alpha), dz/dalpha = -z
    scale = np.exp(-args[2])

    def vjp(g):
        g_x = g * scale
        return tuple(g_x if argnum == 0 else -g_x if argnum == 1 else -g * z for argnum in argnums)

    return vjp


defvjp_argnums(_normalise, _normalise_vjp)


@primitive
def _generate(z, mu, alpha):
    """x = z * exp(alpha) + mu, elementwise (the x of :func:`affine_forward`)."""
    return z * np.exp(alpha) + mu


def _generate_vjp(argnums, x, args, kwargs):
    # dx/dz = exp(alpha), dx/dmu = 1, dx/dalpha = z * exp(alpha)
    z, _, alpha = args
    scale = np.exp(alpha)

    def vjp(g):
        g_z = g * scale
        return tuple(g_z if argnum == 0 else g if argnum == 1 else g_z * z for argnum in argnums)

    return vjp


defvjp_argnums(_generate, _generate_vjp)


@primitive
def _signed_sum(alpha, sign):
    """``sign * sum_i alpha_i`` over the last axis: the log-det of an affine map, shape (n,)."""
    return sign * np.sum(alpha, axis=-1)


defvjp(_signed_sum, lambda out, alpha, sign: lambda g: (sign * g)[..., None] * np.ones_like(alpha))


def _traced(*values):
    """Whether any of these values (arrays, tuples, parameter dicts) is traced by autograd."""
    return any(isbox(value) or _holds_boxes(value) for value in values)


def _vjp_by_autograd(readable, argnums, args, g_z, g_log_det):
    """The backward pass of a fused layer primitive by autograd through its readable form
    ``readable(params, x) -> (z, log_det)``: used when that backward pass is itself traced (a second
    derivative), where the hand-written one would treat the saved forward values as constants. It
    recomputes the forward pass from (params, x), so the primitive's saved outputs get no gradient."""
    def objective(p, v):  # <(g_z, g_log_det), readable(p, v)>: its gradient is the vector-Jacobian product
        z, log_det = readable(p, v)
        return np.sum(g_z * z) + np.sum(g_log_det * log_det)

    return make_vjp(objective, tuple(argnums))(args[0], args[1])[0](1.0)


@primitive
def _maf_normalise(params, x, network, saved):
    """:meth:`MAFLayer.inverse` as one autograd primitive: the MADE pass, then z = (x - mu) * exp(-alpha) and
    log|det dz/dx| = -sum_i alpha_i, the same numbers as ``network(params, x)`` followed by
    :func:`affine_inverse`. Returns ``(z, log_det)``. One node per layer instead of five: a small training step
    spends much of its time in autograd's bookkeeping.

    ``saved`` is a fresh empty list: the MADE pass's own outputs (:func:`maf_numpy.made.made_pass` or, with a
    block plan, :func:`maf_numpy.made.made_pass_blocked`: hidden activations, sorted weights) are appended to
    it for the backward pass, rather than returned. Returned, they would be outputs that autograd gives a
    cotangent, a zero array of each one's size on every backward pass (megabytes per layer in a wide MADE)."""
    if network.plan is None:
        out = made_pass(params, x, network.masks, network.activation)
    else:
        out = made_pass_blocked(params, x, network.plan, network.activation)
    saved.append(out)
    mu, alpha = out[0], out[1]
    return (x - mu) * onp.exp(-alpha), -onp.sum(alpha, axis=-1)


def _maf_normalise_vjp(argnums, ans, args, kwargs):
    # chain rule through the affine map into the MADE's own backward pass:
    #   g_mu = -g_z exp(-alpha),  g_alpha = -g_z z - g_log_det,  and x also gets g_z exp(-alpha) directly
    params, x, network, saved = args
    z, out = ans[0], saved[-1]
    scale = onp.exp(-out[1])
    if network.plan is None:
        made_vjp = _made_pass_vjp(argnums, out, (params, x, network.masks, network.activation), {})
    else:
        made_vjp = _made_pass_blocked_vjp(argnums, out, (params, x, network.plan, network.activation), {})

    def readable(p, v):
        return affine_inverse(v, *made_apply_by_layer(p, v, network.masks, network.activation))

    def vjp(g):
        g_z, g_log_det = g[0], g[1]
        if _traced(g_z, g_log_det, params, x, z):  # a second derivative: autograd through the readable form
            return _vjp_by_autograd(readable, argnums, args, g_z, g_log_det)
        g_x = g_z * scale
        grads = made_vjp((-g_x, -g_z * z - g_log_det[..., None]) + (None,) * (len(out) - 2))
        return tuple(grad + g_x if argnum == 1 else grad for argnum, grad in zip(argnums, grads))

    return vjp


defvjp_argnums(_maf_normalise, _maf_normalise_vjp)


@primitive
def _coupling_affine(v, mu, alpha, A, B, unpermute, inverse):
    """An affine coupling map in one primitive: the A columns of v pass through, the B columns get
    ``(v_B - mu) * exp(-alpha)`` (``inverse``, x -> z) or ``v_B * exp(alpha) + mu`` (z -> x). The same
    numbers as :meth:`AffineCoupling.inverse` / ``forward`` built from :func:`affine_inverse` /
    :func:`affine_forward` and a concatenation, in one autograd node instead of about ten."""
    v_B = v[:, B]
    w_B = (v_B - mu) * np.exp(-alpha) if inverse else v_B * np.exp(alpha) + mu
    return np.concatenate([v[:, A], w_B], axis=1)[:, unpermute]


def _coupling_affine_vjp(argnums, w, args, kwargs):
    v, mu, alpha, A, B, unpermute, inverse = args
    scale = np.exp(-alpha) if inverse else np.exp(alpha)  # d w_B / d v_B

    def vjp(g):
        g_B = g[:, B]
        g_v_B = g_B * scale
        grads = {0: lambda: np.concatenate([g[:, A], g_v_B], axis=1)[:, unpermute],
                 1: lambda: -g_v_B if inverse else g_B,
                 2: lambda: -g_B * w[:, B] if inverse else g_v_B * v[:, B]}  # d w_B / d alpha = -z_B or x_B - mu
        return tuple(grads[argnum]() for argnum in argnums)

    return vjp


defvjp_argnums(_coupling_affine, _coupling_affine_vjp)


@primitive
def _coupling_normalise(params, x, layer, saved):
    """:meth:`AffineCoupling.inverse` as one autograd primitive: the conditioner's pass on x_A, then
    z_B = (x_B - mu) * exp(-alpha), z_A = x_A and log|det dz/dx| = -sum_i alpha_i, the same numbers as
    :func:`_coupling_affine` and :func:`_signed_sum` after :func:`maf_numpy.made.made_apply`. Returns
    ``(z, log_det)``; the pass's own outputs (:func:`maf_numpy.made.made_pass`) are appended to the fresh list
    ``saved`` for the backward pass (see :func:`_maf_normalise`). One node per layer instead of six (column
    selection, pass, mu, alpha, map, log-det)."""
    x = onp.asarray(x)
    out = made_pass(params, x[:, layer.A], layer.masks, layer.activation)
    mu, alpha = out[0], out[1]
    z_B = (x[:, layer.B] - mu) * onp.exp(-alpha)
    z = onp.empty(x.shape, dtype=onp.result_type(x, z_B))
    z[:, layer.A], z[:, layer.B] = x[:, layer.A], z_B
    saved.append(out)
    return z, -1.0 * onp.sum(alpha, axis=-1)


def _coupling_normalise_vjp(argnums, ans, args, kwargs):
    # chain rule through the coupling into the conditioner's backward pass, with s = exp(-alpha):
    #   g_mu = -g_z_B s,  g_alpha = -g_z_B z_B - g_log_det,  g_x_B = g_z_B s,  g_x_A = g_z_A + (conditioner's)
    params, x, layer, saved = args
    z, out = ans[0], saved[-1]
    A, B = layer.A, layer.B
    scale = onp.exp(-out[1])
    made_vjp = _made_pass_vjp(argnums, out, (params, x[:, A], layer.masks, layer.activation), {})

    def readable(p, v):
        mu, alpha = made_apply_by_layer(p, v[:, A], None, layer.activation)
        z_B, log_det = affine_inverse(v[:, B], mu, alpha)
        return np.concatenate([v[:, A], z_B], axis=1)[:, layer.unpermute], log_det

    def vjp(g):
        g_z, g_log_det = g[0], g[1]
        if _traced(g_z, g_log_det, params, x, z):  # a second derivative: autograd through the readable form
            return _vjp_by_autograd(readable, argnums, args, g_z, g_log_det)
        g_B = g_z[:, B]
        g_x_B = g_B * scale
        g_alpha = -g_B * z[:, B] - g_log_det[..., None]
        grads = made_vjp((-g_x_B, g_alpha) + (None,) * (len(out) - 2))
        result = []
        for argnum, grad in zip(argnums, grads):
            if argnum == 1:  # g_x: the pass-through and the conditioner's input gradient in A, the map's in B
                g_x = np.concatenate([g_z[:, A] + grad, g_x_B], axis=1)[:, layer.unpermute]
                result.append(g_x)
            else:
                result.append(grad)
        return tuple(result)

    return vjp


defvjp_argnums(_coupling_normalise, _coupling_normalise_vjp)


@primitive
def _iaf_fixed_point(params, x, network):
    """The z that an IAF layer's density evaluation solves for, z = (x - mu(z)) * exp(-alpha(z)), found by the
    degree-sliced solver (:func:`maf_numpy.made.solve_sliced`, about one pass of work) and differentiated by
    the implicit function theorem instead of through the D sequential passes.

    With s(params, x, z) = (x - mu(z)) * exp(-alpha(z)) and J = ds/dz at the solution (strictly lower
    triangular in degree order: output i reads only inputs of lower degree), z = s(params, x, z) gives
    dz = ds/d(params, x) + J dz, so the backward pass of a gradient g solves u = g + J^T u, which takes
    D - 1 substitutions because J^D = 0, and returns (ds/d(params, x))^T u. That is D - 1 backward passes
    with respect to the input only and one full one, against D forward and D full backward passes when
    autograd records the reference solver (:func:`solve_autoregressive`). ``IAFLayer.inverse`` then
    evaluates one recorded step at this z (it returns z again, and the log-det), whose backward pass
    hands this one the gradient with respect to z (``tests/test_fast_paths.py`` checks the result against
    the reference's gradient).

    Parameters
    ----------
    params : dict
        The MADE's parameters (traced or not).
    x : ndarray of shape (n, D)
    network : MADENetwork

    Returns
    -------
    z : ndarray of shape (n, D)
    """
    return solve_sliced(params, x, _iaf_combine, network.slices, network.activation)[0]


def _iaf_fixed_point_vjp(argnums, z, args, kwargs):
    params, x, network = args

    def s(p, v, w):  # one IAF step at w, not counted in network.calls
        mu, alpha = made_apply(p, w, network.masks, network.activation, network.plan)
        return _normalise(v, mu, alpha)

    def vjp(g):
        J_transpose = make_vjp(lambda w: s(params, x, w))(z)[0]
        u = g
        for _ in range(network.D - 1):  # u = g + J^T g + (J^T)^2 g + ... (J is nilpotent)
            u = g + J_transpose(u)
        return make_vjp(lambda p, v: s(p, v, z), tuple(argnums))(params, x)[0](u)  # (d s / d(params, x))^T u

    return vjp


defvjp_argnums(_iaf_fixed_point, _iaf_fixed_point_vjp)


class MAFLayer(_AffineAutoregressive):
    """One MAF layer: x_i = z_i * exp(alpha_i) + mu_i with (mu_i, alpha_i) = MADE(x_{<i}) (MAF §3.1).

    ``inverse`` (density) is one MADE pass; ``forward`` (sampling) needs D sequential passes. With plain
    (untraced) arrays ``forward`` runs the degree-sliced solver (:func:`maf_numpy.made.solve_sliced`): D
    sequential steps whose work adds up to about one pass; under autograd (or after
    ``set_sequential_solver("reference")``) it runs the reference :func:`solve_autoregressive`. Both count D
    passes and agree to rounding.
    """

    def inverse(self, params, x, y=None):
        """Normalise, x -> z, in one MADE pass (MAF §3.1). Returns (z, log|det dz/dx|).
        ``y`` (n, C): the context of a conditional layer (MAF §3.4), else None.

        That is ``mu, alpha = self.conditioner(params, x, y)`` then :func:`affine_inverse`, run here as one
        autograd primitive when there is no context and no clamp (the same numbers, fewer autograd nodes:
        :func:`_maf_normalise`)."""
        if self._plain and (isbox(params) or not _holds_boxes(params)):
            self.network.calls += 1
            out = _maf_normalise(params, x, self.network, [])
            return out[0], out[1]
        mu, alpha = self.conditioner(params, x, y)  # layer by layer
        return _normalise(x, mu, alpha), _signed_sum(alpha, -1.0)

    def forward(self, params, z, y=None):
        """Generate, z -> x, in D MADE passes (MAF §3.1). Returns (x, log|det dx/dz|).

        Pass k evaluates (mu, alpha) at the current x, whose coordinates of degree < k are already
        exact, so after D passes x is exact (:func:`solve_autoregressive`). With untraced params and z, the
        degree-sliced solver computes the same x with about one pass of arithmetic (:class:`MAFLayer`).
        """
        if _use_sliced(params, z, y):
            return self._solve(params, z, _maf_combine, y)

        def step(x):  # affine_forward(z, mu, alpha) as two primitives: the same numbers, fewer autograd nodes
            mu, alpha = self.conditioner(params, x, y)
            return _generate(z, mu, alpha), _signed_sum(alpha, 1.0)

        return solve_autoregressive(step, self.D, z.shape, self.input_degrees, z.dtype)


class IAFLayer(_AffineAutoregressive):
    """One IAF layer: x_i = z_i * exp(alpha_i) + mu_i with (mu_i, alpha_i) = MADE(z_{<i}) (MAF §3.2).

    The same affine map as MAF, but the conditioner reads the *base* variable z, not x. So ``forward``
    (sampling) is one MADE pass and ``inverse`` (density of an outside x) needs D sequential passes: the
    mirror image of :class:`MAFLayer`. (Kingma et al. 2016 write the update with a gate; this is the
    paper's §3.2 form with the same expressive power.)
    """

    def forward(self, params, z, y=None):
        """Generate, z -> x, in one MADE pass: MAF §3.2. Returns (x, log|det dx/dz|).
        ``y`` (n, C): the context of a conditional layer, else None.

        :func:`affine_forward` written as two autograd primitives (the same numbers, fewer nodes)."""
        mu, alpha = self.conditioner(params, z, y)
        return _generate(z, mu, alpha), _signed_sum(alpha, 1.0)

    def inverse(self, params, x, y=None):
        """Normalise, x -> z, in D MADE passes. Returns (z, log|det dz/dx|).

        Pass k evaluates (mu, alpha) at the current z, whose coordinates of degree < k are already
        exact, so after D passes z is exact (:func:`solve_autoregressive`). With untraced params and x, the
        degree-sliced solver computes the same z with about one pass of arithmetic
        (:func:`maf_numpy.made.solve_sliced`).
        """
        if _use_sliced(params, x, y):
            return self._solve(params, x, _iaf_combine, y)

        def step(z):  # affine_inverse(x, mu, alpha) as two primitives: the same numbers, fewer autograd nodes
            mu, alpha = self.conditioner(params, z, y)
            return _normalise(x, mu, alpha), _signed_sum(alpha, -1.0)

        if (self._plain and self.D >= 4 and _SOLVER["name"] == "sliced" and not isbox(y)
                and (isbox(params) or not _holds_boxes(params))):
            # Differentiated: solve without autograd, then one recorded step at the solution, whose own
            # backward pass adds the implicit dependence of z on (params, x) (:func:`_iaf_fixed_point`).
            # Its fixed cost (three extra forward passes) pays from D = 4 on: a 5-layer training step takes
            # 0.55x the time at D = 8 but 1.4x at D = 2 (benchmarks/README.md).
            self.network.calls += self.D - 1  # the solve's D - 1 steps; ``step`` below is the D-th
            return step(_iaf_fixed_point(params, x, self.network))
        return solve_autoregressive(step, self.D, x.shape, self.input_degrees, x.dtype)


# ---------------------------------------------------------------------------------------------------
# Affine coupling (RealNVP).
# ---------------------------------------------------------------------------------------------------
class AffineCoupling:
    """RealNVP affine coupling: MAF §3.3, Dinh et al. (2017).

        x_A = z_A,    x_B = z_B * exp(alpha(z_A)) + mu(z_A)

    The coordinates in A pass through unchanged and condition the shift and log-scale of the rest, B, so
    both directions take one network pass. It is an autoregressive layer whose inputs have only two
    degrees (A: 1, B: 2), which is why its Jacobian is block triangular rather than triangular.

    Parameters
    ----------
    D : int
        Dimension, at least 2.
    hidden : tuple of int
        Hidden widths of the conditioner MLP (|A| inputs, |B| outputs per head).
    flip : bool
        False: A is the first ``D // 2`` coordinates. True: A is the last ``D - D // 2`` coordinates.
        Alternating ``flip`` between layers lets every coordinate be transformed.
    activation : {"relu", "tanh"}
    dtype : {"float64", "float32"}
        Type of fresh parameters.
    """

    def __init__(self, D, hidden=(64, 64), flip=False, activation="relu", dtype="float64"):
        if D < 2:
            raise ValueError(f"dim must be at least 2 for an affine coupling layer (RealNVP), got {D}")
        d = D // 2
        self.D = D
        self.hidden = tuple(hidden)
        self.flip = bool(flip)
        self.activation = activation
        self.dtype = onp.dtype(dtype)
        index = onp.arange(D)
        self.A, self.B = (index[d:], index[:d]) if flip else (index[:d], index[d:])
        self.unpermute = onp.argsort(onp.concatenate([self.A, self.B]))  # [A, B] columns -> 0..D-1
        self.input_degrees = onp.where(onp.isin(index, self.A), 1, 2)
        self.calls = 0

    def init_params(self, rng):
        return init_made_params(len(self.A), self.hidden, len(self.B), rng, dtype=self.dtype)

    def conditioner(self, params, v_A):
        """(mu, alpha) of the B coordinates from the A coordinates, each (n, |B|): one pass."""
        self.calls += 1
        return made_apply(params, v_A, None, self.activation)

    def forward(self, params, z):
        """Generate, z -> x, in one pass: x_B = z_B * exp(alpha(z_A)) + mu(z_A). Returns (x, log|dx/dz|)."""
        mu, alpha = self.conditioner(params, z[:, self.A])
        # affine_forward on the B columns and the A columns copied, as one primitive (fewer autograd nodes)
        return _coupling_affine(z, mu, alpha, self.A, self.B, self.unpermute, False), _signed_sum(alpha, 1.0)

    @property
    def masks(self):
        """The conditioner's masks: none (1.0 for each of its products), a plain MLP."""
        return [1.0] * (len(self.hidden) + 1)

    def inverse(self, params, x):
        """Normalise, x -> z, in one pass: z_B = (x_B - mu(x_A)) * exp(-alpha(x_A)). Returns (z, log|dz/dx|).

        With a params dict (plain or traced as a whole) it runs as one autograd primitive,
        :func:`_coupling_normalise` (the same numbers, fewer autograd nodes); else as written below."""
        if isbox(params) or not _holds_boxes(params):
            self.calls += 1
            out = _coupling_normalise(params, x, self, [])
            return out[0], out[1]
        mu, alpha = self.conditioner(params, x[:, self.A])
        # affine_inverse on the B columns and the A columns copied, as one primitive (fewer autograd nodes)
        return _coupling_affine(x, mu, alpha, self.A, self.B, self.unpermute, True), _signed_sum(alpha, -1.0)

    def get_state(self):
        return {}

    def set_state(self, state):
        pass

    def __repr__(self):
        return f"AffineCoupling(D={self.D}, hidden={self.hidden}, A={self.A.tolist()}, B={self.B.tolist()})"


# ---------------------------------------------------------------------------------------------------
# Standardisation: a fixed elementwise affine layer fitted to the training data.
# ---------------------------------------------------------------------------------------------------
class Standardize:
    """Elementwise affine layer z = (x - shift) / scale, fitted once to the training data.

        inverse: z = (x - shift) / scale,   log|det dz/dx| = -sum_i log scale_i
        forward: x = z * scale + shift,     log|det dx/dz| = +sum_i log scale_i

    It is part of the model, not a silent preprocessing step: its log-det enters ``log_prob``, so
    densities stay in the data's own units. ``shift`` and ``scale`` are fixed numbers (structure), not
    trained parameters; until :meth:`fit` is called the layer is the identity. They are kept in the
    layer's ``dtype`` (float64 or float32), so that a float32 flow computes in float32 throughout.
    """

    def __init__(self, D, dtype="float64"):
        self.D = D
        self.dtype = onp.dtype(dtype)
        self.shift = onp.zeros(D, dtype=self.dtype)
        self.scale = onp.ones(D, dtype=self.dtype)
        self.fitted = False
        self.input_degrees = onp.ones(D, dtype=int)  # diagonal Jacobian
        self.calls = 0

    def fit(self, x):
        """Set shift and scale to the mean and standard deviation of the columns of x, shape (n, D)."""
        x = onp.asarray(x, dtype=onp.float64)  # the statistics in float64, then stored in the layer's type
        self.shift = onp.mean(x, axis=0).astype(self.dtype)
        std = onp.std(x, axis=0)
        self.scale = onp.where(std > 0, std, 1.0).astype(self.dtype)
        self.fitted = True
        return self

    def init_params(self, rng):
        return {}

    def forward(self, params, z):
        """Generate, z -> x: x = z * scale + shift. Returns (x, log|det dx/dz|)."""
        log_det = np.sum(np.log(self.scale)) * np.ones(z.shape[0], dtype=self.dtype)
        return z * self.scale + self.shift, log_det

    def inverse(self, params, x):
        """Normalise, x -> z: z = (x - shift) / scale. Returns (z, log|det dz/dx|)."""
        log_det = -np.sum(np.log(self.scale)) * np.ones(x.shape[0], dtype=self.dtype)
        return (x - self.shift) / self.scale, log_det

    def get_state(self):
        return {"shift": self.shift, "scale": self.scale, "fitted": onp.array(self.fitted)}

    def set_state(self, state):
        self.shift = onp.array(state["shift"], dtype=self.dtype)
        self.scale = onp.array(state["scale"], dtype=self.dtype)
        self.fitted = bool(state["fitted"])

    def __repr__(self):
        return f"Standardize(D={self.D}, fitted={self.fitted})"


# ---------------------------------------------------------------------------------------------------
# Affine coupling built as a MADE with two input degrees (lesson 07).
# ---------------------------------------------------------------------------------------------------
class MADECoupling(_AffineAutoregressive):
    """RealNVP's affine coupling layer built as a MADE whose inputs have only two degrees (MAF §3.3).

        x_A = z_A,    x_B = z_B * exp(alpha_B(z_A)) + mu_B(z_A)

    The same map as :class:`AffineCoupling`, written the MAF paper's way: a :class:`MAFLayer` whose MADE has
    input degree 1 on the conditioning group A, 2 on the rest B, and hidden degree 1 everywhere
    (:func:`maf_numpy.masks.two_group_degrees`). The masks then let every B output read all of A and
    nothing else, and leave every A output without inputs. Those A outputs would still carry their biases
    (a constant shift and scale of x_A, see lesson 07's exercise 2), so ``mu`` and ``alpha`` are multiplied
    by the 0/1 indicator b of group B: mu_A = alpha_A = 0 and x_A = z_A exactly (the masked form of Dinh et
    al. 2017, y = b*x + (1-b)*(x*exp(s(b*x)) + t(b*x)), with b marking A there).

    Both directions are **one** MADE pass: ``inverse`` like :meth:`MAFLayer.inverse`; ``forward`` too, because
    mu_B and alpha_B read only z_A = x_A, which the layer passes through unchanged (a MAFLayer would need D
    passes). Its Jacobian is block triangular, with |A| * |B| free entries below the diagonal instead of a
    MAF layer's D(D-1)/2.

    Parameters
    ----------
    D : int
        Dimension, at least 2.
    hidden : tuple of int
        Hidden widths of the MADE (all hidden units get degree 1).
    flip : bool
        As in :class:`AffineCoupling`: False makes A the first ``D // 2`` coordinates, True the last
        ``D - D // 2``.
    activation : {"relu", "tanh"}
    dtype : {"float64", "float32"}

    Attributes
    ----------
    A, B : ndarray of int
        Indices of the conditioning group and of the transformed group.
    b : ndarray of float, shape (D,)
        1 on B, 0 on A: the factor applied to mu and alpha.
    network : MADENetwork
        The two-group MADE (its ``degrees``, ``masks`` and ``calls``; ``layer.calls`` reads the latter).
    """

    def __init__(self, D, hidden=(64, 64), flip=False, activation="relu", dtype="float64"):
        if isinstance(D, (bool, onp.bool_)) or not isinstance(D, (int, onp.integer)) or D < 2:
            raise ValueError(f"dim must be an int of at least 2 for an affine coupling layer, got {D!r}")
        index = onp.arange(D)
        d = D // 2
        A = index[d:] if flip else index[:d]
        super().__init__(D, hidden, activation=activation, degrees=two_group_degrees(D, A, hidden), dtype=dtype)
        self.flip = bool(flip)
        self.A, self.B = A, onp.setdiff1d(index, A)
        self.b = (self.network.degrees[0] == 2).astype(self.dtype)

    def conditioner(self, params, v):
        """(mu, alpha) = b * MADE(v), each (n, D): zero on A, functions of v_A on B. One pass."""
        mu, alpha = self.network(params, v)
        return mu * self.b, alpha * self.b

    def inverse(self, params, x):
        """Normalise, x -> z, in one pass: z_B = (x_B - mu_B(x_A)) * exp(-alpha_B(x_A)), z_A = x_A.
        Returns (z, log|det dz/dx|) = (z, -sum_B alpha)."""
        mu, alpha = self.conditioner(params, x)
        return affine_inverse(x, mu, alpha)

    def forward(self, params, z):
        """Generate, z -> x, in one pass: x_B = z_B * exp(alpha_B(z_A)) + mu_B(z_A), x_A = z_A.

        One pass suffices because the conditioner reads only the A coordinates, and those are the same in
        z and x. Returns (x, log|det dx/dz|) = (x, sum_B alpha).
        """
        mu, alpha = self.conditioner(params, z)
        return affine_forward(z, mu, alpha)

    def made_params_from_coupling(self, params):
        """Translate the parameters of an :class:`AffineCoupling` into this layer's MADE parameters.

        The coupling's MLP reads ``x[:, A]`` (|A| inputs) and writes |B| shifts and log-scales; the MADE
        reads all D inputs and writes D of each. The map embeds the first weight matrix in the A rows
        (``W_1 = P_A^T W_1^coupling`` with ``P_A`` the (|A|, D) rows of the identity picking A) and the output
        heads and their biases in the B columns (``W_mu = W_mu^coupling P_B``); every other entry is zero.
        Hidden layers are copied. The zeros sit exactly where the masks or the factor b remove an entry
        anyway, so any value there gives the same layer. Pure (no in-place writes), so autograd can
        differentiate through it.

        Parameters
        ----------
        params : dict
            Parameters of an ``AffineCoupling(D, hidden, flip, activation)`` with the same D, hidden and flip.

        Returns
        -------
        made_params : dict
            ``{"W": [...], "b": [...], "W_mu": (H_L, D), "b_mu": (D,), "W_alpha": (H_L, D), "b_alpha": (D,)}``
            for this layer: ``self.forward(made_params, z)`` equals ``coupling.forward(params, z)``.
        """
        P_A, P_B = onp.eye(self.D)[self.A], onp.eye(self.D)[self.B]  # (|A|, D), (|B|, D)
        W = list(params["W"])
        if W:  # the first matrix reads the inputs: put it in the A rows
            W = [P_A.T @ W[0]] + W[1:]
        heads = {}
        for head in ("mu", "alpha"):
            W_head = params["W_" + head]
            if not params["W"]:  # no hidden layer: the heads read the inputs directly
                W_head = P_A.T @ W_head
            heads["W_" + head] = W_head @ P_B
            heads["b_" + head] = params["b_" + head] @ P_B
        return {"W": W, "b": list(params["b"]), **heads}

    def __repr__(self):
        return (f"MADECoupling(D={self.D}, hidden={self.network.hidden}, A={self.A.tolist()}, "
                f"B={self.B.tolist()})")


# ---------------------------------------------------------------------------------------------------
# Batch normalisation as a bijector (MAF paper §4.1, experimental setup; RealNVP paper §3.7).
# ---------------------------------------------------------------------------------------------------
class BatchNorm:
    """Batch normalisation as an invertible layer with its log-det (MAF paper §4.1; Dinh et al. 2017, §3.7).

        inverse:  z = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta
                  log|det dz/dx| = sum_i (log_gamma_i - 0.5 log(v_i + eps))
        forward:  x = (z - beta) * exp(-log_gamma) * sqrt(v + eps) + m     (evaluation mode only)

    The MAF paper puts one between consecutive MADE layers: the normalising direction sees the output of
    the layer below it (nearer the data) and recentres and rescales it, which keeps the deep flow's
    intermediate values near N(0, I) and helps deep flows train (Dinh et al. 2017, §3.7). ``log_gamma``
    and ``beta``, each of shape (D,), are the learnable parameters (``params``); gamma = exp(log_gamma) is
    parametrised by its logarithm so that it stays positive and the map stays invertible (as in the authors'
    code). ``eps`` (1e-5, the authors' value and PyTorch's) keeps the division finite when a dimension of
    the batch is constant.

    Two modes, chosen by the ``training`` attribute (``Flow.training`` sets it for every layer; ``fit``
    turns it on only while it computes the loss and gradient of a step):

    - ``training = True``: (m, v) are the mean and *biased* variance (divisor n) of the batch the layer
      receives, per dimension. z of one point then depends on every other point of the batch, and so does
      the log-det (the same number for every point of the batch). Gradients flow through m and v: autograd
      differentiates the whole batch. This is a map of the batch, not of each point; only ``inverse`` exists
      (``forward`` raises: the batch statistics of the x it would produce are not known beforehand). A batch
      of one point has v = 0 and maps every x to beta: train with batches of tens of points or more.
    - ``training = False`` (the default): (m, v) are fixed numbers held as layer *state*, ``mean`` and
      ``var`` (not ``params``, like :class:`Standardize`'s shift and scale: saved by ``io``, restored by
      ``load``). The layer is then an elementwise affine map of each point, an exact bijection whose
      ``forward`` is its inverse, and log_prob and sample are per-point and deterministic.

    Which fixed statistics. :meth:`set_statistics` sets ``mean`` and ``var`` to those of the **whole
    training set pushed through the layers below** (``Flow.refresh_state``, which ``fit`` calls before
    every validation and at the end with the best parameters). That is what the authors' code does
    (gpapamak/maf, ``ml/trainers.py``: ``set_batch_norm_stats`` evaluates every BatchNorm's statistics on
    the whole training set before each validation and after restoring the best parameters;
    ``ml/models/layers.py``: ``set_batch_stats``). We prefer it to running averages because it is exact
    (the statistics the layer would compute if its batch were the whole training set, the distribution it
    was trained to normalise), deterministic (the same parameters always give the same evaluation-mode
    model, so a resumed run and a saved model give the same numbers) and needs no momentum parameter;
    running averages mix statistics of parameters from many past steps. It costs one pass over the
    training set per refresh (cheap next to training). Until it is refreshed, ``mean`` = 0 and ``var`` = 1:
    close to the identity (exactly z = x / sqrt(1 + eps) with the initial parameters).

    Parameters
    ----------
    D : int
        Dimension.
    eps : float
        Added to the variance before the square root (finite, > 0; default 1e-5).
    dtype : {"float64", "float32"}
        Type of the parameters and of the statistics.

    Attributes
    ----------
    mean, var : ndarray of shape (D,)
        Evaluation-mode statistics m and v (state).
    refreshed : bool
        Whether :meth:`set_statistics` has set them.
    training : bool
        The mode (see above). False by default.
    input_degrees : ndarray of int, shape (D,)
        All 1: in evaluation mode the Jacobian of each point is diagonal.
    calls : int
        Counted like the other layers' network passes; always 0 (this layer has no network).
    """

    def __init__(self, D, eps=1e-5, dtype="float64"):
        self.D = check_positive_int(D, "D")
        self.eps = check_positive_float(eps, "eps")
        self.dtype = onp.dtype(check_dtype(dtype))
        self.mean = onp.zeros(self.D, dtype=self.dtype)
        self.var = onp.ones(self.D, dtype=self.dtype)
        self.refreshed = False
        self.training = False
        self.input_degrees = onp.ones(self.D, dtype=int)  # diagonal Jacobian (evaluation mode)
        self.calls = 0

    def init_params(self, rng):
        """``{"log_gamma": zeros (D,), "beta": zeros (D,)}``: gamma = 1, beta = 0 (no random draw)."""
        return {"log_gamma": onp.zeros(self.D, dtype=self.dtype), "beta": onp.zeros(self.D, dtype=self.dtype)}

    def statistics(self, x):
        """(m, v), each (D,): the batch's mean and biased variance in training mode, else ``mean``, ``var``.

        Written ``sum / n`` (not ``np.mean``) so that a float32 batch keeps float32 gradients (DESIGN §7).
        """
        if not self.training:
            return self.mean, self.var
        n = x.shape[0]
        m = np.sum(x, axis=0) / n
        x_centred = x - m
        v = np.sum(x_centred * x_centred, axis=0) / n
        return m, v

    def inverse(self, params, x):
        """Normalise, x -> z: z = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta. Returns (z, log|det dz/dx|).

        In training mode (m, v) are the statistics of this batch x (n, D), and the log-det, of shape (n,),
        is the same number for every point; in evaluation mode they are ``mean`` and ``var``.
        """
        m, v = self.statistics(x)
        # the whole map is z_i = (x_i - m_i) * exp(log_scale_i) + beta_i: one log-scale per dimension, (D,)
        log_scale = params["log_gamma"] - 0.5 * np.log(v + self.eps)
        z = (x - m) * np.exp(log_scale) + params["beta"]
        return z, np.sum(log_scale) * np.ones(x.shape[0], dtype=x.dtype)

    def forward(self, params, z):
        """Generate, z -> x: x = (z - beta) * exp(-log_gamma) * sqrt(v + eps) + m, with the fixed (m, v).
        Returns (x, log|det dx/dz|). Evaluation mode only (RuntimeError in training mode)."""
        if self.training:
            raise RuntimeError("BatchNorm.forward (z -> x) needs evaluation mode: in training mode the layer "
                               "normalises by the statistics of its own input batch x, which are unknown before "
                               "x is computed. Set flow.training = False (fit does so outside its gradient step) "
                               "to sample or call forward")
        log_scale = params["log_gamma"] - 0.5 * np.log(self.var + self.eps)  # that of inverse, (D,)
        x = (z - params["beta"]) * np.exp(-log_scale) + self.mean
        return x, -np.sum(log_scale) * np.ones(z.shape[0], dtype=z.dtype)

    def set_statistics(self, x):
        """Set ``mean`` and ``var`` to the mean and biased variance of x, shape (n, D), per dimension.

        ``Flow.refresh_state`` calls it with the whole training set pushed through the layers below.
        Computed in float64, stored in the layer's dtype. Returns the layer.
        """
        x = onp.asarray(x, dtype=onp.float64)
        if x.ndim != 2 or x.shape[1] != self.D or x.shape[0] == 0:
            raise ValueError(f"x must have shape (n, {self.D}) with n >= 1, got {x.shape}")
        mean, var = onp.mean(x, axis=0), onp.var(x, axis=0)
        # A layer below that overflowed (diverged parameters) gives NaN or inf here: stored as they are, so that
        # the evaluation-mode log_prob is not finite and fit's divergence guard reports it.
        self.mean, self.var = mean.astype(self.dtype), var.astype(self.dtype)
        self.refreshed = True
        return self

    def get_state(self):
        return {"mean": self.mean, "var": self.var, "refreshed": onp.array(self.refreshed)}

    def set_state(self, state):
        self.mean = onp.array(state["mean"], dtype=self.dtype)
        self.var = onp.array(state["var"], dtype=self.dtype)
        self.refreshed = bool(state["refreshed"])

    def __repr__(self):
        mode = "training" if self.training else "evaluation"
        return f"BatchNorm(D={self.D}, eps={self.eps:g}, mode={mode!r}, refreshed={self.refreshed})"


# ---------------------------------------------------------------------------------------------------
# A whole normalising direction as one autograd node (used by Flow._inverse when every layer allows it).
# ---------------------------------------------------------------------------------------------------
def _fused_layer(layer):
    """The fused primitive and its backward-pass maker for ``layer.inverse``, with the structure argument it
    takes, or None when the layer has none here (a context, a clamp, batch norm, another class; a subclass,
    which may override ``inverse``)."""
    if type(layer) is MAFLayer and layer._plain:
        return _maf_normalise, _maf_normalise_vjp, layer.network
    if type(layer) is AffineCoupling:
        return _coupling_normalise, _coupling_normalise_vjp, layer
    if type(layer) is Standardize:
        return _standardize_normalise, _standardize_normalise_vjp, layer
    return None


def _standardize_normalise(params, x, layer, saved):
    """:meth:`Standardize.inverse` with plain arrays, in the calling convention of the fused primitives."""
    return layer.inverse(params, x)


def _standardize_normalise_vjp(argnums, ans, args, kwargs):
    # z = (x - shift) / scale: dz/dx = 1 / scale; the layer has no parameters and a constant log-det
    layer = args[2]
    return lambda g: tuple({} if argnum == 0 else g[0] / layer.scale for argnum in argnums)


def _fusable_chain(layers, params):
    """Whether :func:`_normalise_chain` applies: every layer has a fused primitive and ``params`` is a plain
    list of plain dicts, or traced as a whole (not a plain list holding traced arrays)."""
    return all(_fused_layer(layer) is not None for layer in layers) and (isbox(params) or not _holds_boxes(params))


def _normalise_chain(layers, params, x, dtype):
    """``Flow._inverse`` without a context when :func:`_fusable_chain` holds: z after all the layers and the
    summed log-det, as one autograd node (:func:`_flow_normalise`). Counts one pass per MADE or coupling layer,
    as their own ``inverse`` does."""
    for layer in layers:
        if type(layer) is MAFLayer:
            layer.network.calls += 1
        elif type(layer) is AffineCoupling:
            layer.calls += 1
    out = _flow_normalise(params, x, tuple(layers), onp.dtype(dtype), [])
    return out[0], out[1]


@primitive
def _flow_normalise(params, x, layers, dtype, saved):
    """The normalising direction of a flow, x -> z, as one autograd primitive: each layer's fused primitive
    (:func:`_maf_normalise`, :func:`_coupling_normalise`, Standardize's map) in turn, the log-dets summed from
    zero in layer order, the same numbers as ``Flow._inverse`` running ``layer.inverse`` layer by layer.
    Returns ``(z, log_det)``; each layer's input, output and saved pass go to the fresh list ``saved``.

    Layer by layer, autograd records per layer a look-up in the parameter list (whose backward pass fills a
    zero copy of the whole list: every parameter of every layer, on every step), two output look-ups and
    a log-det sum; one node for the whole direction removes all of them."""
    log_det = onp.zeros(x.shape[0], dtype=dtype)
    for layer, p in zip(layers, params):
        fused, _, structure = _fused_layer(layer)
        layer_saved = []
        z, log_det_layer = fused(p, x, structure, layer_saved)
        saved.append((x, z, log_det_layer, layer_saved))
        log_det = log_det + log_det_layer
        x = z
    return x, log_det


def _flow_normalise_vjp(argnums, ans, args, kwargs):
    """Backward pass of :func:`_flow_normalise`: each layer's own backward pass, last layer first; the
    gradient of the summed log-det reaches every layer unchanged. When the backward pass is itself traced (a
    second derivative) autograd differentiates the layer-by-layer chain of fused primitives instead, whose
    backward passes handle that case."""
    params, x, layers, dtype, saved = args

    def chain(p, v):
        log_det = np.zeros(v.shape[0], dtype=dtype)
        for layer, p_layer in zip(layers, p):
            fused, _, structure = _fused_layer(layer)
            v, log_det_layer = fused(p_layer, v, structure, [])
            log_det = log_det + log_det_layer
        return v, log_det

    def vjp(g):
        g_z, g_log_det = g[0], g[1]
        if _traced(g_z, g_log_det, params, x, ans[0]):
            return _vjp_by_autograd(chain, argnums, args, g_z, g_log_det)
        grads = [None] * len(layers)
        for k in range(len(layers) - 1, -1, -1):
            _, make_vjp_k, structure = _fused_layer(layers[k])
            x_k, z_k, log_det_k, layer_saved = saved[k]
            wanted = (0, 1) if k > 0 or 1 in argnums else (0,)
            grads_k = make_vjp_k(wanted, (z_k, log_det_k), (params[k], x_k, structure, layer_saved), {})(
                (g_z, g_log_det))
            grads[k] = grads_k[0]
            if len(grads_k) > 1:
                g_z = grads_k[1]
        grads = grads if isinstance(params, list) else type(params)(grads)
        return tuple(grads if argnum == 0 else g_z for argnum in argnums)

    return vjp


defvjp_argnums(_flow_normalise, _flow_normalise_vjp)
