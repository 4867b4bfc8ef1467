"""Median time of one training step (loss + gradient + Adam update) of 5-layer MAF, IAF and RealNVP flows.

Configurations of issue 6: D = 2, hidden (64, 64), batch 512; D = 8, hidden (128, 128), batch 512; D = 64,
hidden (512, 512), batch 256; each in float64 and float32 (``dtype=``). Repeats of all rows are
interleaved (A B C ... A B C ...) so that a slow moment of this shared machine hits every row alike, and the
median and min-max over repeats of the per-step median are printed, with the float64 / float32 ratio.

Environment, set by this script for its own process: one BLAS thread (OMP_NUM_THREADS / OPENBLAS_NUM_THREADS
/ MKL_NUM_THREADS = 1 before NumPy is imported, unless already set), and glibc's malloc keeps freed
temporaries for reuse (``timing.tune_malloc_for_timing``, DESIGN §7; ``--no-malloc-tuning`` to skip it).

    python benchmarks/train_step.py [--repeats 5] [--steps 10] [--models MAF IAF RealNVP] [--dtypes float64 float32]
                                    [--dims 2 8 64]

The step timed is exactly the one ``fit`` runs (``maf_numpy.train``): ``value_and_grad`` of
``-sum(log_prob(batch)) / n`` over the parameter pytree (cut from the flat vector by ``plain_unflatten``),
the gradient flattened by ``flat_vector`` and one ``adam_step``. IAF's density is its sequential
direction, differentiated through the reference solver (D passes per layer): its rows at D = 64 are slow
by design (MAF §3.2), and skipped unless ``--iaf-at-64``.
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
from maf_numpy import timing  # noqa: E402
from maf_numpy.train import adam_step, flat_vector, plain_unflatten  # noqa: E402

CONFIGS = {2: ((64, 64), 512), 8: ((128, 128), 512), 64: ((512, 512), 256)}
MODELS = {"MAF": mf.MAF, "IAF": mf.IAF, "RealNVP": mf.RealNVP}


def make_step(model, D, dtype):
    """A zero-argument function running one training step of ``fit`` on a fixed batch."""
    hidden, batch = CONFIGS[D]
    flow = MODELS[model](D, num_layers=5, hidden=hidden, rng=0, dtype=dtype)
    x = onp.random.default_rng(0).standard_normal((batch, D)).astype(dtype)

    def loss(params):
        return -np.sum(flow._log_prob(params, x)) / x.shape[0]

    loss_and_grad = value_and_grad(loss)
    theta, unflatten = flat_vector(flow.params, flow.dtype), plain_unflatten(flow.params)[0]
    state = {"theta": theta, "m": onp.zeros_like(theta), "v": onp.zeros_like(theta), "t": 0}

    def step():
        state["t"] += 1
        _, grad = loss_and_grad(unflatten(state["theta"]))
        state["theta"], state["m"], state["v"] = adam_step(state["theta"], flat_vector(grad, flow.dtype),
                                                           state["m"], state["v"], state["t"], 1e-4)
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
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    if not args.no_malloc_tuning:
        timing.tune_malloc_for_timing()
    rows = {(model, D, dtype): make_step(model, D, dtype) for D in args.dims for model in args.models
            for dtype in args.dtypes if not (model == "IAF" and D == 64 and not args.iaf_at_64)}
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
    for (model, D, dtype), values in times.items():
        values = onp.array(values) * 1e3
        hidden, batch = CONFIGS[D]
        line = (f"  {model:8s} D={D:<3d} hidden={str(hidden):11s} batch={batch:<4d} {dtype}:  median "
                f"{onp.median(values):8.2f} ms   (min {values.min():.2f}, max {values.max():.2f})")
        if dtype == "float32" and (model, D, "float64") in times:
            ratio = onp.median(times[model, D, "float64"]) / onp.median(times[model, D, dtype])
            line += f"   float64/float32 {ratio:.2f}"
        print(line)


if __name__ == "__main__":
    main()
