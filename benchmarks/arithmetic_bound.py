"""The matrix products alone: a lower bound on a MADE flow's density and training-step time.

For the three configurations of ``compare_libraries.py`` (5 MADEs with hidden (H, H); D = 2, H = 64, batch 512;
D = 8, H = 128, batch 512; D = 64, H = 512, batch 256) this times, in float64 and float32, only the matrix
products that a pass must do: forward ``x @ W_1``, ``h_1 @ W_2``, ``h_2 @ [W_mu | W_alpha]``, and for the
training step also the five products of the backward pass (two per weight matrix, none for d/dx). Nothing
else: no masks, biases, activations, autograd or Adam. With a block plan
(``maf_numpy.fast.made.block_plan``, which ``fast=True`` flows use where
``maf_numpy.fast.made.blocked_products_pay``: from D = 16 and width 256 on) a MADE does only the plan's
``fraction`` of this arithmetic, shown in the last columns. Compare with the peers' whole times in
``compare_libraries.py``: where float64 products alone take longer than a float32 peer's whole call, the
float64 floors cannot be met by removing overhead.

Times are medians over 7 interleaved repeats of CPU time (``time.process_time``, steadier than the wall
clock on a shared machine), one BLAS thread, malloc tuned as in the other scripts.

    python benchmarks/arithmetic_bound.py
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

import time  # noqa: E402

import numpy as onp  # noqa: E402

from maf_numpy import masks, timing  # noqa: E402
from maf_numpy.fast import made as fast_made  # noqa: E402

CONFIGS = [(2, 64, 512), (8, 128, 512), (64, 512, 256)]  # (D, H, batch)
NUM_LAYERS = 5


def cpu_ms(functions, repeats=7, calls=20):
    """Median CPU milliseconds per call of each function, repeats interleaved."""
    for function in functions.values():
        function()
    seconds = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.process_time()
            for _ in range(calls):
                function()
            seconds[name].append((time.process_time() - start) / calls)
    return {name: 1e3 * float(onp.median(values)) for name, values in seconds.items()}


def products(x, h, g_1, g_2, g_out, W_1, W_2, W_out):
    """The forward products of one MADE and those of its backward pass, as zero-argument functions."""
    return {"forward": lambda: (x @ W_1, h @ W_2, h @ W_out),
            "backward": lambda: (h.T @ g_out, g_out @ W_out.T, h.T @ g_2, g_2 @ W_2.T, x.T @ g_1)}


def main():
    timing.tune_malloc_for_timing()
    rng = onp.random.default_rng(0)
    print(f"matrix products only, {NUM_LAYERS} MADEs, ms per call (median CPU time; BLAS threads "
          f"{timing.blas_threads()})")
    print(f"{'D':>3} {'H':>4} {'batch':>5} {'dtype':>8} {'forward':>8} {'fwd+bwd':>8} {'plan':>5} "
          f"{'fwd (plan)':>10} {'fwd+bwd (plan)':>14}")
    for D, H, n in CONFIGS:
        degrees = masks.made_degrees(D, (H, H), "sequential", "sequential")
        fraction = fast_made.block_plan(degrees, masks.made_masks(degrees))["fraction"]
        uses_plan = fast_made.blocked_products_pay(degrees)
        for dtype in ("float64", "float32"):
            x, h, g_1, g_2 = (rng.standard_normal((n, width)).astype(dtype) for width in (D, H, H, H))
            g_out = rng.standard_normal((n, 2 * D)).astype(dtype)
            W_1, W_2, W_out = (rng.standard_normal(shape).astype(dtype) for shape in [(D, H), (H, H), (H, 2 * D)])
            ms = cpu_ms(products(x, h, g_1, g_2, g_out, W_1, W_2, W_out))
            forward, both = NUM_LAYERS * ms["forward"], NUM_LAYERS * (ms["forward"] + ms["backward"])
            planned = (f"{forward * fraction:10.2f} {both * fraction:14.2f}" if uses_plan
                       else f"{'-':>10} {'-':>14}")
            print(f"{D:3d} {H:4d} {n:5d} {dtype:>8} {forward:8.2f} {both:8.2f} {fraction if uses_plan else 1:5.2f} "
                  f"{planned}")


if __name__ == "__main__":
    main()
