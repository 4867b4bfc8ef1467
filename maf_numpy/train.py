"""Maximum-likelihood training: minibatch Adam over the parameter pytree, with early stopping.

    loss(params) = -(1/n) sum_b log p(x_b; params)        (mean negative log-likelihood, in nats)

The gradient comes from ``autograd.value_and_grad`` of that pure function (``flow.log_density``); Adam
(Kingma & Ba 2015, Algorithm 1) is :func:`maf_numpy.optim.adam_step`, five lines, line for line as in
``autograd.misc.optimizers.adam``, because ``fit`` must also stop early, keep the best parameters and stop
cleanly on a non-finite loss, which autograd's optimiser cannot do; NumPy's floating-point warnings on
the way are counted in the history and reported in one message (:mod:`maf_numpy.float_warnings`). A flow
with ``fast=True`` trains with :func:`maf_numpy.fast.adam_step` instead, the same update bit for bit,
chunked to stay in cache.
Lesson: ``lessons/05_training_maf_and_the_paper_figure_1.ipynb``.

``fit`` takes any object with the flow protocol: ``params`` (a pytree), ``dim``, a pure
``log_density(params, x, y=None)``, and optionally ``dtype``, ``fast``, ``layers`` (a first ``Standardize``
layer is fitted to the data), ``training_log_density``, ``needs_refresh``/``refresh_state`` (batch norm),
``context_dim`` and ``config`` with ``layers[k].get_state()`` (for checkpoints).

The loss is written ``sum / n`` rather than ``mean``: autograd's backward pass for ``np.mean`` divides by
a NumPy integer, which under NumPy 2 silently promotes float32 gradients to float64. A float32
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
import os
import time
import types

import autograd.numpy as np
import numpy as onp
from autograd import value_and_grad

from . import float_warnings
from .checkpoint import generator_from_state, read_checkpoint, state_to_json, write_checkpoint
from .fast import adam_step as chunked_adam_step
from .optim import adam_step, flat_vector, plain_unflatten
from .validation import as_generator, check_bool, check_data, check_positive_float, check_positive_int

__all__ = ["fit", "adam_step", "flat_vector", "plain_unflatten"]


def _mean_nll(flow, params, x, y=None, batch=4096):
    """Mean negative log-likelihood of x (n, D) (given the context y (n, C) of a conditional flow) in nats,
    evaluated in chunks (no gradient)."""
    total = 0.0
    for start in range(0, x.shape[0], batch):
        y_chunk = None if y is None else y[start:start + batch]
        total -= float(onp.sum(flow.log_density(params, x[start:start + batch], y_chunk)))
    return total / x.shape[0]


# The schedule's shape: constant for the first (1 - DECAY_FRACTION) of the steps, then a half cosine down to
# lr * FINAL_LR_FACTOR (see fit's docstring for why).
DECAY_FRACTION, FINAL_LR_FACTOR = 0.3, 0.01


def _step_size(step, options):
    """Adam's step size at ``step`` (1, 2, ..., steps): with ``lr_decay``, constant ``lr`` until 70% of the run,
    then a half cosine from lr down to lr / 100 at the last step; else constant."""
    lr, steps = options["lr"], options["steps"]
    if not options["lr_decay"]:
        return lr
    if options["lr_schedule"] == "cosine":  # a run checkpointed before 2026-12 resumes on its cosine over the run
        return float(lr * (0.01 + 0.99 * 0.5 * (1 + onp.cos(onp.pi * (step - 1) / steps))))
    start = (1.0 - DECAY_FRACTION) * steps  # the step after which the decay begins
    if step <= start:
        return lr
    progress = (step - start) / (steps - start)  # in (0, 1]
    # a Python float: a NumPy float64 scalar times a float32 array would promote Adam's update to float64
    return float(lr * (FINAL_LR_FACTOR + (1.0 - FINAL_LR_FACTOR) * 0.5 * (1.0 + onp.cos(onp.pi * progress))))


def fit(flow, x_train=None, x_val=None, steps=2000, batch_size=256, lr=3e-3, rng=None, progress=True,
        val_every=None, patience=None, val_fraction=0.1, lr_decay=True, checkpoint=None, checkpoint_every=None,
        resume=None, y_train=None, y_val=None, augment=None, ema=None, weight_decay=0.0, callback=None,
        sampler=None):
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
        Adam's step size (the largest, with ``lr_decay``). The default, 3e-3, with the schedule below,
        is what the measurements in Notes support.
    rng : int, numpy.random.Generator or None
        Shuffles the data (reproducible from a seed). A Generator passed in ends in the state it would
        have after drawing every epoch's shuffle itself.
    progress : bool
        Print a progress line at every validation.
    val_every : int or None
        Validate every this many steps (default: about 40 times in the run, at most every 100 steps).
    patience : int or None
        Stop when the validation NLL has not improved for this many validations. None (the default): run
        all ``steps``; the best parameters are kept either way, so stopping early only saves time (see
        Notes for why it is not the default).
    val_fraction : float
        Fraction of ``x_train`` held out when ``x_val`` is None.
    lr_decay : bool
        True (the default): keep the step size at ``lr`` for the first 70% of ``steps``, then lower it along
        a half cosine to ``lr / 100`` at the last step (a constant phase, then a "cooldown"). False: constant.
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
    weight_decay : float
        Decoupled weight decay (AdamW, Loshchilov & Hutter 2019): after each Adam update,
        ``theta <- theta - lr_t * weight_decay * theta_before``, shrinking every parameter towards zero at the
        step size's pace, outside Adam's moment estimates. 0 (the default): none.
    callback : callable or None
        ``callback(step, history, flow)`` after every validation, with ``flow.params`` set to the parameters
        just validated (e.g. to draw the density as it trains); returning False stops the run (status
        ``"stopped"``), anything else continues. The best parameters are installed at the end as usual.
    sampler : callable or None
        ``sampler(n, rng) -> (n, D)`` float array: data drawn fresh at every step instead of minibatches of
        ``x_train`` (which must then be None), e.g. a toy density's sampler, ``lambda n, rng:
        maf_numpy.datasets.toy("moons", n, rng)``. Each step's batch comes from a generator derived from
        ``rng`` (reproducible); the Standardize layer is fitted to, and ``x_val`` (if None) drawn as, fixed
        sets of ``max(2000, 8 * batch_size)`` points drawn once. Not combinable with ``checkpoint``/``resume``
        or ``augment``.

    Returns
    -------
    history : dict
        ``step``, ``train_nll`` (mean over the steps since the last validation), ``val_nll`` and ``time``
        (seconds since the start) at every validation; ``best_step``, ``best_val_nll``, ``steps_run``,
        ``status`` ("completed", "early_stopped", "diverged" or "interrupted"), ``message``,
        ``val_source`` and ``warnings``: NumPy's floating-point warnings during the run (overflow, invalid
        value, divide by zero), one dict per kind and phase with ``message`` (NumPy's text, e.g. "overflow
        encountered in exp"), ``during`` ("loss and gradient", "Adam step" or "validation"), ``count``,
        ``first_step``, ``last_step`` and ``n_steps`` (how many steps raised it); empty for a clean run.

    Notes
    -----
    Why these defaults. ``benchmarks/quality.py`` trains a 5-layer MAF (64, 64) on the 2-D toys of
    :mod:`maf_numpy.datasets` (20,000 points, batch 512) and scores it by KL to the exact density; zuko's MAF
    of the same shape, trained with Adam at 1e-3, is the yardstick. One factor at a time, 2,000 steps, KL on
    8 Gaussians / checkerboard / rings (mean of 2-4 seeds; the seed-to-seed spread is large, 0.1-0.2 nats on
    rings and spirals, so only the larger differences below are findings; ``benchmarks/README.md``):

    - **The schedule.** The old default, a cosine from lr to lr / 100 over the whole run, halves the mean
      step size: 0.46 / 0.27 / 0.70 (and 8.7 in a second run) at lr 1e-3, against 0.40 / 0.23 / 0.73 for a
      constant step (with the old early stopping in both). A constant
      step that cools down over the last 30% only keeps the fast progress and still ends on a small step
      (the "stable then decay" schedule of Hägele et al. 2024, arXiv:2405.18392). A warm-up did not help.
    - **lr = 3e-3** with it: 0.18 / 0.19 / 0.65 (spirals 0.35-0.54), against rings 0.75 and spirals 0.66 at 1e-3,
      constant or cooled down alike; at 5e-3 one of two runs on rings ended at KL 2.5.
    - **No early stopping.** The validation NLL of the constant phase is noisy: with ``patience=20``, 4 of 8
      runs on rings and spirals stopped at step 150-950 on a lucky early value and never reached the
      cooldown. The best validated parameters are kept either way, so stopping early can only save time.
    - **No EMA** (``ema=0.999``: rings 1.10, spirals 1.06 against 0.65, 0.37: at 2,000 steps the average
      lags), and **no clamp** of alpha by default (``alpha_clamp=3``: rings 0.62, spirals 0.44, mixed; the
      fast kernels serve the paper's exp(alpha), and a clamped flow falls back to the reference code).
    - The initialisation stays :func:`maf_numpy.made.init_made_params`'s (the alternatives measured are in
      its docstring), and minibatches come from shuffled epochs of ``x_train``.

    Deeper stacks are less forgiving: a 9-layer MAF (64, 64) on 20,000 moons points diverged at step 500 for
    1 seed in 3 with these defaults (a validation point of zero density); ``fit`` then stops, keeps the best
    parameters and says so; ``lr=1e-3`` (KL 0.18) or a flow built with ``alpha_clamp=3`` (KL 0.08) trains it.

    What these defaults do not reach yet: zuko's MAF of the same shape at the same budget on the multimodal
    toys (8 Gaussians, rings, spirals; e.g. 0.47 against 0.26 nats on 8 Gaussians at 2,000 steps). They
    match or beat it on the Figure 1 density and the checkerboard (``benchmarks/README.md``).

    If the loss or its gradient (or the validation NLL) becomes NaN or inf, training stops at once with a
    ``RuntimeWarning`` that says so, the best parameters seen are restored and ``history["status"]`` is
    ``"diverged"``. A KeyboardInterrupt (Jupyter's stop button) during training also stops it cleanly:
    the best parameters seen are kept, a checkpoint is written if ``checkpoint`` is set, and the history
    comes back with ``status == "interrupted"`` and a message. When a Standardize layer sits next to the
    data and has not been fitted yet, it is fitted to the training points first (to what remains of
    ``x_train`` after the hold-out when ``x_val`` is None).

    NumPy's floating-point ``RuntimeWarning``s ("overflow encountered in exp", "invalid value encountered in
    matmul", ...) raised while the loss, its gradient, the Adam step and the validation are computed are not
    printed one by one (they point at internal lines of the layers, autograd and NumPy): ``fit`` collects
    them into ``history["warnings"]`` and reports them once, in the divergence message, or, for a run that
    did not diverge, in one summary ``RuntimeWarning`` at the end that says how many, at which steps and what
    to try (a smaller lr, ``alpha_clamp``). Every other warning passes through unchanged, and so do the
    floating-point warnings of your own ``augment``, ``sampler`` and ``callback`` (once per line of code).
    ``np.errstate(all="ignore")`` around ``fit`` silences them all; ``np.seterr(all="raise")`` turns the
    first into a ``FloatingPointError`` with a traceback to its line (:mod:`maf_numpy.float_warnings`).

    The training loss of each step is ``flow.training_log_density(params, x_batch, rng)`` when the flow defines
    it (an order-agnostic MADE draws one of its mask sets there from the step's generator), else the
    log-density itself. Flows with batch-normalisation layers (``flow.needs_refresh``) are switched to
    training mode (minibatch statistics) only for the loss and its gradient; before every validation and
    at the end their evaluation statistics are recomputed from the training data with
    ``flow.refresh_state`` (whole-training-set statistics, as in the MAF paper's code).
    """
    rng = as_generator(rng)
    if sampler is not None:  # draw the fixed sets once; every step draws its own batch
        x_train, x_val = _sampled_sets(flow, sampler, x_train, x_val, batch_size, rng, (checkpoint, resume, augment))
    options = _check_options(flow, x_train, x_val, steps, batch_size, lr, val_every, patience, val_fraction,
                             lr_decay, ema, weight_decay)
    progress = check_bool(progress, "progress")
    if callback is not None and not callable(callback):
        raise TypeError(f"callback must be a callable (step, history, flow) -> bool or None, got "
                        f"{type(callback).__name__}")
    checkpoint, checkpoint_every = _check_checkpointing(checkpoint, checkpoint_every, options["val_every"])
    data = _check_context_and_augment(flow, x_train, x_val, y_train, y_val, augment)
    fingerprint = None if checkpoint is None and resume is None else _data_fingerprint(data)
    saved = None if resume is None else read_checkpoint(resume, flow, options, fingerprint)
    if saved is not None:  # the schedule the run started with (a checkpoint from before 2026-12: the old cosine)
        options["lr_schedule"] = saved["lr_schedule"]
    data = {key: _in_flow_dtype(flow, value) for key, value in data.items()}

    split_rng = rng if saved is None else generator_from_state(saved["split_rng_state"])
    split_rng_state = split_rng.bit_generator.state
    data, val_source = _hold_out(data, options["val_fraction"], split_rng)
    seed = _aux_seed(split_rng_state)
    if augment is not None:  # fixed noise for the points that are scored or that fit statistics
        data["x_fixed"] = _in_flow_dtype(flow, _augmented(augment, data["x_train"], seed, 0, 3, flow.dim))
        if val_source != "x_val":
            data["x_val"] = _in_flow_dtype(flow, _augmented(augment, data["x_val"], seed, 0, 2, flow.dim))
    if saved is None:
        _fit_standardize(flow, data.get("x_fixed", data["x_train"]), data.get("y_train"))
    run = _make_run(flow, data, options, progress, fingerprint, split_rng_state, augment, seed)
    run.callback, run.sampler = callback, sampler
    run.float_warnings = float_warnings.FloatWarnings()  # NumPy's overflow warnings: counted, reported once
    with run.float_warnings:
        state = _initial_state(run, rng, val_source) if saved is None else _resumed_state(saved, run)
        try:
            while state["history"]["status"] == "running":
                state = _train_step(state, run)  # one Adam step, and a validation when one is due
                if checkpoint is not None and state["step"] % checkpoint_every == 0:
                    write_checkpoint(checkpoint, state, run)
        except KeyboardInterrupt:
            run.float_warnings.take()  # the unfinished step's warnings go with the step
            state = _stop(state, "interrupted", _interrupted_message(state, checkpoint))
        if checkpoint is not None:
            write_checkpoint(checkpoint, state, run)
        history = _finish(state, run, rng)
    float_warnings.report(history, "training", FLOAT_ADVICE, stacklevel=3)  # the one message of the run
    if run.progress and history["message"]:
        print(history["message"], flush=True)
    return history


# --- the named steps of fit ---------------------------------------------------------------------------
def _check_options(flow, x_train, x_val, steps, batch_size, lr, val_every, patience, val_fraction, lr_decay,
                   ema=None, weight_decay=0.0):
    """Validate the data and the options that decide the trajectory; return the options as a dict."""
    check_data(x_train, flow.dim, "x_train")
    steps = check_positive_int(steps, "steps")
    options = {"steps": steps, "batch_size": check_positive_int(batch_size, "batch_size"),
               "lr": check_positive_float(lr, "lr"),
               "patience": None if patience is None else check_positive_int(patience, "patience"),
               "lr_decay": check_bool(lr_decay, "lr_decay"), "lr_schedule": "cooldown", "val_fraction": None,
               "ema": None,
               "weight_decay": 0.0 if weight_decay == 0 else check_positive_float(weight_decay, "weight_decay")}
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
    return int(hashlib.sha256(state_to_json(split_rng_state).encode()).hexdigest()[:16], 16)


def _step_generator(seed, step, purpose):
    """The generator of one step and one purpose (0: augment, 1: the flow's training loss, 4: the sampler's
    batch; step 0: setup)."""
    return onp.random.default_rng([seed, step, purpose])


def _augmented(augment, x, seed, step, purpose, D):
    x_new = augment(x, _step_generator(seed, step, purpose))
    if not isinstance(x_new, onp.ndarray) or x_new.shape != (x.shape[0], D) or x_new.dtype.kind != "f":
        raise ValueError(f"augment must return a float array of shape ({x.shape[0]}, {D}) for a minibatch of "
                         f"{x.shape[0]} rows, got {type(x_new).__name__} {getattr(x_new, 'shape', '')}")
    return x_new


def _in_flow_dtype(flow, x):
    """x cast to the flow's dtype (float32 flows train in float32 throughout); None stays None."""
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


def _sampled_sets(flow, sampler, x_train, x_val, batch_size, rng, refused):
    """(x_train, x_val) for a run whose batches come from ``sampler``: fixed sets drawn once from ``rng``."""
    if not callable(sampler):
        raise TypeError(f"sampler must be a callable (n, rng) -> (n, D) array or None, got {type(sampler).__name__}")
    if x_train is not None:
        raise ValueError("x_train must be None when sampler is given: every step draws its batch from the sampler")
    if any(option is not None for option in refused):
        raise ValueError("sampler cannot be combined with checkpoint, resume or augment")
    n = max(2000, 8 * check_positive_int(batch_size, "batch_size"))
    x_train = _checked_draw(sampler(n, rng), n, flow.dim)
    return x_train, _checked_draw(sampler(n, rng), n, flow.dim) if x_val is None else x_val


def _checked_draw(x, n, D):
    if not isinstance(x, onp.ndarray) or x.shape != (n, D) or x.dtype.kind != "f":
        raise ValueError(f"sampler(n, rng) must return a float array of shape ({n}, {D}), got "
                         f"{type(x).__name__} {getattr(x, 'shape', '')}")
    return check_data(x, D, "sampler(n, rng)")


def _drawn(run, step):
    """The batch of one step of a run with a sampler: fresh points from the step's own generator."""
    x = _checked_draw(run.sampler(run.batch_size, _step_generator(run.seed, step, 4)), run.batch_size, run.flow.dim)
    return _in_flow_dtype(run.flow, x)


def _fit_standardize(flow, x_train, y_train=None):
    """Fit an unfitted Standardize layer next to the data, then initialise data-dependent layers (ActNorm)."""
    standardize = flow.layers[0] if getattr(flow, "layers", None) else None
    if hasattr(standardize, "fitted") and not standardize.fitted:
        standardize.fit(x_train)
    if callable(getattr(flow, "initialize", None)):
        flow.initialize(x_train, y_train)


def _make_run(flow, data, options, progress, fingerprint, split_rng_state, augment, seed):
    """What stays fixed during the run: the data, the loss and its gradient, the options."""
    train_log_prob = getattr(flow, "training_log_density", None)

    def loss(params, x_batch, y_batch, rng):
        if train_log_prob is not None:  # e.g. one mask set of an order-agnostic MADE, drawn from rng
            log_p = train_log_prob(params, x_batch, rng) if y_batch is None else train_log_prob(
                params, x_batch, rng, y=y_batch)
        else:
            log_p = flow.log_density(params, x_batch, y_batch)
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
        adam_step=chunked_adam_step if getattr(flow, "fast", False) else adam_step,  # the same update, bit for bit
        start=time.perf_counter())


def _refresh(run, params):
    """Recompute the evaluation statistics of batch-norm layers from the training data (see ``fit``)."""
    if run.needs_refresh:
        run.flow.refresh_state(run.x_fixed, params) if run.y_train is None else run.flow.refresh_state(
            run.x_fixed, params, y=run.y_train)


def _initial_state(run, rng, val_source):
    """The state before step 1: the flow's parameters, zero moments, the first epoch's order."""
    run.float_warnings.step, run.float_warnings.during = 0, "validation"
    _refresh(run, run.flow.params)
    best_val = _mean_nll(run.flow, run.flow.params, run.x_val, run.y_val)
    history = {"step": [], "train_nll": [], "val_nll": [], "time": [], "best_step": 0, "best_val_nll": best_val,
               "steps_run": 0, "status": "running", "message": "", "val_source": val_source,
               "warnings": float_warnings.merge([], run.float_warnings.take())}
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
    collector = run.float_warnings
    collector.step, collector.during = step, "loss and gradient"
    order, cursor, rng_state = _next_minibatch(state, run)
    rows = order[cursor:cursor + run.batch_size]
    with collector.paused():  # the caller's sampler and augment: their warnings are theirs to see
        x_batch = run.x_train[rows] if run.sampler is None else _drawn(run, step)
        if run.augment is not None:  # fresh noise at every step (e.g. dequantisation)
            x_batch = _in_flow_dtype(run.flow, _augmented(run.augment, x_batch, run.seed, step, 0, run.flow.dim))
    y_batch = None if run.y_train is None else run.y_train[rows]
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
        return _diverged(state, run, step, f"the training loss or its gradient is not finite (loss = {value})")
    collector.during = "Adam step"
    lr = _step_size(step, run.options)
    theta, m, v = run.adam_step(state["theta"], g, state["m"], state["v"], step, lr)
    if run.options["weight_decay"]:  # decoupled (AdamW): shrink the parameters before the step, outside Adam
        theta = theta - (lr * run.options["weight_decay"]) * state["theta"]
    ema, theta_avg = run.options["ema"], state.get("theta_avg")
    if ema is not None:  # Python floats keep a float32 average float32
        theta_avg = ema * theta_avg + (1.0 - ema) * theta
    state = {**state, "step": step, "theta": theta, "m": m, "v": v, "theta_avg": theta_avg,
             "order": order, "cursor": cursor + run.batch_size,
             "rng_state": rng_state, "train_losses": state["train_losses"] + [float(value)],
             "history": {**state["history"], "steps_run": step}}
    if step % run.options["val_every"] == 0 or step == run.options["steps"]:
        state = _validate(state, run)
    state = _with_float_warnings(state, run)
    if step == run.options["steps"] and state["history"]["status"] == "running":
        state["history"]["status"] = "completed"
    return state


def _next_minibatch(state, run):
    """Where the next minibatch starts: (order, cursor, generator state). When the epoch has too few
    points left, the next epoch's order is drawn (from a copy of the generator: the old state is kept)."""
    if state["cursor"] + run.batch_size <= run.n:
        return state["order"], state["cursor"], state["rng_state"]
    rng = generator_from_state(state["rng_state"])
    return rng.permutation(run.n), 0, rng.bit_generator.state


def _validate(state, run):
    """Record the validation NLL; keep the best parameters; stop on a non-finite score or no progress."""
    step, old = state["step"], state["history"]
    run.float_warnings.during = "validation"
    scored = state["theta"] if run.options["ema"] is None else state["theta_avg"]  # the average, with ema
    params = run.unflatten(scored)
    _refresh(run, params)
    val_nll = _mean_nll(run.flow, params, run.x_val, run.y_val)
    history = {**old, "step": old["step"] + [step], "train_nll": old["train_nll"] + [float(onp.mean(
        state["train_losses"]))], "val_nll": old["val_nll"] + [float(val_nll)],
               "time": old["time"] + [time.perf_counter() - run.start]}
    state = {**state, "history": history, "train_losses": []}
    if not onp.isfinite(val_nll):
        return _diverged(state, run, step, f"the validation NLL is not finite ({val_nll})")
    if val_nll < history["best_val_nll"]:
        state.update(best_theta=scored, since_best=0)
        history.update(best_val_nll=val_nll, best_step=step)
    else:
        state["since_best"] += 1
    if run.progress:
        print(f"step {step:>6}/{run.options['steps']}  train NLL {history['train_nll'][-1]:8.4f}  val NLL "
              f"{val_nll:8.4f}  best {history['best_val_nll']:8.4f}  {history['time'][-1]:6.1f} s", flush=True)
    if run.callback is not None:
        run.flow.params = params  # what was just validated, for the callback to look at
        with run.float_warnings.paused():
            stop = run.callback(step, history, run.flow) is False
        if stop:
            history.update(status="stopped", message=f"stopped by the callback at step {step}")
            return state
    patience = run.options["patience"]
    if patience is not None and state["since_best"] >= patience:
        history.update(status="early_stopped", message=f"stopped early at step {step}: no validation "
                                                       f"improvement in {patience} validations")
    return state


def _stop(state, status, message):
    return {**state, "history": {**state["history"], "status": status, "message": message}}


def _best_so_far(history):
    return f"validation NLL {history['best_val_nll']:.4f} at step {history['best_step']}"


# What NumPy's floating-point warnings during training usually mean, and what to try (in fit's one message).
FLOAT_ADVICE = ("Such warnings usually mean that a layer's scale exp(alpha) or an activation left float range, "
                "most often because the step size is too large for this model and data: try a smaller lr, or a "
                "flow built with alpha_clamp (e.g. alpha_clamp=3.0 bounds every layer's log-scale); "
                "np.seterr(all='raise') stops at the first one with a traceback.")


def _with_float_warnings(state, run):
    """The state with the float warnings taken since the last step added to its history (a new dict)."""
    pending = run.float_warnings.take()
    if not pending:
        return state
    records = float_warnings.merge(state["history"].get("warnings", []), pending)
    return {**state, "history": {**state["history"], "warnings": records}}


def _diverged(state, run, step, reason):
    """Stop with a message that says why, what was kept, and which float warnings came on the way."""
    state = _with_float_warnings(state, run)
    records = state["history"].get("warnings")
    then = f" {float_warnings.describe(records, FLOAT_ADVICE)}" if records else " Try a smaller lr."
    return _stop(state, "diverged", f"training diverged at step {step}: {reason}; restored the best parameters "
                                    f"({_best_so_far(state['history'])}).{then}")


def _interrupted_message(state, checkpoint):
    how = (f"continue with fit(..., resume={checkpoint!r})" if checkpoint is not None
           else "pass checkpoint=path to fit to be able to resume")
    return (f"training interrupted after step {state['step']} (KeyboardInterrupt); kept the best parameters "
            f"seen ({_best_so_far(state['history'])}); {how}")


def _finish(state, run, rng):
    """Install the best parameters, move the caller's generator on; return the history (fit then warns or
    prints its message)."""
    run.float_warnings.during = "validation"
    history = {key: list(value) if isinstance(value, list) else value for key, value in state["history"].items()}
    run.flow.params = run.unflatten(state["best_theta"])
    _refresh(run, run.flow.params)
    rng.bit_generator.state = state["rng_state"]
    history["warnings"] = float_warnings.merge(history.get("warnings", []), run.float_warnings.take())
    return history


