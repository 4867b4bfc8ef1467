"""The MADE network: a masked MLP with two output heads, mu and alpha (MAF paper §3.1).

A Gaussian MADE (Germain et al. 2015) models each conditional of the chain rule as a Gaussian,

    p(x_i | x_{1:i-1}) = N(x_i | mu_i, (exp alpha_i)^2),   mu_i = f_mu_i(x_{1:i-1}),  alpha_i = f_alpha_i(x_{1:i-1})

and computes all the mu_i and alpha_i in one pass of a masked network. The masks (``masks.py``) make
output i depend only on inputs of lower degree. This module holds the network only: the structure
(widths, degrees, masks) lives in a small object, :class:`MADENetwork`, the numbers in a plain dict of
arrays, and the math in the pure function :func:`made_apply` (the hidden layers, :func:`made_hidden`, then
the two heads), so that ``autograd.grad`` can differentiate it with respect to the parameters and
``autograd.jacobian`` with respect to the input.

Parameters of one MADE with ``hidden=(H_1, ..., H_L)``::

    {"W": [W_1, ..., W_L], "b": [b_1, ..., b_L],     # W_1: (D, H_1), W_l: (H_{l-1}, H_l)
     "W_mu": (H_L, D), "b_mu": (D,), "W_alpha": (H_L, D), "b_alpha": (D,)}

The same function with ``masks=None`` is a plain MLP; the affine coupling layer of RealNVP uses it as its
conditioner (a MADE whose inputs have only two degrees). What runs when a flow is built with ``fast=True``
(fused passes, block-triangular products, the degree-sliced solver) lives in :mod:`maf_numpy.fast` and is
tested equal to this module.

References
----------
M. Germain, K. Gregor, I. Murray, H. Larochelle. MADE: Masked Autoencoder for Distribution Estimation.
ICML 2015. G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation.
NeurIPS 2017, arXiv:1705.07057.
"""

import autograd.numpy as np
import numpy as onp
from autograd.extend import defvjp, primitive

from . import masks as _masks

__all__ = ["ACTIVATIONS", "relu", "masked_dense", "made_hidden", "made_apply", "init_made_params", "MADENetwork"]


def relu(a):
    """max(a, 0), written ``a * (a > 0)``: autograd's backward pass of this form is cheaper than np.maximum's."""
    return a * (a > 0)


ACTIVATIONS = {"relu": relu, "tanh": np.tanh}


@primitive
def masked_dense(h, W, b, M):
    """One masked dense layer, ``h @ (M * W) + b`` (MADE §4), with its backward pass written beside it.

    With g = d loss / d out, shape (n, H_out), the three gradients are::

        d loss / d h = g @ (M * W)^T            (n, H_in)
        d loss / d W = M * (h^T @ g)            (H_in, H_out): the mask zeroes the gradient of cut weights
        d loss / d b = sum over the batch of g  (H_out,)

    (the ``defvjp`` call below; written with autograd's NumPy, so they can be differentiated again).
    ``tests/test_made.py`` checks them against autograd's own gradient of the three-operation form.

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


def made_hidden(params, x, masks=None, activation="relu"):
    """The hidden layers of a MADE (or of a plain MLP), without the output heads (MADE §4).

        h_l = act(h_{l-1} @ (M_l * W_l) + b_l),     h_0 = x,     returns h_L

    Parameters
    ----------
    params : dict
        Holds at least ``{"W": [W_1, ..., W_L], "b": [b_1, ..., b_L]}`` (see the module docstring); the heads
        are not read.
    x : ndarray of shape (n, D_in)
    masks : list of ndarray or None
        The ``L + 1`` masks of :func:`made_apply` (the last one, the heads', is not used here); ``None`` means
        a fully connected network.
    activation : {"relu", "tanh"}

    Returns
    -------
    h_L : ndarray of shape (n, H_L)
        The last hidden layer (x itself when there is no hidden layer, L = 0).
    """
    act = ACTIVATIONS[activation]
    if masks is None:
        masks = [1.0] * (len(params["W"]) + 1)
    h = x
    for W, b, M in zip(params["W"], params["b"], masks[:-1]):
        h = act(masked_dense(h, W, b, M))  # (n, H_l)
    return h


def made_apply(params, x, masks=None, activation="relu"):
    """Compute the Gaussian conditionals' parameters in one masked pass (MAF §3.1; MADE §4).

        h_l = act(h_{l-1} @ (M_l * W_l) + b_l),     h_0 = x
        mu = h_L @ (M_V * W_mu) + b_mu,             alpha = h_L @ (M_V * W_alpha) + b_alpha

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
    h_L = made_hidden(params, x, masks, activation)  # the hidden layers: (n, H_L)
    M_V = 1.0 if masks is None else masks[-1]  # the output mask is shared by both heads
    mu = masked_dense(h_L, params["W_mu"], params["b_mu"], M_V)
    alpha = masked_dense(h_L, params["W_alpha"], params["b_alpha"], M_V)
    return mu, alpha


def init_made_params(D_in, hidden, D_out, rng, output_scale=0.1, dtype="float64", heads=("mu", "alpha")):
    """Draw initial parameters: W ~ N(0, 1/fan_in), zero biases, small output heads.

    The output weights are scaled by ``output_scale`` so that a fresh layer is close to the identity
    map (mu ~ 0, alpha ~ 0): deep stacks then start well conditioned. They are not zero, so a freshly
    built layer already has a non-trivial Jacobian for the tests to check.

    What the measurements say (``benchmarks/quality.py``'s setup: a 5-layer MAF (64, 64) on 2-D toys,
    ``fit``'s defaults, batch 512, KL to the true density; ``benchmarks/README.md`` has the tables). The
    seed-to-seed spread is large (on spirals the same recipe gave 0.35-0.54 nats over four initialisations),
    so only paired comparisons on the same data and many cells count:

    - Counting only a unit's *unmasked* inputs as its fan-in (a masked unit of degree k reads k of the D
      inputs), with or without the ReLU gain sqrt(2) of He et al. (2015): no better (8 Gaussians 0.28-0.38
      against 0.18 in the same screen, spirals 0.51-0.57 against 0.37; 2 seeds, 2,000 steps).
    - Smaller heads (``output_scale=0.01``): 30-40% more KL (with ``fit``'s old defaults).
    - A PyTorch-style layer (biases drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in)), so that the first layer's
      ReLU kinks do not all pass through the origin, and heads about 6x larger than here), on the
      benchmark's own data and seeds (6 toys, 2 seeds, 500 and 2,000 steps): better in 13 of 24 cells (moons
      at 500 steps 0.16-0.22 against 0.33-0.47; 8 Gaussians at 2,000 steps 0.17-0.28 against 0.33-0.62),
      worse in 11 (the checkerboard in all four), and unstable: 2 of its 4 runs on the Figure 1 density
      diverged and one spirals run ended with a hole in the density (KL 4e5). Not adopted.

    Parameters
    ----------
    D_in, D_out : int
        Input and output widths (both D for a MADE).
    hidden : sequence of int
    rng : numpy.random.Generator
    output_scale : float
    dtype : {"float64", "float32"}
        Type of every array (drawn in float64, then cast, so both types start from the same numbers).
    heads : tuple of str
        The output heads to draw, ``W_<head>`` (H_L, D_out) and ``b_<head>`` (D_out,) each, in this order.
        ``("mu",)`` gives the shift head alone (the additive coupling of NICE has no log-scale).

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
    for head in heads:
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
        lessons for the MADE paper's Figure 1, by the coupling layer's two groups, and by ``load``).
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

    def init_params(self, rng, output_scale=0.1):
        """Fresh parameters for this network (see :func:`init_made_params`)."""
        return init_made_params(self.D + self.context_dim, self.hidden, self.D, rng, output_scale, self.dtype)

    def inputs(self, x, y=None):
        """The network's input: x (n, D), or ``[x, y]`` (n, D + C) for a conditional MADE."""
        if self.context_dim == 0:
            return x
        return np.concatenate([x, y], axis=1)

    def __call__(self, params, x, y=None):
        """One masked pass, counted in ``calls``: ``(mu, alpha) = made_apply(params, x)``, each of shape
        (n, D); a conditional MADE reads ``[x, y]``."""
        self.calls += 1
        return made_apply(params, self.inputs(x, y), self.masks, self.activation)

    def __repr__(self):
        return f"MADENetwork(D={self.D}, hidden={self.hidden}, order={self.order.tolist()})"
