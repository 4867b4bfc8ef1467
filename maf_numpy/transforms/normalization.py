"""Elementwise affine layers whose numbers come from data: Standardize, BatchNorm and ActNorm.

All three are maps z = (x - m) * exp(log_scale) + beta per coordinate, with a diagonal Jacobian and the log-det
sum_i log_scale_i. They are part of the model, not silent preprocessing: their log-dets enter ``log_prob``, so
densities stay in the data's own units. Standardize's numbers are fixed statistics of the training data;
BatchNorm's are statistics of each batch (training) or of the training set (evaluation) with a learned affine
map after them; ActNorm's are trained parameters that start from the statistics of the first data it sees.

References
----------
L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP. ICLR 2017 (§3.7, batch norm as a
bijector). G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS
2017 (§4.1: batch norm between the MADEs). D. P. Kingma, P. Dhariwal. Glow: Generative Flow with Invertible
1x1 Convolutions. NeurIPS 2018 (§3.1: actnorm).
"""

import autograd.numpy as np
import numpy as onp

from ..validation import check_dtype, check_positive_float, check_positive_int

__all__ = ["Standardize", "BatchNorm", "ActNorm"]


class Standardize:
    """Elementwise affine layer z = (x - shift) / scale, fitted once to the training data.

        inverse: z = (x - shift) / scale,   log|det dz/dx| = -sum_i log scale_i
        forward: x = z * scale + shift,     log|det dx/dz| = +sum_i log scale_i

    It is part of the model, not a silent preprocessing step: its log-det enters ``log_prob``, so
    densities stay in the data's own units. ``shift`` and ``scale`` are fixed numbers (structure), not
    trained parameters; until :meth:`fit` is called the layer is the identity. They are kept in the
    layer's ``dtype`` (float64 or float32), so that a float32 flow computes in float32 throughout.
    """

    def __init__(self, D, dtype="float64"):
        self.D = D
        self.dtype = onp.dtype(dtype)
        self.shift = onp.zeros(D, dtype=self.dtype)
        self.scale = onp.ones(D, dtype=self.dtype)
        self.fitted = False
        self.input_degrees = onp.ones(D, dtype=int)  # diagonal Jacobian
        self.calls = 0

    def fit(self, x):
        """Set shift and scale to the mean and standard deviation of the columns of x, shape (n, D)."""
        x = onp.asarray(x, dtype=onp.float64)  # the statistics in float64, then stored in the layer's type
        self.shift = onp.mean(x, axis=0).astype(self.dtype)
        std = onp.std(x, axis=0)
        self.scale = onp.where(std > 0, std, 1.0).astype(self.dtype)
        self.fitted = True
        return self

    def init_params(self, rng):
        return {}

    def forward(self, params, z):
        """Generate, z -> x: x = z * scale + shift. Returns (x, log|det dx/dz|)."""
        log_det = np.sum(np.log(self.scale)) * np.ones(z.shape[0], dtype=self.dtype)
        return z * self.scale + self.shift, log_det

    def inverse(self, params, x):
        """Normalise, x -> z: z = (x - shift) / scale. Returns (z, log|det dz/dx|)."""
        log_det = -np.sum(np.log(self.scale)) * np.ones(x.shape[0], dtype=self.dtype)
        return (x - self.shift) / self.scale, log_det

    def get_state(self):
        return {"shift": self.shift, "scale": self.scale, "fitted": onp.array(self.fitted)}

    def config(self):
        """The constructor's keyword arguments; shift and scale are state (``get_state``)."""
        return {"D": self.D, "dtype": self.dtype.name}

    def set_state(self, state):
        self.shift = onp.array(state["shift"], dtype=self.dtype)
        self.scale = onp.array(state["scale"], dtype=self.dtype)
        self.fitted = bool(state["fitted"])

    def __repr__(self):
        return f"Standardize(D={self.D}, fitted={self.fitted})"




class BatchNorm:
    """Batch normalisation as an invertible layer with its log-det (MAF paper §4.1; Dinh et al. 2017, §3.7).

        inverse:  z = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta
                  log|det dz/dx| = sum_i (log_gamma_i - 0.5 log(v_i + eps))
        forward:  x = (z - beta) * exp(-log_gamma) * sqrt(v + eps) + m     (evaluation mode only)

    The MAF paper puts one between consecutive MADE layers: the normalising direction sees the output of
    the layer below it (nearer the data) and recentres and rescales it, which keeps the deep flow's
    intermediate values near N(0, I) and helps deep flows train (Dinh et al. 2017, §3.7). ``log_gamma``
    and ``beta``, each of shape (D,), are the learnable parameters (``params``); gamma = exp(log_gamma) is
    parametrised by its logarithm so that it stays positive and the map stays invertible (as in the authors'
    code). ``eps`` (1e-5, the authors' value and PyTorch's) keeps the division finite when a dimension of
    the batch is constant.

    Two modes, chosen by the ``training`` attribute (``Flow.training`` sets it for every layer; ``fit``
    turns it on only while it computes the loss and gradient of a step):

    - ``training = True``: (m, v) are the mean and *biased* variance (divisor n) of the batch the layer
      receives, per dimension. z of one point then depends on every other point of the batch, and so does
      the log-det (the same number for every point of the batch). Gradients flow through m and v: autograd
      differentiates the whole batch. This is a map of the batch, not of each point; only ``inverse`` exists
      (``forward`` raises: the batch statistics of the x it would produce are not known beforehand). A batch
      of one point has v = 0 and maps every x to beta: train with batches of tens of points or more.
    - ``training = False`` (the default): (m, v) are fixed numbers held as layer *state*, ``mean`` and
      ``var`` (not ``params``, like :class:`Standardize`'s shift and scale: saved by ``io``, restored by
      ``load``). The layer is then an elementwise affine map of each point, an exact bijection whose
      ``forward`` is its inverse, and log_prob and sample are per-point and deterministic.

    Which fixed statistics. :meth:`set_statistics` sets ``mean`` and ``var`` to those of the **whole
    training set pushed through the layers below** (``Flow.refresh_state``, which ``fit`` calls before
    every validation and at the end with the best parameters). That is what the authors' code does
    (gpapamak/maf, ``ml/trainers.py``: ``set_batch_norm_stats`` evaluates every BatchNorm's statistics on
    the whole training set before each validation and after restoring the best parameters;
    ``ml/models/layers.py``: ``set_batch_stats``). We prefer it to running averages because it is exact
    (the statistics the layer would compute if its batch were the whole training set, the distribution it
    was trained to normalise), deterministic (the same parameters always give the same evaluation-mode
    model, so a resumed run and a saved model give the same numbers) and needs no momentum parameter;
    running averages mix statistics of parameters from many past steps. It costs one pass over the
    training set per refresh (cheap next to training). Until it is refreshed, ``mean`` = 0 and ``var`` = 1:
    close to the identity (exactly z = x / sqrt(1 + eps) with the initial parameters).

    Parameters
    ----------
    D : int
        Dimension.
    eps : float
        Added to the variance before the square root (finite, > 0; default 1e-5).
    dtype : {"float64", "float32"}
        Type of the parameters and of the statistics.

    Attributes
    ----------
    mean, var : ndarray of shape (D,)
        Evaluation-mode statistics m and v (state).
    refreshed : bool
        Whether :meth:`set_statistics` has set them.
    training : bool
        The mode (see above). False by default.
    input_degrees : ndarray of int, shape (D,)
        All 1: in evaluation mode the Jacobian of each point is diagonal.
    calls : int
        Counted like the other layers' network passes; always 0 (this layer has no network).
    """

    def __init__(self, D, eps=1e-5, dtype="float64"):
        self.D = check_positive_int(D, "D")
        self.eps = check_positive_float(eps, "eps")
        self.dtype = onp.dtype(check_dtype(dtype))
        self.mean = onp.zeros(self.D, dtype=self.dtype)
        self.var = onp.ones(self.D, dtype=self.dtype)
        self.refreshed = False
        self.training = False
        self.input_degrees = onp.ones(self.D, dtype=int)  # diagonal Jacobian (evaluation mode)
        self.calls = 0

    def init_params(self, rng):
        """``{"log_gamma": zeros (D,), "beta": zeros (D,)}``: gamma = 1, beta = 0 (no random draw)."""
        return {"log_gamma": onp.zeros(self.D, dtype=self.dtype), "beta": onp.zeros(self.D, dtype=self.dtype)}

    def statistics(self, x):
        """(m, v), each (D,): the batch's mean and biased variance in training mode, else ``mean``, ``var``.

        Written ``sum / n`` (not ``np.mean``) so that a float32 batch keeps float32 gradients (autograd's
        backward pass of np.mean divides by a NumPy integer, which promotes float32 to float64 under NumPy 2).
        """
        if not self.training:
            return self.mean, self.var
        n = x.shape[0]
        m = np.sum(x, axis=0) / n
        x_centred = x - m
        v = np.sum(x_centred * x_centred, axis=0) / n
        return m, v

    def inverse(self, params, x):
        """Normalise, x -> z: z = (x - m) / sqrt(v + eps) * exp(log_gamma) + beta. Returns (z, log|det dz/dx|).

        In training mode (m, v) are the statistics of this batch x (n, D), and the log-det, of shape (n,),
        is the same number for every point; in evaluation mode they are ``mean`` and ``var``.
        """
        m, v = self.statistics(x)
        # the whole map is z_i = (x_i - m_i) * exp(log_scale_i) + beta_i: one log-scale per dimension, (D,)
        log_scale = params["log_gamma"] - 0.5 * np.log(v + self.eps)
        z = (x - m) * np.exp(log_scale) + params["beta"]
        return z, np.sum(log_scale) * np.ones(x.shape[0], dtype=x.dtype)

    def forward(self, params, z):
        """Generate, z -> x: x = (z - beta) * exp(-log_gamma) * sqrt(v + eps) + m, with the fixed (m, v).
        Returns (x, log|det dx/dz|). Evaluation mode only (RuntimeError in training mode)."""
        if self.training:
            raise RuntimeError("BatchNorm.forward (z -> x) needs evaluation mode: in training mode the layer "
                               "normalises by the statistics of its own input batch x, which are unknown before "
                               "x is computed. Set flow.training = False (fit does so outside its gradient step) "
                               "to sample or call forward")
        log_scale = params["log_gamma"] - 0.5 * np.log(self.var + self.eps)  # that of inverse, (D,)
        x = (z - params["beta"]) * np.exp(-log_scale) + self.mean
        return x, -np.sum(log_scale) * np.ones(z.shape[0], dtype=z.dtype)

    def set_statistics(self, x):
        """Set ``mean`` and ``var`` to the mean and biased variance of x, shape (n, D), per dimension.

        ``Flow.refresh_state`` calls it with the whole training set pushed through the layers below.
        Computed in float64, stored in the layer's dtype. Returns the layer.
        """
        x = onp.asarray(x, dtype=onp.float64)
        if x.ndim != 2 or x.shape[1] != self.D or x.shape[0] == 0:
            raise ValueError(f"x must have shape (n, {self.D}) with n >= 1, got {x.shape}")
        mean, var = onp.mean(x, axis=0), onp.var(x, axis=0)
        # A layer below that overflowed (diverged parameters) gives NaN or inf here: stored as they are, so that
        # the evaluation-mode log_prob is not finite and fit's divergence guard reports it.
        self.mean, self.var = mean.astype(self.dtype), var.astype(self.dtype)
        self.refreshed = True
        return self

    def get_state(self):
        return {"mean": self.mean, "var": self.var, "refreshed": onp.array(self.refreshed)}

    def config(self):
        """The constructor's keyword arguments; the statistics are state (``get_state``)."""
        return {"D": self.D, "eps": self.eps, "dtype": self.dtype.name}

    def set_state(self, state):
        self.mean = onp.array(state["mean"], dtype=self.dtype)
        self.var = onp.array(state["var"], dtype=self.dtype)
        self.refreshed = bool(state["refreshed"])

    def __repr__(self):
        mode = "training" if self.training else "evaluation"
        return f"BatchNorm(D={self.D}, eps={self.eps:g}, mode={mode!r}, refreshed={self.refreshed})"


class ActNorm:
    """Activation normalisation: a per-coordinate affine layer with trained parameters and a data-dependent
    initialisation (Kingma & Dhariwal 2018, Glow §3.1).

        inverse:  z = (x - shift) * exp(-log_scale),    log|det dz/dx| = -sum_i log_scale_i
        forward:  x = z * exp(log_scale) + shift,       log|det dx/dz| = +sum_i log_scale_i

    The affine map of :func:`~maf_numpy.transforms.affine_forward` with mu = shift and alpha = log_scale, both
    trained parameters of shape (D,) that do not depend on x: the Jacobian is diagonal and the log-det is the
    same for every point (shape (n,)). Glow writes the normalising direction y = s * x + b; here
    s = exp(-log_scale) and b = -shift * exp(-log_scale). Unlike :class:`BatchNorm`, each point's map is the
    same in training and in evaluation, so it works with any batch size, and, unlike :class:`Standardize`, its
    numbers are trained.

    Data-dependent initialisation: :meth:`initialize` sets shift to the mean and exp(log_scale) to the standard
    deviation (divisor n) of the x it receives, so that z has zero mean and unit variance per coordinate on
    that batch. :meth:`maf_numpy.Flow.initialize` calls it with the data pushed through the layers below, and
    ``fit`` calls that once, before training; ``initialized`` (state, saved) records that it happened, so a
    second ``fit`` or a loaded flow does not initialise again. Until then the layer is the identity
    (:meth:`init_params` gives zeros).

    Direction: ``inverse`` normalises (x -> z), ``forward`` generates (z -> x); nflib's ``ActNorm.forward`` is
    our ``inverse``. Cost: O(n D) each way, no network pass (``calls`` stays 0).

    Parameters
    ----------
    D : int
        Dimension.
    dtype : {"float64", "float32"}
        Type of the parameters.

    Attributes
    ----------
    initialized : bool
        Whether :meth:`initialize` has run (state: a 0-d bool array in ``get_state``).
    input_degrees : ndarray of int, shape (D,)
        All 1: the Jacobian is diagonal.
    """

    def __init__(self, D, dtype="float64"):
        self.D = check_positive_int(D, "D")
        self.dtype = onp.dtype(check_dtype(dtype))
        self.initialized = False
        self.input_degrees = onp.ones(self.D, dtype=int)  # diagonal Jacobian
        self.calls = 0

    def init_params(self, rng):
        """``{"log_scale": zeros (D,), "shift": zeros (D,)}``: the identity until :meth:`initialize` runs."""
        return {"log_scale": onp.zeros(self.D, dtype=self.dtype), "shift": onp.zeros(self.D, dtype=self.dtype)}

    def initialize(self, params, x):
        """Parameters that normalise the batch x (n, D): shift = mean(x), log_scale = log std(x) per coordinate
        (divisor n; a constant coordinate gets log_scale = 0). Computed in float64, returned in the layer's
        dtype; ``params`` (the current parameters) is replaced whole. Sets ``initialized``. Glow §3.1."""
        x = onp.asarray(x, dtype=onp.float64)
        if x.ndim != 2 or x.shape[1] != self.D or x.shape[0] == 0:
            raise ValueError(f"x must have shape (n, {self.D}) with n >= 1, got {x.shape}")
        std = onp.std(x, axis=0)
        self.initialized = True
        return {"log_scale": onp.log(onp.where(std > 0, std, 1.0)).astype(self.dtype),
                "shift": onp.mean(x, axis=0).astype(self.dtype)}

    def inverse(self, params, x):
        """Normalise, x -> z: z = (x - shift) * exp(-log_scale). Returns (z, log|det dz/dx|)."""
        z = (x - params["shift"]) * np.exp(-params["log_scale"])
        return z, -np.sum(params["log_scale"]) * np.ones(x.shape[0], dtype=x.dtype)

    def forward(self, params, z):
        """Generate, z -> x: x = z * exp(log_scale) + shift. Returns (x, log|det dx/dz|)."""
        x = z * np.exp(params["log_scale"]) + params["shift"]
        return x, np.sum(params["log_scale"]) * np.ones(z.shape[0], dtype=z.dtype)

    def get_state(self):
        return {"initialized": onp.array(self.initialized)}

    def set_state(self, state):
        self.initialized = bool(state["initialized"])

    def config(self):
        """The constructor's keyword arguments; ``initialized`` is state (``get_state``)."""
        return {"D": self.D, "dtype": self.dtype.name}

    def __repr__(self):
        return f"ActNorm(D={self.D}, initialized={self.initialized})"
