"""MADE MoG and MAF MoG: autoregressive conditionals that are mixtures of Gaussians (MAF paper §2, §3, Table 1).

A MADE MoG replaces each Gaussian conditional of a MADE by a mixture of C Gaussians,

    p(x_i | x_{1:i-1}) = sum_c w_ic N(x_i | mu_ic, (exp alpha_ic)^2),
    (mu_i, alpha_i, log w_i) = MADE(x_{1:i-1}),   each of shape (C,) per dimension,

so a single conditional can be multimodal, which an affine MAF layer can only approximate by stacking.
The network is the Gaussian MADE's (the same degrees and masks, :class:`maf_numpy.made.MADENetwork`)
with three output heads of D * C units each: ``mu``, ``alpha`` (log-standard deviation) and the mixture
logits, normalised by a log-softmax over the C components. Every output unit of dimension i carries the
output mask's column i, repeated C times, so all C components of p(x_i | ...) see the same inputs.

    log p(x) = sum_i logsumexp_c (log w_ic + log N(x_i | mu_ic, exp(alpha_ic)^2))

is computed with log-sum-exp: only differences from the largest term are exponentiated.
Sampling takes D sequential passes in degree order: pass k picks a component for the coordinate of degree
k from its weights, then draws that component's Gaussian.

A MAF MoG is a MAF whose base density is a MADE MoG instead of N(0, I) (MAF paper §3, "MAF MoG"):

    log p(x) = log p_MoG(z) + log|det dz/dx|,    (z, log|det dz/dx|) = inverse(x)

Both are :class:`maf_numpy.flows.Flow` subclasses whose base density (``flow.base``) is a :class:`MADEMoGBase`
instead of N(0, I), so ``fit``, ``save``/``load``, the Standardize layer, ``params`` (one dict per layer, then
the base's) and pass counting work as for MAF. ``log_prob`` takes K + 1 network passes (K MAF layers and the
base), ``sample`` K * D + D.

Parameters of one MADE MoG with ``hidden=(H_1, ..., H_L)`` and C components::

    {"W": [W_1, ..., W_L], "b": [b_1, ..., b_L],        # as in a Gaussian MADE
     "W_mu": (H_L, D * C), "b_mu": (D * C,),            # column i * C + c: component c of dimension i
     "W_alpha": (H_L, D * C), "b_alpha": (D * C,),
     "W_logit": (H_L, D * C), "b_logit": (D * C,)}

References
----------
G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017,
arXiv:1705.07057 (§2: MADE MoG; §3 and Table 1: MAF MoG). M. Germain, K. Gregor, I. Murray, H. Larochelle.
MADE: Masked Autoencoder for Distribution Estimation. ICML 2015.
"""

import autograd.numpy as np
import numpy as onp
from autograd.tracer import getval

from .building import check_common, check_context_dim, layer_orders, optional_config, standardize_layers
from .conditional import ConditionalMixin
from .densities import LOG_2PI, logsumexp
from .flow import Flow
from .made import MADENetwork, init_made_params, made_hidden, masked_dense
from .masks import HIDDEN_DEGREE_MODES, make_order
from .npz import register_base_classes, register_flow_classes
from .transforms import MADELayerBase, MAFLayer, solve_autoregressive
from .validation import as_generator, check_choice, check_positive_int

__all__ = ["mog_apply", "mog_log_prob", "mog_sample_step", "MADEMoGNetwork", "MADEMoGBase", "MADEMoG", "MAFMoG",
           "ConditionalMAFMoG"]

HEADS = ("mu", "alpha", "logit")
# Spread of the components' initial means. The authors' code draws them from N(0, 1); on the Figure 1 toy
# (demo settings, 5 seeds) 0.1 left MAF MoG 0.0004 nats behind MAF on average instead of 0.0012, and MADE MoG
# unchanged within noise: a base that starts near N(0, I) lets MAF MoG start where MAF starts.
MU_SPREAD = 0.1


def mog_apply(params, x, masks, head_mask, C, activation="relu"):
    """Compute every conditional's mixture parameters in one masked pass (MAF §2, MADE MoG).

        h_l = act(h_{l-1} @ (M_l * W_l) + b_l),     head = h_L @ (M_V' * W_head) + b_head,
        log w = logit - logsumexp_c(logit)           (log-softmax over the C components)

    where M_V' repeats each column of the output mask C times.

    Parameters
    ----------
    params : dict
        See the module docstring.
    x : ndarray of shape (n, D), or (n, D + C_y) for a conditional MADE MoG: ``[x, y]`` (MAF §3.4)
    masks : list of ndarray
        The L + 1 masks of a Gaussian MADE with the same degrees; the hidden layers use the first L.
    head_mask : ndarray of shape (H_L, D * C)
        The output mask with every column repeated C times (:attr:`MADEMoGNetwork.head_mask`).
    C : int
        Number of mixture components.
    activation : {"relu", "tanh"}

    Returns
    -------
    mu, alpha, log_w : ndarray of shape (n, D, C)
        Means, log-standard deviations and log mixture weights (``logsumexp(log_w, axis=-1) == 0``).
        With MADE masks, entry ``[:, i, :]`` depends only on the inputs of lower degree than input i.
    """
    # The Gaussian MADE's hidden layers, unchanged: a context y enters as extra inputs of degree 0 in the first
    # layer and reaches every head.
    h = made_hidden(params, x, masks, activation)  # (n, H_L)
    n, D = x.shape[0], head_mask.shape[1] // C
    mu, alpha, logit = (masked_dense(h, params["W_" + head], params["b_" + head], head_mask).reshape(n, D, C)
                        for head in HEADS)
    log_w = logit - logsumexp(logit, axis=-1, keepdims=True)  # log-softmax: no exp of a large number
    return mu, alpha, log_w


def mog_log_prob(x, mu, alpha, log_w):
    """Log-density of x under the mixture conditionals, summed over dimensions (MAF §2, MADE MoG).

        log p(x) = sum_i logsumexp_c (log w_ic - (x_i - mu_ic)^2 exp(-2 alpha_ic) / 2 - alpha_ic - log(2 pi) / 2)

    Parameters
    ----------
    x : ndarray of shape (n, D)
    mu, alpha, log_w : ndarray of shape (n, D, C)
        From :func:`mog_apply`.

    Returns
    -------
    ndarray of shape (n,)
    """
    u = (x[:, :, None] - mu) * np.exp(-alpha)  # (n, D, C): standardised distance to each component
    log_joint = log_w - 0.5 * u**2 - alpha - 0.5 * LOG_2PI  # log w_ic + log N(x_i | mu_ic, exp(alpha_ic)^2)
    return np.sum(logsumexp(log_joint, axis=-1), axis=-1)


def mog_sample_step(mu, alpha, log_w, u, epsilon):
    """Draw every coordinate from its mixture conditional, given the noise (one step of MADE MoG sampling).

        c_i = the component whose cumulative weight first exceeds u_i,    x_i = mu_{i c_i} + exp(alpha_{i c_i}) eps_i

    The choice of component is piecewise constant in the parameters (autograd does not differentiate it);
    the Gaussian draw is differentiable. Only the chosen component's alpha is exponentiated.

    Parameters
    ----------
    mu, alpha, log_w : ndarray of shape (n, D, C)
    u : ndarray of shape (n, D)
        Uniform(0, 1) draws that choose the components.
    epsilon : ndarray of shape (n, D)
        Standard normal draws.

    Returns
    -------
    x : ndarray of shape (n, D)
    """
    cdf = onp.cumsum(onp.exp(getval(log_w)), axis=-1)  # (n, D, C); not differentiated
    c = onp.sum(cdf[..., :-1] < u[..., None], axis=-1)  # (n, D): inverse-CDF draw of the component
    one_hot = onp.arange(mu.shape[-1]) == c[..., None]  # (n, D, C)
    mu_c = np.sum(np.where(one_hot, mu, 0.0), axis=-1)
    alpha_c = np.sum(np.where(one_hot, alpha, 0.0), axis=-1)
    return mu_c + np.exp(alpha_c) * epsilon


class MADEMoGNetwork(MADENetwork):
    """Structure of a MADE MoG network: a Gaussian MADE's degrees and masks, and C components per output.

    Degrees and masks are built by :class:`maf_numpy.made.MADENetwork` (same arguments, same numbers for the
    same seed); this class adds the repeated output mask and the three mixture heads.

    Parameters
    ----------
    D, hidden, order, hidden_degrees, activation, rng, degrees, dtype
        As in :class:`maf_numpy.made.MADENetwork`.
    components : int
        Number of mixture components C.

    Attributes
    ----------
    C : int
    head_mask : ndarray of shape (H_L, D * C)
        The output mask ``masks[-1]`` with each column repeated C times.
    """

    def __init__(self, D, hidden, components=10, order="sequential", hidden_degrees="sequential",
                 activation="relu", rng=None, degrees=None, dtype="float64", context_dim=0):
        self.C = components
        super().__init__(D, hidden, order, hidden_degrees, activation, rng, degrees, dtype, context_dim)

    def set_degrees(self, degrees):
        """Install degrees, build the masks (:meth:`MADENetwork.set_degrees`) and the repeated output mask."""
        super().set_degrees(degrees)
        # Column i * C + c is component c of dimension i: it sees what output i of the Gaussian MADE sees.
        self.head_mask = onp.repeat(self.masks[-1], self.C, axis=1)

    def init_params(self, rng, output_scale=0.1):
        """Fresh parameters: the Gaussian MADE's initialisation with D * C outputs per head, plus a logit head.

        The biases of ``mu`` are drawn from N(0, MU_SPREAD^2), so the C components start at different places:
        with equal biases, the components of the first dimension (which sees no input) would get equal
        gradients and never separate. ``alpha`` and the logits start near zero (unit widths, equal weights),
        so a fresh MADE MoG is close to N(0, I) and a fresh MAF MoG close to a fresh MAF.
        """
        DC = self.D * self.C
        params = init_made_params(self.D + self.context_dim, self.hidden, DC, rng, output_scale, self.dtype)
        H_L = ([self.D + self.context_dim, *self.hidden])[-1]
        params["b_mu"] = (MU_SPREAD * rng.standard_normal(DC)).astype(self.dtype)
        params["W_logit"] = rng.normal(0.0, output_scale / onp.sqrt(H_L), size=(H_L, DC)).astype(self.dtype)
        params["b_logit"] = onp.zeros(DC, dtype=self.dtype)
        return params

    def __call__(self, params, x, y=None):
        """One masked pass: ``(mu, alpha, log_w) = mog_apply(params, x)``, each of shape (n, D, C); a
        conditional network reads ``[x, y]``."""
        self.calls += 1
        return mog_apply(params, self.inputs(x, y), self.masks, self.head_mask, self.C, self.activation)

    def __repr__(self):
        return f"MADEMoGNetwork(D={self.D}, hidden={self.hidden}, components={self.C}, order={self.order.tolist()})"


class MADEMoGBase(MADELayerBase):
    """A MADE MoG as a flow's base density (``flow.base``; see the module docstring and :mod:`maf_numpy.bases`).

    Its parameters are the flow's last ``params`` entry, its degrees are saved with the flow, and its network
    passes are the last entry of ``flow.passes_per_layer``. Its density and sampler are :meth:`log_prob` and
    :meth:`sample`.

    Parameters
    ----------
    D, hidden, components, order, hidden_degrees, activation, rng, dtype
        As in :class:`MADEMoGNetwork`.
    degrees : list of ndarray or None
        Explicit degrees, overriding ``order`` and ``hidden_degrees`` (``load`` of a composed flow).
    """

    def __init__(self, D, hidden=(64, 64), components=10, order="sequential", hidden_degrees="sequential",
                 activation="relu", rng=None, dtype="float64", context_dim=0, degrees=None):
        self.D = D
        self.context_dim = context_dim
        self.network = MADEMoGNetwork(D, hidden, components, order, hidden_degrees, activation, rng, degrees,
                                      dtype=dtype, context_dim=context_dim)

    def config(self):
        """The constructor's keyword arguments, degrees included (``save``/``load`` of a composed flow)."""
        options = {"context_dim": self.context_dim} if self.context_dim else {}
        return {"D": self.D, "hidden": list(self.network.hidden), "components": self.network.C,
                "degrees": [m.tolist() for m in self.degrees], "activation": self.network.activation,
                "dtype": self.dtype.name, **options}

    def conditionals(self, params, z, y=None):
        """(mu, alpha, log_w) of the mixture conditionals at z (given the context y of a conditional base),
        each (n, D, C): one network pass."""
        return self.network(params, z, y)

    def log_prob(self, params, z, y=None):
        """log p_MoG(z) (or log p_MoG(z | y)), shape (n,), in one network pass (:func:`mog_log_prob`)."""
        return mog_log_prob(z, *self.network(params, z, y))

    def sample(self, params, n, rng, y=None):
        """Draw n points, shape (n, D), in D sequential passes (MAF §2: ancestral sampling).

        All the noise is drawn first, in float64 (n x D uniforms that choose the components, then n x D
        standard normals), so the draw is reproducible from ``rng`` and the same for both dtypes. Pass k
        evaluates the network at the current z, whose coordinates of degree < k are already exact, and
        makes the coordinate of degree k exact (:func:`maf_numpy.transforms.solve_autoregressive`).
        """
        u = rng.uniform(size=(n, self.D))
        epsilon = rng.standard_normal((n, self.D)).astype(self.dtype)
        zero_log_det = np.zeros(n, dtype=self.dtype)

        def step(z):
            return mog_sample_step(*self.network(params, z, y), u, epsilon), zero_log_det

        return solve_autoregressive(step, self.D, (n, self.D), self.network.degrees[0], self.dtype)[0]

    def __repr__(self):
        return (f"MADEMoGBase(D={self.D}, hidden={self.network.hidden}, components={self.network.C}, "
                f"order={self.order.tolist()})")


class _MixtureBase:
    """What the flows whose base is a :class:`MADEMoGBase` add: the base's conditionals at x."""

    def conditionals(self, x, params=None):
        """(mu, alpha, log_w) of the base's mixture conditionals at x, each (n, D, C).

        They are those of z = inverse(x), the base's own coordinates (after the Standardize layer and, in a
        MAF MoG, the MAF layers): one network pass per layer.
        """
        return self._conditionals(x, None, params)

    def _conditionals(self, x, y, params):
        return self._outputs_after(len(self.layers), x, y, params, self.base.conditionals)


def _check_components(components):
    return check_positive_int(components, "components")


class MADEMoG(_MixtureBase, Flow):
    """A MADE whose conditionals are mixtures of C Gaussians, used as a density (MAF paper §2, "MADE MoG").

        log p(x) = sum_i log sum_c w_ic N(x_i | mu_ic, exp(alpha_ic)^2),   (mu_i, alpha_i, w_i) = MADE(x_{<i})

    ``log_prob`` is one network pass; ``sample`` D sequential passes. ``params`` is
    ``[{}, mog_params]`` with a Standardize layer, ``[mog_params]`` without.

    Parameters
    ----------
    dim : int
    hidden : tuple of int
    components : int
        Number of mixture components C per conditional (the MAF paper uses 10).
    order : {"sequential", "reversed", "random"} or a permutation of range(dim)
    hidden_degrees : {"sequential", "random"}
    activation : {"relu", "tanh"}
    standardize : bool
        Put a :class:`~maf_numpy.transforms.Standardize` layer next to the data (fitted by ``fit``).
    rng : int, numpy.random.Generator or None
    dtype : {"float64", "float32"}

    Attributes
    ----------
    degrees, masks : lists of ndarray
        The MADE's degrees and masks (the same as a Gaussian MADE's with the same arguments).
    """

    def __init__(self, dim, hidden=(64, 64), components=10, order="sequential", hidden_degrees="sequential",
                 activation="relu", standardize=True, rng=None, dtype="float64", fast=True):
        dim, _, hidden, dtype = check_common(dim, 1, hidden, activation, dtype)
        components = _check_components(components)
        check_choice(hidden_degrees, HIDDEN_DEGREE_MODES, "hidden_degrees")
        rng = as_generator(rng)
        made_order = make_order(dim, order, rng)
        base = MADEMoGBase(dim, hidden, components, made_order, hidden_degrees, activation, rng, dtype=dtype)
        config = {"dim": dim, "hidden": hidden, "components": components, "order": made_order.tolist(),
                  "hidden_degrees": hidden_degrees, "activation": activation, "standardize": standardize,
                  "dtype": dtype}
        super().__init__(dim, standardize_layers(dim, standardize, dtype), base=base, rng=rng, fast=fast,
                         dtype=dtype, config=config)

    @property
    def degrees(self):
        return self.base.degrees

    @property
    def masks(self):
        return self.base.masks


class MAFMoG(_MixtureBase, Flow):
    """A MAF whose base density is a MADE MoG instead of N(0, I) (MAF paper §3, Table 1, "MAF MoG").

        log p(x) = log p_MoG(z) + log|det dz/dx|,    (z, log|det dz/dx|) = inverse(x) through K MAF layers

    ``log_prob`` takes K + 1 network passes; ``sample`` K * D + D (D for the base, then D per MAF layer).

    Parameters
    ----------
    dim : int
    num_layers : int
        Number of MAF layers K (the base comes on top).
    hidden : tuple of int
        Hidden widths of every MADE, the base's included.
    components : int
        Number of mixture components C of the base's conditionals.
    orders : {"alternate", "random", "sequential", "reversed"} or list of K + 1 permutations
        Orderings of the K MAF layers and then of the base, which continues the pattern as an extra layer
        (with ``"alternate"`` it reverses the last MAF layer's ordering, as the authors' code does); see
        :func:`maf_numpy.flows.layer_orders`.
    hidden_degrees, activation, standardize, rng, dtype
        As in :class:`maf_numpy.flows.MAF`.
    """

    def __init__(self, dim, num_layers=5, hidden=(64, 64), components=10, orders="alternate",
                 hidden_degrees="sequential", activation="relu", standardize=True, rng=None, dtype="float64",
                 context_dim=0, fast=True):
        dim, num_layers, hidden, dtype = check_common(dim, num_layers, hidden, activation, dtype)
        components = _check_components(components)
        check_choice(hidden_degrees, HIDDEN_DEGREE_MODES, "hidden_degrees")
        rng = as_generator(rng)
        order_list = layer_orders(dim, num_layers + 1, orders, rng)  # the base is one more autoregressive layer
        layers = standardize_layers(dim, standardize, dtype) + [
            MAFLayer(dim, hidden, order, hidden_degrees, activation, rng, dtype=dtype, context_dim=context_dim)
            for order in order_list[:-1]
        ]
        base = MADEMoGBase(dim, hidden, components, order_list[-1], hidden_degrees, activation, rng, dtype=dtype,
                           context_dim=context_dim)
        config = {"dim": dim, "num_layers": num_layers, "hidden": hidden, "components": components,
                  "orders": [order.tolist() for order in order_list], "hidden_degrees": hidden_degrees,
                  "activation": activation, "standardize": standardize, "dtype": dtype,
                  **optional_config(context_dim=context_dim)}
        super().__init__(dim, layers, base=base, rng=rng, fast=fast, dtype=dtype, config=config)


class ConditionalMAFMoG(ConditionalMixin, MAFMoG):
    """A MAF MoG of p(x | y): the K MADEs and the MADE MoG base all read the context y (MAF paper §3.4).

    ``ConditionalMAFMoG(dim, context_dim, num_layers=5, hidden=(64, 64), components=10, ...)``; the other
    arguments are :class:`MAFMoG`'s, the methods those of :class:`maf_numpy.conditional.ConditionalMAF`
    (``log_prob(x, y)``, ``sample(n, y)``, ``fit(x_train, y_train, ...)``, ``class_log_posterior``), and
    ``conditionals(x, y)`` gives the base's mixture conditionals.
    """

    def __init__(self, dim, context_dim, num_layers=5, hidden=(64, 64), components=10, orders="alternate",
                 hidden_degrees="sequential", activation="relu", standardize=True, rng=None, dtype="float64",
                 fast=True):
        super().__init__(dim, num_layers, hidden, components, orders, hidden_degrees, activation, standardize, rng,
                         dtype, context_dim=check_context_dim(context_dim), fast=fast)

    def conditionals(self, x, y, params=None):
        """(mu, alpha, log_w) of the base's mixture conditionals at z = inverse(x; y), each (n, D, C)."""
        return self._conditionals(x, y, params)


register_flow_classes(MADEMoG, MAFMoG, ConditionalMAFMoG)
register_base_classes(MADEMoGBase)
