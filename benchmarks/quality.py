"""How well ``fit``'s defaults train: KL to the true density of every 2-D toy, against zuko and nflows.

Every toy of :mod:`maf_numpy.datasets` has an exact log-density, so a trained model q can be scored by

    KL(p || q) = E_p[log p(x) - log q(x)]  =  held-out NLL  -  entropy H[p]          (nats, >= 0)

estimated on 50,000 fresh samples x_i ~ p as the mean of ``log p(x_i) - log q(x_i)``: the held-out NLL minus the
entropy estimated on the same points (the paired difference has a much smaller standard error than the NLL and
a separately estimated entropy; its expectation is the same KL). The setup, on both sides:

- the model: 5 layers, two hidden layers of 64 units, ReLU, orders reversed between layers:
  ``mf.MAF(dim=2, num_layers=5, hidden=(64, 64), rng=seed)`` (``IAF``, ``RealNVP`` alike), whose first layer
  standardises the data; zuko's ``MAF(features=2, transforms=5, hidden_features=(64, 64))`` and nflows'
  ``MaskedAffineAutoregressiveTransform(features=2, hidden_features=64, num_blocks=1)`` x 5 with
  ``ReversePermutation`` between, trained on the standardised data (the standardisation's log-det is added
  back when scoring);
- the data: 20,000 training points, 2,000 validation points, 50,000 test points, all fresh draws of the toy, the
  same for every model of a seed;
- the training: ``flow.fit(x_train, x_val, steps=S, batch_size=512, rng=seed, progress=False)``, i.e. ``fit``'s
  defaults for everything else (learning rate, schedule, early stopping, initialisation); "MAF-5 lr_decay=False"
  is the same call with the constant learning rate. zuko and nflows: ``torch.optim.Adam(lr=1e-3)``, no schedule,
  minibatches of 512 from shuffled epochs, S steps, the final parameters scored (what their tutorials do);
- budgets S = 500, 2,000 and 10,000 Adam steps.

Each cell prints the mean KL over seeds and +- 2 standard errors: across seeds when there are several (that
includes the training's randomness, which dominates), else of the Monte-Carlo mean over the test points. After
the tables it checks the quality floors for MAF-5 with ``fit``'s defaults: at most 0.9 x zuko's KL at 2,000 steps
and no worse than zuko's at 500 and 10,000 steps, on two moons, 8 Gaussians, rings, checkerboard and the MAF
paper's Figure 1 density; and never worse than ``lr_decay=False`` at any budget.

The PyTorch libraries are needed only here (``benchmarks/requirements.txt``, in a separate environment); missing
ones are skipped with a message. Nothing of this is asserted by the tests: it is too slow and too noisy for that.

    python benchmarks/quality.py                       # every toy, budget and model, 1 seed: ~45 min on 2 cores
    python benchmarks/quality.py --seeds 2 --seeds-others 1   # what benchmarks/README.md reports
    python benchmarks/quality.py --seeds 3 --budgets 2000 --toys moons 8gaussians
    python benchmarks/quality.py --models MAF-5 zuko --markdown
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # one thread per process: the pool runs one process per core

import argparse  # noqa: E402
import concurrent.futures  # noqa: E402
import datetime  # noqa: E402
import importlib.util  # noqa: E402
import re  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402

import maf_numpy as mf  # noqa: E402
from maf_numpy import datasets  # noqa: E402

N_TRAIN, N_VAL, N_TEST = 20_000, 2_000, 50_000
BATCH_SIZE, HIDDEN, LAYERS = 512, (64, 64), 5
PEER_LR = 1e-3
FLOOR_TOYS = ("moons", "8gaussians", "rings", "checkerboard", "fig1")

# name -> (library, class or None, extra fit options)
MODELS = {
    "MAF-5": ("maf_numpy", "MAF", {}),
    "MAF-5 lr_decay=False": ("maf_numpy", "MAF", {"lr_decay": False}),
    "IAF-5": ("maf_numpy", "IAF", {}),
    "RealNVP-5": ("maf_numpy", "RealNVP", {}),
    "zuko MAF-5": ("zuko", None, {}),
    "nflows MAF-5": ("nflows", None, {}),
}
SHORT = {"MAF": "MAF-5", "MAF-const": "MAF-5 lr_decay=False", "IAF": "IAF-5", "RealNVP": "RealNVP-5",
         "zuko": "zuko MAF-5", "nflows": "nflows MAF-5"}


def toy_data(toy, seed):
    """Training, validation and test points of ``toy`` for ``seed``: (20000, 2), (2000, 2), (50000, 2)."""
    rng = np.random.default_rng([seed, 2026])
    return (datasets.toy(toy, N_TRAIN, rng), datasets.toy(toy, N_VAL, rng), datasets.toy(toy, N_TEST, rng))


def kl_estimate(toy, x_test, log_q):
    """KL(p || q) from test points x_i ~ p: mean and standard error of log p(x_i) - log q(x_i) (nats)."""
    d = datasets.toy_log_prob(toy, x_test) - log_q
    return float(np.mean(d)), float(np.std(d, ddof=1) / np.sqrt(d.size))


def train_maf_numpy(toy, model, steps, seed):
    """Train a maf_numpy flow with ``fit``'s defaults; return its KL, the MC s.e., the run's status and time."""
    _, cls, options = MODELS[model]
    x_train, x_val, x_test = toy_data(toy, seed)
    flow = getattr(mf, cls)(dim=2, num_layers=LAYERS, hidden=HIDDEN, rng=seed)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = flow.fit(x_train, x_val, steps=steps, batch_size=BATCH_SIZE, rng=seed, progress=False, **options)
    seconds = time.perf_counter() - start
    kl, se = kl_estimate(toy, x_test, flow.log_prob(x_test))
    return {"kl": kl, "se": se, "status": history["status"], "seconds": seconds, "warnings": len(caught)}


def train_peer(toy, model, steps, seed):
    """Train zuko's or nflows' MAF-5 with Adam (lr 1e-3, no schedule) on the standardised data."""
    import torch

    library = MODELS[model][0]
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    x_train, _, x_test = toy_data(toy, seed)
    shift, scale = x_train.mean(axis=0), x_train.std(axis=0)
    z_train = torch.from_numpy(((x_train - shift) / scale).astype(np.float32))
    flow, log_prob = build_peer(library, torch)
    optimizer = torch.optim.Adam(flow.parameters(), lr=PEER_LR)
    generator = torch.Generator().manual_seed(seed)
    order, cursor = torch.randperm(N_TRAIN, generator=generator), 0
    start = time.perf_counter()
    for _ in range(steps):
        if cursor + BATCH_SIZE > N_TRAIN:  # a new shuffled epoch, like fit
            order, cursor = torch.randperm(N_TRAIN, generator=generator), 0
        loss = -log_prob(z_train[order[cursor:cursor + BATCH_SIZE]]).mean()
        cursor += BATCH_SIZE
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    with torch.no_grad():
        z_test = torch.from_numpy(((x_test - shift) / scale).astype(np.float32))
        log_q = np.concatenate([log_prob(z_test[i:i + 10_000]).double().numpy() for i in range(0, N_TEST, 10_000)])
    log_q = log_q - np.sum(np.log(scale))  # q(x) = q_z((x - shift) / scale) / prod(scale)
    kl, se = kl_estimate(toy, x_test, log_q)
    return {"kl": kl, "se": se, "status": "completed" if np.isfinite(kl) else "not finite", "seconds": seconds,
            "warnings": 0}


def build_peer(library, torch):
    """zuko's or nflows' MAF with 5 MADEs of two hidden layers of 64 units: (module, log_prob function)."""
    if library == "zuko":
        import zuko

        flow = zuko.flows.MAF(features=2, transforms=LAYERS, hidden_features=HIDDEN)
        return flow, lambda z: flow().log_prob(z)
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.transforms import CompositeTransform, MaskedAffineAutoregressiveTransform, ReversePermutation

    layers = []
    for k in range(LAYERS):
        layers.append(MaskedAffineAutoregressiveTransform(features=2, hidden_features=HIDDEN[0], num_blocks=1,
                                                          use_residual_blocks=False, use_batch_norm=False))
        if k < LAYERS - 1:
            layers.append(ReversePermutation(features=2))
    flow = Flow(CompositeTransform(layers), StandardNormal([2]))
    return flow, flow.log_prob


def run_job(toy, model, steps, seed):
    """One (toy, model, budget, seed) cell: a dict with the KL and how the run went."""
    train = train_maf_numpy if MODELS[model][0] == "maf_numpy" else train_peer
    return {"toy": toy, "model": model, "steps": steps, "seed": seed, **train(toy, model, steps, seed)}


LOG_LINE = re.compile(r"\] (\S+)\s+(.+?)\s+(\d+) steps seed (\d+): KL (\S+)(?: \+- (\S+))? \((\w+), ")


def results_from_log(path):
    """The results of a run from the progress lines it printed (``--from-log``)."""
    results = []
    with open(path) as file:
        for line in file:
            match = LOG_LINE.search(line)
            if match:
                toy, model, steps, seed, kl, se, status = match.groups()
                results.append({"toy": toy, "model": model, "steps": int(steps), "seed": int(seed), "kl": float(kl),
                                "se": float(se) / 2 if se else float("nan"), "status": status})
    return results


def available(model):
    """Whether the library of ``model`` can be imported here."""
    library = MODELS[model][0]
    return library == "maf_numpy" or (importlib.util.find_spec("torch") is not None
                                      and importlib.util.find_spec(library) is not None)


def summary(results, toy, model, steps):
    """Mean KL over seeds, 2 standard errors (across seeds if several, else Monte Carlo), the number that
    diverged, the number of seeds and the range over seeds; or None."""
    cells = [r for r in results if (r["toy"], r["model"], r["steps"]) == (toy, model, steps)]
    if not cells:
        return None
    kls = np.array([r["kl"] for r in cells])
    two_se = 2 * (np.std(kls, ddof=1) / np.sqrt(kls.size) if kls.size > 1 else cells[0].get("se", np.nan))
    diverged = sum(r["status"] == "diverged" for r in cells)
    return float(np.mean(kls)), float(two_se), diverged, len(cells), (float(kls.min()), float(kls.max()))


def print_tables(results, toys, models, budgets, markdown):
    for steps in budgets:
        print(f"\nKL(p || q) in nats after {steps} Adam steps (mean +- 2 s.e. [range over seeds]; lower is better)")
        columns = [m for m in models if any(summary(results, toy, m, steps) for toy in toys)]
        cells = [["toy", *columns]]
        for toy in toys:
            row = [toy]
            for model in columns:
                if summary(results, toy, model, steps) is None:
                    row.append("-")
                    continue
                mean, two_se, diverged, n, (low, high) = summary(results, toy, model, steps)
                spread = f" [{low:.3f}, {high:.3f}]" if n > 1 else ""
                row.append(f"{mean:.3f} +- {two_se:.3f}{spread}" + (f" ({diverged} diverged)" if diverged else ""))
            cells.append(row)
        widths = [max(len(row[j]) for row in cells) for j in range(len(cells[0]))]
        for i, row in enumerate(cells):
            if markdown:
                print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
                if i == 0:
                    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
            else:
                print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def check_floors(results, toys, budgets):
    """Print each quality floor with the measured ratio and whether it is met."""
    print("\nFloors (MAF-5 with fit's defaults; means over seeds):")
    for steps in budgets:
        for toy in [t for t in FLOOR_TOYS if t in toys]:
            ours = summary(results, toy, "MAF-5", steps)
            for other, bound in (("zuko MAF-5", 0.9 if steps == 2000 else 1.0), ("MAF-5 lr_decay=False", 1.0)):
                theirs = summary(results, toy, other, steps)
                if ours is None or theirs is None:
                    continue
                ratio = ours[0] / theirs[0]
                verdict = "met" if ratio <= bound else "NOT met"
                print(f"  {steps:>6} steps  {toy:<12}  MAF-5 {ours[0]:.3f} / {other} {theirs[0]:.3f} = {ratio:.2f}"
                      f"  (<= {bound}: {verdict})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--toys", nargs="+", default=[t for t in datasets.toy_names() if datasets.has_closed_form(t)])
    parser.add_argument("--budgets", nargs="+", type=int, default=[500, 2000, 10_000])
    parser.add_argument("--models", nargs="+", default=list(SHORT), choices=list(SHORT),
                        help="which models (default: all whose library is installed)")
    parser.add_argument("--seeds", type=int, default=1, help="seeds per cell (default 1)")
    parser.add_argument("--seeds-others", type=int, default=None,
                        help="seeds for the models the floors do not compare (IAF-5, RealNVP-5, nflows); "
                             "default: --seeds")
    parser.add_argument("--workers", type=int, default=2, help="processes, one per core (default 2)")
    parser.add_argument("--markdown", action="store_true", help="tables in Markdown")
    parser.add_argument("--from-log", default=None, metavar="FILE",
                        help="print the tables and floors of an earlier run from its printed lines, without training")
    args = parser.parse_args(argv)
    if args.from_log is not None:
        results = results_from_log(args.from_log)
        models = list(dict.fromkeys(r["model"] for r in results))
        toys = [t for t in args.toys if any(r["toy"] == t for r in results)]
        budgets = sorted({r["steps"] for r in results})
        print_tables(results, toys, models, budgets, args.markdown)
        check_floors(results, toys, budgets)
        return

    models = [SHORT[m] for m in args.models]
    for model in [m for m in models if not available(m)]:
        print(f"skipped {model}: {MODELS[model][0]} (and torch) are not installed here "
              f"(benchmarks/requirements.txt)")
    models = [m for m in models if available(m)]
    print(f"maf_numpy quality benchmark, {datetime.datetime.now():%Y-%m-%d %H:%M}: numpy {np.__version__}, "
          f"toys {', '.join(args.toys)}, budgets {args.budgets}, {args.seeds} seed(s)"
          f"{'' if args.seeds_others is None else f' ({args.seeds_others} for the other models)'}, "
          f"{args.workers} workers")
    floor_models = ("MAF-5", "MAF-5 lr_decay=False", "zuko MAF-5")
    others = args.seeds if args.seeds_others is None else args.seeds_others

    def seeds_of(model):
        return args.seeds if model in floor_models else others

    # the floors' models first, longest budgets first (the pool stays busy to the end)
    jobs = [(toy, model, steps, seed) for group in (floor_models, [m for m in models if m not in floor_models])
            for seed in range(max(args.seeds, others)) for steps in sorted(args.budgets, reverse=True)
            for toy in args.toys for model in models if model in group and seed < seeds_of(model)]
    start, results = time.perf_counter(), []
    with concurrent.futures.ProcessPoolExecutor(args.workers) as pool:
        for result in pool.map(run_job, *zip(*jobs)):
            results.append(result)
            print(f"  [{len(results)}/{len(jobs)}, {time.perf_counter() - start:5.0f} s] {result['toy']:<12} "
                  f"{result['model']:<22} {result['steps']:>6} steps seed {result['seed']}: KL {result['kl']:.4f} "
                  f"+- {2 * result['se']:.4f} "
                  f"({result['status']}, {result['seconds']:.0f} s)", flush=True)
    print_tables(results, args.toys, models, sorted(args.budgets), args.markdown)
    check_floors(results, args.toys, sorted(args.budgets))
    print(f"\ntotal {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
