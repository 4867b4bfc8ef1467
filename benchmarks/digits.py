"""Test bits per pixel on scikit-learn's 8x8 digits: uniform, per-pixel categorical, Gaussian and MAF.

The real-data protocol: the library's fixed 1200/297/300 split (``maf_numpy.datasets.digits``),
uniform dequantisation y = (x + u) / 17, the logit transform with lam = 1e-6, a Standardize layer fitted
in the logit space, the dequantisation noise redrawn for every training minibatch, early stopping on the
validation set (its noise drawn once), and the test set dequantised once with a fixed seed. Test numbers are
the mean over the 300 test images with +-2 standard errors; bits per pixel = -log2 P(x) / 64, where
log P(x) >= log p_y(y) - 64 log 17 (the dequantisation bound) for the continuous models.

    python benchmarks/digits.py                 # the whole table (about 2-3 minutes on one core)
    python benchmarks/digits.py --quick         # baselines and the two fast MAFs (under a minute)

Every MAF is trained by ``flow.fit(..., augment=datasets.dequantize_logit_augment())``; the "+EMA" rows also
pass ``ema=0.995``: fit validates and keeps a moving average of the parameters. All use tanh MADEs (ReLU ones
ended 0.04-0.06 bits/pixel worse here). One BLAS thread; float32. Wall times include the validations.
"""

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import maf_numpy as mf  # noqa: E402
from maf_numpy import datasets  # noqa: E402

# name: (MAF options, fit options). "fast" is the lesson's recipe (the short one: every flow here is built with
# the default fast=True); "full" reaches 2.14 bits/pixel or better. Steps are counted in epochs of
# 1200 // 128 = 9 minibatches; validation after every epoch; patience in validations.
STEPS_PER_EPOCH = 1200 // 128
RECIPES = {
    "fast": ({"num_layers": 5, "hidden": (256, 256), "activation": "tanh"},
             {"lr": 1e-3, "batch_size": 128, "steps": 200 * STEPS_PER_EPOCH, "val_every": STEPS_PER_EPOCH,
              "patience": 30}),
    "full": ({"num_layers": 10, "hidden": (256, 256), "activation": "tanh"},
             {"lr": 3e-4, "batch_size": 128, "steps": 400 * STEPS_PER_EPOCH, "val_every": STEPS_PER_EPOCH,
              "patience": 40}),
    # the same MAFs, validating and keeping a moving average of the parameters (weight 0.995 per step)
    "fast+EMA": ({"num_layers": 5, "hidden": (256, 256), "activation": "tanh"},
                 {"lr": 1e-3, "batch_size": 128, "steps": 200 * STEPS_PER_EPOCH, "val_every": STEPS_PER_EPOCH,
                  "patience": 30, "ema": 0.995}),
    "full+EMA": ({"num_layers": 10, "hidden": (256, 256), "activation": "tanh"},
                 {"lr": 5e-4, "batch_size": 128, "steps": 300 * STEPS_PER_EPOCH, "val_every": STEPS_PER_EPOCH,
                  "patience": 30, "ema": 0.995}),
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


def row(name, report, params, seconds):
    return (f"{name:<34} {report.bpd:6.3f} +- {report.bpd_2se:5.3f}  {report.discrete_nats:9.2f} +- "
            f"{report.discrete_2se:4.2f}  {params:>9}  {seconds:8.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the fast MAF recipes")
    parser.add_argument("--recipes", nargs="*", default=None, choices=list(RECIPES),
                        help="MAF recipes to run (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true")
    args = parser.parse_args()
    recipes = args.recipes or (["fast", "fast+EMA"] if args.quick else list(RECIPES))

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
