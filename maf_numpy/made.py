"""The MADE network: a masked MLP with two output heads, mu and alpha (MAF paper §3.1).

A Gaussian MADE (Germain et al. 2015) models each conditional of the chain rule as a Gaussian,

    p(x_i | x_{1:i-1}) = N(x_i | mu_i, (exp alpha_i)^2),   mu_i = f_mu_i(x_{1:i-1}),  alpha_i = f_alpha_i(x_{1:i-1})

and computes all the mu_i and alpha_i in one pass of a masked network. The masks (``masks.py``) make
output i depend only on inputs of lower degree. This module holds the network only: the structure
(widths, degrees, masks) lives in a small object, the numbers in a plain dict of arrays, and the math in
the pure function :func:`made_apply`, so that ``autograd.grad`` can differentiate it with respect to the
parameters and ``autograd.jacobian`` with respect to the input.

Parameters of one MADE with ``hidden=(H_1, ..., H_L)``::

    {"W": [W_1, ..., W_L], "b": [b_1, ..., b_L],     # W_1: (D, H_1), W_l: (H_{l-1}, H_l)
     "W_mu": (H_L, D), "b_mu": (D,), "W_alpha": (H_L, D), "b_alpha": (D,)}

The same function with ``masks=None`` is a plain MLP; the affine coupling layer of RealNVP uses it as its
conditioner (a MADE whose inputs have only two degrees).

References
----------
M. Germain, K. Gregor, I. Murray, H. Larochelle. MADE: Masked Autoencoder for Distribution Estimation.
ICML 2015. G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation.
NeurIPS 2017, arXiv:1705.07057.
"""

import autograd.numpy as np

from . import masks as _masks

__all__ = ["ACTIVATIONS", "made_apply", "init_made_params", "MADENetwork"]


def _relu(a):
    # h * (h > 0) rather than np.maximum: autograd's backward pass is cheaper (DESIGN §7).
    return a * (a > 0)


ACTIVATIONS = {"relu": _relu, "tanh": np.tanh}


def made_apply(params, x, masks=None, activation="relu"):
    """Compute the Gaussian conditionals' parameters in one masked pass (MAF §3.1).

        h_l = act(h_{l-1} @ (M_l * W_l) + b_l),   mu = h_L @ (M_V * W_mu) + b_mu,
        alpha = h_L @ (M_V * W_alpha) + b_alpha

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
    act = ACTIVATIONS[activation]
    if masks is None:
        masks = [1.0] * (len(params["W"]) + 1)
    h = x
    for W, b, M in zip(params["W"], params["b"], masks[:-1]):
        h = act(h @ (M * W) + b)  # (n, H_l)
    M_V = masks[-1]  # the output mask is shared by both heads
    mu = h @ (M_V * params["W_mu"]) + params["b_mu"]
    alpha = h @ (M_V * params["W_alpha"]) + params["b_alpha"]
    return mu, alpha


def init_made_params(D_in, hidden, D_out, rng, output_scale=0.1):
    """Draw initial parameters: W ~ N(0, 1/fan_in), zero biases, small output heads.

    The output weights are scaled by ``output_scale`` so that a fresh layer is close to the identity
    map (mu ~ 0, alpha ~ 0): deep stacks then start well conditioned. They are not zero, so a freshly
    built layer already has a non-trivial Jacobian for the tests to check.

    Parameters
    ----------
    D_in, D_out : int
        Input and output widths (both D for a MADE).
    hidden : sequence of int
    rng : numpy.random.Generator
    output_scale : float

    Returns
    -------
    params : dict of ndarray (float64)
    """
    widths = [D_in, *hidden]
    params = {"W": [], "b": []}
    for fan_in, fan_out in zip(widths[:-1], widths[1:]):
        params["W"].append(rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(fan_in, fan_out)))
        params["b"].append(np.zeros(fan_out))
    H_L = widths[-1]
    for head in ("mu", "alpha"):
        params["W_" + head] = rng.normal(0.0, output_scale / np.sqrt(H_L), size=(H_L, D_out))
        params["b_" + head] = np.zeros(D_out)
    return params


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
        lessons for the MADE paper's Figure 1, and by ``load``).

    Attributes
    ----------
    degrees : list of ndarray of int
    masks : list of ndarray of float64
    order : ndarray of int, shape (D,)
        Variables in generation order (``order[0]`` first).
    calls : int
        Number of network evaluations so far; the flows reset and read it to count passes.
    """

    def __init__(self, D, hidden, order="sequential", hidden_degrees="sequential", activation="relu",
                 rng=None, degrees=None):
        self.D = D
        self.hidden = tuple(hidden)
        self.activation = activation
        if degrees is None:
            degrees = _masks.made_degrees(D, self.hidden, order, hidden_degrees, rng)
        self.set_degrees(degrees)
        self.calls = 0

    def set_degrees(self, degrees):
        """Install degrees and build the masks from them (once; every call reuses them)."""
        self.degrees = [np.asarray(m, dtype=int) for m in degrees]
        self.masks = _masks.made_masks(self.degrees)
        self.order = np.argsort(self.degrees[0], kind="stable")

    def init_params(self, rng, output_scale=0.1):
        """Fresh parameters for this network (see :func:`init_made_params`)."""
        return init_made_params(self.D, self.hidden, self.D, rng, output_scale)

    def __call__(self, params, x):
        """One masked pass: ``(mu, alpha) = made_apply(params, x)``, each of shape (n, D)."""
        self.calls += 1
        return made_apply(params, x, self.masks, self.activation)

    def __repr__(self):
        return f"MADENetwork(D={self.D}, hidden={self.hidden}, order={self.order.tolist()})"
