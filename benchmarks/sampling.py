"""Time to draw 1000 samples from a 5-layer MAF: the reference D-full-passes solver against the degree-sliced one.

Configuration of issue 6: D = 64, MADE hidden (512, 512), 5 layers, n = 1000 samples. Two ways to run the
same sampling, z ~ N(0, I) then x = forward(z) through the layers:

* ``reference``: :func:`maf_numpy.transforms.solve_autoregressive`, which re-runs the whole masked network D
  times per layer (D * K full passes), as the PyTorch libraries do;
* ``sliced``: ``flow.sample`` itself, which uses :func:`maf_numpy.made.solve_sliced`: the same D sequential
  steps per layer, but step k computes only the hidden units of degree k - 1 and output k, so the work adds
  up to about one pass per layer.

Both draw the same z and the script checks that they give the same x (to 1e-10 relative in float64). Times are medians
of interleaved repeats (``maf_numpy.timing.time_calls``), with min-max; the ratio of medians is printed, with
the min-max of the per-repeat ratios. One BLAS thread (OMP/OPENBLAS/MKL_NUM_THREADS = 1, set before NumPy is
imported unless already set); glibc's malloc is tuned for steadier timings
(``timing.tune_malloc_for_timing``, DESIGN §7).

    python benchmarks/sampling.py [--repeats 3] [--dim 64] [--hidden 512] [--n 1000] [--layers 5] [--dtype float64]
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import argparse  # noqa: E402

import numpy as onp  # noqa: E402

import maf_numpy as mf  # noqa: E402
from maf_numpy import timing  # noqa: E402
from maf_numpy.transforms import MAFLayer, affine_forward, solve_autoregressive  # noqa: E402


def reference_sample(flow, z):
    """x = forward(z) with the reference solver in every MAF layer (D full network passes each)."""
    for layer, params in zip(reversed(flow.layers), reversed(flow.params)):
        if isinstance(layer, MAFLayer):
            def step(x, layer=layer, params=params, z=z):
                return affine_forward(z, *layer.conditioner(params, x))

            z = solve_autoregressive(step, layer.D, z.shape, layer.input_degrees)[0]
        else:
            z = layer.forward(params, z)[0]
    return z


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
    flow = mf.MAF(args.dim, num_layers=args.layers, hidden=(args.hidden, args.hidden), rng=0, dtype=args.dtype)
    z = onp.random.default_rng(1).standard_normal((args.n, args.dim)).astype(args.dtype)

    x_reference, x_sliced = reference_sample(flow, z), flow.forward(z)[0]
    error = onp.max(onp.abs(x_reference - x_sliced)) / onp.max(onp.abs(x_reference))
    assert error < (1e-10 if args.dtype == "float64" else 1e-4), error
    print(f"MAF {args.dtype} D={args.dim}, hidden=({args.hidden}, {args.hidden}), {args.layers} layers, "
          f"{args.n} samples; "
          f"{flow.passes} sequential passes either way; max relative difference {error:.1e}; "
          f"BLAS threads: {timing.blas_threads()}")
    results = timing.time_calls({"reference (D full passes)": lambda: reference_sample(flow, z),
                                 "sliced (one pass of work)": lambda: flow.forward(z)},
                                repeats=args.repeats, number=1)
    for name, result in results.items():
        print(f"  {name:28s} median {result.median:8.3f} s   (min {result.min:.3f}, max {result.max:.3f}) over "
              f"{result.repeats} interleaved repeats")
    reference, sliced = results.values()
    ratios = onp.array(reference.seconds) / onp.array(sliced.seconds)
    print(f"  reference / sliced: {reference.median / sliced.median:.1f}x   "
          f"(per-repeat ratios {ratios.min():.1f} - {ratios.max():.1f})")


if __name__ == "__main__":
    main()
