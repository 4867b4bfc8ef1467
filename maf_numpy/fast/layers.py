"""Fused layer primitives and the kernels that replace the reference layers' methods when ``flow.fast`` is on.

Each kernel computes what one reference method computes, ``layer.inverse(params, x, y)`` or
``layer.forward(params, z, y)`` of :mod:`maf_numpy.transforms`, with fewer autograd nodes or less arithmetic,
and counts the same network passes. :data:`KERNELS` registers them by layer type, direction and variant;
:func:`maf_numpy.fast.select` decides which variant applies (or none). ``tests/test_fast.py`` checks every
kernel against the reference method over a grid of configurations: values, log-dets, gradients, second
derivatives and pass counts.

- the affine maps and their log-det as single primitives (:func:`normalise`, :func:`generate`,
  :func:`signed_sum`): ``(x - mu) * exp(-alpha)`` is otherwise five autograd nodes and ``-sum(alpha)`` two;
- a whole MAF layer's (:func:`maf_normalise`) or coupling layer's (:func:`coupling_normalise`) normalising
  direction as one primitive around :func:`maf_numpy.fast.made.made_pass`;
- the degree-sliced solver for MAF sampling and IAF density evaluation (:mod:`maf_numpy.fast.solver`), and
  an IAF density whose gradient comes from the implicit function theorem (:func:`iaf_fixed_point`).
"""

import autograd.numpy as np
import numpy as onp
from autograd import make_vjp
from autograd.extend import defvjp, defvjp_argnums, primitive
from autograd.tracer import isbox

from ..made import made_apply
from ..transforms import AffineCoupling, IAFLayer, MAFLayer
from ..transforms.affine import affine_inverse, soft_clamp, solve_autoregressive
from .made import (
    block_plan_for,
    fused_made,
    holds_boxes,
    made_outputs,
    made_pass,
    made_pass_blocked_vjp,
    made_pass_vjp,
)
from .solver import clamped, iaf_combine, maf_combine, slices_for, solve_sliced

__all__ = ["normalise", "generate", "signed_sum", "maf_normalise", "coupling_affine", "coupling_normalise",
           "iaf_fixed_point", "traced", "vjp_by_autograd", "KERNELS"]

# The two affine maps and their log-det as single autograd primitives, with their backward passes written
# out : (x - mu) * exp(-alpha) is otherwise five autograd nodes and -sum(alpha) two, each costing
# Python time in a small training step. Same numbers as affine_inverse / affine_forward, bit for bit;
# ``tests/test_fast.py`` checks the gradients against autograd's own.
@primitive
def normalise(x, mu, alpha):
    """z = (x - mu) * exp(-alpha), elementwise (the z of :func:`affine_inverse`)."""
    return (x - mu) * np.exp(-alpha)


def _normalise_vjp(argnums, z, args, kwargs):
    # dz/dx = exp(-alpha), dz/dmu = -exp(-alpha), dz/dalpha = -z
    scale = np.exp(-args[2])

    def vjp(g):
        g_x = g * scale
        return tuple(g_x if argnum == 0 else -g_x if argnum == 1 else -g * z for argnum in argnums)

    return vjp


defvjp_argnums(normalise, _normalise_vjp)


@primitive
def generate(z, mu, alpha):
    """x = z * exp(alpha) + mu, elementwise (the x of :func:`affine_forward`)."""
    return z * np.exp(alpha) + mu


def generate_vjp(argnums, x, args, kwargs):
    # dx/dz = exp(alpha), dx/dmu = 1, dx/dalpha = z * exp(alpha)
    z, _, alpha = args
    scale = np.exp(alpha)

    def vjp(g):
        g_z = g * scale
        return tuple(g_z if argnum == 0 else g if argnum == 1 else g_z * z for argnum in argnums)

    return vjp


defvjp_argnums(generate, generate_vjp)


@primitive
def signed_sum(alpha, sign):
    """``sign * sum_i alpha_i`` over the last axis: the log-det of an affine map, shape (n,)."""
    return sign * np.sum(alpha, axis=-1)


defvjp(signed_sum, lambda out, alpha, sign: lambda g: (sign * g)[..., None] * np.ones_like(alpha))


def traced(*values):
    """Whether any of these values (arrays, tuples, parameter dicts) is traced by autograd."""
    return any(isbox(value) or holds_boxes(value) for value in values)


def vjp_by_autograd(readable, argnums, args, g_z, g_log_det):
    """The backward pass of a fused layer primitive by autograd through its readable form
    ``readable(params, x) -> (z, log_det)``: used when that backward pass is itself traced (a second
    derivative), where the hand-written one would treat the saved forward values as constants. It
    recomputes the forward pass from (params, x), so the primitive's saved outputs get no gradient."""
    def objective(p, v):  # <(g_z, g_log_det), readable(p, v)>: its gradient is the vector-Jacobian product
        z, log_det = readable(p, v)
        return np.sum(g_z * z) + np.sum(g_log_det * log_det)

    return make_vjp(objective, tuple(argnums))(args[0], args[1])[0](1.0)


@primitive
def maf_normalise(params, x, network, saved):
    """:meth:`MAFLayer.inverse` as one autograd primitive: the MADE pass, then z = (x - mu) * exp(-alpha) and
    log|det dz/dx| = -sum_i alpha_i, the same numbers as ``network(params, x)`` followed by
    :func:`affine_inverse`. Returns ``(z, log_det)``. One node per layer instead of five: a small training step
    spends much of its time in autograd's bookkeeping.

    ``saved`` is a fresh empty list: the MADE pass's own outputs (:func:`maf_numpy.made.made_pass` or, with a
    block plan, :func:`maf_numpy.made.made_pass_blocked`: hidden activations, sorted weights) are appended to
    it for the backward pass, rather than returned. Returned, they would be outputs that autograd gives a
    cotangent, a zero array of each one's size on every backward pass (megabytes per layer in a wide MADE)."""
    out = made_outputs(network, params, x)
    saved.append(out)
    mu, alpha = out[0], out[1]
    return (x - mu) * onp.exp(-alpha), -onp.sum(alpha, axis=-1)


def maf_normalise_vjp(argnums, ans, args, kwargs):
    # chain rule through the affine map into the MADE's own backward pass:
    #   g_mu = -g_z exp(-alpha),  g_alpha = -g_z z - g_log_det,  and x also gets g_z exp(-alpha) directly
    params, x, network, saved = args
    z, out = ans[0], saved[-1]
    scale = onp.exp(-out[1])
    plan = block_plan_for(network)
    if plan is None:
        made_vjp = made_pass_vjp(argnums, out, (params, x, network.masks, network.activation), {})
    else:
        made_vjp = made_pass_blocked_vjp(argnums, out, (params, x, plan, network.activation), {})

    def readable(p, v):
        return affine_inverse(v, *made_apply(p, v, network.masks, network.activation))

    def vjp(g):
        g_z, g_log_det = g[0], g[1]
        if traced(g_z, g_log_det, params, x, z):  # a second derivative: autograd through the readable form
            return vjp_by_autograd(readable, argnums, args, g_z, g_log_det)
        g_x = g_z * scale
        grads = made_vjp((-g_x, -g_z * z - g_log_det[..., None]) + (None,) * (len(out) - 2))
        return tuple(grad + g_x if argnum == 1 else grad for argnum, grad in zip(argnums, grads))

    return vjp


defvjp_argnums(maf_normalise, maf_normalise_vjp)


@primitive
def coupling_affine(v, mu, alpha, A, B, unpermute, inverse):
    """An affine coupling map in one primitive: the A columns of v pass through, the B columns get
    ``(v_B - mu) * exp(-alpha)`` (``inverse``, x -> z) or ``v_B * exp(alpha) + mu`` (z -> x). The same
    numbers as :meth:`AffineCoupling.inverse` / ``forward`` built from :func:`affine_inverse` /
    :func:`affine_forward` and a concatenation, in one autograd node instead of about ten."""
    v_B = v[:, B]
    w_B = (v_B - mu) * np.exp(-alpha) if inverse else v_B * np.exp(alpha) + mu
    return np.concatenate([v[:, A], w_B], axis=1)[:, unpermute]


def coupling_affine_vjp(argnums, w, args, kwargs):
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


defvjp_argnums(coupling_affine, coupling_affine_vjp)


@primitive
def coupling_normalise(params, x, layer, saved):
    """:meth:`AffineCoupling.inverse` as one autograd primitive: the conditioner's pass on x_A, then
    z_B = (x_B - mu) * exp(-alpha), z_A = x_A and log|det dz/dx| = -sum_i alpha_i, the same numbers as
    :func:`coupling_affine` and :func:`signed_sum` after :func:`maf_numpy.made.made_apply`. Returns
    ``(z, log_det)``; the pass's own outputs (:func:`maf_numpy.made.made_pass`) are appended to the fresh list
    ``saved`` for the backward pass (see :func:`maf_normalise`). One node per layer instead of six (column
    selection, pass, mu, alpha, map, log-det)."""
    x = onp.asarray(x)
    out = made_pass(params, x[:, layer.A], layer.masks, layer.activation)
    mu, alpha = out[0], out[1]
    z_B = (x[:, layer.B] - mu) * onp.exp(-alpha)
    z = onp.empty(x.shape, dtype=onp.result_type(x, z_B))
    z[:, layer.A], z[:, layer.B] = x[:, layer.A], z_B
    saved.append(out)
    return z, -1.0 * onp.sum(alpha, axis=-1)


def coupling_normalise_vjp(argnums, ans, args, kwargs):
    # chain rule through the coupling into the conditioner's backward pass, with s = exp(-alpha):
    #   g_mu = -g_z_B s,  g_alpha = -g_z_B z_B - g_log_det,  g_x_B = g_z_B s,  g_x_A = g_z_A + (conditioner's)
    params, x, layer, saved = args
    z, out = ans[0], saved[-1]
    A, B = layer.A, layer.B
    scale = onp.exp(-out[1])
    made_vjp = made_pass_vjp(argnums, out, (params, x[:, A], layer.masks, layer.activation), {})

    def readable(p, v):
        mu, alpha = made_apply(p, v[:, A], None, layer.activation)
        z_B, log_det = affine_inverse(v[:, B], mu, alpha)
        return np.concatenate([v[:, A], z_B], axis=1)[:, layer.unpermute], log_det

    def vjp(g):
        g_z, g_log_det = g[0], g[1]
        if traced(g_z, g_log_det, params, x, z):  # a second derivative: autograd through the readable form
            return vjp_by_autograd(readable, argnums, args, g_z, g_log_det)
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


defvjp_argnums(coupling_normalise, coupling_normalise_vjp)


@primitive
def iaf_fixed_point(params, x, network):
    """The z that an IAF layer's density evaluation solves for, z = (x - mu(z)) * exp(-alpha(z)), found by the
    degree-sliced solver (:func:`maf_numpy.fast.solver.solve_sliced`, about one pass of work) and differentiated by
    the implicit function theorem instead of through the D sequential passes.

    With s(params, x, z) = (x - mu(z)) * exp(-alpha(z)) and J = ds/dz at the solution (strictly lower
    triangular in degree order: output i reads only inputs of lower degree), z = s(params, x, z) gives
    dz = ds/d(params, x) + J dz, so the backward pass of a gradient g solves u = g + J^T u, which takes
    D - 1 substitutions because J^D = 0, and returns (ds/d(params, x))^T u. That is D - 1 backward passes
    with respect to the input only and one full one, against D forward and D full backward passes when
    autograd records the reference solver (:func:`solve_autoregressive`). ``IAFLayer.inverse`` then
    evaluates one recorded step at this z (it returns z again, and the log-det), whose backward pass
    hands this one the gradient with respect to z (``tests/test_fast.py`` checks the result against
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
    return solve_sliced(params, x, iaf_combine, slices_for(network), network.activation)[0]


def iaf_fixed_point_vjp(argnums, z, args, kwargs):
    params, x, network = args

    def s(p, v, w):  # one IAF step at w, not counted in network.calls
        out = made_outputs(network, p, w)
        return normalise(v, out[0], out[1])

    def vjp(g):
        J_transpose = make_vjp(lambda w: s(params, x, w))(z)[0]
        u = g
        for _ in range(network.D - 1):  # u = g + J^T g + (J^T)^2 g + ... (J is nilpotent)
            u = g + J_transpose(u)
        return make_vjp(lambda p, v: s(p, v, z), tuple(argnums))(params, x)[0](u)  # (d s / d(params, x))^T u

    return vjp


defvjp_argnums(iaf_fixed_point, iaf_fixed_point_vjp)


# ---------------------------------------------------------------------------------------------------
# The kernels: ``kernel(layer, params, v, y) -> (output, log_det)``, one per (layer type, direction, variant).
# ---------------------------------------------------------------------------------------------------
def _conditioner(layer, params, v, y):
    """``layer.conditioner(params, v, y)`` with the MADE pass as one primitive (counted as one pass)."""
    mu, alpha = fused_made(layer.network, params, v, y)
    if layer.alpha_clamp is not None:
        alpha = soft_clamp(alpha, layer.alpha_clamp)
    return mu, alpha


def _normalise_given(layer, params, x, v, y):
    """affine_inverse(x, mu, alpha) with (mu, alpha) = conditioner(v): the fused pass and two primitives."""
    mu, alpha = _conditioner(layer, params, v, y)
    return normalise(x, mu, alpha), signed_sum(alpha, -1.0)


def _generate_given(layer, params, z, v, y):
    """affine_forward(z, mu, alpha) with (mu, alpha) = conditioner(v): the fused pass and two primitives."""
    mu, alpha = _conditioner(layer, params, v, y)
    return generate(z, mu, alpha), signed_sum(alpha, 1.0)


def _sliced(layer, params, u, combine, y):
    """The degree-sliced solver for this layer (D sequential steps, counted as D passes)."""
    layer.network.calls += layer.D
    combine = clamped(combine, layer.alpha_clamp)
    return solve_sliced(params, u, combine, slices_for(layer.network), layer.network.activation, y)


def maf_inverse_fused(layer, params, x, y):
    """MAFLayer.inverse without context or clamp: the pass, the map and the log-det as one primitive."""
    layer.network.calls += 1
    out = maf_normalise(params, x, layer.network, [])
    return out[0], out[1]


def maf_inverse(layer, params, x, y):
    """MAFLayer.inverse (with a context or a clamp): the fused pass, then the affine map as two primitives."""
    return _normalise_given(layer, params, x, x, y)


def maf_forward_sliced(layer, params, z, y):
    """MAFLayer.forward with plain arrays: the degree-sliced solver (D steps, about one pass of work)."""
    return _sliced(layer, params, z, maf_combine, y)


def maf_forward_steps(layer, params, z, y):
    """MAFLayer.forward under autograd: the reference's D passes, each a fused pass and two primitives."""
    def step(x):
        return _generate_given(layer, params, z, x, y)

    return solve_autoregressive(step, layer.D, z.shape, layer.input_degrees, z.dtype)


def iaf_forward(layer, params, z, y):
    """IAFLayer.forward: the fused pass, then the affine map as two primitives."""
    return _generate_given(layer, params, z, z, y)


def iaf_inverse_sliced(layer, params, x, y):
    """IAFLayer.inverse with plain arrays: the degree-sliced solver."""
    return _sliced(layer, params, x, iaf_combine, y)


def iaf_inverse_steps(layer, params, x, y):
    """IAFLayer.inverse under autograd: the reference's D passes, each a fused pass and two primitives."""
    def step(z):
        return _normalise_given(layer, params, x, z, y)

    return solve_autoregressive(step, layer.D, x.shape, layer.input_degrees, x.dtype)


def iaf_inverse_implicit(layer, params, x, y):
    """IAFLayer.inverse under autograd, without context or clamp: solve without autograd, then one recorded
    step at the solution, whose backward pass adds the implicit dependence of z on (params, x)."""
    layer.network.calls += layer.D - 1  # the solve's D - 1 steps; the recorded step is the D-th
    return _normalise_given(layer, params, x, iaf_fixed_point(params, x, layer.network), y)


def coupling_inverse_fused(layer, params, x, y):
    """AffineCoupling.inverse: the conditioner's pass, the map and the log-det as one primitive. The default
    affine, unclamped coupling only: the dispatch declines ``scale=False`` and ``alpha_clamp``
    (:func:`maf_numpy.fast.chain.coupling_served`)."""
    layer.calls += 1
    out = coupling_normalise(params, x, layer, [])
    return out[0], out[1]


def coupling_forward(layer, params, z, y):
    """AffineCoupling.forward: the conditioner as one primitive, then the coupling map as one primitive (the
    default affine, unclamped coupling only, as :func:`coupling_inverse_fused`)."""
    layer.calls += 1
    out = made_pass(params, z[:, layer.A], layer.masks, layer.activation)
    mu, alpha = out[0], out[1]
    return coupling_affine(z, mu, alpha, layer.A, layer.B, layer.unpermute, False), signed_sum(alpha, 1.0)


KERNELS = {
    (MAFLayer, "inverse", "fused"): maf_inverse_fused,
    (MAFLayer, "inverse", "conditioner"): maf_inverse,
    (MAFLayer, "forward", "sliced"): maf_forward_sliced,
    (MAFLayer, "forward", "steps"): maf_forward_steps,
    (IAFLayer, "forward", "conditioner"): iaf_forward,
    (IAFLayer, "inverse", "sliced"): iaf_inverse_sliced,
    (IAFLayer, "inverse", "implicit"): iaf_inverse_implicit,
    (IAFLayer, "inverse", "steps"): iaf_inverse_steps,
    (AffineCoupling, "inverse", "fused"): coupling_inverse_fused,
    (AffineCoupling, "forward", "conditioner"): coupling_forward,
}
