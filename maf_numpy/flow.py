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
``log_prob`` makes K passes and ``sample`` K * D; for an IAF it is the other way round. (With ``fast=True``,
the K * D passes of MAF sampling and IAF density evaluation are sequential steps of the degree-sliced solver
when nothing is differentiated, :func:`maf_numpy.fast.solver.solve_sliced`: D steps per layer, about one pass
of arithmetic.)

Reference and fast paths. Every flow takes ``fast=True`` (the default) and exposes ``flow.fast``. With
``fast=False`` every computation runs the readable reference methods of :mod:`maf_numpy.transforms` and
:mod:`maf_numpy.made`, layer by layer, in :meth:`Flow.run`; with True, :meth:`Flow.run` asks
:func:`maf_numpy.fast.select` for kernels that compute the same numbers faster (tested equal).

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
Conditional flows p(x | y) are in :mod:`maf_numpy.conditional`.

References
----------
G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017.
"""

import contextlib
import copy as _copy
import inspect
import warnings
import weakref

import autograd.numpy as np
import numpy as onp
from autograd.misc import flatten
from autograd.tracer import isbox

from . import fast
from . import train as _train
from .bases import StandardNormal
from .npz import check_state, save_flow, state_owners
from .train import fit
from .transforms import BatchNorm, apply_layer
from .validation import (
    as_generator,
    check_bool,
    check_context,
    check_data,
    check_dtype,
    check_params,
    check_positive_int,
    warn_if_not_finite,
)

__all__ = ["Flow"]


class Flow:
    """A normalising flow: a base density and a list of layers (see the module docstring).

    ``Flow(dim, layers, base=None, rng=None, fast=True)`` composes any layers that follow the layer protocol
    (:mod:`maf_numpy.transforms`: ``init_params``, ``inverse``, ``forward``, ``calls``, ``config``,
    ``get_state``/``set_state``) over a base density (:mod:`maf_numpy.bases`; default: ``StandardNormal(dim)``).
    ``layers[0]`` sits next to the data, ``layers[-1]`` next to the base. The classes :class:`MADE`,
    :class:`MAF`, :class:`IAF`, :class:`RealNVP` (and the conditional, MoG and order-agnostic flows) are
    flows whose constructors only build the layers.

    Parameters
    ----------
    dim : int
        Data dimension D.
    layers : list
        The layers, data side first.
    base : base density or None
        ``StandardNormal(dim)`` when None.
    rng : int, numpy.random.Generator or None
        Seeds the initial parameters.
    fast : bool
        Whether kernels of :mod:`maf_numpy.fast` may run (see :attr:`fast`).
    dtype : {"float64", "float32"} or None
        Defaults to the first layer's ``dtype`` (float64 if it has none).
    config : dict or None
        The constructor arguments of a subclass (what ``save`` stores and ``repr`` shows); None for a
        composition, which saves as its layers' and base's ``config()``.

    Attributes
    ----------
    params : list of dict
        One dict of arrays per layer, then the base's when it has parameters: the pytree ``autograd.grad``
        differentiates. Layer *state* (Standardize shift and scale, BatchNorm statistics, degrees) is not in it:
        :meth:`state` returns both.
    """

    def __init__(self, dim, layers, base=None, rng=None, fast=True, dtype=None, config=None):
        self.dim = check_positive_int(dim, "dim")
        self.layers = _check_layers(layers)
        if dtype is None:
            dtype = next((layer.dtype for layer in self.layers if hasattr(layer, "dtype")), "float64")
        self.dtype = np.dtype(check_dtype(dtype))
        self.base = StandardNormal(self.dim, self.dtype) if base is None else _check_base(base, self.dim)
        rng = as_generator(rng)
        params = [layer.init_params(rng) for layer in self.layers]
        base_params = self.base.init_params(rng)
        self._base_has_params = bool(base_params)
        self._param_tree = params + [base_params] if base_params else params
        self.config = config
        self.context_dim = (config or {}).get("context_dim", 0)  # C > 0 for the conditional flows (MAF §3.4)
        self.fast = fast
        self.passes = 0
        self.passes_per_layer = [0] * len(self._counted())
        _FLOWS.add(self)

    @property
    def params(self):
        """The trainable numbers: a list with one dict of arrays per layer (then the base's, if it has any)."""
        return self._param_tree

    @params.setter
    def params(self, value):
        holders = [other for other in list(_FLOWS) if other is not self and value is other._param_tree]
        if holders and all(_state_differs(self, other) for other in holders):
            warnings.warn(
                "these params belong to another flow whose layer state differs from this flow's (Standardize "
                "shift and scale, BatchNorm statistics or degrees are state, not params), so this flow would "
                "compute another density. Copy both with flow.load_state(other.state()), or use other.copy()",
                UserWarning, stacklevel=2)
        self._param_tree = value

    def state(self):
        """Everything that defines the model, as plain arrays: ``{"params": the params pytree, "layers": [each
        layer's get_state()], "base": the base's get_state()}`` (copies). :meth:`load_state` puts it back."""
        return {"params": _copy.deepcopy(self._param_tree),
                "layers": [{key: onp.array(value) for key, value in layer.get_state().items()}
                           for layer in self.layers],
                "base": {key: onp.array(value) for key, value in self.base.get_state().items()}}

    def load_state(self, state):
        """Install a :meth:`state` of a flow with the same structure: parameters and layer state. Everything is
        checked (keys, shapes, dtypes, finite values) before anything changes. Returns the flow."""
        if not isinstance(state, dict) or set(state) != {"params", "layers", "base"}:
            raise ValueError(f"state must be a dict with the keys 'params', 'layers' and 'base' (from flow.state()), "
                             f"got {type(state).__name__}")
        params = check_params(state["params"], self._param_tree, "state['params']")
        owners, saved = state_owners(self), [*state["layers"], state["base"]]
        if not isinstance(state["layers"], (list, tuple)) or len(saved) != len(owners):
            raise ValueError(f"state['layers'] must hold {len(self.layers)} layer states, one per layer")
        for k, (owner, entries) in enumerate(zip(owners, saved)):
            expected = owner.get_state()
            if not isinstance(entries, dict) or set(entries) != set(expected):
                raise ValueError(f"layer state {k} must have the keys {sorted(expected)}, got "
                                 f"{sorted(entries) if isinstance(entries, dict) else type(entries).__name__}")
            for name, value in entries.items():
                check_state(f"state[{k}][{name!r}]", onp.asarray(value), expected[name], self.dim, "state")
        for owner, entries in zip(owners, saved):
            owner.set_state({name: onp.array(value) for name, value in entries.items()})
        self._param_tree = _copy.deepcopy(list(params))
        return self

    def copy(self):
        """An independent duplicate: same class, structure, layer state and parameters (a deep copy)."""
        duplicate = _copy.deepcopy(self)
        _FLOWS.add(duplicate)
        return duplicate

    @property
    def backward(self):
        raise AttributeError(
            f"{type(self).__name__} has no 'backward'. maf_numpy names the maps by direction as the MAF paper, TFP "
            f"and Pyro do: inverse(x) -> (z, log|det dz/dx|) normalises (x -> z; nflows' forward, nflib's forward), "
            f"forward(z) -> (x, log|det dx/dz|) generates (z -> x; nflows' inverse, nflib's backward). See the "
            f"direction table in the README")

    def _base_params(self, params):
        """The base's entry of a params pytree (``{}`` for a base without parameters)."""
        return params[-1] if self._base_has_params else {}

    def _counted(self):
        """What ``passes_per_layer`` counts: the layers, then the base when it has a network."""
        return self.layers + [self.base] if self._base_has_params else self.layers

    @property
    def fast(self):
        """Whether kernels of :mod:`maf_numpy.fast` may replace the reference layer methods (True by default).

        They are tested equal to the reference; False runs the readable code of :mod:`maf_numpy.made` and
        :mod:`maf_numpy.transforms` everywhere (log_prob, sample, inverse, forward, gradients, ``fit`` and its
        Adam), to read it, step through it in a debugger, or time what the paper's algorithm costs as written.
        """
        return self._fast

    @fast.setter
    def fast(self, value):
        self._fast = check_bool(value, "fast")

    # --- pure functions of (params, input): what autograd differentiates ---------------------------
    def run(self, direction, params, v, y=None, layers=None):
        """Push v through every layer: ``"inverse"`` (x -> z, normalising) in list order, ``"forward"`` (z -> x,
        generative) in reverse order. Returns (output, log_det) with the log-dets of the layers summed (MAF §2.2:
        the log-det of a composition is the sum of the layers' log-dets).

        A pure function of (params, v), of shapes (n, D) and (n,); ``y`` is the context (n, C) of a conditional
        flow (only conditional layers receive it); ``layers`` a list of layers to run instead of
        ``self.layers``, with ``params`` their parameters. The one place where, when ``self.fast`` is on, a
        kernel of :mod:`maf_numpy.fast` may do the work instead (:func:`maf_numpy.fast.select`); with
        ``fast=False``, exactly the loop below runs.
        """
        layers = self.layers if layers is None else layers
        if len(params) > len(layers):
            params = params[:len(layers)]  # the layers' entries (the base's, when it has any, comes last)
        kernel = fast.select(layers, direction, params, v, y) if self.fast else None
        if kernel is not None:
            return kernel(layers, params, v, y)
        pairs = list(zip(layers, params))
        if direction == "forward":
            pairs = pairs[::-1]
        log_det = np.zeros(v.shape[0], dtype=self.dtype)
        for layer, p in pairs:
            v, log_det_layer = apply_layer(layer, direction, p, v, y)
            log_det = log_det + log_det_layer
        return v, log_det

    def log_density(self, params, x, y=None):
        """log p(x) = log p_base(z) + log|det dz/dx|, (z, log|det dz/dx|) = inverse(x) (MAF §2.2), shape (n,).

        The pure function behind :meth:`log_prob` (no checks, no pass counting): what ``fit`` differentiates.
        """
        z, log_det = self.run("inverse", params, x, y)
        return self.base.log_prob(self._base_params(params), z, y) + log_det

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
        for counted in self._counted():
            counted.calls = 0
        try:
            yield
        finally:
            self.passes_per_layer = [counted.calls for counted in self._counted()]
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
        """Draw n points: z from the base density (``flow.base``, N(0, I) by default), x = forward(z).
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
            z, log_det = self.run("inverse", params, x, y)
        warn_if_not_finite(log_det, "log|det dz/dx|")
        return warn_if_not_finite(z, "z"), log_det

    def _public_forward(self, z, y, params):
        z = self._cast(check_data(z, self.dim, "z"))
        y = self._context(y, z.shape[0])
        params = self._params(params)
        with self._counting_passes():
            x, log_det = self.run("forward", params, z, y)
        warn_if_not_finite(log_det, "log|det dx/dz|", "z")
        return warn_if_not_finite(x, "x", "z"), log_det

    def _public_log_prob(self, x, y, params):
        x = self._cast(check_data(x, self.dim, "x"))
        y = self._context(y, x.shape[0])
        params = self._params(params)
        with self._counting_passes():
            log_prob = self.log_density(params, x, y)
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
            z = self._cast(self.base.sample(self._base_params(params), n, rng, y))
            x = self.run("forward", params, z, y)[0]
        return warn_if_not_finite(x, "sample", "the base draws z")

    def _outputs_after(self, k, x, y, params, outputs):
        """``outputs(params[k], v, y)`` where v is x pushed through ``layers[:k]`` (Standardize, ...): the
        conditionals of the network of layer k (or of the base, k = len(layers)), what ``conditionals`` of the
        MADE and MoG flows returns."""
        x = self._cast(check_data(x, self.dim, "x"))
        y = self._context(y, x.shape[0])
        params = self._params(params)
        with self._counting_passes():
            for layer, p in zip(self.layers[:k], params[:k]):
                x, _ = apply_layer(layer, "inverse", p, x, y)
            return outputs(params[k], x, y)

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
            v, log_det = apply_layer(layer, direction, p, v, y)
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

    def initialize(self, x, y=None):
        """Data-dependent initialisation (e.g. ActNorm, Kingma & Dhariwal 2018, §3.1): push x (n, D) through the
        layers in the normalising direction; every layer with an ``initialize(params, x) -> params`` method that
        is not yet initialised (``layer.initialized`` False) replaces its parameters by what it returns, computed
        from the x it receives, before x goes on through it. ``fit`` calls this once before training, after
        fitting the Standardize layer. Layers without the method are unaffected. Returns the flow."""
        x = self._cast(check_data(x, self.dim, "x"))
        y = self._context(y, x.shape[0])
        pending = [k for k, layer in enumerate(self.layers)
                   if callable(getattr(layer, "initialize", None)) and not getattr(layer, "initialized", True)]
        params = list(self._param_tree)
        for k, layer in enumerate(self.layers[:max(pending, default=-1) + 1]):
            if k in pending:
                params[k] = layer.initialize(params[k], x)
            x = apply_layer(layer, "inverse", params[k], x, y)[0]
        self._param_tree = params
        return self

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
                x = np.concatenate([apply_layer(layer, "inverse", p, x[start:start + batch],
                                           None if y is None else y[start:start + batch])[0]
                                    for start in range(0, x.shape[0], batch)])
        finally:
            self.training = training
        return self

    @property
    def num_params(self):
        """Number of trainable numbers in ``params``."""
        return int(flatten(self.params)[0].size)

    def fit(self, x_train=None, x_val=None, **options):
        return fit(self, x_train, x_val, **options)

    fit.__doc__ = _train.fit.__doc__
    fit.__signature__ = inspect.signature(_train.fit).replace(parameters=[
        inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        *list(inspect.signature(_train.fit).parameters.values())[1:]])

    def save(self, path):
        """Save to ``path`` (.npz, no pickle); :func:`maf_numpy.load` reads it back bit for bit."""
        save_flow(self, path)

    def __repr__(self):
        if self.config is None:  # a composition: its layers and base
            layers = ",\n".join(f"    {layer!r}" for layer in self.layers)
            return (f"Flow(dim={self.dim}, layers=[\n{layers}\n], base={self.base!r}, dtype={self.dtype.name!r}"
                    f"{'' if self.fast else ', fast=False'})")
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.config.items())
        return f"{type(self).__name__}({arguments}{'' if self.fast else ', fast=False'})"


_FLOWS = weakref.WeakSet()  # every live flow, so that params assigned from another flow can be recognised


def _state_differs(flow, other):
    """Whether two flows of the same structure (the same layer and base classes) hold different state arrays:
    the numbers that params do not carry (Standardize shift and scale, BatchNorm statistics, degrees)."""
    owners, others = state_owners(flow), state_owners(other)
    if [type(a) for a in owners] != [type(b) for b in others]:
        return False  # another structure: nothing to compare
    for a, b in zip(owners, others):
        state_a, state_b = a.get_state(), b.get_state()
        if set(state_a) != set(state_b) or not all(onp.array_equal(state_a[key], state_b[key]) for key in state_a):
            return True
    return False


def _check_layers(layers):
    if not isinstance(layers, (list, tuple)):
        raise TypeError(f"layers must be a list of layers, got {type(layers).__name__} {layers!r}")
    for k, layer in enumerate(layers):
        missing = [name for name in ("init_params", "forward", "inverse") if not callable(getattr(layer, name, None))]
        if missing or not hasattr(layer, "calls"):
            raise TypeError(f"layers[{k}] ({type(layer).__name__}) does not follow the layer protocol: it lacks "
                            f"{missing + ([] if hasattr(layer, 'calls') else ['calls'])} (see maf_numpy.transforms)")
    return list(layers)


def _check_base(base, dim):
    missing = [name for name in ("init_params", "log_prob", "sample", "get_state", "set_state")
               if not callable(getattr(base, name, None))]
    if missing or not hasattr(base, "calls"):
        raise TypeError(f"base ({type(base).__name__}) does not follow the base-density protocol: it lacks "
                        f"{missing + ([] if hasattr(base, 'calls') else ['calls'])} (see maf_numpy.bases)")
    if getattr(base, "D", dim) != dim:
        raise ValueError(f"base must have D = dim = {dim}, got a base of dimension {base.D}")
    return base
