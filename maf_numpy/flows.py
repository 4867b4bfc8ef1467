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
from autograd.misc import flatten
from autograd.tracer import isbox

from . import masks as _masks
from .transforms import AffineCoupling, IAFLayer, MAFLayer, Standardize
from .validation import (
    as_generator,
    check_bool,
    check_choice,
    check_data,
    check_dtype,
    check_hidden,
    check_params,
    check_positive_int,
    warn_if_not_finite,
)

__all__ = ["standard_normal_log_prob", "Flow", "MADE", "MAF", "IAF", "RealNVP", "layer_orders"]

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
        self.passes = 0
        self.passes_per_layer = [0] * len(layers)

    # --- pure functions of (params, input): what autograd differentiates ---------------------------
    def _inverse(self, params, x):
        log_det = np.zeros(x.shape[0], dtype=self.dtype)
        for layer, p in zip(self.layers, params):
            x, log_det_layer = layer.inverse(p, x)
            log_det = log_det + log_det_layer
        return x, log_det

    def _forward(self, params, z):
        log_det = np.zeros(z.shape[0], dtype=self.dtype)
        for layer, p in zip(reversed(self.layers), reversed(params)):
            z, log_det_layer = layer.forward(p, z)
            log_det = log_det + log_det_layer
        return z, log_det

    def _log_prob(self, params, x):
        z, log_det = self._inverse(params, x)
        return self._base_log_prob(params, z) + log_det

    # --- the base density: N(0, I) here; a flow with another base (maf_numpy.mog) overrides these two ---
    def _base_log_prob(self, params, z):
        """log p_base(z), shape (n,): the standard normal, log N(z; 0, I)."""
        return standard_normal_log_prob(z)

    def _base_sample(self, params, n, rng):
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
        x = self._cast(check_data(x, self.dim, "x"))
        params = self._params(params)
        with self._counting_passes():
            z, log_det = self._inverse(params, x)
        warn_if_not_finite(log_det, "log|det dz/dx|")
        return warn_if_not_finite(z, "z"), log_det

    def forward(self, z, params=None):
        """Generate, z -> x. Returns (x, log|det dx/dz|) of shapes (n, D) and (n,)."""
        z = self._cast(check_data(z, self.dim, "z"))
        params = self._params(params)
        with self._counting_passes():
            x, log_det = self._forward(params, z)
        warn_if_not_finite(log_det, "log|det dx/dz|", "z")
        return warn_if_not_finite(x, "x", "z"), log_det

    def log_prob(self, x, params=None):
        """log p(x) = log N(z; 0, I) + log|det dz/dx| (change of variables, MAF §2.2); shape (n,)."""
        x = self._cast(check_data(x, self.dim, "x"))
        params = self._params(params)
        with self._counting_passes():
            log_prob = self._log_prob(params, x)
        # x is finite (checked above), so a NaN can only come from float64 overflow inside the flow (inf - inf,
        # inf * 0) far from the data, where the density underflows: report it as -inf; the warning says so.
        log_prob = np.where(np.isnan(log_prob), -np.inf, log_prob)
        return warn_if_not_finite(log_prob, "log_prob")

    def sample(self, n, rng=None, params=None):
        """Draw n points: z ~ N(0, I), x = forward(z). Returns an array of shape (n, D) in the flow's dtype.

        z is drawn in float64 and then cast, so flows of either dtype draw the same z from the same seed.
        """
        n = check_positive_int(n, "n")
        rng = as_generator(rng)
        params = self._params(params)
        with self._counting_passes():
            x = self._forward(params, self._base_sample(params, n, rng))[0]
        return warn_if_not_finite(x, "sample", "the base draws z")

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

    def _trace(self, v, params, direction):
        pairs = list(zip(self.layers, params))
        if direction == "forward":
            pairs = pairs[::-1]
        trace = {"values": [v], "log_dets": [], "passes": [], "layers": []}
        for layer, p in pairs:
            layer.calls = 0
            v, log_det = getattr(layer, direction)(p, v)
            trace["values"].append(v)
            trace["log_dets"].append(log_det)
            trace["passes"].append(layer.calls)
            trace["layers"].append(repr(layer))
        return trace

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


def _check_common(dim, num_layers, hidden, activation, dtype):
    dim = check_positive_int(dim, "dim")
    num_layers = check_positive_int(num_layers, "num_layers")
    hidden = check_hidden(hidden)
    check_choice(activation, ACTIVATION_NAMES, "activation")
    return dim, num_layers, hidden, check_dtype(dtype)


def _standardize_layers(dim, standardize, dtype):
    return [Standardize(dim, dtype)] if check_bool(standardize, "standardize") else []


class _AutoregressiveFlow(Flow):
    layer_class = None

    def __init__(self, dim, num_layers=5, hidden=(64, 64), orders="alternate", hidden_degrees="sequential",
                 activation="relu", standardize=True, rng=None, dtype="float64"):
        dim, num_layers, hidden, dtype = _check_common(dim, num_layers, hidden, activation, dtype)
        check_choice(hidden_degrees, _masks.HIDDEN_DEGREE_MODES, "hidden_degrees")
        rng = as_generator(rng)
        order_list = layer_orders(dim, num_layers, orders, rng)
        layers = _standardize_layers(dim, standardize, dtype) + [
            self.layer_class(dim, hidden, order, hidden_degrees, activation, rng, dtype=dtype) for order in order_list
        ]
        config = {"dim": dim, "num_layers": num_layers, "hidden": hidden,
                  "orders": [order.tolist() for order in order_list], "hidden_degrees": hidden_degrees,
                  "activation": activation, "standardize": standardize, "dtype": dtype}
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
    Needs ``dim >= 2``.
    """

    def __init__(self, dim, num_layers=5, hidden=(64, 64), activation="relu", standardize=True, rng=None,
                 dtype="float64"):
        dim, num_layers, hidden, dtype = _check_common(dim, num_layers, hidden, activation, dtype)
        if dim < 2:
            raise ValueError(f"dim must be at least 2 for RealNVP (a coupling layer splits x in two), got {dim}")
        rng = as_generator(rng)
        layers = _standardize_layers(dim, standardize, dtype) + [
            AffineCoupling(dim, hidden, flip=bool(k % 2), activation=activation, dtype=dtype)
            for k in range(num_layers)
        ]
        config = {"dim": dim, "num_layers": num_layers, "hidden": hidden, "activation": activation,
                  "standardize": standardize, "dtype": dtype}
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

    Attributes
    ----------
    degrees, masks : lists of ndarray
        The MADE's degrees ``[m^0, ..., m^L]`` and masks (see :mod:`maf_numpy.masks`).
    """

    def __init__(self, dim, hidden=(64, 64), order="sequential", hidden_degrees="sequential",
                 activation="relu", standardize=True, rng=None, dtype="float64"):
        dim, _, hidden, dtype = _check_common(dim, 1, hidden, activation, dtype)
        check_choice(hidden_degrees, _masks.HIDDEN_DEGREE_MODES, "hidden_degrees")
        rng = as_generator(rng)
        made_order = _masks.make_order(dim, order, rng)
        layers = _standardize_layers(dim, standardize, dtype) + [
            MAFLayer(dim, hidden, made_order, hidden_degrees, activation, rng, dtype=dtype)
        ]
        config = {"dim": dim, "hidden": hidden, "order": made_order.tolist(), "hidden_degrees": hidden_degrees,
                  "activation": activation, "standardize": standardize, "dtype": dtype}
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
        x = self._cast(check_data(x, self.dim, "x"))
        params = self._params(params)
        with self._counting_passes():
            for layer, p in zip(self.layers[:-1], params[:-1]):
                x, _ = layer.inverse(p, x)
            return self.made_layer.conditioner(params[-1], x)
