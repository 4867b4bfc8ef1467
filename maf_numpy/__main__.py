"""Command line: ``python -m maf_numpy demo`` and ``python -m maf_numpy fit``.

    python -m maf_numpy demo [--fast] [--out demo_output] [--steps N] [--seed S] [--jobs J]
        Train MADE, MAF-5, IAF-5 and RealNVP-5 on two 2D toys, print a table of held-out NLL, KL to the
        true density, parameter counts, training times and network passes, and write the figures
        demo_fig1.png, demo_8gaussians.png and demo_nll_curves.png to ``--out`` (default ``demo_output/``,
        which git ignores, so running the demo changes no tracked file; ``--out figures`` regenerates the
        copies tracked in git in ``figures/``). The eight models train in J worker
        processes (default 2) with single-threaded BLAS: 44 s measured on two idle cores (2026-12-03).
    python -m maf_numpy fit --data fig1 --flow maf [--layers 5] [--hidden 64,64] [--steps 2000] ...
        Train one model on a named toy, print its held-out NLL and save it (``maf_numpy.load`` reads it).

``--fast`` (or the environment variable ``MAF_FAST=1``) runs the demo with ~100 steps and small data
sets, for the tests. Matplotlib uses its Agg backend here, so everything runs without a display.
"""

import argparse
import concurrent.futures
import contextlib
import importlib
import inspect
import multiprocessing
import os
import sys
import time
import warnings

import numpy as np

from . import datasets
from .flows import IAF, MADE, MAF, RealNVP
from .mog import MADEMoG, MAFMoG
from .train import fit as _fit

EXACT_ENTROPY = ("fig1", "checkerboard")  # the others' entropies are Monte-Carlo estimates (datasets.py)
FLOWS = ("made", "maf", "iaf", "realnvp", "mademog", "mafmog")
DEMO_TOYS = ("fig1", "8gaussians")
DEMO_MODELS = (("MADE", "made"), ("MAF-5", "maf"), ("IAF-5", "iaf"), ("RealNVP-5", "realnvp"))
FIT_LR = inspect.signature(_fit).parameters["lr"].default  # fit's default step size: one set of defaults
DEMO_OUT = "demo_output"  # the demo's default folder, in .gitignore; "figures" holds the tracked copies
DEMO_STEPS = 2000  # measured: MAF-5 on fig1 within 0.01 nats of the entropy; whole demo ~45 s on 2 idle cores
FAST = {"steps": 100, "n_train": 1000, "n_val": 200, "n_test": 1000, "resolution": 60, "n_samples": 500}
FULL = {"steps": DEMO_STEPS, "n_train": 10_000, "n_val": 2_000, "n_test": 20_000, "resolution": 200,
        "n_samples": 3_000}


# ---------------------------------------------------------------------------------------------------
# Shared helpers
# ---------------------------------------------------------------------------------------------------
def build_flow(kind, layers=5, hidden=(64, 64), rng=0, batch_norm=False):
    """A 2D flow by name: "made" (order (x1, x2)), "mademog" (10 components), "maf", "iaf", "realnvp" or
    "mafmog" (``layers`` layers; batch-norm layers between them for maf/iaf/realnvp if ``batch_norm``)."""
    if kind == "made":
        return MADE(2, hidden=hidden, order="sequential", rng=rng)
    if kind == "mademog":
        return MADEMoG(2, hidden=hidden, order="sequential", rng=rng)
    if kind == "mafmog":
        return MAFMoG(2, num_layers=layers, hidden=hidden, rng=rng)
    options = {"batch_norm": True} if batch_norm else {}
    return {"maf": MAF, "iaf": IAF, "realnvp": RealNVP}[kind](2, num_layers=layers, hidden=hidden, rng=rng, **options)


def toy_splits(name, n_train, n_val, n_test, seed):
    """Train, validation and test points of a toy, each drawn with its own seed (seed, seed+1, seed+2)."""
    return tuple(datasets.toy(name, n, seed + k) for k, n in enumerate((n_train, n_val, n_test)))


def held_out_nll(flow, x, chunk=10_000):
    """Mean of -log p over the points x (n, 2) and two standard errors: 2 std(-log p) / sqrt(n)."""
    nll = -np.concatenate([flow.log_prob(x[start:start + chunk]) for start in range(0, len(x), chunk)])
    return float(np.mean(nll)), float(2 * np.std(nll) / np.sqrt(len(nll)))


def true_entropy(name):
    """The toy's entropy in nats, or None when its density has no closed form."""
    return datasets.toy_entropy(name) if datasets.has_closed_form(name) else None


def parse_hidden(text):
    """'64,64' -> (64, 64), for argparse."""
    try:
        hidden = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--hidden must be comma-separated positive ints like 64,64, "
                                         f"got {text!r}") from None
    if not hidden or min(hidden) < 1:
        raise argparse.ArgumentTypeError(f"--hidden must be comma-separated positive ints, got {text!r}")
    return hidden


def _positive(text, convert, what):
    """``convert(text)`` if it is a finite number > 0, else an argparse error saying it must be ``what``."""
    try:
        value = convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text}")
    return value


def positive_int(text):
    """A positive int, for argparse."""
    return _positive(text, int, "a positive int")


def positive_float(text):
    """A positive finite float, for argparse."""
    return _positive(text, float, "a positive number")


# ---------------------------------------------------------------------------------------------------
# demo
# ---------------------------------------------------------------------------------------------------
def train_and_measure(name, kind, x_train, x_val, x_test, steps, seed, entropy, lr=FIT_LR):
    """Train one model and measure what the table shows; returns a dict (the flow and history included).

    If training diverges (a non-finite loss: ``fit`` then keeps the best parameters seen and says so in
    ``history["status"]``), the model is trained again from scratch with a step size 3x smaller, up to
    twice; ``notes`` in the result says what happened, and the table marks the model with a *.
    """
    notes = []
    for attempt in range(3):
        lr = lr / 3 if attempt else lr
        flow = build_flow(kind, rng=seed)
        start = time.perf_counter()
        with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # a divergence is reported in the history
            history = flow.fit(x_train, x_val, steps=steps, batch_size=256, lr=lr, rng=seed, progress=False)
        seconds = time.perf_counter() - start
        if history["status"] != "diverged":
            break
        notes.append(f"diverged at step {history['steps_run'] + 1} with lr {lr:g}")
    if history["status"] == "diverged":
        notes.append("kept the best parameters of the last run")
    elif notes:
        notes.append(f"retrained with lr {lr:g}")
    nll, two_se = held_out_nll(flow, x_test)
    flow.log_prob(x_test[:10])
    passes_density = flow.passes
    flow.sample(10, rng=0)
    passes_sample = flow.passes
    return {"model": name, "flow": flow, "history": history, "nll": nll, "two_se": two_se,
            "kl": None if entropy is None else nll - entropy, "params": flow.num_params, "seconds": seconds,
            "passes_density": passes_density, "passes_sample": passes_sample, "lr": lr, "notes": notes}


def format_table(rows):
    """The demo's results table as text, one line per (toy, model)."""
    header = (f"{'toy':<11} {'model':<10} {'test NLL ± 2se':>17} {'KL to truth':>11} {'params':>7} "
              f"{'train s':>7} {'passes/density':>14} {'passes/sample':>13}")
    lines = [header, "-" * len(header)]
    for toy, r in rows:
        kl = "—" if r["kl"] is None else f"{r['kl']:.3f}"
        model = r["model"] + ("*" if r["notes"] else "")
        lines.append(f"{toy:<11} {model:<10} {r['nll']:>9.3f} ± {r['two_se']:.3f} {kl:>11} "
                     f"{r['params']:>7} {r['seconds']:>7.1f} {r['passes_density']:>14} "
                     f"{r['passes_sample']:>13}")
    lines += [f"* {toy} {r['model']}: {'; '.join(r['notes'])}" for toy, r in rows if r["notes"]]
    return "\n".join(lines)


def plot_limits(x, pad=0.1):
    """Axis limits covering all but the extreme 0.2% of x (n, 2) at each end, padded by 10%."""
    low, high = np.quantile(x, [0.002, 0.998], axis=0)
    margin = pad * (high - low)
    return (low[0] - margin[0], high[0] + margin[0]), (low[1] - margin[1], high[1] + margin[1])


def demo_figure(toy, x_train, x_test, results, settings):
    """Top row: the true density (or a histogram of the test data) and each model's density, one colour
    scale. Bottom row: the training data and each model's samples, on the same axes."""
    import matplotlib.pyplot as plt

    from . import plotting

    xlim, ylim = plot_limits(x_test)
    resolution = settings["resolution"]
    grids = [plotting.density_grid(r["flow"], xlim, ylim, resolution) for r in results]
    if datasets.has_closed_form(toy):
        reference = plotting.density_grid(lambda x: datasets.toy_log_prob(toy, x), xlim, ylim, resolution)
        reference_title = f"{toy}: true density"
    else:
        counts, x_edges, y_edges = np.histogram2d(x_test[:, 0], x_test[:, 1], bins=resolution // 3,
                                                  range=[xlim, ylim], density=True)
        centres = np.meshgrid((x_edges[1:] + x_edges[:-1]) / 2, (y_edges[1:] + y_edges[:-1]) / 2)
        with np.errstate(divide="ignore"):
            reference = (*centres, np.log(counts.T))
        reference_title = f"{toy}: histogram of {len(x_test)} test points"
    vmax = float(np.median([np.nanmax(np.exp(grid[2])) for grid in [reference, *grids]]))

    ncols = len(results) + 1
    fig, axes = plt.subplots(2, ncols, figsize=(3.6 * ncols + 0.8, 7.6), layout="constrained")
    image = plotting.plot_density(axes[0, 0], reference, title=reference_title, vmin=0, vmax=vmax,
                                  colorbar=False)
    marker = {"s": 3, "alpha": 0.35}
    n_shown = min(len(x_train), settings["n_samples"])
    plotting.plot_samples(axes[1, 0], x_train, title=f"{toy}: {n_shown} training points", xlim=xlim, ylim=ylim,
                          max_points=n_shown, color="black", **marker)
    for k, (r, grid) in enumerate(zip(results, grids), start=1):
        plotting.plot_density(axes[0, k], grid, title=f"{r['model']}: test NLL {r['nll']:.3f}", vmin=0,
                              vmax=vmax, colorbar=False)
        samples = r["flow"].sample(n_shown, rng=0)
        plotting.plot_samples(axes[1, k], samples, title=f"{r['model']}: {n_shown} samples", xlim=xlim,
                              ylim=ylim, color=f"C{k - 1}", **marker)
    all_values = np.concatenate([np.exp(g[2]).ravel() for g in [reference, *grids]])
    fig.colorbar(image, ax=axes[0, :].tolist(), label="p(x)", extend=plotting.colorbar_extend(all_values, 0, vmax),
                 fraction=0.02, pad=0.01, aspect=15)
    fig.suptitle(f"{toy}: densities (top, one colour scale) and samples (bottom); MADE's order is (x1, x2)")
    return fig


def nll_curves_figure(histories, entropy):
    """Validation NLL of every model on fig1 against step: all of it (left) and near the entropy (right)."""
    import matplotlib.pyplot as plt

    from . import plotting

    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    plotting.plot_history(histories, entropy=entropy, show_train=False, ax=axes[0],
                          title="fig1: validation NLL while training")
    plotting.plot_history(histories, entropy=entropy, show_train=False, ax=axes[1], ylim=(entropy - 0.02,
                          entropy + 0.08), title="zoom: the flows near the true entropy (the lowest expected NLL)")
    return fig


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def single_threaded_blas_for_children():
    """Set the BLAS thread counts to 1 (unless the user set them) for processes started inside.

    The matrices here are small (256 x 64): threaded BLAS gains nothing on them and, when the cores are
    busy, loses up to 10x to threads waiting for each other. One process per core, one thread each, is
    the fast way to use several cores. (A process reads these variables when it loads NumPy, so they
    cannot change this process's own BLAS.)
    """
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def demo_job(toy, name, kind, settings, seed):
    """Train and measure one (toy, model) of the demo; the data are redrawn from the seed."""
    x_train, x_val, x_test = toy_splits(toy, settings["n_train"], settings["n_val"], settings["n_test"], seed)
    return train_and_measure(name, kind, x_train, x_val, x_test, settings["steps"], seed, true_entropy(toy))


def run_demo_jobs(jobs, workers):
    """Run the demo jobs, ``workers`` processes at a time (in this process if 1); results in job order."""
    def report(job, r):
        note = f"; {'; '.join(r['notes'])}" if r["notes"] else ""
        print(f"  {job[0]:<11} {r['model']:<10} test NLL {r['nll']:.3f}  ({r['seconds']:.1f} s, "
              f"{r['history']['status']}{note})", flush=True)

    if workers == 1:
        results = [demo_job(*job) for job in jobs]
        for job, r in zip(jobs, results):
            report(job, r)
        return results
    # Longest first (IAF trains with D passes per density), so the last job to finish is a short one.
    cost = {"iaf": 4, "realnvp": 3, "maf": 2, "made": 1}
    schedule = sorted(range(len(jobs)), key=lambda k: -cost[jobs[k][2]])
    with single_threaded_blas_for_children(), concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        # Under ``python -m maf_numpy`` this file runs as ``__main__``, which the worker processes cannot
        # import by that name: hand them the function of the importable module maf_numpy.__main__.
        job = importlib.import_module("maf_numpy.__main__").demo_job
        futures = {pool.submit(job, *jobs[k]): k for k in schedule}
        results = [None] * len(jobs)
        for future in concurrent.futures.as_completed(futures):
            k = futures[future]
            results[k] = future.result()
            report(jobs[k], results[k])
    return results


def run_demo(args):
    fast = args.fast or os.environ.get("MAF_FAST", "") not in ("", "0")
    settings = dict(FAST if fast else FULL)
    if args.steps is not None:
        settings["steps"] = args.steps
    workers = args.jobs or min(2, os.cpu_count() or 1)
    os.makedirs(args.out, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")  # headless: before pyplot is imported (by plotting, in demo_figure)
    import matplotlib.pyplot as plt

    print(f"maf_numpy demo{' (fast mode)' if fast else ''}: {settings['steps']} Adam steps per model, "
          f"{settings['n_train']} training / {settings['n_val']} validation / {settings['n_test']} test "
          f"points per toy, seed {args.seed}, {workers} process(es)", flush=True)
    start = time.perf_counter()
    jobs = [(toy, name, kind, settings, args.seed) for toy in DEMO_TOYS for name, kind in DEMO_MODELS]
    results = run_demo_jobs(jobs, workers)
    rows = [(job[0], r) for job, r in zip(jobs, results)]
    entropies = {toy: true_entropy(toy) for toy in DEMO_TOYS}
    for toy in DEMO_TOYS:
        x_train, _, x_test = toy_splits(toy, settings["n_train"], settings["n_val"], settings["n_test"], args.seed)
        fig = demo_figure(toy, x_train, x_test, [r for t, r in rows if t == toy], settings)
        fig.savefig(os.path.join(args.out, f"demo_{toy}.png"), dpi=110)
        plt.close(fig)
    histories = {r["model"]: r["history"] for t, r in rows if t == "fig1"}
    fig = nll_curves_figure(histories, entropies["fig1"])
    fig.savefig(os.path.join(args.out, "demo_nll_curves.png"), dpi=110)
    plt.close(fig)

    print()
    print(format_table(rows))
    print()
    for toy, entropy in entropies.items():
        if entropy is None:
            print(f"true entropy of {toy}: unknown (no closed-form density), so no KL")
        else:
            how = "exact" if toy in EXACT_ENTROPY else "Monte-Carlo estimate, ± about 0.003"
            print(f"true entropy of {toy}: {entropy:.4f} nats ({how})")
    print("KL to truth = test NLL - true entropy >= 0 (up to the NLL's ± 2se). passes = MADE or coupling "
          "network evaluations for log_prob / sample of 10 points.")
    names = [f"demo_{toy}.png" for toy in DEMO_TOYS] + ["demo_nll_curves.png"]
    print(f"figures written to {os.path.abspath(args.out)}{os.sep}: {', '.join(names)}")
    print(f"total time {time.perf_counter() - start:.1f} s")
    return 0


# ---------------------------------------------------------------------------------------------------
# fit
# ---------------------------------------------------------------------------------------------------
def run_fit(args):
    if args.flow in ("made", "mademog") and args.layers is not None:
        args.subparser.error(f"--layers does not apply to --flow {args.flow} (a MADE is a single layer)")
    if args.batch_norm and args.flow not in ("maf", "iaf", "realnvp"):
        args.subparser.error("--batch-norm applies to --flow maf, iaf or realnvp (it goes between their layers)")
    job = {"flow": args.flow, "layers": 5 if args.layers is None else args.layers, "hidden": args.hidden,
           "batch_norm": args.batch_norm, "data": args.data, "n_train": args.n_train, "steps": args.steps,
           "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "quiet": args.quiet,
           "out": args.out or f"{args.flow}_{args.data}.npz"}
    if any(os.environ.get(name) for name in BLAS_THREAD_VARIABLES):
        return fit_job(job)  # the user chose the BLAS threads: train here
    # NumPy is loaded already, with as many BLAS threads as cores: on busy cores those threads wait for each
    # other (10x slower here for a 2-D MAF). Train in one fresh process with one BLAS thread instead.
    with single_threaded_blas_for_children(), concurrent.futures.ProcessPoolExecutor(
            1, mp_context=multiprocessing.get_context("spawn")) as pool:
        future = pool.submit(importlib.import_module("maf_numpy.__main__").fit_job, job)
        while True:
            try:
                return future.result()
            except KeyboardInterrupt:  # the worker got it too: fit stops cleanly, then saves and reports
                continue


def fit_job(job):
    """Train one flow on a toy, report its held-out NLL and save it (the ``fit`` command's work)."""
    n_val = max(2, job["n_train"] // 5)
    x_train, x_val, x_test = toy_splits(job["data"], job["n_train"], n_val, 10_000, job["seed"])
    flow = build_flow(job["flow"], job["layers"], job["hidden"], rng=job["seed"], batch_norm=job["batch_norm"])
    if not job["quiet"]:
        print(f"training {flow!r}\non {job['n_train']} points of {job['data']!r} ({n_val} for validation)",
              flush=True)
    start = time.perf_counter()
    history = flow.fit(x_train, x_val, steps=job["steps"], batch_size=job["batch_size"], lr=job["lr"],
                       rng=job["seed"], progress=not job["quiet"])
    seconds = time.perf_counter() - start
    nll, two_se = held_out_nll(flow, x_test)
    entropy = true_entropy(job["data"])
    kl = "" if entropy is None else f"; true entropy {entropy:.4f}, so KL to the truth ≈ {nll - entropy:.4f}"
    print(f"held-out NLL on {len(x_test)} test points: {nll:.4f} ± {two_se:.4f} nats (± 2se){kl}")
    print(f"{history['steps_run']} steps in {seconds:.1f} s ({history['status']}), {flow.num_params} parameters")
    flow.save(job["out"])
    print(f"saved to {job['out']}  (read it back with maf_numpy.load({job['out']!r}))", flush=True)
    return 0


# ---------------------------------------------------------------------------------------------------
# argparse
# ---------------------------------------------------------------------------------------------------
def make_parser():
    parser = argparse.ArgumentParser(
        prog="python -m maf_numpy",
        description="MADE, MAF, IAF and RealNVP in NumPy + autograd: a demo on 2D toys, or fit one model.",
        epilog=f"examples:\n  python -m maf_numpy demo            # ~45 s on 2 idle cores; figures in ./{DEMO_OUT}\n"
               "  python -m maf_numpy demo --fast     # a few seconds\n"
               "  python -m maf_numpy demo --out figures   # regenerate the figures tracked in git\n"
               "  python -m maf_numpy fit --data fig1 --flow maf --layers 5 --out maf_fig1.npz\n"
               "run 'python -m maf_numpy demo --help' or '... fit --help' for the options.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,fit}")

    demo = commands.add_parser(
        "demo", help="train MADE, MAF, IAF and RealNVP on two 2D toys; print a table and write figures",
        description=f"Train MADE, MAF-5, IAF-5 and RealNVP-5 (hidden 64,64) on the toys {', '.join(DEMO_TOYS)}; "
                    "print held-out NLL, KL to the truth, parameters, time and network passes; write "
                    "demo_<toy>.png and demo_nll_curves.png.")
    demo.add_argument("--fast", action="store_true",
                      help=f"{FAST['steps']} steps and small data sets, for tests (also: env MAF_FAST=1)")
    demo.add_argument("--out", default=DEMO_OUT,
                      help=f"folder for the figures (created; default: {DEMO_OUT}, which git ignores; "
                           "--out figures regenerates the copies tracked in git)")
    demo.add_argument("--steps", type=positive_int, default=None,
                      help=f"Adam steps per model (default {FULL['steps']}, or {FAST['steps']} with --fast)")
    demo.add_argument("--seed", type=int, default=0, help="seed of data, initialisation and training")
    demo.add_argument("--jobs", type=positive_int, default=None,
                      help="models trained at once, one process each (default: 2, or 1 on one core)")

    fit = commands.add_parser("fit", help="train one flow on a named 2D toy and save it (.npz)",
                              description="Train one flow on a named 2D toy, print its held-out NLL and save "
                                          "it with flow.save (maf_numpy.load reads it back).")
    fit.add_argument("--data", required=True, choices=datasets.toy_names(), help="the toy density")
    fit.add_argument("--flow", required=True, choices=FLOWS, help="the model")
    fit.add_argument("--layers", type=positive_int, default=None,
                     help="layers of maf/iaf/realnvp/mafmog (default 5)")
    fit.add_argument("--batch-norm", action="store_true",
                     help="batch-norm bijectors between the layers of maf/iaf/realnvp")
    fit.add_argument("--hidden", type=parse_hidden, default=(64, 64), help="hidden widths (default 64,64)")
    fit.add_argument("--steps", type=positive_int, default=2000, help="Adam steps (default 2000)")
    fit.add_argument("--batch-size", type=positive_int, default=256, help="minibatch size (default 256)")
    fit.add_argument("--lr", type=positive_float, default=FIT_LR,
                     help=f"Adam step size (default {FIT_LR:g}, fit's default)")
    fit.add_argument("--n-train", type=positive_int, default=10_000, help="training points (default 10000)")
    fit.add_argument("--seed", type=int, default=0, help="seed of data, initialisation and training")
    fit.add_argument("--out", default=None, help="where to save (default <flow>_<data>.npz)")
    fit.add_argument("--quiet", action="store_true", help="no progress lines while training")
    fit.set_defaults(subparser=fit)
    return parser


def main(argv=None):
    """Run the command line; returns the exit code (0 on success)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return run_demo(args)
    return run_fit(args)


if __name__ == "__main__":
    sys.exit(main())
