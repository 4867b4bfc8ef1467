"""Order-agnostic MADE: one network, K mask sets, trained one random mask set per step, used as an ensemble.

The MADE paper (Germain et al. 2015, §4, subsections "Order-agnostic training" and "Connectivity-agnostic
training"; the subsection numbers are not verified) trains one set of weights under many masks: each minibatch
draws an input ordering and the hidden units' degrees anew, so the same weights must model the data in every
ordering. At test time the paper averages the *probabilities* of several mask sets (an ensemble; see its
experiments). Here the K mask sets are drawn once, at construction, so that the model is a fixed, finite object
(it can be saved, loaded and evaluated exactly): mask set k has its own random order and random hidden degrees,
and all K share ONE parameter dict. Each mask set k defines a Gaussian MADE (MAF paper §3.1),

    log p_k(x) = sum_i log N(x_i | mu_i^k, exp(alpha_i^k)^2),   (mu^k, alpha^k) = MADE(x; params, masks_k),

and the model is their uniform mixture, whose log-density is a log-sum-exp:

    p(x) = (1/K) sum_k p_k(x),        log p(x) = logsumexp_k log p_k(x) - log K.

It averages probabilities, not log-probabilities (that would be a product of experts, not normalised) nor the
networks' outputs (an average of mu and alpha over masks is not autoregressive in any one order). Each p_k is
a density, so the mixture integrates to 1. A mixture is not one bijection: this flow has no ``inverse`` or
``forward`` of its own; each mask set does (``layer.inverse(params, x, k)``, ``layer.forward(params, z, k)``).

Training: :meth:`OrderAgnosticMADE.training_log_density` draws one mask set per step (the paper's per-minibatch
resampling, restricted to the K fixed sets); :func:`maf_numpy.train.fit` uses it for the training loss, with a
generator unique to each step (reproducible from the seed and on resume), and the ensemble ``log_prob`` for
validation. Sampling chooses a mask set uniformly per point, then samples that MADE
(D sequential passes).

References
----------
M. Germain, K. Gregor, I. Murray, H. Larochelle. MADE: Masked Autoencoder for Distribution Estimation.
ICML 2015, arXiv:1502.03509. G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density
Estimation. NeurIPS 2017, arXiv:1705.07057.
"""

import math

import autograd.numpy as np
import numpy as onp

from .building import ACTIVATION_NAMES
from .densities import logsumexp, standard_normal_log_prob
from .flow import Flow
from .masks import make_order
from .npz import register_flow_classes
from .transforms import MAFLayer, Standardize
from .validation import (
    as_generator,
    check_bool,
    check_choice,
    check_data,
    check_dtype,
    check_hidden,
    check_positive_int,
    warn_if_not_finite,
)

__all__ = ["MaskEnsembleLayer", "OrderAgnosticMADE"]


class MaskEnsembleLayer:
    """K Gaussian MADE layers (:class:`~maf_numpy.transforms.MAFLayer`) with different masks and ONE parameter dict.

    Mask set k has a random order and random hidden degrees (MADE §4, "Order-agnostic training" and
    "Connectivity-agnostic training"), drawn once from ``rng``. ``inverse(params, x, k)`` and
    ``forward(params, z, k)`` are those of mask set k's MAF layer (one pass, and D passes).

    Parameters
    ----------
    D : int
    hidden : tuple of int
    num_masks : int
        K, the number of mask sets.
    activation : {"relu", "tanh"}
    rng : numpy.random.Generator
        Draws, for k = 0, ..., K - 1 in turn, the order of mask set k and then its hidden degrees.
    dtype : {"float64", "float32"}

    Attributes
    ----------
    made_layers : list of K MAFLayer
        Their ``degrees``, ``masks`` and ``order``; they share the parameters passed to the methods.
    """

    def __init__(self, D, hidden, num_masks, activation="relu", rng=None, dtype="float64"):
        rng = as_generator(rng)
        self.D = D
        self.num_masks = num_masks
        self.made_layers = [MAFLayer(D, hidden, make_order(D, "random", rng), "random", activation, rng,
                                     dtype=dtype) for _ in range(num_masks)]
        self.dtype = self.made_layers[0].dtype

    @property
    def orders(self):
        """The K orders, shape (K, D): ``orders[k][0]`` is the variable mask set k generates first."""
        return onp.stack([layer.order for layer in self.made_layers])

    @property
    def calls(self):
        """MADE passes so far, over all mask sets (the flow resets and reads it to count passes)."""
        return sum(layer.calls for layer in self.made_layers)

    @calls.setter
    def calls(self, value):
        for layer in self.made_layers:
            layer.calls = value

    def init_params(self, rng):
        """One parameter dict for all K mask sets (every mask set has the same shapes)."""
        return self.made_layers[0].init_params(rng)

    def conditioner(self, params, x, k):
        """(mu, alpha) of mask set k at x, each (n, D): one masked pass."""
        return self.made_layers[k].conditioner(params, x)

    def inverse(self, params, x, k):
        """Normalise with mask set k, x -> z, one pass (MAF §3.1). Returns (z, log|det dz/dx|)."""
        return self.made_layers[k].inverse(params, x)

    def forward(self, params, z, k):
        """Generate with mask set k, z -> x, D passes (MAF §3.1). Returns (x, log|det dx/dz|)."""
        return self.made_layers[k].forward(params, z)

    def get_state(self):
        """``{"mask_<k>/degrees_<l>": m}``: every mask set's degrees (io keeps the last name, ``degrees_<l>``,
        for its checks)."""
        return {f"mask_{k}/{name}": value for k, layer in enumerate(self.made_layers)
                for name, value in layer.get_state().items()}

    def set_state(self, state):
        for k, layer in enumerate(self.made_layers):
            prefix = f"mask_{k}/"
            layer.set_state({name[len(prefix):]: value for name, value in state.items() if name.startswith(prefix)})

    def __repr__(self):
        return (f"MaskEnsembleLayer(D={self.D}, hidden={self.made_layers[0].network.hidden}, "
                f"num_masks={self.num_masks})")


class OrderAgnosticMADE(Flow):
    """A uniform mixture of K Gaussian MADEs that share their weights: MADE §4, order- and connectivity-agnostic.

        log p(x) = logsumexp_k log p_k(x) - log K,    p_k: the Gaussian MADE with mask set k (MAF §3.1)

    Parameters
    ----------
    dim : int
        Data dimension D.
    hidden : tuple of int
        Hidden widths of the shared MADE.
    num_masks : int
        K, the number of mask sets (each: a random order and random hidden degrees, drawn once).
    activation : {"relu", "tanh"}
    standardize : bool
        Put a :class:`~maf_numpy.transforms.Standardize` layer next to the data (fitted by ``fit``).
    rng : int, numpy.random.Generator or None
        Draws the K mask sets first, then the initial parameters.
    dtype : {"float64", "float32"}

    Attributes
    ----------
    num_masks : int
    orders : ndarray of int, shape (K, D)
        ``orders[k]``: the variables in mask set k's generation order.
    made_layer : MaskEnsembleLayer
        The K mask sets (``made_layer.made_layers[k].degrees``, ``.masks``).
    """

    def __init__(self, dim, hidden=(64, 64), num_masks=8, activation="relu", standardize=True, rng=None,
                 dtype="float64", fast=True):
        dim = check_positive_int(dim, "dim")
        hidden = check_hidden(hidden)
        num_masks = check_positive_int(num_masks, "num_masks")
        check_choice(activation, ACTIVATION_NAMES, "activation")
        standardize = check_bool(standardize, "standardize")
        dtype = check_dtype(dtype)
        rng = as_generator(rng)
        layers = ([Standardize(dim, dtype)] if standardize else []) + [
            MaskEnsembleLayer(dim, hidden, num_masks, activation, rng, dtype)
        ]
        config = {"dim": dim, "hidden": hidden, "num_masks": num_masks, "activation": activation,
                  "standardize": standardize, "dtype": dtype}
        super().__init__(dim, layers, rng=rng, fast=fast, dtype=dtype, config=config)
        self.num_masks = num_masks

    @property
    def made_layer(self):
        """The :class:`MaskEnsembleLayer` holding the K mask sets."""
        return self.layers[-1]

    @property
    def orders(self):
        return self.made_layer.orders

    # --- pure functions of (params, x) -------------------------------------------------------------
    def _standardize(self, params, x):
        """x through the layers before the MADE (the Standardize layer, if any): (x, log|det|), (n, D), (n,)."""
        return self.run("inverse", params[:-1], x, layers=self.layers[:-1])

    def _mask_inverse(self, params, u, k):
        """Mask set k's MADE layer, u -> z (one pass): ``made_layer.inverse(params[-1], u, k)``, through
        :meth:`Flow.run` so that ``flow.fast`` applies to it."""
        return self.run("inverse", [params[-1]], u, layers=[self.made_layer.made_layers[k]])

    def _log_prob_mask(self, params, x, k):
        """log p_k(x) of mask set k, shape (n,): one MADE pass."""
        u, log_det = self._standardize(params, x)
        z, log_det_made = self._mask_inverse(params, u, k)
        return standard_normal_log_prob(z) + log_det_made + log_det

    def _log_prob_per_mask(self, params, x, y=None):
        """log p_k(x) for every mask set, shape (n, K): K MADE passes (``y``: no context, always None)."""
        u, log_det = self._standardize(params, x)
        columns = []
        for k in range(self.num_masks):
            z, log_det_made = self._mask_inverse(params, u, k)
            columns.append(standard_normal_log_prob(z) + log_det_made)
        return np.stack(columns, axis=1) + log_det[:, None]

    def log_density(self, params, x, y=None):
        """The ensemble, log (1/K) sum_k p_k(x) = logsumexp_k log p_k(x) - log K, shape (n,) (``y``: None)."""
        # math.log gives a Python float, which keeps a float32 flow in float32 (np.log would give float64)
        return logsumexp(self._log_prob_per_mask(params, x), axis=1) - math.log(self.num_masks)

    def training_log_density(self, params, x, rng):
        """The training objective of one step: log p_k(x) for ONE mask set k drawn uniformly from ``rng``.

        The MADE paper's order-agnostic (and connectivity-agnostic) training resamples the masks for every
        minibatch; ``fit`` calls this once per Adam step with a generator unique to the step, so the mask
        sequence is reproducible from the seed (and on resume). Shape (n,).
        """
        k = int(rng.integers(self.num_masks))
        return self._log_prob_mask(params, x, k)

    # --- public methods ------------------------------------------------------------------------------
    def log_prob_per_mask(self, x, params=None):
        """log p_k(x) of each mask set k, shape (n, K); ``log_prob`` is their log-mean-exp."""
        x = self._cast(check_data(x, self.dim, "x"))
        params = self._params(params)
        with self._counting_passes():
            log_prob = self._log_prob_per_mask(params, x)
        log_prob = np.where(np.isnan(log_prob), -np.inf, log_prob)
        return warn_if_not_finite(log_prob, "log_prob_per_mask")

    def sample(self, n, rng=None, params=None):
        """Draw n points from the mixture: k ~ uniform{0..K-1} per point, z ~ N(0, I), x = forward_k(z).

        The n mask indices are drawn first, then z of shape (n, D) (in float64, then cast), both from ``rng``.
        Each mask set in use samples its points in D sequential passes. Not differentiable (the points are
        gathered by index assignment). Returns an array of shape (n, D) in the flow's dtype.
        """
        n = check_positive_int(n, "n")
        rng = as_generator(rng)
        params = self._params(params)
        k = rng.integers(self.num_masks, size=n)
        z = self._cast(rng.standard_normal((n, self.dim)))
        x = onp.zeros((n, self.dim), dtype=self.dtype)
        with self._counting_passes():
            for j in onp.unique(k):
                x[k == j] = self.run("forward", [params[-1]], z[k == j], layers=[self.made_layer.made_layers[j]])[0]
            x = self.run("forward", params[:-1], x, layers=self.layers[:-1])[0]
        return warn_if_not_finite(x, "sample", "the base draws z")

    def _not_a_bijection(self, *args, **kwargs):
        raise NotImplementedError(
            "an OrderAgnosticMADE is a mixture of K MADEs, not one bijection: it has no inverse or forward map. "
            "Use log_prob, log_prob_per_mask and sample, or one mask set's map: "
            "flow.made_layer.inverse(flow.params[-1], x, k)")

    inverse = forward = trace_inverse = trace_forward = _not_a_bijection


register_flow_classes(OrderAgnosticMADE)
