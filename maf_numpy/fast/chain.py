"""A flow's whole normalising direction as one autograd primitive (MAF paper §2.2: the log-dets add up).

Layer by layer, autograd records per layer a look-up in the parameter list (whose backward pass fills a zero
copy of the whole list: every parameter of every layer, on every step), two output look-ups and a log-det sum;
one node for the whole direction removes all of them. :func:`flow_normalise` runs each layer's fused
primitive in turn (:func:`maf_numpy.fast.layers.maf_normalise`, :func:`~maf_numpy.fast.layers.coupling_normalise`,
Standardize's map) and sums the log-dets from zero in layer order: the same numbers as the reference loop
``Flow.run`` over ``layer.inverse``. :func:`maf_numpy.fast.select` uses it when every layer has a fused
primitive (:func:`fused_layer`) and there is no context.
"""

import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp_argnums, primitive
from autograd.tracer import getval

from ..transforms import AffineCoupling, MAFLayer, Standardize
from .layers import (
    coupling_normalise,
    coupling_normalise_vjp,
    maf_normalise,
    maf_normalise_vjp,
    traced,
    vjp_by_autograd,
)

__all__ = ["coupling_served", "fused_layer", "normalise_chain", "flow_normalise"]


def coupling_served(layer):
    """Whether the coupling kernels (:func:`~maf_numpy.fast.layers.coupling_normalise`, ``coupling_forward``)
    compute ``layer``'s map: only the default affine, unclamped coupling. They have no additive form
    (``scale=False``, whose parameters have no alpha head) and no clamp, so those are declined."""
    return layer.scale and layer.alpha_clamp is None


def fused_layer(layer):
    """The fused primitive and its backward-pass maker for ``layer.inverse``, with the structure argument it
    takes, or None when the layer has none here (a context, a clamp, batch norm, an additive coupling, another
    class; a subclass, which may override ``inverse``)."""
    if type(layer) is MAFLayer and layer.context_dim == 0 and layer.alpha_clamp is None:
        return maf_normalise, maf_normalise_vjp, layer.network
    if type(layer) is AffineCoupling and coupling_served(layer):
        return coupling_normalise, coupling_normalise_vjp, layer
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


def normalise_chain(layers, params, x, y=None):
    """The kernel of a whole normalising direction: z after all the layers and the summed log-det, as one
    autograd node (:func:`flow_normalise`). Counts one pass per MADE or coupling layer, as their own
    ``inverse`` does. (``y``: always None here; the dispatch declines a context.)"""
    for layer in layers:
        if type(layer) is MAFLayer:
            layer.network.calls += 1
        elif type(layer) is AffineCoupling:
            layer.calls += 1
    out = flow_normalise(params, x, tuple(layers), getval(x).dtype, [])
    return out[0], out[1]


@primitive
def flow_normalise(params, x, layers, dtype, saved):
    """The normalising direction of a flow, x -> z, as one autograd primitive: each layer's fused primitive
    (:func:`maf_normalise`, :func:`coupling_normalise`, Standardize's map) in turn, the log-dets summed from
    zero in layer order, the same numbers as ``Flow._inverse`` running ``layer.inverse`` layer by layer.
    Returns ``(z, log_det)``; each layer's input, output and saved pass go to the fresh list ``saved``.

    Layer by layer, autograd records per layer a look-up in the parameter list (whose backward pass fills a
    zero copy of the whole list: every parameter of every layer, on every step), two output look-ups and
    a log-det sum; one node for the whole direction removes all of them."""
    log_det = onp.zeros(x.shape[0], dtype=dtype)
    for layer, p in zip(layers, params):
        fused, _, structure = fused_layer(layer)
        layer_saved = []
        z, log_det_layer = fused(p, x, structure, layer_saved)
        saved.append((x, z, log_det_layer, layer_saved))
        log_det = log_det + log_det_layer
        x = z
    return x, log_det


def flow_normalise_vjp(argnums, ans, args, kwargs):
    """Backward pass of :func:`flow_normalise`: each layer's own backward pass, last layer first; the
    gradient of the summed log-det reaches every layer unchanged. When the backward pass is itself traced (a
    second derivative) autograd differentiates the layer-by-layer chain of fused primitives instead, whose
    backward passes handle that case."""
    params, x, layers, dtype, saved = args

    def chain(p, v):
        log_det = np.zeros(v.shape[0], dtype=dtype)
        for layer, p_layer in zip(layers, p):
            fused, _, structure = fused_layer(layer)
            v, log_det_layer = fused(p_layer, v, structure, [])
            log_det = log_det + log_det_layer
        return v, log_det

    def vjp(g):
        g_z, g_log_det = g[0], g[1]
        if traced(g_z, g_log_det, params, x, ans[0]):
            return vjp_by_autograd(chain, argnums, args, g_z, g_log_det)
        grads = [None] * len(layers)
        for k in range(len(layers) - 1, -1, -1):
            _, make_vjp_k, structure = fused_layer(layers[k])
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


defvjp_argnums(flow_normalise, flow_normalise_vjp)
