"""Median time of one training step (loss + gradient + Adam update) of 5-layer MAF, IAF and RealNVP flows.

The configurations of ``compare_libraries.py``: D = 2, hidden (64, 64), batch 512; D = 8, hidden (128, 128),
batch 512; D = 64, hidden (512, 512), batch 256; each in float64 and float32 (``dtype=``), with the kernels
of ``maf_numpy.fast`` (``fast=True``, the default) and, with ``--reference``, also the readable reference
(``fast=False``). Repeats of all rows are interleaved (A B C ... A B C ...) so that a slow moment of this
shared machine hits every row alike, and the median and min-max over repeats of the per-step median are
printed, with the float64 / float32 ratio and, with ``--reference``, the fast=False / fast=True ratio.

Environment, set by this script for its own process: one BLAS thread (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS
/ MKL_NUM_THREADS = 1 before NumPy is imported, unless already set), and glibc's malloc keeps freed
temporaries for reuse (``maf_numpy.timing.tune_malloc_for_timing``; ``--no-malloc-tuning`` to skip it).

    python benchmarks/train_step.py [--repeats 5] [--steps 10] [--models MAF IAF RealNVP] [--dtypes float64 float32]
                                    [--dims 2 8 64] [--reference] [--iaf-at-64]

The step timed is exactly the one ``fit`` runs (``maf_numpy.train``): ``value_and_grad`` of
``-sum(flow.log_density(params, batch)) / n`` over the parameter pytree (cut from the flat vector by
``maf_numpy.optim.plain_unflatten``), the gradient flattened by ``maf_numpy.optim.flat_vector``, the
finiteness check and one Adam update: ``maf_numpy.fast.adam_step`` when ``flow.fast``, else the five-line
``maf_numpy.optim.adam_step`` (the same numbers, bit for bit). IAF's density is its sequential direction
(D passes per layer; with ``fast=True`` differentiated by the implicit function theorem from D = 4 on, with
``fast=False`` through the D recorded passes): its rows at D = 64 are slow by design (MAF §3.2), and skipped
unless ``--iaf-at-64``.
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import time  # noqa: E402

import autograd.numpy as np  # noqa: E402
import numpy as onp  # noqa: E402
from autograd import value_and_grad  # noqa: E402

import maf_numpy as mf  # noqa: E402
from maf_numpy import (  # noqa: E402
    fast,
    optim,
    timing,  # noqa: E402
)
from maf_numpy.optim import flat_vector, plain_unflatten  # noqa: E402

CONFIGS = {2: ((64, 64), 512), 8: ((128, 128), 512), 64: ((512, 512), 256)}
MODELS = {"MAF": mf.MAF, "IAF": mf.IAF, "RealNVP": mf.RealNVP}


def make_step(model, D, dtype, use_fast=True):
    """A zero-argument function running one training step of ``fit`` on a fixed batch."""
    hidden, batch = CONFIGS[D]
    flow = MODELS[model](D, num_layers=5, hidden=hidden, rng=0, dtype=dtype, fast=use_fast)
    x = onp.random.default_rng(0).standard_normal((batch, D)).astype(dtype)

    def loss(params):  # fit's loss
        return -np.sum(flow.log_density(params, x)) / x.shape[0]

    loss_and_grad = value_and_grad(loss)
    adam_step = fast.adam_step if flow.fast else optim.adam_step  # as fit chooses
    theta, unflatten = flat_vector(flow.params, flow.dtype), plain_unflatten(flow.params)[0]
    state = {"theta": theta, "m": onp.zeros_like(theta), "v": onp.zeros_like(theta), "t": 0}

    def step():
        state["t"] += 1
        value, grad = loss_and_grad(unflatten(state["theta"]))
        g = flat_vector(grad, flow.dtype)
        if not (onp.isfinite(value) and onp.all(onp.isfinite(g))):
            raise FloatingPointError("the training loss or its gradient is not finite")
        state["theta"], state["m"], state["v"] = adam_step(state["theta"], g, state["m"], state["v"], state["t"],
                                                           1e-4)
        assert state["theta"].dtype == flow.dtype

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10, help="steps per repeat (the median per step is kept)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--dtypes", nargs="+", default=["float64", "float32"], choices=["float64", "float32"])
    parser.add_argument("--dims", nargs="+", type=int, default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--iaf-at-64", action="store_true", help="also time IAF at D = 64 (slow)")
    parser.add_argument("--reference", action="store_true",
                        help="also time fast=False flows (the readable reference code)")
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    if not args.no_malloc_tuning:
        timing.tune_malloc_for_timing()
    kinds = ["fast=True", "fast=False"] if args.reference else ["fast=True"]
    rows = {(model, D, dtype, kind): make_step(model, D, dtype, kind == "fast=True") for D in args.dims
            for model in args.models for dtype in args.dtypes for kind in kinds
            if not (model == "IAF" and D == 64 and not args.iaf_at_64)}
    times = {key: [] for key in rows}
    for step in rows.values():  # warm up
        step()
    for _ in range(args.repeats):
        for key, step in rows.items():  # interleaved
            per_step = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                per_step.append(time.perf_counter() - start)
            times[key].append(onp.median(per_step))
    print(f"one training step of 5-layer flows (median over {args.repeats} interleaved repeats of the median of "
          f"{args.steps} steps; BLAS threads {timing.blas_threads()})")
    for (model, D, dtype, kind), values in times.items():
        values = onp.array(values) * 1e3
        hidden, batch = CONFIGS[D]
        line = (f"  {model:8s} D={D:<3d} hidden={str(hidden):11s} batch={batch:<4d} {dtype} {kind:10s}:  median "
                f"{onp.median(values):8.2f} ms   (min {values.min():.2f}, max {values.max():.2f})")
        if dtype == "float32" and (model, D, "float64", kind) in times:
            ratio = onp.median(times[model, D, "float64", kind]) / onp.median(times[model, D, dtype, kind])
            line += f"   float64/float32 {ratio:.2f}"
        if kind == "fast=False":
            ratio = onp.median(times[model, D, dtype, kind]) / onp.median(times[model, D, dtype, "fast=True"])
            line += f"   fast=False/fast=True {ratio:.2f}"
        print(line)


if __name__ == "__main__":
    main()
