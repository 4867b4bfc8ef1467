"""The 2-D flows of the well-known "nflib" teaching notebook, ported to maf_numpy's public API.

That notebook (karpathy/pytorch-normalizing-flows) trains NICE, RealNVP, MAF, IAF and a Glow-style flow on the
two-moons data. Here each is a list of maf_numpy layers over a base density, trained with ``fit``, saved and
loaded back bit for bit. What nflib calls what:

| nflib                          | maf_numpy                                                         |
| ------------------------------ | ----------------------------------------------------------------- |
| ``flow.forward(x)`` (x -> z)   | ``flow.inverse(x)`` -> (z, log|det dz/dx|)                        |
| ``flow.backward(z)`` (z -> x)  | ``flow.forward(z)`` -> (x, log|det dx/dz|)                        |
| ``AffineHalfFlow(parity, scale=False)`` (NICE) | ``transforms.AffineCoupling(2, hidden, flip=parity, scale=False)`` |
| NICE's diagonal scaling layer  | ``transforms.ActNorm`` (a per-coordinate scale and shift)         |
| ``AffineHalfFlow(parity)`` (RealNVP)  | ``transforms.AffineCoupling(2, hidden, flip=parity)``         |
| ``MAF(dim, parity)``           | ``transforms.MAFLayer(2, hidden, order=...)``                     |
| ``IAF(dim, parity)``           | ``transforms.IAFLayer(2, hidden, order=...)``                     |
| ``ActNorm``                    | ``transforms.ActNorm`` (initialised from the first data it sees)  |
| ``Invertible1x1Conv``          | ``transforms.LinearLU`` (LU-parametrised, log-det = sum log|s|)   |
| ``TransformedDistribution(prior)`` with a logistic prior | ``base=mf.Logistic(2)``                  |
| the training loop with ``torch.optim.Adam``, weight decay 1e-5 | ``flow.fit(..., weight_decay=1e-5)``      |

Run from the repository root: ``python examples/nflib_moons.py`` (about a minute; ``MAF_FAST=1`` trains briefly).
It prints each flow's held-out negative log-likelihood (nats) and checks that the saved file loads back to the
same numbers. Only public names of maf_numpy are used.
"""

import os
import sys
import tempfile

import numpy as np

import maf_numpy as mf

T = mf.transforms
FAST = os.environ.get("MAF_FAST") == "1"
STEPS = 60 if FAST else 1500
HIDDEN = (24, 24)  # nflib's MLP: 24 hidden units, 4 layers deep there; 2 hidden layers here


def alternating(make, K):
    """K layers made by ``make(parity)``, parity alternating 0, 1, 0, ... (nflib's ``i % 2``)."""
    return [make(bool(k % 2)) for k in range(K)]


def flows(rng):
    """The five models of the notebook, as maf_numpy flows (each built from a seed derived from ``rng``)."""
    seed = lambda: int(rng.integers(1 << 31))  # noqa: E731 - one fresh seed per layer or flow
    orders = lambda parity: [1, 0] if parity else [0, 1]  # noqa: E731 - MAF/IAF orderings, reversed every layer
    return {
        # NICE: volume-preserving additive couplings, then the paper's diagonal scaling layer (§3.3; ActNorm is
        # one, initialised from the data), over a logistic prior
        "NICE": mf.Flow(2, alternating(lambda p: T.AffineCoupling(2, HIDDEN, flip=p, scale=False), 4) + [T.ActNorm(2)],
                        base=mf.Logistic(2), rng=seed()),
        "RealNVP": mf.Flow(2, alternating(lambda p: T.AffineCoupling(2, HIDDEN, flip=p), 8), rng=seed()),
        "MAF": mf.Flow(2, alternating(lambda p: T.MAFLayer(2, HIDDEN, order=orders(p)), 4), rng=seed()),
        "IAF": mf.Flow(2, alternating(lambda p: T.IAFLayer(2, HIDDEN, order=orders(p)), 4), rng=seed()),
        "Glow-style": mf.Flow(2, [layer for parity in (False, True, False)
                                  for layer in (T.ActNorm(2), T.LinearLU(2, rng=seed()),
                                                T.AffineCoupling(2, HIDDEN, flip=parity, activation="tanh"))],
                              rng=seed()),
    }


def main():
    rng = np.random.default_rng(0)
    x_train = mf.datasets.toy("moons", 4000, rng=1)
    x_test = mf.datasets.toy("moons", 2000, rng=2)
    folder = tempfile.mkdtemp(prefix="nflib-moons-")
    print(f"{'model':12s} {'test NLL':>9s} {'params':>7s}  saved and loaded bit for bit")
    results = {}
    for name, flow in flows(rng).items():
        flow.fit(x_train, steps=STEPS, batch_size=128, lr=1e-3, weight_decay=1e-5, progress=False, rng=3)
        path = os.path.join(folder, name + ".npz")
        flow.save(path)
        loaded = mf.load(path)
        same = (np.array_equal(loaded.log_prob(x_test), flow.log_prob(x_test))
                and np.array_equal(loaded.sample(100, rng=4), flow.sample(100, rng=4)))
        results[name] = (-float(flow.log_prob(x_test).mean()), same)
        print(f"{name:12s} {results[name][0]:9.3f} {flow.num_params:7d}  {same}")
    return results


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if all(same for _, same in outcome.values()) else 1)
