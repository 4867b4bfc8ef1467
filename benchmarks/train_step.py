"""Median time of one training step (loss + gradient + Adam update) of a 5-layer MAF.

Configurations of the library-core issue: D = 2, hidden (64, 64), batch 512; D = 64, hidden (512, 512),
batch 256. Repeats of the configurations are interleaved (A B A B ...) so that a slow moment of this shared
machine hits both alike, and the median and min-max over repeats are printed. One BLAS thread: set
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS before NumPy is imported (done below unless already set).

    python benchmarks/train_step.py [--repeats 7] [--steps 20]

The step timed is exactly the one ``fit`` runs: ``value_and_grad`` of ``-sum(log_prob(batch)) / n`` over
the parameter pytree, flattening the gradient and one ``adam_step``.
"""

import argparse
import os

for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(variable, "1")

import time  # noqa: E402

import autograd.numpy as np  # noqa: E402
import numpy as onp  # noqa: E402
from autograd import value_and_grad  # noqa: E402
from autograd.misc import flatten  # noqa: E402

import maf_numpy as mf  # noqa: E402
from maf_numpy.train import adam_step  # noqa: E402

CONFIGS = {
    "D=2  hidden=(64, 64)   batch=512": (2, (64, 64), 512),
    "D=64 hidden=(512, 512) batch=256": (64, (512, 512), 256),
}


def make_step(D, hidden, batch, cls=mf.MAF):
    flow = cls(D, num_layers=5, hidden=hidden, rng=0)
    x = onp.random.default_rng(0).standard_normal((batch, D))

    def loss(params):
        return -np.sum(flow._log_prob(params, x)) / x.shape[0]

    loss_and_grad = value_and_grad(loss)
    theta, unflatten = flatten(flow.params)
    state = {"theta": theta, "m": onp.zeros_like(theta), "v": onp.zeros_like(theta), "t": 0}

    def step():
        state["t"] += 1
        _, g = loss_and_grad(unflatten(state["theta"]))
        state["theta"], state["m"], state["v"] = adam_step(state["theta"], flatten(g)[0], state["m"], state["v"],
                                                           state["t"], 1e-4)

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--steps", type=int, default=20, help="steps per repeat (the median per step is kept)")
    args = parser.parse_args()
    steps = {name: make_step(*config) for name, config in CONFIGS.items()}
    times = {name: [] for name in CONFIGS}
    for step in steps.values():  # warm up
        step()
    for _ in range(args.repeats):
        for name, step in steps.items():  # interleaved
            per_step = []
            for _ in range(args.steps):
                start = time.perf_counter()
                step()
                per_step.append(time.perf_counter() - start)
            times[name].append(onp.median(per_step))
    print(f"one training step of a 5-layer MAF (median over {args.repeats} interleaved repeats of "
          f"{args.steps} steps; 1 BLAS thread)")
    for name, values in times.items():
        values = onp.array(values) * 1e3
        print(f"  {name}:  median {onp.median(values):7.2f} ms   (min {values.min():.2f}, max {values.max():.2f})")


if __name__ == "__main__":
    main()
