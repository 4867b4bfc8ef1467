"""Bijective layers: affine autoregressive (MAF, IAF), affine coupling (RealNVP), standardisation, batch norm.

**Direction convention (read this once).** ``forward`` is *generative*, z -> x; ``inverse`` is
*normalising*, x -> z, as in the MAF paper (§3.1: x = f(u)), Bishop & Bishop ch. 18, TFP and Pyro.
(nflows uses the opposite words.) z is the base variable, the paper's u. Every map returns its output
and the log-determinant of *that* map::

    forward(params, z) -> (x, log|det dx/dz|)        inverse(params, x) -> (z, log|det dz/dx|)

The two log-dets are negatives of each other. Layers index the batch first: x, z of shape (n, D), log_det
of shape (n,).

| layer          | mu_i, alpha_i from | forward z -> x      | inverse x -> z      | module           |
| -------------- | ------------------ | ------------------- | ------------------- | ---------------- |
| MAFLayer       | x_{<i}             | D passes (MAF §3.1) | 1 pass (MAF §3.1)   | ``autoregressive`` |
| IAFLayer       | z_{<i}             | 1 pass (MAF §3.2)   | D passes            | ``autoregressive`` |
| AffineCoupling | x_A = z_A          | 1 pass (MAF §3.3)   | 1 pass              | ``coupling``     |
| MADECoupling   | the same, as a two-degree MADE | 1 pass  | 1 pass              | ``coupling``     |
| Standardize, BatchNorm | data statistics | 0 passes    | 0 passes            | ``normalization`` |

The affine maps themselves and the D-pass solver are in :mod:`~maf_numpy.transforms.affine`. Each layer
holds its structure (sizes, degrees, masks); its numbers are passed in as ``params``, a dict of arrays, so
that the methods are pure functions of ``(params, input)`` that autograd can differentiate. Nothing is
assigned in place. This package is the reference: a flow built with ``fast=False`` runs exactly these
methods; with ``fast=True`` (the default) :mod:`maf_numpy.fast` may run a kernel tested equal to them.
Lessons: ``lessons/04_...`` (one pass against D passes), ``lessons/06_...`` (IAF), ``lessons/07_...``
(coupling).
"""

from .affine import affine_forward, affine_inverse, soft_clamp, solve_autoregressive
from .autoregressive import AffineAutoregressive, IAFLayer, MADELayerBase, MAFLayer
from .coupling import AffineCoupling, MADECoupling
from .normalization import BatchNorm, Standardize

__all__ = [
    "apply_layer", "affine_forward", "affine_inverse", "solve_autoregressive", "soft_clamp",
    "MADELayerBase", "AffineAutoregressive", "MAFLayer", "IAFLayer",
    "AffineCoupling", "MADECoupling", "Standardize", "BatchNorm",
]


def apply_layer(layer, direction, params, v, y=None):
    """``layer.inverse(params, v)`` (``direction="inverse"``) or ``layer.forward(params, v)``; a conditional layer
    (``layer.context_dim > 0``) also gets its context y. Returns (output, log|det| of that map)."""
    if getattr(layer, "context_dim", 0):
        return getattr(layer, direction)(params, v, y)
    return getattr(layer, direction)(params, v)
