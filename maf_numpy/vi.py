"""Variational inference with a flow: maximise the ELBO (reverse KL) against an unnormalised target.

Given an unnormalised log-density log p~(x) = log p(x) + log Z, fit the flow q by maximising

    ELBO(q) = E_q[log p~(x) - log q(x)] = log Z - KL(q || p)  <=  log Z

with reparameterised samples (Rezende & Mohamed 2015, §3-4): z ~ N(0, I), (x, log|det dx/dz|) =
forward(z), and the density of the flow's *own* sample comes with it,

    log q(x) = log N(z; 0, I) - log|det dx/dz|,

so no inverse is ever needed. That is why the IAF direction suits variational inference (Kingma et al.
2016; MAF paper §3.2): an IAF's forward is one MADE pass per layer, a MAF's is D passes per layer. Any
flow of :mod:`maf_numpy.flows` works here; only the cost differs. Because q puts no mass where the
integrand is not rewarded, maximising the ELBO (minimising KL(q || p), the *reverse* KL) is
mode-seeking. Lesson: ``lessons/06_iaf_inverse_of_maf_and_variational_inference.ipynb``.

The two targets of the lesson are here too: Neal's funnel (normalised, log Z = 0, as in autograd's
``examples/black_box_svi.py``) and a two-lobe ring energy (unnormalised, as in zuko's reverse-KL
tutorial).

References
----------
D. J. Rezende, S. Mohamed. Variational Inference with Normalizing Flows. ICML 2015.
D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever, M. Welling. Improved Variational
Inference with Inverse Autoregressive Flow. NeurIPS 2016.
G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017,
§3.2 (IAF as the inverse-direction relative of MAF).
R. M. Neal. Slice sampling. Annals of Statistics 2003 (the funnel).
"""

import time

import autograd.numpy as np
import numpy as onp
from autograd import value_and_grad
from autograd.tracer import getval

from . import fast, float_warnings
from .densities import LOG_2PI, standard_normal_log_prob
from .optim import adam_step, flat_vector, plain_unflatten
from .validation import as_generator, check_bool, check_data, check_positive_float, check_positive_int

__all__ = ["elbo_per_sample", "elbo", "fit_vi", "funnel_log_density", "ring_log_energy", "FUNNEL_SCALE_V"]

FUNNEL_SCALE_V = 1.35  # standard deviation of v in the funnel (autograd's black_box_svi.py)


# ---------------------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------------------
def funnel_log_density(x):
    """Neal's funnel in 2-D, normalised (log Z = 0); columns as in autograd's ``black_box_svi.py``.

        v ~ N(0, 1.35^2),    mu | v ~ N(0, exp(v)^2),    x = (mu, v)

    Parameters
    ----------
    x : ndarray of shape (n, 2)
        ``x[:, 0]`` is mu, ``x[:, 1]`` is v (the log standard deviation of mu).

    Returns
    -------
    ndarray of shape (n,)
        log p(mu, v) = log N(v; 0, 1.35^2) + log N(mu; 0, exp(v)^2).
    """
    mu, v = x[:, 0], x[:, 1]
    log_p_v = -0.5 * (v / FUNNEL_SCALE_V) ** 2 - np.log(FUNNEL_SCALE_V) - 0.5 * LOG_2PI
    log_p_mu_given_v = -0.5 * mu**2 * np.exp(-2 * v) - v - 0.5 * LOG_2PI
    return log_p_v + log_p_mu_given_v


def ring_log_energy(x):
    """A two-lobe ring, *unnormalised* (its log Z is not 0), as in zuko's reverse-KL tutorial.

        log p~(x) = sin(pi x_1) - 2 (x_1^2 + x_2^2 - 2)^2

    The second term keeps the mass near the circle of radius sqrt(2); the first makes it heavier where
    sin(pi x_1) is large (around x_1 = 1/2 and x_1 = -sqrt(2)).

    Parameters
    ----------
    x : ndarray of shape (n, 2)

    Returns
    -------
    ndarray of shape (n,)
    """
    x1, x2 = x[:, 0], x[:, 1]
    return np.sin(np.pi * x1) - 2 * (x1**2 + x2**2 - 2) ** 2


# ---------------------------------------------------------------------------------------------------
# The ELBO
# ---------------------------------------------------------------------------------------------------
def _check_flow(flow):
    if not (hasattr(flow, "run") and hasattr(flow, "params") and hasattr(flow, "dim")):
        raise TypeError(f"flow must be a maf_numpy flow (MAF, IAF, RealNVP, MADE), got {type(flow).__name__}")
    return flow


def _check_log_target(log_target):
    if not callable(log_target):
        raise TypeError(f"log_target must be a function (n, D) -> (n,) written with autograd.numpy, got "
                        f"{type(log_target).__name__}")
    return log_target


def _log_target_values(log_target, x):
    """Call log_target at x (n, D) and check that it returned shape (n,)."""
    values = log_target(x)
    shape = onp.shape(getval(values))
    if shape != (x.shape[0],):
        raise ValueError(f"log_target must return one log-density per point, shape ({x.shape[0]},) for x of "
                         f"shape {x.shape}, got shape {shape}")
    return values


def _elbo_terms(flow, params, z, log_target):
    """Pure function of params: log p~(x) - log q(x) for x = forward(z), shape (n,)."""
    x, log_det = flow.run("forward", params, z)  # log|det dx/dz|
    log_q = standard_normal_log_prob(z) - log_det
    return _log_target_values(log_target, x) - log_q


def elbo_per_sample(flow, log_target, z, params=None):
    """The ELBO's integrand at given base draws z: log p~(x) - log q(x), with x = forward(z).

        log q(x) = log N(z; 0, I) - log|det dx/dz|      (change of variables, MAF paper §2.2)

    Its mean over z ~ N(0, I) is the ELBO; for fixed z it is a smooth function of ``params``, so
    ``autograd.grad`` gives the reparameterised gradient (Rezende & Mohamed 2015). An IAF computes it
    in one MADE pass per layer, a MAF in D (``flow.passes`` says how many were made).

    Parameters
    ----------
    flow : Flow
    log_target : callable
        ``x (n, D) -> (n,)``, an unnormalised log-density written with ``autograd.numpy``.
    z : ndarray of shape (n, D)
        Base draws.
    params : pytree or None
        Overrides ``flow.params`` (for ``autograd.grad``).

    Returns
    -------
    ndarray of shape (n,)
    """
    _check_flow(flow)
    _check_log_target(log_target)
    check_data(z, flow.dim, "z")
    params = flow._params(params)
    with flow._counting_passes():
        return _elbo_terms(flow, params, z, log_target)


def elbo(flow, log_target, n, rng=None, params=None):
    """Monte-Carlo estimate of the ELBO and its standard error, from n reparameterised samples.

        ELBO = E_q[log p~(x) - log q(x)] = log Z - KL(q || p)

    where p = p~ / Z. For a normalised target (log Z = 0) the ELBO is minus the reverse KL, so it is
    at most 0, with equality only when q = p.

    Parameters
    ----------
    flow : Flow
    log_target : callable
        ``x (n, D) -> (n,)``, written with ``autograd.numpy``.
    n : int
        Number of samples.
    rng : int, numpy.random.Generator or None
        Draws z ~ N(0, I).
    params : pytree or None

    Returns
    -------
    estimate : float
        Mean of the n terms (nats).
    standard_error : float
        Their standard deviation / sqrt(n) (0 when n = 1).
    """
    _check_flow(flow)
    _check_log_target(log_target)
    n = check_positive_int(n, "n")
    rng = as_generator(rng)
    z = rng.standard_normal((n, flow.dim))
    terms = onp.asarray(getval(elbo_per_sample(flow, log_target, z, params)))
    standard_error = float(onp.std(terms, ddof=1) / onp.sqrt(n)) if n > 1 else 0.0
    return float(onp.mean(terms)), standard_error


def fit_vi(flow, log_target, steps=2000, n_samples=64, lr=1e-2, rng=None, progress=True, smoothing=0.95,
           lr_decay=True, record_every=1):
    """Fit ``flow`` to an unnormalised target by maximising the ELBO with Adam (reverse KL).

        loss(params) = -(1/n) sum_s [log p~(x_s) - log N(z_s; 0, I) + log|det dx_s/dz_s|],
        x_s = forward(z_s),  z_s ~ N(0, I) drawn afresh at every step

    This is variational inference with a normalising flow (Rezende & Mohamed 2015); with an IAF it is
    Kingma et al. (2016)'s use of the flow, and MAF paper §3.2 explains why the IAF direction is the
    cheap one here: the forward pass (sampling and the density of the sample) is one MADE pass per
    layer for an IAF, D for a MAF.

    Parameters
    ----------
    flow : Flow
        Any flow; its ``params`` are replaced by the best ones found. Build it with
        ``standardize=False`` (there is no data to standardise).
    log_target : callable
        ``x (n, D) -> (n,)``, an unnormalised log-density written with ``autograd.numpy``.
    steps : int
        Number of Adam steps.
    n_samples : int
        Monte-Carlo samples per step.
    lr : float
        Adam's step size.
    rng : int, numpy.random.Generator or None
        Draws the base samples (reproducible from a seed).
    progress : bool
        Print a progress line about 20 times in the run.
    smoothing : float in [0, 1)
        Exponential moving average factor of the per-step ELBO estimates; the parameters with the best
        smoothed estimate are kept (the per-step estimate alone is too noisy to choose by).
    lr_decay : bool
        Decay the step size along a cosine from ``lr`` to ``lr / 100`` over ``steps``.
    record_every : int
        Record the history every this many steps.

    Returns
    -------
    history : dict
        ``step``, ``elbo`` (the per-step Monte-Carlo estimate, at the parameters before the step),
        ``elbo_smoothed`` and ``time`` (seconds since the start), one entry per record;
        ``passes_per_step`` (conditioner passes of one forward evaluation; the backward pass adds
        about as much again), ``best_step``, ``best_elbo`` (smoothed), ``steps_run``, ``status``
        ("completed", "diverged" or "interrupted"), ``message`` and ``warnings`` (NumPy's floating-point
        warnings during the run, counted as in :func:`maf_numpy.train.fit`; empty for a clean run).

    Notes
    -----
    If the loss or its gradient becomes NaN or inf, training stops at once with a ``RuntimeWarning``,
    the best parameters seen are restored and ``history["status"]`` is ``"diverged"``. A
    KeyboardInterrupt (Jupyter's stop button) also keeps the best parameters seen and returns with
    ``history["status"] == "interrupted"``. As in :func:`maf_numpy.train.fit`, NumPy's floating-point
    ``RuntimeWarning``s raised during the steps (those of ``log_target`` included: it is part of the loss) are
    collected into ``history["warnings"]`` and reported once, in the divergence message or in one summary
    ``RuntimeWarning`` at the end; every other warning passes through unchanged.
    """
    _check_flow(flow)
    _check_log_target(log_target)
    steps = check_positive_int(steps, "steps")
    n_samples = check_positive_int(n_samples, "n_samples")
    lr = check_positive_float(lr, "lr")
    progress = check_bool(progress, "progress")
    lr_decay = check_bool(lr_decay, "lr_decay")
    record_every = check_positive_int(record_every, "record_every")
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0 <= smoothing < 1:
        raise ValueError(f"smoothing must be a number in [0, 1), got {smoothing!r}")
    rng = as_generator(rng)
    _log_target_values(log_target, getval(flow.sample(2, rng=0)))  # fail early, naming log_target

    def loss(params, z):
        return -np.sum(_elbo_terms(flow, params, z, log_target)) / z.shape[0]

    loss_and_grad = value_and_grad(loss)
    history = {"step": [], "elbo": [], "elbo_smoothed": [], "time": [], "passes_per_step": 0,
               "best_step": 0, "best_elbo": -onp.inf, "steps_run": 0, "status": "completed", "message": "",
               "warnings": []}
    dtype = getattr(flow, "dtype", onp.dtype(onp.float64))
    theta, unflatten = flat_vector(flow.params, dtype), plain_unflatten(flow.params)[0]  # stays in the flow's dtype
    best = {"theta": theta.copy()}  # the loop writes the best flat parameters here
    collector = float_warnings.FloatWarnings()  # NumPy's overflow warnings: counted, reported once
    try:
        with collector:
            _adam_loop(flow, loss_and_grad, theta, unflatten, best, history, rng, steps, n_samples, lr, lr_decay,
                       smoothing, record_every, progress, collector)
    except KeyboardInterrupt:  # Jupyter's stop button: keep the best parameters seen so far
        history["status"] = "interrupted"
        history["message"] = (f"interrupted after {history['steps_run']} steps; kept the best parameters "
                              f"(smoothed ELBO {history['best_elbo']:.4f} at step {history['best_step']})")
        print(history["message"], flush=True)
    flow.params = unflatten(best["theta"])
    float_warnings.report(history, "VI", VI_FLOAT_ADVICE, stacklevel=2)  # the one message of the run
    return history


# What NumPy's floating-point warnings during VI usually mean, and what to try (in fit_vi's one message).
VI_FLOAT_ADVICE = ("Such warnings usually mean that a layer's scale exp(alpha), an activation or the target's "
                   "log-density at the flow's samples left float range: try a smaller lr, or a flow built with "
                   "alpha_clamp (e.g. alpha_clamp=3.0 bounds every layer's log-scale); np.seterr(all='raise') "
                   "stops at the first one with a traceback.")


def _adam_loop(flow, loss_and_grad, theta, unflatten, best, history, rng, steps, n_samples, lr, lr_decay,
               smoothing, record_every, progress, collector):
    """The Adam loop of :func:`fit_vi`: updates ``history`` and ``best["theta"]`` in place; ``collector``
    (a :class:`maf_numpy.float_warnings.FloatWarnings`) takes NumPy's floating-point warnings."""
    m, v = onp.zeros_like(theta), onp.zeros_like(theta)
    adam = fast.adam_step if getattr(flow, "fast", False) else adam_step  # the same update, bit for bit
    average, weight = 0.0, 0.0
    report_every = max(1, steps // 20)
    start = time.perf_counter()
    for step in range(1, steps + 1):
        collector.step, collector.during = step, "loss and gradient"
        z = rng.standard_normal((n_samples, flow.dim))
        with flow._counting_passes():
            value, grad = loss_and_grad(unflatten(theta), z)
        history["passes_per_step"] = flow.passes
        g = flat_vector(grad, theta.dtype)
        history["warnings"] = float_warnings.merge(history["warnings"], collector.take())
        if not (onp.isfinite(value) and onp.all(onp.isfinite(g))):
            records = history["warnings"]
            then = f" {float_warnings.describe(records, VI_FLOAT_ADVICE)}" if records else " Try a smaller lr."
            history["status"] = "diverged"
            history["message"] = (f"VI diverged at step {step}: the negative ELBO or its gradient is not finite "
                                  f"(loss = {value}); restored the best parameters (smoothed ELBO "
                                  f"{history['best_elbo']:.4f} at step {history['best_step']}).{then}")
            return
        collector.during = "Adam step"
        estimate = -float(value)
        average, weight = smoothing * average + (1 - smoothing) * estimate, smoothing * weight + (1 - smoothing)
        smoothed = average / weight  # bias-corrected moving average, as in Adam
        if smoothed > history["best_elbo"]:
            best["theta"], history["best_elbo"], history["best_step"] = theta.copy(), smoothed, step
        step_lr = lr * (0.01 + 0.99 * 0.5 * (1 + onp.cos(onp.pi * (step - 1) / steps))) if lr_decay else lr
        theta, m, v = adam(theta, g, m, v, step, step_lr)
        history["warnings"] = float_warnings.merge(history["warnings"], collector.take())
        history["steps_run"] = step
        if step % record_every == 0 or step == steps:
            history["step"].append(step)
            history["elbo"].append(estimate)
            history["elbo_smoothed"].append(smoothed)
            history["time"].append(time.perf_counter() - start)
        if progress and (step % report_every == 0 or step == steps):
            print(f"step {step:>6}/{steps}  ELBO {estimate:9.4f}  smoothed {smoothed:9.4f}  "
                  f"best {history['best_elbo']:9.4f}  {time.perf_counter() - start:6.1f} s", flush=True)
