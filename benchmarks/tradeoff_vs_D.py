"""Density and sampling time of MAF, IAF and RealNVP against the dimension D (MAF paper §3.2 and §3.3).

For K = 1 and K = 5 layers, hidden width H = 128 (one hidden layer, fixed across D) and a batch of n = 256,
prints one table per K: the median seconds per call of ``flow.log_prob(x)`` and ``flow.sample(n)``, their
ratio, the exact pass counts (``flow.passes``) and the parameter count; then the log-log slopes of time
against D fitted over the largest three D. Sequential directions (MAF sampling, IAF density: K*D passes)
approach slope 2, one-pass directions slope 1. The flows are untrained: the cost of a pass does not depend
on the weights' values. Times are medians of interleaved repeats (``maf_numpy.timing.time_calls``).
The flows are built with ``fast=True`` (the default: MAF sampling and IAF density by the degree-sliced
solver of ``maf_numpy.fast``, D sequential steps with about one pass of arithmetic per layer);
``--reference`` builds them with ``fast=False`` instead, the readable code: D full MADE passes per layer in
the sequential directions, the cost of the paper's algorithm as written. The pass counts are the same.

Environment, set by this script for its own process:
* one BLAS thread: OMP_NUM_THREADS / OPENBLAS_NUM_THREADS / MKL_NUM_THREADS = 1, set before NumPy is
  imported (unless already set);
* glibc's malloc keeps freed temporaries for reuse (``timing.tune_malloc_for_timing``, i.e. mallopt of
  M_MMAP_THRESHOLD / M_TRIM_THRESHOLD); without it the one-pass calls page-fault their
  temporaries again from about D = 64 on, and their times jump by 2-3x by an amount that changes from run
  to run. ``--no-malloc-tuning`` leaves glibc's defaults, to see the effect.

    python benchmarks/tradeoff_vs_D.py [--repeats 5] [--max-dim 256] [--hidden 128] [--n 256] [--reference]
                                       [--no-malloc-tuning]
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402
import time  # noqa: E402

from maf_numpy import timing  # noqa: E402

SEQUENTIAL = {("MAF", "sampling"), ("IAF", "density")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-dim", type=int, default=256, help="largest D (dims are 2, 4, ..., max-dim)")
    parser.add_argument("--hidden", type=int, default=128, help="width H of the single hidden layer")
    parser.add_argument("--n", type=int, default=256, help="batch size")
    parser.add_argument("--reference", action="store_true",
                        help="fast=False flows: the readable reference (D full passes in the sequential directions)")
    parser.add_argument("--no-malloc-tuning", action="store_true", help="keep glibc's default malloc thresholds")
    args = parser.parse_args()
    malloc_tuned = False if args.no_malloc_tuning else timing.tune_malloc_for_timing()
    dims = [2**k for k in range(1, args.max_dim.bit_length()) if 2**k <= args.max_dim]
    print(f"BLAS threads: {timing.blas_threads()}")
    print(f"malloc keeps freed temporaries (tune_malloc_for_timing): {malloc_tuned}")
    print(f"hidden=({args.hidden},), n={args.n}, median of {args.repeats} interleaved repeats, times in ms, "
          f"fast={not args.reference}")
    for K in (1, 5):
        start = time.perf_counter()
        results = timing.measure_tradeoff(dims=dims, K=K, hidden=(args.hidden,), n=args.n, repeats=args.repeats,
                                          fast=not args.reference)
        print(f"\nK = {K} ({time.perf_counter() - start:.0f} s)")
        print(timing.tradeoff_table(results))
        fitted = dims[-3:]
        print(f"log-log slope of time against D over D = {fitted} (sequential directions marked *):")
        for model in timing.MODEL_NAMES:
            slopes = []
            for direction in ("density", "sampling"):
                seconds = [getattr(results[model, D], direction).median for D in fitted]
                mark = "*" if (model, direction) in SEQUENTIAL else " "
                slopes.append(f"{direction} {timing.loglog_slope(fitted, seconds):5.2f}{mark}")
            print(f"  {model:8s} " + "   ".join(slopes))


if __name__ == "__main__":
    main()
