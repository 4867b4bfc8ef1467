"""Base densities: the distribution of z at the end of a flow (MAF paper §2.2).

    log p(x) = log p_base(z) + log|det dz/dx|,    (z, log|det dz/dx|) = flow.inverse(x)

A base is an object with the same small protocol as a layer, without the map:

- ``D``, ``dtype``, ``calls`` (network passes, counted by the flow);
- ``init_params(rng) -> dict``: ``{}`` for a base without trainable numbers (then the flow's ``params`` has no
  entry for it; otherwise its parameters are the last entry of ``flow.params``);
- ``log_prob(params, z, y=None) -> (n,)`` and ``sample(params, n, rng, y=None) -> (n, D)``, ``y`` the context
  of a conditional base (ignored by the two here);
- ``config()`` (its constructor's arguments, for ``save``/``load``), ``get_state()``/``set_state(state)``.

:class:`StandardNormal` is every flow's default. :class:`Logistic` is NICE's prior (Dinh et al. 2015, §3.4).
The MADE MoG base of a MAF MoG is :class:`maf_numpy.mog.MADEMoGBase`.
"""

import autograd.numpy as np
import numpy as onp

from .densities import standard_normal_log_prob
from .npz import register_base_classes
from .validation import check_dtype, check_positive_int

__all__ = ["StandardNormal", "Logistic"]


class _FixedBase:
    """What a base without parameters or network shares: its size, dtype, pass counter, config and state."""

    def __init__(self, D, dtype="float64"):
        self.D = check_positive_int(D, "D")
        self.dtype = onp.dtype(check_dtype(dtype))
        self.calls = 0

    def init_params(self, rng):
        return {}

    def config(self):
        return {"D": self.D, "dtype": self.dtype.name}

    def get_state(self):
        return {}

    def set_state(self, state):
        pass

    def __repr__(self):
        return f"{type(self).__name__}(D={self.D})"


class StandardNormal(_FixedBase):
    """z ~ N(0, I): log N(z; 0, I) = -|z|^2 / 2 - (D/2) log(2 pi) (the MAF paper's base)."""

    def log_prob(self, params, z, y=None):
        """log N(z; 0, I), shape (n,)."""
        return standard_normal_log_prob(z)

    def sample(self, params, n, rng, y=None):
        """n draws, shape (n, D): drawn in float64 and cast, so both dtypes draw the same z from a seed."""
        return rng.standard_normal((n, self.D)).astype(self.dtype)


class Logistic(_FixedBase):
    """z_i ~ Logistic(0, 1), independently: the prior of NICE (Dinh, Krueger & Bengio 2015, §3.4).

        log p(z) = -sum_i (softplus(z_i) + softplus(-z_i)),    softplus(a) = log(1 + exp(a))

    Heavier tails than N(0, I). Sampling inverts the CDF: z = log(u) - log(1 - u), u ~ U(0, 1).
    """

    def log_prob(self, params, z, y=None):
        """-sum_i (softplus(z_i) + softplus(-z_i)), shape (n,); softplus written with logaddexp (no overflow)."""
        return -np.sum(np.logaddexp(0.0, z) + np.logaddexp(0.0, -z), axis=-1)

    def sample(self, params, n, rng, y=None):
        """n draws, shape (n, D), by the inverse CDF of uniform draws (float64, then cast)."""
        u = rng.uniform(size=(n, self.D))
        return (np.log(u) - np.log1p(-u)).astype(self.dtype)


register_base_classes(StandardNormal, Logistic)
