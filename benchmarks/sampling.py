"""Time to draw 1000 samples from a 5-layer MAF: the reference (fast=False) against the sliced solver (fast=True).

The D = 64 configuration of ``compare_libraries.py``: MADE hidden (512, 512), 5 layers, n = 1000 samples. The
same sampling, z ~ N(0, I) then x = forward(z) through the layers, run by two flows with the same parameters:

* ``fast=False``: the reference, :func:`maf_numpy.transforms.solve_autoregressive` in every MAF layer, which
  re-runs the whole masked network D times per layer (D * K full passes), as the PyTorch libraries do;
* ``fast=True`` (the default): the kernel of ``maf_numpy.fast`` for an untraced MAF layer's generative
  direction, :func:`maf_numpy.fast.solver.solve_sliced`: the same D sequential steps per layer, but step k
  computes only the hidden units of degree k - 1 and output k, so the work adds up to about one pass per
  layer.

Both take the same z and the script checks that they give the same x (to 1e-10 relative in float64) and
count the same passes. Times are medians of interleaved repeats (``maf_numpy.timing.time_calls``), with
min-max; the ratio of medians is printed, with the min-max of the per-repeat ratios. One BLAS thread
(OMP/OPENBLAS/MKL_NUM_THREADS = 1, set before NumPy is imported unless already set); glibc's malloc is tuned
for steadier timings (``maf_numpy.timing.tune_malloc_for_timing``).

    python benchmarks/sampling.py [--repeats 3] [--dim 64] [--hidden 512] [--n 1000] [--layers 5] [--dtype float64]
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402

import numpy as onp  # noqa: E402

import maf_numpy as mf  # noqa: E402
from maf_numpy import timing  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--layers", type=int, default=5)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    args = parser.parse_args()
    timing.tune_malloc_for_timing()
    options = {"num_layers": args.layers, "hidden": (args.hidden, args.hidden), "rng": 0, "dtype": args.dtype}
    sliced = mf.MAF(args.dim, **options)  # fast=True, the default
    reference = mf.MAF(args.dim, fast=False, **options)
    reference.params = sliced.params  # the same flow, whatever the seed does
    z = onp.random.default_rng(1).standard_normal((args.n, args.dim)).astype(args.dtype)

    x_reference, x_sliced = reference.forward(z)[0], sliced.forward(z)[0]
    error = onp.max(onp.abs(x_reference - x_sliced)) / onp.max(onp.abs(x_reference))
    assert error < (1e-10 if args.dtype == "float64" else 1e-4), error
    assert reference.passes == sliced.passes, (reference.passes, sliced.passes)
    print(f"MAF {args.dtype} D={args.dim}, hidden=({args.hidden}, {args.hidden}), {args.layers} layers, "
          f"{args.n} samples; "
          f"{sliced.passes} sequential passes either way; max relative difference {error:.1e}; "
          f"BLAS threads: {timing.blas_threads()}")
    results = timing.time_calls({"fast=False (D full passes)": lambda: reference.forward(z),
                                 "fast=True (sliced solver)": lambda: sliced.forward(z)},
                                repeats=args.repeats, number=1)
    for name, result in results.items():
        print(f"  {name:28s} median {result.median:8.3f} s   (min {result.min:.3f}, max {result.max:.3f}) over "
              f"{result.repeats} interleaved repeats")
    slow, quick = results.values()
    ratios = onp.array(slow.seconds) / onp.array(quick.seconds)
    print(f"  fast=False / fast=True: {slow.median / quick.median:.1f}x   "
          f"(per-repeat ratios {ratios.min():.1f} - {ratios.max():.1f})")


if __name__ == "__main__":
    main()
