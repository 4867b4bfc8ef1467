"""Flows: a standard normal base density and a stack of bijective layers (MAF paper §2.2, §3).

    log p(x) = log N(z; 0, I) + log|det dz/dx|,    (z, log|det dz/dx|) = inverse(x)

``layers[0]`` sits next to the data and ``layers[-1]`` next to the base: ``inverse`` (x -> z, normalising)
runs through them in list order, ``forward`` (z -> x, generative) in reverse order. When
``standardize=True`` (the default), ``layers[0]`` is a :class:`~maf_numpy.transforms.Standardize` layer,
the identity until ``fit`` sets it from the training data; its log-det is part of ``log_prob``, so
densities are always in the data's own units.

Parameters are a plain list with one dict per layer (``{}`` for layers without trainable numbers), so
that ``autograd.grad(lambda p: -np.mean(flow.log_prob(x, params=p)))(flow.params)`` just works. The
Standardize layer's shift and scale are structure, not parameters: they stay on the layer
(``layer.get_state()``), outside ``params``.

After every public call, ``flow.passes`` holds the number of conditioner (MADE or coupling network)
evaluations it made, and ``flow.passes_per_layer`` the same per layer: for a K-layer MAF in D dimensions
``log_prob`` makes K passes and ``sample`` K * D; for an IAF it is the other way round. (The K * D passes of
MAF sampling and IAF density evaluation are sequential steps of the degree-sliced solver when nothing is
differentiated, :func:`maf_numpy.made.solve_sliced`: D steps per layer, about one pass of arithmetic.)

Batch normalisation. ``MAF``, ``IAF`` and ``RealNVP`` take ``batch_norm=False``; with True a
:class:`~maf_numpy.transforms.BatchNorm` layer sits between consecutive MADE or coupling layers (after every
one but the last), as in the MAF paper's experiments (§4.1). Such a flow has two modes: ``flow.training``
(False by default; ``fit`` sets it True only while it computes a step's loss and gradient) makes every
BatchNorm normalise by the statistics of the batch it receives; in evaluation mode they use fixed statistics
that :meth:`Flow.refresh_state` computes from the training set (``fit`` calls it before every validation and
at the end). ``flow.needs_refresh`` says whether a flow has such layers.

Floating-point type. Every flow takes ``dtype="float64"`` (the default) or ``"float32"``: its parameters,
masks and Standardize statistics are created in that type, the public methods cast their input array to it,
and everything inside (log-dets, log N(z; 0, I), gradients, Adam's state in ``fit``) stays in it. float32
makes a training step 1.4-2x faster (``benchmarks/train_step.py``) at about 1e-6 relative precision.

References
----------
G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017.
"""

import contextlib

import autograd.numpy as np
import numpy as onp
from autograd.misc import flatten
from autograd.tracer import getval, isbox

from . import masks as _masks
from . import transforms as _transforms
from .transforms import AffineCoupling, BatchNorm, IAFLayer, MAFLayer, Standardize
from .validation import (
    as_generator,
    check_bool,
    check_choice,
    check_data,
    check_dtype,
    check_hidden,
    check_params,
    check_positive_float,
    check_positive_int,
    warn_if_not_finite,
)

__all__ = ["standard_normal_log_prob", "Flow", "MADE", "MAF", "IAF", "RealNVP", "ConditionalMADE", "ConditionalMAF",
           "layer_orders", "check_context", "logsumexp"]

LOG_2PI = float(np.log(2 * np.pi))
ACTIVATION_NAMES = ("relu", "tanh")
LAYER_ORDERS = ("alternate", "random", "sequential", "reversed")


def standard_normal_log_prob(z):
    """log N(z; 0, I) = -|z|^2 / 2 - (D/2) log(2 pi), for z of shape (n, D); returns shape (n,)."""
    return -0.5 * np.sum(z**2, axis=-1) - 0.5 * z.shape[-1] * LOG_2PI


def layer_orders(D, num_layers, orders="alternate", rng=None):
    """Orderings of the K autoregressive layers of a MAF or IAF.

    Parameters
    ----------
    D, num_layers : int
    orders : {"alternate", "random", "sequential", "reversed"} or list of K permutations
        ``"alternate"`` (the default, as in the MAF paper's code) reverses the ordering between
        consecutive layers: sequential, reversed, sequential, ...; ``"random"`` draws one permutation per
        layer; ``"sequential"``/``"reversed"`` use the same ordering in every layer.
    rng : numpy.random.Generator

    Returns
    -------
    list of ndarray of int, each a permutation of range(D)
    """
    if isinstance(orders, str):
        check_choice(orders, LAYER_ORDERS, "orders")
        if orders == "alternate":
            return [_masks.make_order(D, ("sequential", "reversed")[k % 2]) for k in range(num_layers)]
        return [_masks.make_order(D, orders, rng) for _ in range(num_layers)]
    if not isinstance(orders, (list, tuple)) or len(orders) != num_layers:
        raise ValueError(f"orders must be one of {LAYER_ORDERS} or a list of {num_layers} permutations "
                         f"of range({D}), got {orders!r}")
    permutations = []
    for k, order in enumerate(orders):
        try:
            permutations.append(_masks.make_order(D, order))
        except (TypeError, ValueError) as error:
            raise ValueError(f"orders[{k}] must be a permutation of range({D}), got {order!r}") from error
    return permutations


class Flow:
    """A normalising flow: a standard normal base and a list of layers (see the module docstring).

    Subclasses (:class:`MADE`, :class:`MAF`, :class:`IAF`, :class:`RealNVP`) only build the layers.
    """

    def __init__(self, dim, layers, rng, config, dtype="float64"):
        self.dim = dim
        self.dtype = np.dtype(dtype)
        self.layers = layers
        self.params = [layer.init_params(rng) for layer in layers]
        self.config = config
        self.context_dim = config.get("context_dim", 0)  # C > 0 for the conditional flows (MAF paper §3.4)
        self.passes = 0
        self.passes_per_layer = [0] * len(layers)

    # --- pure functions of (params, input): what autograd differentiates ---------------------------
    # y is the context (n, C) of a conditional flow (None otherwise); only conditional layers receive it.
    def _inverse(self, params, x, y=None):
        if y is None and _transforms._fusable_chain(self.layers, params):
            # the same loop as below, run as one autograd node with a hand-written backward pass (speed)
            return _transforms._normalise_chain(self.layers, params, x, self.dtype)
        log_det = np.zeros(x.shape[0], dtype=self.dtype)
        for layer, p in zip(self.layers, params):
            x, log_det_layer = _apply(layer, "inverse", p, x, y)
            log_det = log_det + log_det_layer
        return x, log_det

    def _forward(self, params, z, y=None):
        log_det = np.zeros(z.shape[0], dtype=self.dtype)
        for layer, p in zip(reversed(self.layers), reversed(params)):
            z, log_det_layer = _apply(layer, "forward", p, z, y)
            log_det = log_det + log_det_layer
        return z, log_det

    def _log_prob(self, params, x, y=None):
        z, log_det = self._inverse(params, x, y)
        return self._base_log_prob(params, z, y) + log_det

    # --- the base density: N(0, I) here; a flow with another base (maf_numpy.mog) overrides these two ---
    def _base_log_prob(self, params, z, y=None):
        """log p_base(z), shape (n,): the standard normal, log N(z; 0, I). (y: a conditional base's context.)"""
        return standard_normal_log_prob(z)

    def _base_sample(self, params, n, rng, y=None):
        """n draws from the base, shape (n, D): z ~ N(0, I), drawn in float64 and cast to the flow's dtype."""
        return self._cast(rng.standard_normal((n, self.dim)))

    # --- public methods: validate, choose params, count passes, call the pure function -------------
    def _cast(self, x):
        """x in the flow's dtype (a no-op for an array already in it, and for a traced array)."""
        if isbox(x) or x.dtype == self.dtype:
            return x
        return x.astype(self.dtype)

    def _params(self, params):
        if params is None:
            return self.params
        # Same nesting, keys, shapes, float dtypes and finite values as self.params; a traced pytree
        # (inside autograd.grad) is checked by its value. Each message names the entry: params[1]['W_mu'].
        return check_params(params, self.params)

    @contextlib.contextmanager
    def _counting_passes(self):
        for layer in self.layers:
            layer.calls = 0
        try:
            yield
        finally:
            self.passes_per_layer = [layer.calls for layer in self.layers]
            self.passes = sum(self.passes_per_layer)

    def inverse(self, x, params=None):
        """Normalise, x -> z. Returns (z, log|det dz/dx|) of shapes (n, D) and (n,)."""
        return self._public_inverse(x, None, params)

    def forward(self, z, params=None):
        """Generate, z -> x. Returns (x, log|det dx/dz|) of shapes (n, D) and (n,)."""
        return self._public_forward(z, None, params)

    def log_prob(self, x, params=None):
        """log p(x) = log N(z; 0, I) + log|det dz/dx| (change of variables, MAF §2.2); shape (n,).
        (A MAF MoG's base is a MADE MoG instead of N(0, I): :mod:`maf_numpy.mog`.)"""
        return self._public_log_prob(x, None, params)

    def sample(self, n, rng=None, params=None):
        """Draw n points: z from the base (N(0, I) unless a subclass overrides ``_base_sample``), x = forward(z).
        Returns an array of shape (n, D) in the flow's dtype.

        z is drawn in float64 and then cast, so flows of either dtype draw the same z from the same seed.
        """
        return self._public_sample(n, None, rng, params)

    # The public methods' bodies, shared with the conditional flows (y: a checked context or None).
    def _public_inverse(self, x, y, params):
        x = self._cast(check_data(x, self.dim, "x"))
        y = self._context(y, x.shape[0])
        params = self._params(params)
        with self._counting_passes():
            z, log_det = self._inverse(params, x, y)
        warn_if_not_finite(log_det, "log|det dz/dx|")
        return warn_if_not_finite(z, "z"), log_det

    def _public_forward(self, z, y, params):
        z = self._cast(check_data(z, self.dim, "z"))
        y = self._context(y, z.shape[0])
        params = self._params(params)
        with self._counting_passes():
            x, log_det = self._forward(params, z, y)
        warn_if_not_finite(log_det, "log|det dx/dz|", "z")
        return warn_if_not_finite(x, "x", "z"), log_det

    def _public_log_prob(self, x, y, params):
        x = self._cast(check_data(x, self.dim, "x"))
        y = self._context(y, x.shape[0])
        params = self._params(params)
        with self._counting_passes():
            log_prob = self._log_prob(params, x, y)
        # x is finite (checked above), so a NaN can only come from float64 overflow inside the flow (inf - inf,
        # inf * 0) far from the data, where the density underflows: report it as -inf; the warning says so.
        log_prob = np.where(np.isnan(log_prob), -np.inf, log_prob)
        return warn_if_not_finite(log_prob, "log_prob")

    def _public_sample(self, n, y, rng, params):
        n = check_positive_int(n, "n")
        y = self._context(y, n)
        rng = as_generator(rng)
        params = self._params(params)
        with self._counting_passes():
            x = self._forward(params, self._base_sample(params, n, rng, y), y)[0]
        return warn_if_not_finite(x, "sample", "the base draws z")

    def _last_layer_outputs(self, x, y, params, outputs):
        """``outputs(params[-1], v, y)`` of the last layer (its network's conditionals), where v is x pushed
        through every layer before it (Standardize, ...): what ``conditionals`` of the MADE flows returns."""
        x = self._cast(check_data(x, self.dim, "x"))
        y = self._context(y, x.shape[0])
        params = self._params(params)
        with self._counting_passes():
            for layer, p in zip(self.layers[:-1], params[:-1]):
                x, _ = _apply(layer, "inverse", p, x, y)
            return outputs(params[-1], x, y)

    def _context(self, y, n):
        """None for an unconditional flow; else y checked and cast: shape (n, C), or (C,) for all n rows."""
        if self.context_dim == 0:
            return None
        return self._cast(check_context(y, self.context_dim, n))

    def trace_inverse(self, x, params=None):
        """Run ``inverse`` layer by layer and keep what each layer did, for lessons and plots.

        Returns
        -------
        dict with
            ``values``: list of K + 1 arrays (n, D), from x (``values[0]``) to z (``values[-1]``);
            ``log_dets``: list of K arrays (n,), log|det| of each layer in this direction;
            ``passes``: list of K ints, conditioner evaluations of each layer;
            ``layers``: list of K strings, the layers' reprs.
        """
        x = self._cast(check_data(x, self.dim, "x"))
        return self._trace(x, self._params(params), "inverse")

    def trace_forward(self, z, params=None):
        """Run ``forward`` layer by layer: like :meth:`trace_inverse`, from z (``values[0]``) to x."""
        z = self._cast(check_data(z, self.dim, "z"))
        return self._trace(z, self._params(params), "forward")

    def _trace(self, v, params, direction, y=None):
        pairs = list(zip(self.layers, params))
        if direction == "forward":
            pairs = pairs[::-1]
        trace = {"values": [v], "log_dets": [], "passes": [], "layers": []}
        for layer, p in pairs:
            layer.calls = 0
            v, log_det = _apply(layer, direction, p, v, y)
            trace["values"].append(v)
            trace["log_dets"].append(log_det)
            trace["passes"].append(layer.calls)
            trace["layers"].append(repr(layer))
        return trace

    # --- batch normalisation: the mode and the evaluation-mode statistics ----------------------------
    @property
    def training(self):
        """The mode of the flow's :class:`~maf_numpy.transforms.BatchNorm` layers (False: evaluation mode).

        Setting it sets ``training`` on every layer that has a mode. In training mode a BatchNorm layer
        normalises by the statistics of the batch it receives, so ``log_prob`` of a point depends on the
        rest of its batch, and ``forward`` and ``sample`` raise; in evaluation mode (the default) every map
        is per point and exactly invertible. Flows without BatchNorm layers compute the same in both modes.
        """
        return getattr(self, "_training", False)

    @training.setter
    def training(self, value):
        self._training = check_bool(value, "training")
        for layer in self.layers:
            if hasattr(layer, "training"):
                layer.training = self._training

    @property
    def needs_refresh(self):
        """True when the flow has layers whose evaluation-mode state comes from data (BatchNorm), which
        :meth:`refresh_state` must recompute after the parameters change."""
        return any(isinstance(layer, BatchNorm) for layer in self.layers)

    def refresh_state(self, x, params=None, batch=4096, y=None):
        """Set every BatchNorm layer's evaluation statistics from data x pushed through the layers below it.

        Runs x (n, D), normally the whole training set, through ``layers`` in the normalising direction, in
        evaluation mode, with ``params`` (default: ``self.params``). Each BatchNorm meets the output of the
        layers below it and takes its mean and biased variance (:meth:`~maf_numpy.transforms.BatchNorm.
        set_statistics`) before x goes through it with those statistics: what the authors' code does
        (gpapamak/maf, ``set_batch_norm_stats``), and the same as one training-mode pass of the whole set.
        Layers run on chunks of ``batch`` points, so the memory is that of a chunk's hidden units. A no-op
        for a flow without BatchNorm. A conditional flow needs the contexts y (n, C) of x. Returns the flow.
        """
        x = self._cast(check_data(x, self.dim, "x"))
        y = self._context(y, x.shape[0])
        params = self._params(params)
        batch = check_positive_int(batch, "batch")
        if not self.needs_refresh:
            return self
        last = max(k for k, layer in enumerate(self.layers) if isinstance(layer, BatchNorm))
        training, self.training = self.training, False
        try:
            for layer, p in zip(self.layers[:last + 1], params):
                if isinstance(layer, BatchNorm):
                    layer.set_statistics(x)
                x = np.concatenate([_apply(layer, "inverse", p, x[start:start + batch],
                                           None if y is None else y[start:start + batch])[0]
                                    for start in range(0, x.shape[0], batch)])
        finally:
            self.training = training
        return self

    @property
    def num_params(self):
        """Number of trainable numbers in ``params``."""
        return int(flatten(self.params)[0].size)

    def fit(self, x_train, x_val=None, **options):
        """Fit by maximum likelihood with minibatch Adam; see :func:`maf_numpy.train.fit`."""
        from .train import fit

        return fit(self, x_train, x_val, **options)

    def save(self, path):
        """Save to ``path`` (.npz, no pickle); :func:`maf_numpy.load` reads it back bit for bit."""
        from .io import save

        save(self, path)

    def __repr__(self):
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        return f"{type(self).__name__}({arguments})"


def logsumexp(a, axis=-1, keepdims=False):
    """log sum exp(a) along ``axis``, as m + log sum exp(a - m) with m the largest entry (DESIGN §5: nothing large
    is exponentiated). m is a constant for autograd, so the gradient is exactly the softmax of a. A slice that
    is all -inf gives -inf. Any shape; the axis is removed unless ``keepdims``."""
    m = onp.max(getval(a), axis=axis, keepdims=True)
    m = onp.where(onp.isfinite(m), m, 0.0).astype(getval(a).dtype)
    with onp.errstate(divide="ignore"):  # log 0 = -inf for an all -inf slice: the intended answer
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis=axis)


def _apply(layer, direction, params, v, y):
    """``layer.inverse(params, v)`` or ``layer.forward(params, v)``; a conditional layer also gets y."""
    if getattr(layer, "context_dim", 0):
        return getattr(layer, direction)(params, v, y)
    return getattr(layer, direction)(params, v)


def check_context(y, C, n, name="y"):
    """A context of a conditional flow: a finite float array of shape (n, C), or (C,) used for every row.

    Returns an array of shape (n, C).
    """
    value = getval(y)
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.shape == (C,):
        y = np.broadcast_to(y, (n, C)) if not isbox(y) else np.ones((n, 1)) * y
    elif y is None:
        raise TypeError(f"{name} must be the context: a float array of shape ({n}, {C}) or ({C},), got None")
    check_data(y, C, name)
    if getval(y).shape[0] != n:
        raise ValueError(f"{name} must have one row per point ({n}) or shape ({C},), got shape {getval(y).shape}")
    return y


def _check_alpha_clamp(alpha_clamp):
    return None if alpha_clamp is None else check_positive_float(alpha_clamp, "alpha_clamp")


def _check_common(dim, num_layers, hidden, activation, dtype):
    dim = check_positive_int(dim, "dim")
    num_layers = check_positive_int(num_layers, "num_layers")
    hidden = check_hidden(hidden)
    check_choice(activation, ACTIVATION_NAMES, "activation")
    return dim, num_layers, hidden, check_dtype(dtype)


def _standardize_layers(dim, standardize, dtype):
    return [Standardize(dim, dtype)] if check_bool(standardize, "standardize") else []


def _between(layers, batch_norm, dim, dtype):
    """``layers`` with a BatchNorm after each but the last when ``batch_norm`` (MAF paper §4.1).

    (The authors' code, gpapamak/maf ``ml/models/mafs.py``, appends one after the last MADE too; here the
    last layer next to the base keeps its own shift and scale only.)
    """
    if not check_bool(batch_norm, "batch_norm"):
        return layers
    with_norms = []
    for layer in layers[:-1]:
        with_norms += [layer, BatchNorm(dim, dtype=dtype)]
    return with_norms + layers[-1:]


def _optional_config(batch_norm=False, alpha_clamp=None, context_dim=0):
    """The options a flow records in its configuration only when they differ from their defaults, so that the
    configuration (and repr, and the files) of every other flow stays what it was before the option existed."""
    options = {"batch_norm": True} if batch_norm else {}
    if alpha_clamp is not None:
        options["alpha_clamp"] = alpha_clamp
    if context_dim:
        options["context_dim"] = context_dim
    return options


class _AutoregressiveFlow(Flow):
    layer_class = None

    def __init__(self, dim, num_layers=5, hidden=(64, 64), orders="alternate", hidden_degrees="sequential",
                 activation="relu", standardize=True, rng=None, dtype="float64", batch_norm=False,
                 alpha_clamp=None, context_dim=0):
        dim, num_layers, hidden, dtype = _check_common(dim, num_layers, hidden, activation, dtype)
        check_choice(hidden_degrees, _masks.HIDDEN_DEGREE_MODES, "hidden_degrees")
        alpha_clamp = _check_alpha_clamp(alpha_clamp)
        rng = as_generator(rng)
        order_list = layer_orders(dim, num_layers, orders, rng)
        layers = _standardize_layers(dim, standardize, dtype) + _between([
            self.layer_class(dim, hidden, order, hidden_degrees, activation, rng, dtype=dtype,
                             context_dim=context_dim, alpha_clamp=alpha_clamp) for order in order_list
        ], batch_norm, dim, dtype)
        config = {"dim": dim, "num_layers": num_layers, "hidden": hidden,
                  "orders": [order.tolist() for order in order_list], "hidden_degrees": hidden_degrees,
                  "activation": activation, "standardize": standardize, "dtype": dtype,
                  **_optional_config(batch_norm, alpha_clamp, context_dim)}
        super().__init__(dim, layers, rng, config, dtype)


class MAF(_AutoregressiveFlow):
    """Masked Autoregressive Flow: K MAF layers (MAF paper §3.1), orderings reversed between layers.

    ``log_prob`` and ``inverse`` take one MADE pass per layer; ``sample`` and ``forward`` take D.

    Parameters
    ----------
    dim : int
        Data dimension D.
    num_layers : int
        Number of MADE layers K.
    hidden : tuple of int
        Hidden widths of every MADE.
    orders : {"alternate", "random", "sequential", "reversed"} or list of K permutations
        Orderings of the layers (see :func:`layer_orders`).
    hidden_degrees : {"sequential", "random"}
        How each MADE assigns hidden degrees (see :func:`maf_numpy.masks.hidden_degrees`).
    activation : {"relu", "tanh"}
    standardize : bool
        Put a :class:`~maf_numpy.transforms.Standardize` layer next to the data (fitted by ``fit``).
    rng : int, numpy.random.Generator or None
        Seeds the initial parameters and any random orderings or degrees.
    dtype : {"float64", "float32"}
        Floating-point type of the parameters and of every computation (see the module docstring).
    batch_norm : bool
        Put a :class:`~maf_numpy.transforms.BatchNorm` layer between consecutive MADE layers (MAF paper §4.1;
        see the module docstring for its two modes).
    alpha_clamp : float or None
        None (the default): the paper's unconstrained scale exp(alpha). A number c > 0: every layer uses
        ``c * tanh(alpha / c)`` instead (:func:`maf_numpy.transforms.soft_clamp`), so no layer scales a
        coordinate by more than exp(c): a stabiliser, not part of the paper.
    """

    layer_class = MAFLayer


class IAF(_AutoregressiveFlow):
    """Inverse Autoregressive Flow: K IAF layers (MAF paper §3.2; Kingma et al. 2016).

    ``sample`` and ``forward`` take one MADE pass per layer, and :meth:`sample_and_log_prob` also gives
    the density of its own samples for free; ``log_prob`` of an outside x takes D passes per layer.
    Same arguments as :class:`MAF`.
    """

    layer_class = IAFLayer

    def sample_and_log_prob(self, n, rng=None, params=None):
        """Draw n points and their log-density in one pass per layer (what IAF is good at).

            z ~ N(0, I),  (x, log|det dx/dz|) = forward(z),  log p(x) = log N(z; 0, I) - log|det dx/dz|

        Returns
        -------
        x : ndarray of shape (n, D)
        log_prob : ndarray of shape (n,)
        """
        n = check_positive_int(n, "n")
        rng = as_generator(rng)
        params = self._params(params)
        z = self._cast(rng.standard_normal((n, self.dim)))
        with self._counting_passes():
            x, log_det = self._forward(params, z)
        return x, standard_normal_log_prob(z) - log_det


class RealNVP(Flow):
    """RealNVP: K affine coupling layers with alternating halves (MAF paper §3.3; Dinh et al. 2017).

    One network pass per layer in both directions. Same arguments as :class:`MAF` except that there are
    no orderings: layer k conditions on the first half when k is even and on the second when k is odd.
    Needs ``dim >= 2``. ``batch_norm=True`` puts a BatchNorm between consecutive coupling layers.
    """

    def __init__(self, dim, num_layers=5, hidden=(64, 64), activation="relu", standardize=True, rng=None,
                 dtype="float64", batch_norm=False):
        dim, num_layers, hidden, dtype = _check_common(dim, num_layers, hidden, activation, dtype)
        if dim < 2:
            raise ValueError(f"dim must be at least 2 for RealNVP (a coupling layer splits x in two), got {dim}")
        rng = as_generator(rng)
        layers = _standardize_layers(dim, standardize, dtype) + _between([
            AffineCoupling(dim, hidden, flip=bool(k % 2), activation=activation, dtype=dtype)
            for k in range(num_layers)
        ], batch_norm, dim, dtype)
        config = {"dim": dim, "num_layers": num_layers, "hidden": hidden, "activation": activation,
                  "standardize": standardize, "dtype": dtype, **_optional_config(batch_norm)}
        super().__init__(dim, layers, rng, config, dtype)


class MADE(Flow):
    """A Gaussian MADE used as a density on its own: a one-layer MAF (MAF paper §3.1).

        log p(x) = sum_i log N(x_i | mu_i, exp(alpha_i)^2),   (mu_i, alpha_i) = MADE(x_{<i})

    Parameters
    ----------
    dim : int
    hidden : tuple of int
    order : {"sequential", "reversed", "random"} or a permutation of range(dim)
        ``order[0]`` is the variable generated first (see :func:`maf_numpy.masks.make_order`).
    hidden_degrees : {"sequential", "random"}
    activation : {"relu", "tanh"}
    standardize : bool
    rng : int, numpy.random.Generator or None
    dtype : {"float64", "float32"}
    alpha_clamp : float or None
        Optional soft clamp of the log-scales (see :class:`MAF`); None is the paper's form.

    Attributes
    ----------
    degrees, masks : lists of ndarray
        The MADE's degrees ``[m^0, ..., m^L]`` and masks (see :mod:`maf_numpy.masks`).
    """

    def __init__(self, dim, hidden=(64, 64), order="sequential", hidden_degrees="sequential",
                 activation="relu", standardize=True, rng=None, dtype="float64", alpha_clamp=None, context_dim=0):
        dim, _, hidden, dtype = _check_common(dim, 1, hidden, activation, dtype)
        check_choice(hidden_degrees, _masks.HIDDEN_DEGREE_MODES, "hidden_degrees")
        alpha_clamp = _check_alpha_clamp(alpha_clamp)
        rng = as_generator(rng)
        made_order = _masks.make_order(dim, order, rng)
        layers = _standardize_layers(dim, standardize, dtype) + [
            MAFLayer(dim, hidden, made_order, hidden_degrees, activation, rng, dtype=dtype, context_dim=context_dim,
                     alpha_clamp=alpha_clamp)
        ]
        config = {"dim": dim, "hidden": hidden, "order": made_order.tolist(), "hidden_degrees": hidden_degrees,
                  "activation": activation, "standardize": standardize, "dtype": dtype,
                  **_optional_config(alpha_clamp=alpha_clamp, context_dim=context_dim)}
        super().__init__(dim, layers, rng, config, dtype)

    @property
    def made_layer(self):
        """The MAFLayer holding the MADE network."""
        return self.layers[-1]

    @property
    def degrees(self):
        return self.made_layer.degrees

    @property
    def masks(self):
        return self.made_layer.masks

    def conditionals(self, x, params=None):
        """(mu, alpha) of the Gaussian conditionals at x, each (n, D), in the MADE's own coordinates
        (after standardisation when there is a Standardize layer): MAF §3.1, one pass."""
        return self._conditionals(x, None, params)

    def _conditionals(self, x, y, params):
        return self._last_layer_outputs(x, y, params, self.made_layer.conditioner)


# ---------------------------------------------------------------------------------------------------
# Conditional flows p(x | y) (MAF paper §3.4).
# ---------------------------------------------------------------------------------------------------
class _Conditional:
    """The public methods of a conditional flow p(x | y): every one takes the context y (MAF paper §3.4).

    Each MADE reads ``[x, y]``: the C context inputs have degree 0, so every hidden unit may read them, and
    hidden units start at degree 0 (units that read only y). Output 1 sees exactly those units, so even the
    first variable's density depends on y; with hidden degrees from 1, as in a plain MADE, p(x_1 | y) would
    silently ignore y (``tests/test_conditional.py`` guards against that). The base stays N(0, I).

    ``y`` is a float array of shape (n, C), one context per point, or (C,) for the same context on every
    point; a one-hot label gives a class-conditional model, and :meth:`class_log_posterior` turns it into a
    Bayes-rule classifier.
    """

    def log_prob(self, x, y, params=None):
        """log p(x | y) = log N(z; 0, I) + log|det dz/dx|, z = inverse(x; y) (MAF §3.4); shape (n,)."""
        return self._public_log_prob(x, y, params)

    def inverse(self, x, y, params=None):
        """Normalise, x -> z, given y. Returns (z, log|det dz/dx|) of shapes (n, D) and (n,)."""
        return self._public_inverse(x, y, params)

    def forward(self, z, y, params=None):
        """Generate, z -> x, given y. Returns (x, log|det dx/dz|) of shapes (n, D) and (n,)."""
        return self._public_forward(z, y, params)

    def sample(self, n, y, rng=None, params=None):
        """Draw n points from p(x | y): z ~ N(0, I), x = forward(z; y); y of shape (n, C) or (C,)."""
        return self._public_sample(n, y, rng, params)

    def trace_inverse(self, x, y, params=None):
        """Like :meth:`Flow.trace_inverse`, given the context y."""
        x = self._cast(check_data(x, self.dim, "x"))
        return self._trace(x, self._params(params), "inverse", self._context(y, x.shape[0]))

    def trace_forward(self, z, y, params=None):
        """Like :meth:`Flow.trace_forward`, given the context y."""
        z = self._cast(check_data(z, self.dim, "z"))
        return self._trace(z, self._params(params), "forward", self._context(y, z.shape[0]))

    def fit(self, x_train, y_train, x_val=None, y_val=None, **options):
        """Fit p(x | y) by maximum likelihood: :func:`maf_numpy.train.fit` with ``y_train``/``y_val``."""
        from .train import fit

        return fit(self, x_train, x_val, y_train=y_train, y_val=y_val, **options)

    def class_log_posterior(self, x, log_prior=None, params=None):
        """Bayes' rule for a class-conditional model whose context is a one-hot label of C classes.

            log p(c | x) = log p(x | e_c) + log p(c) - logsumexp_c' (log p(x | e_c') + log p(c'))

        Parameters
        ----------
        x : ndarray of shape (n, D)
        log_prior : ndarray of shape (C,) or None
            log p(c); None for equal priors.
        params : pytree or None

        Returns
        -------
        ndarray of shape (n, C): each row a normalised log-posterior over the C classes (C log p(x | y)
        evaluations, one per class).
        """
        C = self.context_dim
        if log_prior is None:
            log_prior = np.full(C, -np.log(C))
        else:
            log_prior = np.asarray(log_prior, dtype=float)
            if log_prior.shape != (C,) or not np.all(np.isfinite(log_prior)):
                raise ValueError(f"log_prior must be a finite array of shape ({C},), got {log_prior!r}")
        x = self._cast(check_data(x, self.dim, "x"))
        eye = np.eye(C, dtype=self.dtype)
        scores = np.stack([self.log_prob(x, eye[c], params) for c in range(C)], axis=1) + log_prior
        return scores - logsumexp(scores, axis=1, keepdims=True)

    def predict(self, x, log_prior=None, params=None):
        """The most probable class under :meth:`class_log_posterior`; int array of shape (n,)."""
        return np.argmax(self.class_log_posterior(x, log_prior, params), axis=1)


def _check_context_dim(context_dim):
    return check_positive_int(context_dim, "context_dim")


class ConditionalMADE(_Conditional, MADE):
    """A Gaussian MADE of p(x | y): ``MADE`` whose network also reads a context y of C numbers (MAF §3.4).

    ``ConditionalMADE(dim, context_dim, hidden=(64, 64), ...)``; the other arguments are :class:`MADE`'s.
    ``conditionals(x, y)`` gives (mu, alpha) of the Gaussian conditionals. See :class:`_Conditional` for
    how the context enters and the methods.
    """

    def __init__(self, dim, context_dim, hidden=(64, 64), order="sequential", hidden_degrees="sequential",
                 activation="relu", standardize=True, rng=None, dtype="float64", alpha_clamp=None):
        super().__init__(dim, hidden, order, hidden_degrees, activation, standardize, rng, dtype, alpha_clamp,
                         _check_context_dim(context_dim))

    def conditionals(self, x, y, params=None):
        """(mu, alpha) of the Gaussian conditionals of p(x | y) at x, each (n, D) (MAF §3.1, §3.4)."""
        return self._conditionals(x, y, params)


class ConditionalMAF(_Conditional, MAF):
    """A MAF of p(x | y): every MADE also reads the context y of C numbers (MAF paper §3.4).

    ``ConditionalMAF(dim, context_dim, num_layers=5, hidden=(64, 64), ...)``; the other arguments are
    :class:`MAF`'s. One pass per layer for ``log_prob(x, y)``, D for ``sample(n, y)``, as for a MAF.
    See :class:`_Conditional` for how the context enters and the methods.
    """

    def __init__(self, dim, context_dim, num_layers=5, hidden=(64, 64), orders="alternate",
                 hidden_degrees="sequential", activation="relu", standardize=True, rng=None, dtype="float64",
                 batch_norm=False, alpha_clamp=None):
        super().__init__(dim, num_layers, hidden, orders, hidden_degrees, activation, standardize, rng, dtype,
                         batch_norm=batch_norm, alpha_clamp=alpha_clamp, context_dim=_check_context_dim(context_dim))
