"""Maximum-likelihood training: minibatch Adam over the parameter pytree, with early stopping.

    loss(params) = -(1/n) sum_b log p(x_b; params)        (mean negative log-likelihood, in nats)

The gradient comes from ``autograd.value_and_grad`` of that pure function; Adam (Kingma & Ba 2015,
Algorithm 1) is written out below, line for line as in ``autograd.misc.optimizers.adam``, because
``fit`` must also stop early, keep the best parameters and stop cleanly on a non-finite loss, which
autograd's optimiser cannot do. Lesson: ``lessons/05_training_maf_and_the_paper_figure_1.ipynb``.

The loss is written ``sum / n`` rather than ``mean``: autograd's backward pass for ``np.mean`` divides by
a NumPy integer, which under NumPy 2 silently promotes float32 gradients to float64 (DESIGN §7).
"""

import time
import warnings

import autograd.numpy as np
import numpy as onp
from autograd import value_and_grad
from autograd.misc import flatten

from .validation import as_generator, check_bool, check_data, check_positive_float, check_positive_int

__all__ = ["fit", "adam_step"]


def adam_step(theta, g, m, v, t, lr, b1=0.9, b2=0.999, eps=1e-8):
    """One Adam update (Kingma & Ba 2015, Algorithm 1) of the flat parameter vector theta.

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
    m = b1 * m + (1 - b1) * g  # first moment
    v = b2 * v + (1 - b2) * g**2  # second moment
    m_hat = m / (1 - b1**t)  # bias corrections
    v_hat = v / (1 - b2**t)
    return theta - lr * m_hat / (onp.sqrt(v_hat) + eps), m, v


def _mean_nll(flow, params, x, batch=4096):
    """Mean negative log-likelihood of x (n, D) in nats, evaluated in chunks (no gradient)."""
    total = 0.0
    for start in range(0, x.shape[0], batch):
        total -= float(onp.sum(flow._log_prob(params, x[start:start + batch])))
    return total / x.shape[0]


def fit(flow, x_train, x_val=None, steps=2000, batch_size=256, lr=1e-3, rng=None, progress=True,
        val_every=None, patience=20, val_fraction=0.1, lr_decay=True):
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
        Shuffles the data (reproducible from a seed).
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

    Returns
    -------
    history : dict
        ``step``, ``train_nll`` (mean over the steps since the last validation), ``val_nll`` and ``time``
        (seconds since the start) at every validation; ``best_step``, ``best_val_nll``, ``steps_run``,
        ``status`` ("completed", "early_stopped" or "diverged"), ``message`` and ``val_source``.

    Notes
    -----
    If the loss or its gradient (or the validation NLL) becomes NaN or inf, training stops at once with a
    ``RuntimeWarning`` that says so, the best parameters seen are restored and ``history["status"]`` is
    ``"diverged"``. When a
    Standardize layer sits next to the data and has not been fitted yet, it is fitted to the training
    points first (to what remains of ``x_train`` after the hold-out when ``x_val`` is None).
    """
    check_data(x_train, flow.dim, "x_train")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    lr = check_positive_float(lr, "lr")
    if patience is not None:
        patience = check_positive_int(patience, "patience")
    progress = check_bool(progress, "progress")
    lr_decay = check_bool(lr_decay, "lr_decay")
    rng = as_generator(rng)
    if x_val is None:
        val_fraction = check_positive_float(val_fraction, "val_fraction")
        if val_fraction >= 1 or x_train.shape[0] < 2:
            raise ValueError(f"val_fraction must be in (0, 1) and x_train must hold at least 2 points to "
                             f"hold some out, got val_fraction={val_fraction}, n={x_train.shape[0]}")
        permutation = rng.permutation(x_train.shape[0])
        n_val = max(1, int(round(val_fraction * x_train.shape[0])))
        x_val, x_train = x_train[permutation[:n_val]], x_train[permutation[n_val:]]
        val_source = f"{n_val} points ({val_fraction:.0%}) held out of x_train"
    else:
        check_data(x_val, flow.dim, "x_val")
        val_source = "x_val"
    if val_every is None:
        val_every = max(1, min(100, steps // 40))
    val_every = check_positive_int(val_every, "val_every")

    standardize = flow.layers[0]
    if hasattr(standardize, "fitted") and not standardize.fitted:
        standardize.fit(x_train)

    n = x_train.shape[0]
    batch_size = min(batch_size, n)

    def loss(params, x_batch):
        return -np.sum(flow._log_prob(params, x_batch)) / x_batch.shape[0]

    loss_and_grad = value_and_grad(loss)
    theta, unflatten = flatten(flow.params)
    m, v = onp.zeros_like(theta), onp.zeros_like(theta)
    best_theta, best_val = theta.copy(), _mean_nll(flow, flow.params, x_val)
    history = {"step": [], "train_nll": [], "val_nll": [], "time": [], "best_step": 0, "best_val_nll": best_val,
               "steps_run": 0, "status": "completed", "message": "", "val_source": val_source}
    since_best, train_losses, order, cursor = 0, [], rng.permutation(n), 0
    start = time.perf_counter()
    for step in range(1, steps + 1):
        if cursor + batch_size > n:  # new epoch
            order, cursor = rng.permutation(n), 0
        x_batch = x_train[order[cursor:cursor + batch_size]]
        cursor += batch_size
        value, grad = loss_and_grad(unflatten(theta), x_batch)
        g = flatten(grad)[0]
        if not (onp.isfinite(value) and onp.all(onp.isfinite(g))):
            _stop_diverged(history, step, f"the training loss or its gradient is not finite (loss = {value})")
            break
        train_losses.append(float(value))
        step_lr = lr * (0.01 + 0.99 * 0.5 * (1 + onp.cos(onp.pi * (step - 1) / steps))) if lr_decay else lr
        theta, m, v = adam_step(theta, g, m, v, step, step_lr)
        history["steps_run"] = step
        if step % val_every == 0 or step == steps:
            val_nll = _mean_nll(flow, unflatten(theta), x_val)
            _record(history, step, onp.mean(train_losses), val_nll, time.perf_counter() - start)
            train_losses = []
            if not onp.isfinite(val_nll):
                _stop_diverged(history, step, f"the validation NLL is not finite ({val_nll})")
                break
            if val_nll < history["best_val_nll"]:
                best_theta, since_best = theta.copy(), 0
                history["best_val_nll"], history["best_step"] = val_nll, step
            else:
                since_best += 1
            if progress:
                print(f"step {step:>6}/{steps}  train NLL {history['train_nll'][-1]:8.4f}  val NLL "
                      f"{val_nll:8.4f}  best {history['best_val_nll']:8.4f}  {history['time'][-1]:6.1f} s",
                      flush=True)
            if patience is not None and since_best >= patience:
                history["status"] = "early_stopped"
                history["message"] = (f"stopped early at step {step}: no validation improvement in "
                                      f"{patience} validations")
                break
    flow.params = unflatten(best_theta)
    if progress and history["message"]:
        print(history["message"], flush=True)
    return history


def _stop_diverged(history, step, reason):
    history["status"] = "diverged"
    history["message"] = (f"training diverged at step {step}: {reason}; restored the best parameters "
                          f"(validation NLL {history['best_val_nll']:.4f} at step {history['best_step']}). "
                          f"Try a smaller lr.")
    warnings.warn(history["message"], RuntimeWarning, stacklevel=4)


def _record(history, step, train_nll, val_nll, elapsed):
    history["step"].append(step)
    history["train_nll"].append(float(train_nll))
    history["val_nll"].append(float(val_nll))
    history["time"].append(elapsed)
