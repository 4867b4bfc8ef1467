"""Bijective layers: affine autoregressive (MAF, IAF), coupling (RealNVP, NICE), normalisation, linear mixing.

**Direction convention (read this once).** ``forward`` is *generative*, z -> x; ``inverse`` is
*normalising*, x -> z, as in the MAF paper (§3.1: x = f(u)), Bishop & Bishop ch. 18, TFP and Pyro.
(nflows uses the opposite words.) z is the base variable, the paper's u. Every map returns its output
and the log-determinant of *that* map::

    forward(params, z) -> (x, log|det dx/dz|)        inverse(params, x) -> (z, log|det dz/dx|)

The two log-dets are negatives of each other. Layers index the batch first: x, z of shape (n, D), log_det
of shape (n,).

| layer                  | mu_i, alpha_i from             | forward z -> x      | inverse x -> z    | module         |
| ---------------------- | ------------------------------ | ------------------- | ----------------- | -------------- |
| MAFLayer               | x_{<i}                         | D passes (MAF §3.1) | 1 pass (MAF §3.1) | autoregressive |
| IAFLayer               | z_{<i}                         | 1 pass (MAF §3.2)   | D passes          | autoregressive |
| AffineCoupling         | x_A = z_A                      | 1 pass (MAF §3.3)   | 1 pass            | coupling       |
|   scale=False          | x_A; alpha = 0 (NICE §3.2)     | 1 pass              | 1 pass            | coupling       |
| MADECoupling           | x_A, as a two-degree MADE      | 1 pass              | 1 pass            | coupling       |
| Standardize, BatchNorm | data statistics                | 0 passes            | 0 passes          | normalization  |
| ActNorm                | trained, from data (Glow §3.1) | 0 passes            | 0 passes          | normalization  |
| Permutation, Reverse   | none: z = x[:, order]          | 0 passes            | 0 passes          | linear         |
| LinearLU               | none: z = W x (Glow §3.2)      | 0 passes, a solve   | 0 passes          | linear         |

The affine maps themselves and the D-pass solver are in :mod:`~maf_numpy.transforms.affine`. Each layer
holds its structure (sizes, degrees, masks); its numbers are passed in as ``params``, a dict of arrays, so
that the methods are pure functions of ``(params, input)`` that autograd can differentiate. Nothing is
assigned in place. This package is the reference: a flow built with ``fast=False`` runs exactly these
methods; with ``fast=True`` (the default) :mod:`maf_numpy.fast` may run a kernel tested equal to them.
Lessons: ``lessons/04_...`` (one pass against D passes), ``lessons/06_...`` (IAF), ``lessons/07_...``
(coupling). The module column names the submodule of ``maf_numpy.transforms``.

Composing layers. ``maf_numpy.Flow(dim, layers, base=None, rng=None)`` stacks any of them (``layers[0]`` next to
the data), e.g. a Glow-style flow ``[ActNorm(2), LinearLU(2, rng=0), AffineCoupling(2, (32, 32)), ...]`` or NICE,
``[AffineCoupling(2, (32, 32), flip=k % 2 == 1, scale=False) for k in range(4)] + [ActNorm(2)]`` over
``bases.Logistic(2)``. Every class here is registered (``register_layer_classes``), so such a flow saves and
loads like the built-in ones. The layer protocol is in :class:`maf_numpy.Flow`'s docstring and the README.
"""

from ..npz import register_layer_classes
from .affine import (
    additive_forward,
    additive_inverse,
    affine_forward,
    affine_inverse,
    soft_clamp,
    solve_autoregressive,
)
from .autoregressive import AffineAutoregressive, IAFLayer, MADELayerBase, MAFLayer
from .coupling import AffineCoupling, MADECoupling
from .linear import LinearLU, Permutation, Reverse
from .normalization import ActNorm, BatchNorm, Standardize

__all__ = [
    "apply_layer", "affine_forward", "affine_inverse", "additive_forward", "additive_inverse", "solve_autoregressive",
    "soft_clamp",
    "MADELayerBase", "AffineAutoregressive", "MAFLayer", "IAFLayer",
    "AffineCoupling", "MADECoupling", "Standardize", "BatchNorm", "ActNorm", "Permutation", "Reverse", "LinearLU",
]


def apply_layer(layer, direction, params, v, y=None):
    """``layer.inverse(params, v)`` (``direction="inverse"``) or ``layer.forward(params, v)``; a conditional layer
    (``layer.context_dim > 0``) also gets its context y. Returns (output, log|det| of that map)."""
    if getattr(layer, "context_dim", 0):
        return getattr(layer, direction)(params, v, y)
    return getattr(layer, direction)(params, v)


register_layer_classes(MAFLayer, IAFLayer, AffineCoupling, MADECoupling, Standardize, BatchNorm, ActNorm, Permutation,
                       Reverse, LinearLU)
