"""Maximum-likelihood training: minibatch Adam over the parameter pytree, with early stopping.

    loss(params) = -(1/n) sum_b log p(x_b; params)        (mean negative log-likelihood, in nats)

The gradient comes from ``autograd.value_and_grad`` of that pure function; Adam (Kingma & Ba 2015,
Algorithm 1) is written out below, line for line as in ``autograd.misc.optimizers.adam``, because
``fit`` must also stop early, keep the best parameters and stop cleanly on a non-finite loss, which
autograd's optimiser cannot do. Lesson: ``lessons/05_training_maf_and_the_paper_figure_1.ipynb``.

The loss is written ``sum / n`` rather than ``mean``: autograd's backward pass for ``np.mean`` divides by
a NumPy integer, which under NumPy 2 silently promotes float32 gradients to float64 (DESIGN §7). A float32
flow (``dtype="float32"``) trains in float32 throughout: the data are cast to the flow's dtype, and the
gradient, Adam's moments and the step size (a Python float) keep it.

Interrupting and resuming. Everything a run depends on lives in one ``state`` dict (parameters, Adam's
moments, the step, the best parameters and score, the data order and cursor, the random generator's
state, the history). Each step builds a *new* state from the old one and the loop rebinds the name in
one statement, so a KeyboardInterrupt (Jupyter's stop button) can only land between two complete
states: ``fit`` then keeps the best parameters and returns with ``status == "interrupted"``. The same
state, written to a checkpoint (``checkpoint=``) and read back (``resume=``), continues the run so that
it ends bit for bit where an uninterrupted run ends.
"""

import hashlib
import json
import os
import time
import types
import warnings

import autograd.numpy as np
import numpy as onp
from autograd import value_and_grad

from . import io as _io
from .validation import as_generator, check_bool, check_data, check_positive_float, check_positive_int

__all__ = ["fit", "adam_step", "CHECKPOINT_VERSION"]

CHECKPOINT_VERSION = 1
# The options that decide the trajectory: a resumed run must use the values the checkpoint was written with.
RUN_OPTIONS = ("steps", "batch_size", "lr", "val_every", "patience", "val_fraction", "lr_decay", "ema")
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
FINISHED = ("completed", "early_stopped", "diverged")


def adam_step(theta, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam update (Kingma & Ba 2015, Algorithm 1) of the flat parameter vector theta::

        m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2                     (moment estimates)
        m_hat = m / (1 - b1^t),  v_hat = v / (1 - b2^t)                     (bias corrections)
        theta = theta - lr m_hat / (sqrt(v_hat) + eps)

    ``_adam_reference`` is that formula in five NumPy lines. This function computes the same
    operations in the same order (so the same numbers, bit for bit: ``tests/test_fast_paths.py``), chunk by
    chunk into preallocated arrays: the temporaries of a chunk stay in the CPU cache, where the five-line
    form streams a dozen full-length temporaries through memory (at 1.8M parameters, 10 ms of a 56 ms
    training step). The inputs are not modified: a new theta, m and v are returned, as a training state
    interrupted half-way must stay whole (``fit``).

    Parameters
    ----------
    theta, g, m, v : ndarray of shape (P,)
        Parameters, gradient, first and second moment estimates.
    t : int
        Step number, starting at 1 (for the bias correction).
    lr : float

    Returns
    -------
    theta, m, v : ndarray of shape (P,)
    """
    arrays = (theta, g, m, v)
    scalars = (lr, b1, b2, eps)
    if not (all(type(a) is onp.ndarray and a.ndim == 1 and a.dtype == theta.dtype and a.shape == theta.shape
                for a in arrays) and theta.dtype in (onp.float32, onp.float64)
            and all(type(s) in (int, float) for s in scalars) and type(t) is int):
        return _adam_reference(theta, g, m, v, t, lr, b1, b2, eps)  # e.g. NumPy scalars: their own promotion
    c1, c2 = 1 - b1**t, 1 - b2**t
    theta_new, m_new, v_new = onp.empty_like(theta), onp.empty_like(m), onp.empty_like(v)
    chunk = max(1, min(theta.size, _ADAM_CHUNK_BYTES // theta.itemsize))
    a, b = onp.empty(chunk, dtype=theta.dtype), onp.empty(chunk, dtype=theta.dtype)
    for start in range(0, theta.size, chunk):
        s = slice(start, start + chunk)
        n = min(chunk, theta.size - start)
        a_s, b_s, m_s, v_s = a[:n], b[:n], m_new[s], v_new[s]
        onp.multiply(m[s], b1, out=m_s)  # m = b1 * m + (1 - b1) * g
        onp.multiply(g[s], 1 - b1, out=a_s)
        onp.add(m_s, a_s, out=m_s)
        onp.square(g[s], out=a_s)  # v = b2 * v + (1 - b2) * g**2
        onp.multiply(a_s, 1 - b2, out=a_s)
        onp.multiply(v[s], b2, out=v_s)
        onp.add(v_s, a_s, out=v_s)
        onp.divide(v_s, c2, out=a_s)  # sqrt(v_hat) + eps
        onp.sqrt(a_s, out=a_s)
        onp.add(a_s, eps, out=a_s)
        onp.divide(m_s, c1, out=b_s)  # lr * m_hat / (sqrt(v_hat) + eps)
        onp.multiply(b_s, lr, out=b_s)  # (lr * m_hat, as the reference multiplies first)
        onp.divide(b_s, a_s, out=b_s)
        onp.subtract(theta[s], b_s, out=theta_new[s])
    return theta_new, m_new, v_new


_ADAM_CHUNK_BYTES = 2**19  # per array, so that a chunk's seven arrays and two temporaries fit in a 2-4 MB cache


def _adam_reference(theta, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    """:func:`adam_step` as the formula reads (the reference it is tested against, bit for bit)."""
    m = b1 * m + (1 - b1) * g  # first moment
    v = b2 * v + (1 - b2) * g**2  # second moment
    m_hat = m / (1 - b1**t)  # bias corrections
    v_hat = v / (1 - b2**t)
    return theta - lr * m_hat / (onp.sqrt(v_hat) + eps), m, v


def _leaves(tree):
    """The arrays of a parameter pytree in the order of ``autograd.misc.flatten`` (lists in order, dict keys
    sorted), raveled."""
    if isinstance(tree, (list, tuple)):
        return [leaf for value in tree for leaf in _leaves(value)]
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in _leaves(tree[key])]
    return [onp.ravel(tree)]


def plain_unflatten(tree):
    """A function that cuts a flat vector back into a pytree shaped like ``tree`` (views, no copies).

    The inverse of :func:`flat_vector`, in plain NumPy: ``autograd.misc.flatten``'s own ``unflatten`` is a
    backward pass through the flattening, dozens of autograd primitives per call (about 1 ms a step for a
    5-layer MAF, 15% of a small training step). Each leaf keeps its dtype.
    """
    if isinstance(tree, (list, tuple)):
        parts = [plain_unflatten(value) for value in tree]
        sizes = [size for _, size in parts]

        def unflatten(theta):
            out, start = [], 0
            for (function, _), size in zip(parts, sizes):
                out.append(function(theta[start:start + size]))
                start += size
            return type(tree)(out) if isinstance(tree, tuple) else out

        return unflatten, sum(sizes)
    if isinstance(tree, dict):
        keys = sorted(tree)
        parts = {key: plain_unflatten(tree[key]) for key in keys}

        def unflatten(theta):
            out, start = {}, 0
            for key in keys:
                function, size = parts[key]
                out[key] = function(theta[start:start + size])
                start += size
            return out

        return unflatten, sum(size for _, size in parts.values())
    shape, dtype = onp.shape(tree), onp.asarray(tree).dtype
    return (lambda theta: theta.reshape(shape).astype(dtype, copy=False)), int(onp.prod(shape, dtype=int))


def flat_vector(tree, dtype):
    """Concatenate a pytree's arrays into one vector of ``dtype``, in ``autograd.misc.flatten``'s order.

    ``flatten`` itself concatenates an empty *float64* array for a layer without parameters (the
    Standardize layer's ``{}``), which would silently promote a float32 flow's parameters, gradient and
    Adam state to float64 (DESIGN §7); this keeps them in the flow's dtype, with one copy.
    """
    leaves = _leaves(tree)
    return onp.concatenate(leaves).astype(dtype, copy=False) if leaves else onp.zeros(0, dtype=dtype)


def _mean_nll(flow, params, x, y=None, batch=4096):
    """Mean negative log-likelihood of x (n, D) (given the context y (n, C) of a conditional flow) in nats,
    evaluated in chunks (no gradient)."""
    total = 0.0
    for start in range(0, x.shape[0], batch):
        y_chunk = None if y is None else y[start:start + batch]
        total -= float(onp.sum(flow._log_prob(params, x[start:start + batch], y_chunk)))
    return total / x.shape[0]


def _step_size(step, options):
    """Adam's step size at ``step``: a cosine from lr down to lr / 100 over the run, or constant."""
    lr, steps = options["lr"], options["steps"]
    # a Python float: a NumPy float64 scalar times a float32 array would promote Adam's update to float64
    return float(lr * (0.01 + 0.99 * 0.5 * (1 + onp.cos(onp.pi * (step - 1) / steps)))) if options["lr_decay"] else lr


def fit(flow, x_train, x_val=None, steps=2000, batch_size=256, lr=1e-3, rng=None, progress=True,
        val_every=None, patience=20, val_fraction=0.1, lr_decay=True, checkpoint=None, checkpoint_every=None,
        resume=None, y_train=None, y_val=None, augment=None, ema=None):
    """Fit ``flow`` to data by maximum likelihood with minibatch Adam; keep the best parameters.

    Parameters
    ----------
    flow : Flow
        Any flow of :mod:`maf_numpy.flows`; its ``params`` are replaced by the best ones found.
    x_train : ndarray of shape (n, D)
    x_val : ndarray of shape (m, D) or None
        Validation data for early stopping. If None, a random ``val_fraction`` of ``x_train`` is held out
        (and said so in the history).
    steps : int
        Maximum number of Adam steps.
    batch_size : int
        Minibatch size; minibatches run through shuffled epochs of ``x_train``.
    lr : float
        Adam's step size.
    rng : int, numpy.random.Generator or None
        Shuffles the data (reproducible from a seed). A Generator passed in ends in the state it would
        have after drawing every epoch's shuffle itself.
    progress : bool
        Print a progress line at every validation.
    val_every : int or None
        Validate every this many steps (default: about 40 times in the run, at most every 100 steps).
    patience : int or None
        Stop when the validation NLL has not improved for this many validations (None: never stop early).
    val_fraction : float
        Fraction of ``x_train`` held out when ``x_val`` is None.
    lr_decay : bool
        Decay the step size along a cosine from ``lr`` to ``lr / 100`` over ``steps``.
    checkpoint : str, os.PathLike or None
        Write a training checkpoint to this ``.npz`` file (suffix added if missing) every
        ``checkpoint_every`` steps and when the run ends or is interrupted. It holds the current and
        best parameters, Adam's state (m, v, t), the step, the best validation NLL, the data order and
        cursor, the random generator's state (as JSON text), the history, the layers' structure
        (Standardize shift and scale, degrees), the fit options and a fingerprint of the data; no pickle.
        Each write is atomic (temporary file, fsync, ``os.replace``): a crash at any moment leaves the
        previous checkpoint readable.
    checkpoint_every : int or None
        Steps between checkpoints (default: at every validation). Needs ``checkpoint``.
    resume : str, os.PathLike or None
        Continue the run saved in this checkpoint: same ``flow`` configuration, same data (shape and
        values) and the same ``steps``, ``batch_size``, ``lr``, ``val_every``, ``patience``,
        ``val_fraction`` and ``lr_decay``, else a ValueError says which differs. ``rng`` is not used: the
        checkpoint's generator state (and the hold-out split it made) is. The resumed run ends bit for
        bit where the run would have ended without the interruption (the history's ``time`` aside). A
        checkpoint of a run that had already ended returns its history without training.
    y_train, y_val : ndarray of shape (n, C) and (m, C), or None
        The conditioning inputs of a conditional flow (``flow.context_dim = C > 0``), row for row with
        ``x_train`` and ``x_val``: the loss is then -log p(x | y) (MAF paper §3.4). Required for a
        conditional flow, refused for another. A hold-out split takes the same rows of both.
    augment : callable or None
        ``augment(x_batch, rng) -> x_batch`` applied to every training minibatch before the loss, with a
        fresh ``numpy.random.Generator`` per step (derived from ``rng``, so runs and resumed runs are
        reproducible): e.g. the uniform dequantisation of discrete data, redrawn at every step
        (:func:`maf_numpy.datasets.dequantize_logit_augment`). ``x_train`` is then the raw data and the
        model sees ``augment(x_train)``; ``x_val``, when given, must already be in the model's space (the
        caller transforms it once, with fixed noise); a held-out part of ``x_train`` is transformed once
        here, with fixed noise, and so are the points that fit a Standardize layer. ``resume`` cannot
        check that the same function is passed again: that is the caller's duty.
    ema : float in (0, 1) or None
        Keep an exponential moving average of the parameters, ``avg <- ema * avg + (1 - ema) * theta``
        after every Adam step (Polyak averaging, Polyak & Juditsky 1992, in its exponential form; it starts at
        the initial parameters), and validate and keep the *average* instead of the current parameters: it
        smooths out the last steps' noise (on the digits, 0.01-0.03 bits/pixel). None (the default): no average.

    Returns
    -------
    history : dict
        ``step``, ``train_nll`` (mean over the steps since the last validation), ``val_nll`` and ``time``
        (seconds since the start) at every validation; ``best_step``, ``best_val_nll``, ``steps_run``,
        ``status`` ("completed", "early_stopped", "diverged" or "interrupted"), ``message`` and
        ``val_source``.

    Notes
    -----
    If the loss or its gradient (or the validation NLL) becomes NaN or inf, training stops at once with a
    ``RuntimeWarning`` that says so, the best parameters seen are restored and ``history["status"]`` is
    ``"diverged"``. A KeyboardInterrupt (Jupyter's stop button) during training also stops it cleanly:
    the best parameters seen are kept, a checkpoint is written if ``checkpoint`` is set, and the history
    comes back with ``status == "interrupted"`` and a message. When a Standardize layer sits next to the
    data and has not been fitted yet, it is fitted to the training points first (to what remains of
    ``x_train`` after the hold-out when ``x_val`` is None).

    The training loss of each step is ``flow._train_log_prob(params, x_batch, rng)`` when the flow defines
    it (an order-agnostic MADE draws one of its mask sets there from the step's generator), else the
    log-density itself. Flows with batch-normalisation layers (``flow.needs_refresh``) are switched to
    training mode (minibatch statistics) only for the loss and its gradient; before every validation and
    at the end their evaluation statistics are recomputed from the training data with
    ``flow.refresh_state`` (whole-training-set statistics, as in the MAF paper's code).
    """
    options = _check_options(flow, x_train, x_val, steps, batch_size, lr, val_every, patience, val_fraction,
                             lr_decay, ema)
    progress = check_bool(progress, "progress")
    rng = as_generator(rng)
    checkpoint, checkpoint_every = _check_checkpointing(checkpoint, checkpoint_every, options["val_every"])
    data = _check_context_and_augment(flow, x_train, x_val, y_train, y_val, augment)
    fingerprint = None if checkpoint is None and resume is None else _data_fingerprint(data)
    saved = None if resume is None else _read_checkpoint(resume, flow, options, fingerprint)
    data = {key: _in_flow_dtype(flow, value) for key, value in data.items()}

    split_rng = rng if saved is None else _generator(saved["split_rng_state"])
    split_rng_state = split_rng.bit_generator.state
    data, val_source = _hold_out(data, options["val_fraction"], split_rng)
    seed = _aux_seed(split_rng_state)
    if augment is not None:  # fixed noise for the points that are scored or that fit statistics
        data["x_fixed"] = _in_flow_dtype(flow, _augmented(augment, data["x_train"], seed, 0, 3, flow.dim))
        if val_source != "x_val":
            data["x_val"] = _in_flow_dtype(flow, _augmented(augment, data["x_val"], seed, 0, 2, flow.dim))
    if saved is None:
        _fit_standardize(flow, data.get("x_fixed", data["x_train"]))
    run = _make_run(flow, data, options, progress, fingerprint, split_rng_state, augment, seed)
    state = _initial_state(run, rng, val_source) if saved is None else _resumed_state(saved, run)
    try:
        while state["history"]["status"] == "running":
            state = _train_step(state, run)  # one Adam step, and a validation when one is due
            if checkpoint is not None and state["step"] % checkpoint_every == 0:
                _write_checkpoint(checkpoint, state, run)
    except KeyboardInterrupt:
        state = _stop(state, "interrupted", _interrupted_message(state, checkpoint))
    if checkpoint is not None:
        _write_checkpoint(checkpoint, state, run)
    return _finish(state, run, rng)


# --- the named steps of fit ---------------------------------------------------------------------------
def _check_options(flow, x_train, x_val, steps, batch_size, lr, val_every, patience, val_fraction, lr_decay,
                   ema=None):
    """Validate the data and the options that decide the trajectory; return the options as a dict."""
    check_data(x_train, flow.dim, "x_train")
    steps = check_positive_int(steps, "steps")
    options = {"steps": steps, "batch_size": check_positive_int(batch_size, "batch_size"),
               "lr": check_positive_float(lr, "lr"),
               "patience": None if patience is None else check_positive_int(patience, "patience"),
               "lr_decay": check_bool(lr_decay, "lr_decay"), "val_fraction": None, "ema": None}
    if ema is not None:
        options["ema"] = check_positive_float(ema, "ema")
        if options["ema"] >= 1:
            raise ValueError(f"ema must be a number in (0, 1) (the weight of the old average) or None, got {ema!r}")
    if x_val is None:
        val_fraction = check_positive_float(val_fraction, "val_fraction")
        if val_fraction >= 1 or x_train.shape[0] < 2:
            raise ValueError(f"val_fraction must be in (0, 1) and x_train must hold at least 2 points to "
                             f"hold some out, got val_fraction={val_fraction}, n={x_train.shape[0]}")
        options["val_fraction"] = val_fraction
    else:
        check_data(x_val, flow.dim, "x_val")
    options["val_every"] = check_positive_int(max(1, min(100, steps // 40)) if val_every is None else val_every,
                                              "val_every")
    return options


def _check_checkpointing(checkpoint, checkpoint_every, val_every):
    """Return (path or None, steps between checkpoints); the checkpoint's folder must exist."""
    if checkpoint is None:
        if checkpoint_every is not None:
            raise ValueError("checkpoint_every needs checkpoint=path (where to write the checkpoints)")
        return None, None
    try:
        checkpoint = os.fspath(checkpoint)
    except TypeError:
        raise TypeError(f"checkpoint must be a str or os.PathLike, got {type(checkpoint).__name__}") from None
    if not isinstance(checkpoint, str):
        raise TypeError(f"checkpoint must be a str or os.PathLike, got {type(checkpoint).__name__}")
    folder = os.path.dirname(os.path.abspath(checkpoint))
    if not os.path.isdir(folder):
        raise ValueError(f"checkpoint must be a path in an existing folder, but {folder!r} does not exist")
    every = val_every if checkpoint_every is None else check_positive_int(checkpoint_every, "checkpoint_every")
    return checkpoint, every


def _check_context_and_augment(flow, x_train, x_val, y_train, y_val, augment):
    """The data as a dict {"x_train", "x_val", "y_train", "y_val"}: contexts checked against the flow."""
    C = getattr(flow, "context_dim", 0)
    if augment is not None and not callable(augment):
        raise TypeError(f"augment must be a callable (x_batch, rng) -> x_batch or None, got "
                        f"{type(augment).__name__}")
    if C == 0:
        for name, y in (("y_train", y_train), ("y_val", y_val)):
            if y is not None:
                raise ValueError(f"{name} is only for a conditional flow (context_dim > 0); "
                                 f"{type(flow).__name__} models p(x) without a context")
        return {"x_train": x_train, "x_val": x_val}
    if y_train is None or (x_val is not None) != (y_val is not None):
        raise ValueError(f"a conditional flow needs y_train (n, {C}) with x_train, and y_val (m, {C}) with x_val "
                         f"(and no y_val without x_val)")
    check_data(y_train, C, "y_train")
    if y_train.shape[0] != x_train.shape[0]:
        raise ValueError(f"y_train must have one row per row of x_train ({x_train.shape[0]}), got "
                         f"{y_train.shape[0]}")
    if y_val is not None:
        check_data(y_val, C, "y_val")
        if y_val.shape[0] != x_val.shape[0]:
            raise ValueError(f"y_val must have one row per row of x_val ({x_val.shape[0]}), got {y_val.shape[0]}")
    return {"x_train": x_train, "x_val": x_val, "y_train": y_train, "y_val": y_val}


def _data_fingerprint(data):
    """Shape, dtype and SHA-256 of the data, so that ``resume`` can refuse other data."""
    def describe(x):
        x = onp.ascontiguousarray(x)
        digest = hashlib.sha256(memoryview(x).cast("B")).hexdigest()
        return {"shape": list(x.shape), "dtype": str(x.dtype), "sha256": digest}

    return {key: None if value is None else describe(value) for key, value in data.items()}


def _aux_seed(split_rng_state):
    """A seed for the per-step generators (augmentation, mask choice), derived from the generator state the
    run started with, without drawing from it: flows that need no such generator follow the same trajectory
    as before, and a resumed run derives the same seed from the checkpoint."""
    return int(hashlib.sha256(_state_to_json(split_rng_state).encode()).hexdigest()[:16], 16)


def _step_generator(seed, step, purpose):
    """The generator of one step and one purpose (0: augment, 1: the flow's training loss; step 0: setup)."""
    return onp.random.default_rng([seed, step, purpose])


def _augmented(augment, x, seed, step, purpose, D):
    x_new = augment(x, _step_generator(seed, step, purpose))
    if not isinstance(x_new, onp.ndarray) or x_new.shape != (x.shape[0], D) or x_new.dtype.kind != "f":
        raise ValueError(f"augment must return a float array of shape ({x.shape[0]}, {D}) for a minibatch of "
                         f"{x.shape[0]} rows, got {type(x_new).__name__} {getattr(x_new, 'shape', '')}")
    return x_new


def _in_flow_dtype(flow, x):
    """x cast to the flow's dtype (float32 flows train in float32 throughout: DESIGN §7); None stays None."""
    dtype = getattr(flow, "dtype", None)
    return x if x is None or dtype is None or x.dtype == dtype else x.astype(dtype)


def _hold_out(data, val_fraction, rng):
    """(data, description): the given x_val, or a random ``val_fraction`` of x_train (and the same rows of
    y_train for a conditional flow)."""
    if data["x_val"] is not None:
        return data, "x_val"
    n = data["x_train"].shape[0]
    permutation = rng.permutation(n)
    n_val = max(1, int(round(val_fraction * n)))
    split = {"x_train": data["x_train"][permutation[n_val:]], "x_val": data["x_train"][permutation[:n_val]]}
    if "y_train" in data:
        split.update(y_train=data["y_train"][permutation[n_val:]], y_val=data["y_train"][permutation[:n_val]])
    return split, f"{n_val} points ({val_fraction:.0%}) held out of x_train"


def _fit_standardize(flow, x_train):
    standardize = flow.layers[0]
    if hasattr(standardize, "fitted") and not standardize.fitted:
        standardize.fit(x_train)


def _make_run(flow, data, options, progress, fingerprint, split_rng_state, augment, seed):
    """What stays fixed during the run: the data, the loss and its gradient, the options."""
    train_log_prob = getattr(flow, "_train_log_prob", None)

    def loss(params, x_batch, y_batch, rng):
        if train_log_prob is not None:  # e.g. one mask set of an order-agnostic MADE, drawn from rng
            log_p = train_log_prob(params, x_batch, rng) if y_batch is None else train_log_prob(
                params, x_batch, rng, y=y_batch)
        else:
            log_p = flow._log_prob(params, x_batch, y_batch)
        return -np.sum(log_p) / x_batch.shape[0]

    unflatten = plain_unflatten(flow.params)[0]
    dtype = getattr(flow, "dtype", onp.dtype(onp.float64))
    theta = flat_vector(flow.params, dtype)
    x_train = data["x_train"]
    return types.SimpleNamespace(
        flow=flow, x_train=x_train, x_val=data["x_val"], y_train=data.get("y_train"), y_val=data.get("y_val"),
        x_fixed=data.get("x_fixed", x_train), n=x_train.shape[0], options=options, progress=progress,
        batch_size=min(options["batch_size"], x_train.shape[0]), loss_and_grad=value_and_grad(loss),
        theta=theta, unflatten=unflatten, dtype=dtype, fingerprint=fingerprint, split_rng_state=split_rng_state,
        augment=augment, seed=seed, needs_refresh=bool(getattr(flow, "needs_refresh", False)),
        start=time.perf_counter())


def _refresh(run, params):
    """Recompute the evaluation statistics of batch-norm layers from the training data (see ``fit``)."""
    if run.needs_refresh:
        run.flow.refresh_state(run.x_fixed, params) if run.y_train is None else run.flow.refresh_state(
            run.x_fixed, params, y=run.y_train)


def _initial_state(run, rng, val_source):
    """The state before step 1: the flow's parameters, zero moments, the first epoch's order."""
    _refresh(run, run.flow.params)
    best_val = _mean_nll(run.flow, run.flow.params, run.x_val, run.y_val)
    history = {"step": [], "train_nll": [], "val_nll": [], "time": [], "best_step": 0, "best_val_nll": best_val,
               "steps_run": 0, "status": "running", "message": "", "val_source": val_source}
    order = rng.permutation(run.n)
    return {"step": 0, "theta": run.theta, "m": onp.zeros_like(run.theta), "v": onp.zeros_like(run.theta),
            "best_theta": run.theta.copy(), "since_best": 0, "train_losses": [], "order": order, "cursor": 0,
            "rng_state": rng.bit_generator.state, "history": history,
            "theta_avg": None if run.options["ema"] is None else run.theta.copy()}


def _resumed_state(saved, run):
    """The checkpoint's state; the clock continues from the checkpoint's elapsed time."""
    run.start -= saved["elapsed"]
    return saved["state"]


def _train_step(state, run):
    """One Adam step on the next minibatch (and a validation when due). Returns a new state."""
    step = state["step"] + 1
    order, cursor, rng_state = _next_minibatch(state, run)
    rows = order[cursor:cursor + run.batch_size]
    x_batch = run.x_train[rows]
    y_batch = None if run.y_train is None else run.y_train[rows]
    if run.augment is not None:  # fresh noise at every step (e.g. dequantisation)
        x_batch = _in_flow_dtype(run.flow, _augmented(run.augment, x_batch, run.seed, step, 0, run.flow.dim))
    params = run.unflatten(state["theta"])
    if run.needs_refresh:  # minibatch statistics in batch-norm layers, for the loss and its gradient only
        run.flow.training = True
    try:
        value, grad = run.loss_and_grad(params, x_batch, y_batch, _step_generator(run.seed, step, 1))
    finally:
        if run.needs_refresh:
            run.flow.training = False
    g = flat_vector(grad, run.dtype)
    if not (onp.isfinite(value) and onp.all(onp.isfinite(g))):
        return _stop(state, "diverged", _diverged_message(state, step, f"the training loss or its gradient is "
                                                                        f"not finite (loss = {value})"))
    theta, m, v = adam_step(state["theta"], g, state["m"], state["v"], step, _step_size(step, run.options))
    ema, theta_avg = run.options["ema"], state.get("theta_avg")
    if ema is not None:  # Python floats keep a float32 average float32
        theta_avg = ema * theta_avg + (1.0 - ema) * theta
    state = {**state, "step": step, "theta": theta, "m": m, "v": v, "theta_avg": theta_avg,
             "order": order, "cursor": cursor + run.batch_size,
             "rng_state": rng_state, "train_losses": state["train_losses"] + [float(value)],
             "history": {**state["history"], "steps_run": step}}
    if step % run.options["val_every"] == 0 or step == run.options["steps"]:
        state = _validate(state, run)
    if step == run.options["steps"] and state["history"]["status"] == "running":
        state["history"]["status"] = "completed"
    return state


def _next_minibatch(state, run):
    """Where the next minibatch starts: (order, cursor, generator state). When the epoch has too few
    points left, the next epoch's order is drawn (from a copy of the generator: the old state is kept)."""
    if state["cursor"] + run.batch_size <= run.n:
        return state["order"], state["cursor"], state["rng_state"]
    rng = _generator(state["rng_state"])
    return rng.permutation(run.n), 0, rng.bit_generator.state


def _validate(state, run):
    """Record the validation NLL; keep the best parameters; stop on a non-finite score or no progress."""
    step, old = state["step"], state["history"]
    scored = state["theta"] if run.options["ema"] is None else state["theta_avg"]  # the average, with ema
    params = run.unflatten(scored)
    _refresh(run, params)
    val_nll = _mean_nll(run.flow, params, run.x_val, run.y_val)
    history = {**old, "step": old["step"] + [step], "train_nll": old["train_nll"] + [float(onp.mean(
        state["train_losses"]))], "val_nll": old["val_nll"] + [float(val_nll)],
               "time": old["time"] + [time.perf_counter() - run.start]}
    state = {**state, "history": history, "train_losses": []}
    if not onp.isfinite(val_nll):
        return _stop(state, "diverged", _diverged_message(state, step, f"the validation NLL is not finite "
                                                                        f"({val_nll})"))
    if val_nll < history["best_val_nll"]:
        state.update(best_theta=scored, since_best=0)
        history.update(best_val_nll=val_nll, best_step=step)
    else:
        state["since_best"] += 1
    if run.progress:
        print(f"step {step:>6}/{run.options['steps']}  train NLL {history['train_nll'][-1]:8.4f}  val NLL "
              f"{val_nll:8.4f}  best {history['best_val_nll']:8.4f}  {history['time'][-1]:6.1f} s", flush=True)
    patience = run.options["patience"]
    if patience is not None and state["since_best"] >= patience:
        history.update(status="early_stopped", message=f"stopped early at step {step}: no validation "
                                                       f"improvement in {patience} validations")
    return state


def _stop(state, status, message):
    return {**state, "history": {**state["history"], "status": status, "message": message}}


def _best_so_far(history):
    return f"validation NLL {history['best_val_nll']:.4f} at step {history['best_step']}"


def _diverged_message(state, step, reason):
    return (f"training diverged at step {step}: {reason}; restored the best parameters "
            f"({_best_so_far(state['history'])}). Try a smaller lr.")


def _interrupted_message(state, checkpoint):
    how = (f"continue with fit(..., resume={checkpoint!r})" if checkpoint is not None
           else "pass checkpoint=path to fit to be able to resume")
    return (f"training interrupted after step {state['step']} (KeyboardInterrupt); kept the best parameters "
            f"seen ({_best_so_far(state['history'])}); {how}")


def _finish(state, run, rng):
    """Install the best parameters, move the caller's generator on, warn or print; return the history."""
    history = {key: list(value) if isinstance(value, list) else value for key, value in state["history"].items()}
    run.flow.params = run.unflatten(state["best_theta"])
    _refresh(run, run.flow.params)
    rng.bit_generator.state = state["rng_state"]
    if history["status"] == "diverged":
        warnings.warn(history["message"], RuntimeWarning, stacklevel=4)
    if run.progress and history["message"]:
        print(history["message"], flush=True)
    return history


# --- the random generator's state as JSON text --------------------------------------------------------
def _state_to_json(state):
    """``bit_generator.state`` (a dict of ints, and arrays for MT19937) as JSON text, never pickle."""
    def encode(value):
        if isinstance(value, onp.ndarray):
            return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
        if isinstance(value, onp.integer):
            return int(value)
        raise TypeError(f"cannot store {type(value).__name__} in a generator state")

    return json.dumps(state, default=encode)


def _state_from_json(text):
    def decode(value):
        return onp.array(value["__ndarray__"], dtype=value["dtype"]) if "__ndarray__" in value else value

    return json.loads(text, object_hook=decode)


def _generator(state):
    """A numpy.random.Generator in exactly the given bit-generator state."""
    bit_generator = getattr(onp.random, state["bit_generator"])()
    bit_generator.state = state
    return onp.random.Generator(bit_generator)


# --- checkpoints ---------------------------------------------------------------------------------------
def _write_checkpoint(path, state, run):
    """Write the whole run state atomically to ``path`` (see ``fit``'s ``checkpoint`` argument)."""
    history = state["history"]
    meta = {"options": run.options, "data": run.fingerprint, "step": state["step"], "cursor": state["cursor"],
            "since_best": state["since_best"], "elapsed": time.perf_counter() - run.start,
            "history": {key: value for key, value in history.items() if not isinstance(value, list)}}
    arrays = {
        "__format__": onp.array(_io.CHECKPOINT_FORMAT_NAME), "__version__": onp.array(CHECKPOINT_VERSION),
        "__model__": onp.array(_io.model_header(run.flow)), "__run__": onp.array(json.dumps(meta)),
        "rng_state": onp.array(_state_to_json(state["rng_state"])),
        "split_rng_state": onp.array(_state_to_json(run.split_rng_state)),
        "theta": state["theta"], "m": state["m"], "v": state["v"], "best_theta": state["best_theta"],
        "order": onp.asarray(state["order"], dtype=onp.int64),
        "train_losses": onp.array(state["train_losses"], dtype=onp.float64),
        "history/step": onp.array(history["step"], dtype=onp.int64),
        **{f"history/{key}": onp.array(history[key], dtype=onp.float64) for key in ("train_nll", "val_nll", "time")},
        **_io.layer_state_arrays(run.flow),
    }
    if state.get("theta_avg") is not None:
        arrays["theta_avg"] = state["theta_avg"]
    _io.atomic_savez(path, arrays)


def _read_checkpoint(resume, flow, options, fingerprint):
    """Read and check a checkpoint against this flow, these options and this data; return its contents.

    Nothing changes in ``flow`` until every check has passed; then the layers' structure (Standardize
    shift and scale, degrees) is installed from the checkpoint.
    """
    try:
        path = _io.resolve_path(resume, "checkpoint")
    except TypeError:
        raise TypeError(f"resume must be a str or os.PathLike, got {type(resume).__name__}") from None
    except FileNotFoundError as error:
        raise FileNotFoundError(f"resume: {error}") from None
    try:
        arrays = _io.read_arrays(path)
    except ValueError as error:
        raise ValueError(f"resume: {error}".replace("model file", "checkpoint")) from error
    meta = _check_checkpoint_header(arrays, path, flow)
    _check_same_run(meta, path, options, fingerprint)
    state = _checkpoint_state(arrays, meta, path, flow, fingerprint, options)
    split_rng_state = _checked_generator_state(arrays, "split_rng_state", path)
    try:
        _io.install_layer_state(flow, arrays, path, set())  # checks every entry before installing any
    except ValueError as error:
        raise ValueError(f"resume: {error}") from error
    return {"state": state, "elapsed": float(meta["elapsed"]), "split_rng_state": split_rng_state}


def _check_checkpoint_header(arrays, path, flow):
    """Format name, version and model configuration; returns the run's JSON metadata."""
    def text(key):
        value = arrays.get(key)
        return str(value) if value is not None and value.shape == () and value.dtype.kind == "U" else None

    if text("__format__") == _io.FORMAT_NAME:
        raise ValueError(f"resume: {path} is a model file written by save(), not a training checkpoint; load "
                         f"it with maf_numpy.load(path), or pass checkpoint=path to fit to write checkpoints")
    if text("__format__") != _io.CHECKPOINT_FORMAT_NAME:
        raise ValueError(f"resume: {path} is not a maf_numpy checkpoint (no '__format__ = "
                         f"{_io.CHECKPOINT_FORMAT_NAME}' entry)")
    _io.check_version(arrays, CHECKPOINT_VERSION, path, "checkpoint", prefix="resume: ")
    if text("__model__") is None or _json(text("__model__")) != _json(_io.model_header(flow)):
        raise ValueError(f"resume: {path} was written for another model, {text('__model__')}; this flow is "
                         f"{_io.model_header(flow)}. Build the same model to resume")
    meta = _json(text("__run__")) if text("__run__") is not None else None
    keys = {"options", "data", "step", "cursor", "since_best", "elapsed", "history"}
    if not isinstance(meta, dict) or not keys <= set(meta):
        raise ValueError(f"resume: {path} has no valid '__run__' entry; it is damaged")
    return meta


def _json(text):
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return None


def _check_same_run(meta, path, options, fingerprint):
    """The fit options and the data must be those of the checkpoint's run (bit-identical continuation)."""
    for name in ("x_train", "x_val", "y_train", "y_val"):
        old, new = meta["data"].get(name), fingerprint.get(name)
        if old is None or new is None:
            if old != new:
                given = ["None" if v is None else "an array" for v in (old, new)]
                raise ValueError(f"resume: the checkpoint's run was given {name}={given[0]}, this call "
                                 f"{name}={given[1]}; pass the same data to continue that run ({path})")
            continue
        if (old.get("shape"), old.get("dtype")) != (new["shape"], new["dtype"]):
            raise ValueError(f"resume: {name} has shape {tuple(new['shape'])} and dtype {new['dtype']}, but the "
                             f"checkpoint was trained on shape {tuple(old.get('shape') or ())} and dtype "
                             f"{old.get('dtype')} ({path})")
        if old.get("sha256") != new["sha256"]:
            raise ValueError(f"resume: {name} has the shape of the checkpoint's data but other values; resume "
                             f"with the data the run was started on ({path})")
    saved = meta["options"]
    for key in RUN_OPTIONS:
        if saved.get(key) != options[key]:
            raise ValueError(f"resume: the checkpoint's run used {key}={saved.get(key)!r}, this call has "
                             f"{key}={options[key]!r}; pass the same options to continue that run ({path})")


def _checked_generator_state(arrays, key, path):
    value = arrays.get(key)
    try:
        state = _state_from_json(str(value))
        if state["bit_generator"] not in BIT_GENERATORS:
            raise ValueError(state["bit_generator"])
        _generator(state)
    except (TypeError, ValueError, KeyError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"resume: {path} has no valid {key!r} entry (a bit generator state as JSON): "
                         f"{error!r}") from None
    return state


def _checkpoint_state(arrays, meta, path, flow, fingerprint, options):
    """Rebuild the run state from the checkpoint's arrays, checking each shape and dtype."""
    theta = flat_vector(flow.params, getattr(flow, "dtype", onp.dtype(onp.float64)))
    n_train = fingerprint["x_train"]["shape"][0]
    if options["val_fraction"] is not None:
        n_train -= max(1, int(round(options["val_fraction"] * n_train)))
    expected = {"theta": theta.shape, "m": theta.shape, "v": theta.shape, "best_theta": theta.shape,
                "order": (n_train,), "train_losses": None, "history/step": None, "history/train_nll": None,
                "history/val_nll": None, "history/time": None}
    if options["ema"] is not None:
        expected["theta_avg"] = theta.shape
    for key, shape in expected.items():
        value = arrays.get(key)
        kind = "iu" if key in ("order", "history/step") else "f"
        if value is None or value.dtype.kind not in kind or (value.ndim != 1 if shape is None else
                                                            value.shape != shape):
            raise ValueError(f"resume: {path}: entry {key!r} is missing or has the wrong shape or dtype "
                             f"(expected {'a vector' if shape is None else shape}); it is damaged")
    if not onp.array_equal(onp.sort(arrays["order"]), onp.arange(n_train)):
        raise ValueError(f"resume: {path}: 'order' is not a permutation of range({n_train}); it is damaged")
    history = {**meta["history"], "step": arrays["history/step"].tolist(),
               **{key: arrays[f"history/{key}"].tolist() for key in ("train_nll", "val_nll", "time")}}
    if history.get("status") not in ("running", "interrupted", *FINISHED):
        raise ValueError(f"resume: {path}: unknown run status {history.get('status')!r}; it is damaged")
    if history["status"] == "interrupted":
        history.update(status="running", message="")
    return {"step": int(meta["step"]), "theta": arrays["theta"], "m": arrays["m"], "v": arrays["v"],
            "best_theta": arrays["best_theta"], "since_best": int(meta["since_best"]),
            "train_losses": arrays["train_losses"].tolist(), "order": arrays["order"],
            "cursor": int(meta["cursor"]), "rng_state": _checked_generator_state(arrays, "rng_state", path),
            "history": history, "theta_avg": arrays["theta_avg"] if options["ema"] is not None else None}
