"""Test bits per pixel on scikit-learn's 8x8 digits: uniform, per-pixel categorical, Gaussian and MAF.

The protocol of issue 5 (real data): the library's fixed 1200/297/300 split (``maf_numpy.datasets.digits``),
uniform dequantisation y = (x + u) / 17, the logit transform with lam = 1e-6, a Standardize layer fitted
in the logit space, the dequantisation noise redrawn for every training minibatch, early stopping on the
validation set (its noise drawn once), and the test set dequantised once with a fixed seed. Test numbers are
the mean over the 300 test images with +-2 standard errors; bits per pixel = -log2 P(x) / 64, where
log P(x) >= log p_y(y) - 64 log 17 (the dequantisation bound) for the continuous models.

    python benchmarks/digits.py                 # the whole table (about 2-3 minutes on one core)
    python benchmarks/digits.py --quick         # baselines and the two fast MAFs (under a minute)

The "fast" and "full" MAFs are trained by ``flow.fit(..., augment=datasets.dequantize_logit_augment())``; the
"+EMA" rows by a short loop written here (autograd.value_and_grad + maf_numpy.train.adam_step) that also
keeps a moving average of the parameters. All use tanh MADEs (ReLU ones ended 0.04-0.06 bits/pixel worse
here). One BLAS thread; float32. Wall times include the validations.
"""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from autograd import value_and_grad  # noqa: E402

import maf_numpy as mf  # noqa: E402
from maf_numpy import datasets  # noqa: E402
from maf_numpy.train import adam_step, flat_vector, plain_unflatten  # noqa: E402

# name: (MAF options, fit options). "fast" is the lesson's recipe; "full" meets the floor. Steps are
# counted in epochs of 1200 // 128 = 9 minibatches; validation after every epoch; patience in validations.
STEPS_PER_EPOCH = 1200 // 128
RECIPES = {
    "fast": ({"num_layers": 5, "hidden": (256, 256), "activation": "tanh"},
             {"lr": 1e-3, "batch_size": 128, "steps": 200 * STEPS_PER_EPOCH, "val_every": STEPS_PER_EPOCH,
              "patience": 30}),
    "full": ({"num_layers": 10, "hidden": (256, 256), "activation": "tanh"},
             {"lr": 3e-4, "batch_size": 128, "steps": 400 * STEPS_PER_EPOCH, "val_every": STEPS_PER_EPOCH,
              "patience": 40}),
}

# The same MAFs trained by the loop below, which validates and keeps an exponential moving average of the
# parameters (weight 0.995 per step); fit has no such option (yet).
EMA_RECIPES = {
    "fast+EMA": ({"num_layers": 5, "hidden": (256, 256), "activation": "tanh"},
                 {"lr": 1e-3, "batch_size": 128, "max_epochs": 200, "patience": 30, "ema": 0.995}),
    "full+EMA": ({"num_layers": 10, "hidden": (256, 256), "activation": "tanh"},
                 {"lr": 5e-4, "batch_size": 128, "max_epochs": 300, "patience": 30, "ema": 0.995}),
}


def fit_maf(x_train, z_val, maf_options, fit_options, lam=1e-6, seed=0, dtype="float32", progress=False):
    """A MAF trained by ``flow.fit`` on the logit-space digits, the noise redrawn at every step.

    ``x_train`` are the raw pixels (as floats); fit fits the Standardize layer on one transformed copy.
    Returns the flow (best validation parameters installed), fit's history and the wall time.
    """
    flow = mf.MAF(dim=x_train.shape[1], rng=seed, dtype=dtype, **maf_options)
    start = time.perf_counter()
    history = flow.fit(x_train.astype(np.float64), x_val=z_val, rng=seed, progress=progress,
                       augment=datasets.dequantize_logit_augment(lam), **fit_options)
    return flow, history, time.perf_counter() - start


def train_maf(x_train, z_val, maf_options, lr, batch_size, max_epochs, patience, lam=1e-6, seed=0,
              dtype="float32", progress=False, lr_decay=True, weight_decay=0.0, ema=0.0,
              maf_seed=None):
    """The same as :func:`fit_maf` with a loop written out here, and an optional moving average of the
    parameters (``ema``, the weight of the old average per step) that is validated and kept instead.

    Returns the flow (best validation parameters installed) and a dict with the epochs run, the best
    epoch, the best validation NLL (nats, logit space) and the wall time.
    """
    rng = np.random.default_rng(seed)
    augment = datasets.dequantize_logit_augment(lam)
    flow = mf.MAF(dim=x_train.shape[1], rng=seed if maf_seed is None else maf_seed, dtype=dtype, **maf_options)
    flow.layers[0].fit(augment(x_train.astype(np.float64), rng))  # Standardize, in the logit space
    z_val = z_val.astype(dtype)
    x_train = x_train.astype(dtype)

    def loss(params, z_batch):
        return -np.sum(flow._log_prob(params, z_batch)) / z_batch.shape[0]

    loss_and_grad = value_and_grad(loss)
    unflatten = plain_unflatten(flow.params)[0]
    theta = flat_vector(flow.params, np.dtype(dtype))
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    theta_avg = theta.copy()  # exponential moving average of the parameters (validated when ema > 0)
    best = (np.inf, theta, 0)
    n, step, since_best = x_train.shape[0], 0, 0
    steps_per_epoch = n // batch_size
    total_steps = max_epochs * steps_per_epoch
    start = time.perf_counter()
    for epoch in range(1, max_epochs + 1):
        order, train_nll = rng.permutation(n), 0.0
        for b in range(steps_per_epoch):
            step += 1
            z_batch = augment(x_train[order[b * batch_size:(b + 1) * batch_size]], rng)
            value, grad = loss_and_grad(unflatten(theta), z_batch)
            step_size = lr * (0.01 + 0.99 * 0.5 * (1 + np.cos(np.pi * (step - 1) / total_steps))) if lr_decay else lr
            theta, m, v = adam_step(theta, flat_vector(grad, np.dtype(dtype)), m, v, step, float(step_size))
            if weight_decay:
                theta = theta * np.asarray(1 - step_size * weight_decay, dtype=dtype)  # decoupled (AdamW)
            theta_avg = ema * theta_avg + (1 - ema) * theta if ema else theta
            train_nll += float(value) / steps_per_epoch
        val_nll = -float(np.mean(flow.log_prob(z_val, params=unflatten(theta_avg))))
        if np.isfinite(val_nll) and val_nll < best[0]:
            best, since_best = (val_nll, theta_avg.copy(), epoch), 0
        else:
            since_best += 1
        if progress:
            print(f"  epoch {epoch:4d}  train NLL {train_nll:9.3f}  val NLL {val_nll:9.3f}  best {best[0]:9.3f} "
                  f"(epoch {best[2]})  {time.perf_counter() - start:6.1f} s", flush=True)
        if since_best >= patience:
            break
    flow.params = unflatten(best[1])
    return flow, {"epochs": epoch, "best_epoch": best[2], "best_val_nll": best[0],
                  "time": time.perf_counter() - start}


def row(name, report, params, seconds):
    return (f"{name:<34} {report.bpd:6.3f} +- {report.bpd_2se:5.3f}  {report.discrete_nats:9.2f} +- "
            f"{report.discrete_2se:4.2f}  {params:>9}  {seconds:8.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the fast MAF recipes")
    parser.add_argument("--recipes", nargs="*", default=None, choices=[*RECIPES, *EMA_RECIPES],
                        help="MAF recipes to run (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    recipes = args.recipes or (["fast", "fast+EMA"] if args.quick else [*RECIPES, *EMA_RECIPES])

    data = datasets.digits()
    z_train, _ = datasets.dequantize_logit(data.x_train, rng=100)
    z_val, _ = datasets.dequantize_logit(data.x_val, rng=101)
    z_test, log_det_test = datasets.dequantize_logit(data.x_test, rng=102)
    D = data.x_train.shape[1]

    print(f"digits: {len(data.x_train)}/{len(data.x_val)}/{len(data.x_test)} train/val/test, D = {D}, logit "
          f"lam = 1e-6, 1 BLAS thread")
    print(f"{'model':<34} {'test bits/pixel':>15}  {'log P(x) nats':>16}  {'params':>9}  {'time s':>8}")
    uniform = datasets.report_continuous(-log_det_test, log_det_test)  # p_y = 1: log p_z = -log|det dz/dy|
    print(row("uniform (log2 17 = 4.087)", uniform, 0, 0.0))
    start = time.perf_counter()
    categorical = datasets.CategoricalBaseline.fit(data.x_train)
    print(row("per-pixel categorical (add-one)", datasets.report_discrete(categorical.log_prob(data.x_test)),
              categorical.num_params, time.perf_counter() - start))
    start = time.perf_counter()
    gaussian = datasets.GaussianBaseline.fit(z_train, ridge=1e-6)
    print(row("full-covariance Gaussian (logit)", datasets.report_continuous(gaussian.log_prob(z_test), log_det_test),
              gaussian.num_params, time.perf_counter() - start), flush=True)
    for name in recipes:
        if name in EMA_RECIPES:
            maf_options, train_options = EMA_RECIPES[name]
            flow, info = train_maf(data.x_train, z_val, maf_options, seed=args.seed, progress=args.progress,
                                   **train_options)
            report = datasets.report_continuous(flow.log_prob(z_test.astype(flow.dtype)).astype(np.float64),
                                                log_det_test)
            label = f"MAF {name}: K={maf_options['num_layers']} H={maf_options['hidden'][0]} loop"
            print(row(label, report, flow.num_params, info["time"]) +
                  f"   (epochs {info['epochs']}, best {info['best_epoch']}, lr {train_options['lr']}, batch "
                  f"{train_options['batch_size']}, patience {train_options['patience']})", flush=True)
            continue
        maf_options, fit_options = RECIPES[name]
        flow, history, seconds = fit_maf(data.x_train, z_val, maf_options, fit_options, seed=args.seed,
                                         progress=args.progress)
        report = datasets.report_continuous(flow.log_prob(z_test.astype(flow.dtype)).astype(np.float64),
                                            log_det_test)
        label = f"MAF {name}: K={maf_options['num_layers']} H={maf_options['hidden'][0]} {maf_options['activation']}"
        epochs = history["steps_run"] // STEPS_PER_EPOCH
        print(row(label, report, flow.num_params, seconds) +
              f"   (epochs {epochs}, best {history['best_step'] // STEPS_PER_EPOCH}, lr {fit_options['lr']}, "
              f"batch {fit_options['batch_size']}, patience {fit_options['patience']}, {history['status']})",
              flush=True)

if __name__ == "__main__":
    main()
