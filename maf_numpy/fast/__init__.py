"""Speed, kept apart from the reference: every kernel here computes what a reference function computes.

The readable code is the product: :mod:`maf_numpy.made`, :mod:`maf_numpy.transforms` and
:func:`maf_numpy.optim.adam_step` read like the papers, and a flow built with ``fast=False`` runs exactly
them. With ``fast=True`` (the default) the flow asks :func:`select` here, in one place (``Flow.run``),
whether a kernel can do the same work faster; ``fit`` and ``fit_vi`` pick :func:`adam_step` the same way.

What is here, and the reference each piece replaces:

- ``made``: :func:`~maf_numpy.fast.made.made_pass` and ``made_pass_blocked``, for ``made.made_apply``: the
  whole MADE as one primitive with a hand-written backward pass; block-triangular products for wide MADEs.
- ``layers``: ``maf_normalise``, ``coupling_normalise``, ``normalise``, ``generate`` and ``signed_sum``, for
  ``MAFLayer.inverse``, ``AffineCoupling.inverse``, ``affine_inverse`` and ``affine_forward``; and
  ``iaf_fixed_point``, for autograd through an IAF's D passes (the implicit function theorem).
- ``solver``: ``solve_sliced``, for ``solve_autoregressive`` on plain arrays (MAF sampling, IAF density):
  the same D sequential steps with about one pass of arithmetic.
- ``chain``: ``flow_normalise``, for the flow's loop over ``layer.inverse``: one autograd node.
- ``adam``: ``adam_step``, for ``optim.adam_step``: chunked, bit for bit.

The rules: a kernel never gives a different answer (values, log-dets, gradients and pass counts agree with
the reference to rounding; ``tests/test_fast.py`` checks every kernel over every configuration the public
classes accept); a configuration a kernel cannot serve is declined here, and the reference runs; the
reference modules never import this package (``tests/test_module_graph.py``).
"""

from autograd.tracer import isbox

from ..transforms import AffineCoupling, IAFLayer, MAFLayer, apply_layer
from .adam import adam_step
from .chain import coupling_served, fused_layer, normalise_chain
from .layers import KERNELS
from .made import holds_boxes

__all__ = ["select", "layer_kernel", "adam_step", "KERNELS", "IMPLICIT_IAF_MIN_DIM"]

# The implicit-gradient IAF density (three extra forward passes of fixed cost) pays from D = 4 on: a 5-layer
# training step takes 0.55x the time at D = 8 but 1.4x at D = 2 (benchmarks/README.md).
IMPLICIT_IAF_MIN_DIM = 4
_SERVED = {(kind, direction) for kind, direction, _ in KERNELS}  # (exact layer type, direction) with a kernel


def layer_kernel(layer, direction, params, v, y=None):
    """The one decision: which kernel of :data:`KERNELS` replaces ``getattr(layer, direction)(params, v, y)``,
    or None when none applies and the reference method must run.

    - Exact types only: a subclass may override the method, so it keeps its own.
    - A plain dict of parameters that holds traced arrays (built inside a traced function) is declined: a
      primitive cannot see into it.
    - Untraced (params, v and y plain arrays): the degree-sliced solver for the D-pass directions; traced:
      the reference's D passes, each pass fused, or for an IAF density without context or clamp from
      ``IMPLICIT_IAF_MIN_DIM`` on, the implicit-gradient solve.
    - A MAF layer without context or clamp: its whole inverse as one primitive.
    - An affine coupling layer only in its default form (:func:`~maf_numpy.fast.chain.coupling_served`): an
      additive coupling (``scale=False``, NICE) or a clamped one (``alpha_clamp``) is declined.

    Every kernel serves any degrees (tied, skipped), widths, dtypes, contexts and clamps that the autoregressive
    layer classes accept; block-triangular products are chosen inside by size (``maf_numpy.fast.made``).
    """
    kind = type(layer)
    if (kind, direction) not in _SERVED or (not isbox(params) and holds_boxes(params)):
        return None
    if kind is AffineCoupling and not coupling_served(layer):
        return None  # an additive (NICE) or clamped coupling: its reference methods run
    traced = isbox(params) or isbox(v) or isbox(y)
    plain = getattr(layer, "context_dim", 0) == 0 and getattr(layer, "alpha_clamp", None) is None
    if (kind, direction) in ((MAFLayer, "inverse"), (AffineCoupling, "inverse")):
        variant = "fused" if plain else "conditioner"  # one pass: fused whole, or fused network + affine map
    elif (kind, direction) in ((IAFLayer, "forward"), (AffineCoupling, "forward")):
        variant = "conditioner"
    elif not traced:  # the D-pass directions: MAFLayer.forward, IAFLayer.inverse
        variant = "sliced"
    elif kind is IAFLayer and plain and layer.D >= IMPLICIT_IAF_MIN_DIM:
        variant = "implicit"
    else:
        variant = "steps"
    return KERNELS.get((kind, direction, variant))  # None: no kernel for this variant, the reference runs


def select(layers, direction, params, v, y=None):
    """A function ``run(layers, params, v, y) -> (v, log_det)`` that replaces the reference loop of
    ``Flow.run`` over ``layers`` (in list order for ``"inverse"``, reversed for ``"forward"``), or None when
    no kernel applies to any layer.

    The whole normalising direction runs as one primitive (:func:`maf_numpy.fast.chain.normalise_chain`) when
    every layer has a fused primitive, there is no context and ``params`` is a plain list of plain dicts or
    traced as a whole; otherwise each layer runs its :func:`layer_kernel`, or its reference method.
    """
    if (direction == "inverse" and y is None and all(fused_layer(layer) is not None for layer in layers)
            and (isbox(params) or not holds_boxes(params))):
        return normalise_chain
    pairs = list(zip(layers, params))
    if direction == "forward":
        pairs = pairs[::-1]
    if all(layer_kernel(layer, direction, p, v, y) is None for layer, p in pairs):
        return None
    return _layer_by_layer(direction)


def _layer_by_layer(direction):
    def run(layers, params, v, y=None):
        pairs = list(zip(layers, params))
        if direction == "forward":
            pairs = pairs[::-1]
        log_det = 0.0
        for layer, p in pairs:
            kernel = layer_kernel(layer, direction, p, v, y)
            if kernel is None:
                v, log_det_layer = apply_layer(layer, direction, p, v, y)
            else:
                v, log_det_layer = kernel(layer, p, v, y)
            log_det = log_det + log_det_layer
        return v, log_det

    return run
