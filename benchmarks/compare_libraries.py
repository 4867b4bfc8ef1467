"""maf_numpy against nflows and zuko: training step, density evaluation and 1000 samples.

For MAF, IAF and RealNVP with 5 layers at three configurations: D = 2, hidden (64, 64), batch 512; D = 8,
hidden (128, 128), batch 512; D = 64, hidden (512, 512), batch 256. The same architecture in every
library: 5 MADE layers (RealNVP: 5 affine coupling layers on alternating halves), two hidden layers of width
H, ReLU, the ordering reversed between layers, no batch norm, no standardisation layer:

- maf_numpy: ``MAF`` / ``IAF`` / ``RealNVP(D, num_layers=5, hidden=(H, H), standardize=False)``, in float64
  and in float32 (``dtype="float32"``), with the speed kernels of ``maf_numpy.fast`` (``fast=True``, the
  default); and, for reference, in float64 with ``fast=False``: the readable code as written (D full MADE
  passes for MAF sampling and IAF density, the MADE layer by layer, the five-line Adam). The ``fast=False``
  column only shows what the reference costs; it is not part of the floors;
- nflows: ``MaskedAffineAutoregressiveTransform(features=D, hidden_features=H, num_blocks=1,
  use_residual_blocks=False, use_batch_norm=False)`` followed by ``ReversePermutation``, five times (IAF:
  each MADE wrapped in ``InverseTransform``; RealNVP: ``AffineCouplingTransform`` with an ``MLP`` of
  hidden sizes (H, H));
- zuko: ``zuko.flows.MAF(features=D, transforms=5, hidden_features=(H, H))`` (IAF: the same flow with its
  transform inverted, ``Flow(maf.transform.inv, maf.base)``; RealNVP: ``zuko.flows.RealNVP``).
  The PyTorch libraries run in float32, their default.

What is timed, per library:

- training step: loss ``-sum(log_prob(batch)) / n``, its gradient and one Adam step. For maf_numpy exactly
  what ``fit`` runs: ``value_and_grad`` of ``-sum(flow.log_density(params, x)) / n`` over the parameter
  pytree (cut from the flat vector by ``maf_numpy.optim.plain_unflatten``), the gradient flattened by
  ``maf_numpy.optim.flat_vector``, the finiteness check, and ``maf_numpy.fast.adam_step`` when
  ``flow.fast``, else ``maf_numpy.optim.adam_step`` (the same update, bit for bit); for the PyTorch
  libraries ``zero_grad``, ``backward`` and ``torch.optim.Adam.step``. IAF is trained on data here too, so
  its step runs the sequential direction (D network passes per layer) in every library;
- density evaluation of the batch without gradient (``torch.no_grad()`` for the PyTorch libraries);
- drawing 1000 samples (without gradient).

Each (configuration, model, task) is one cell; inside a cell the libraries' repeats are interleaved
(A B C, B C A, C A B, ...), each repeat lasts at least ``--min-repeat-seconds`` (more calls when a call is
short), and the cell reports, per library, the median time per call and, for maf_numpy, the median and
min-max over repeats of the per-repeat ratio ``maf_numpy / min(nflows, zuko)`` (the fastest peer in that
same repeat). Slow cells (the sequential directions at D = 64) get fewer repeats, at least 3, so that the
whole run stays within a few minutes. The ``fast=False`` flow is timed in a second interleaved pass of the
same cell, with the peers and the fast float64 flow again, so that its slow calls do not cut the rounds of the
first pass; its ratios are to the fastest peer and to the fast float64 flow of that second pass.

Threads: OMP_NUM_THREADS, OPENBLAS_NUM_THREADS and MKL_NUM_THREADS are set to 1 below, before NumPy or
PyTorch is imported, and ``torch.set_num_threads(1)`` / ``torch.set_num_interop_threads(1)`` are called.
Memory: glibc's malloc is asked to keep freed temporaries (``maf_numpy.timing.tune_malloc_for_timing``;
the whole process, so every library alike; ``--no-malloc-tuning`` to skip).

Missing libraries are skipped with a message: torch, nflows and zuko are needed only by this script
(``benchmarks/requirements.txt``), never by maf_numpy or its tests. The script also runs against older
versions of maf_numpy (without ``fast``, ``log_density`` or ``maf_numpy.optim``), to compare two versions
with the same script; the ``fast=False`` column is then left out.

After the table it checks the speed floors (training step: float32 <= 0.8x zuko, float64 <= 1.2x zuko's
float32; density <= 1.0x the fastest peer; 1000 MAF samples at D = 64 <= 0.1x the fastest peer), each
with its median ratio and whether it is met.

    python benchmarks/compare_libraries.py                  # about 5-8 minutes on 2 shared cores
    python benchmarks/compare_libraries.py --quick          # 3 rounds per cell, shorter repeats
    python benchmarks/compare_libraries.py --markdown       # the tables in Markdown
    python benchmarks/compare_libraries.py --no-reference   # without the fast=False column (about 3 minutes)
"""

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # one thread for every library; must happen before numpy / torch load

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import importlib  # noqa: E402
import importlib.metadata  # noqa: E402
import inspect  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402

import autograd.numpy as np  # noqa: E402
import numpy as onp  # noqa: E402
from autograd import value_and_grad  # noqa: E402
from autograd.misc import flatten  # noqa: E402

import maf_numpy as mf  # noqa: E402
from maf_numpy import train as _train  # noqa: E402

CONFIGS = [  # (D, H, batch)
    (2, 64, 512),
    (8, 128, 512),
    (64, 512, 256),
]
MODELS = ("MAF", "IAF", "RealNVP")
TASKS = ("train step", "density", "1000 samples")
NUM_LAYERS = 5
NUM_SAMPLES = 1000
LEARNING_RATE = 1e-4
PEERS = ("nflows", "zuko")
REFERENCE = "maf_numpy f64 fast=False"  # the readable reference; informational, not part of the floors

# What this maf_numpy offers (older versions lack some of it; the script adapts so that two versions can be
# timed by the same script).
HAS_FAST = "fast" in inspect.signature(mf.MAF).parameters  # fast=False flows: the reference code as written
_OPTIM = mf.optim if hasattr(mf, "optim") else _train  # flat_vector / plain_unflatten (older: in train)


# --- the libraries ---------------------------------------------------------------------------------
def load_peers():
    """Import torch, nflows and zuko if installed; returns {name: module} and prints what is skipped."""
    modules = {}
    try:
        import torch
    except ImportError:
        print("torch is not installed: nflows and zuko are skipped (pip install -r benchmarks/requirements.txt)")
        return modules
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # only allowed before any inter-op parallel work
        pass
    modules["torch"] = torch
    for name in PEERS:
        try:
            modules[name] = importlib.import_module(name)
        except ImportError:
            print(f"{name} is not installed: skipped (pip install -r benchmarks/requirements.txt)")
    return modules


def maf_numpy_dtype_argument():
    """The value to pass as ``dtype=`` for float32, or None when the flows have no dtype option."""
    if "dtype" not in inspect.signature(mf.MAF).parameters:
        return None
    for candidate in ("float32", onp.float32):
        try:
            flow = mf.MAF(2, num_layers=1, hidden=(4,), standardize=False, rng=0, dtype=candidate)
        except (TypeError, ValueError):
            continue
        if onp.dtype(getattr(flow, "dtype", flatten(flow.params)[0].dtype)) == onp.float32:
            return candidate
    return None


def _adam_step(flow):
    """The Adam update ``fit`` uses for this flow: the chunked one when ``flow.fast``, else the reference."""
    if hasattr(flow, "fast"):
        return mf.fast.adam_step if flow.fast else mf.optim.adam_step
    return _train.adam_step  # older versions: one adam_step, in maf_numpy.train


def build_maf_numpy(model, D, H, batch, dtype=None, fast=True):
    """(train_step, density, sample, number of parameters) of a maf_numpy flow; dtype None means float64.

    ``fast=False`` builds the reference flow (only asked for when the library has the option)."""
    cls = {"MAF": mf.MAF, "IAF": mf.IAF, "RealNVP": mf.RealNVP}[model]
    options = {} if dtype is None else {"dtype": dtype}
    if not fast:
        options["fast"] = False
    flow = cls(D, num_layers=NUM_LAYERS, hidden=(H, H), standardize=False, rng=0, **options)
    dtype = onp.dtype(getattr(flow, "dtype", onp.float64))
    if hasattr(_OPTIM, "flat_vector"):  # what fit uses: plain-NumPy flatten / unflatten
        theta, unflatten = _OPTIM.flat_vector(flow.params, dtype), _OPTIM.plain_unflatten(flow.params)[0]

        def flat(grad):
            return _OPTIM.flat_vector(grad, dtype)
    else:  # older fit: autograd.misc.flatten
        theta, unflatten = flatten(flow.params)

        def flat(grad):
            return flatten(grad)[0]
    x = onp.random.default_rng(1).standard_normal((batch, D)).astype(dtype)
    log_density = getattr(flow, "log_density", None) or flow._log_prob  # older versions: _log_prob
    adam_step = _adam_step(flow)

    def loss(params, x_batch):  # exactly fit's loss (maf_numpy/train.py)
        return -np.sum(log_density(params, x_batch)) / x_batch.shape[0]

    loss_and_grad = value_and_grad(loss)
    state = {"theta": theta, "m": onp.zeros_like(theta), "v": onp.zeros_like(theta), "t": 0}

    def train_step():  # exactly fit's step: value_and_grad, flatten, finiteness check, Adam
        state["t"] += 1
        value, grad = loss_and_grad(unflatten(state["theta"]), x)
        g = flat(grad)
        if not (onp.isfinite(value) and onp.all(onp.isfinite(g))):
            raise FloatingPointError("the training loss or its gradient is not finite")
        state["theta"], state["m"], state["v"] = adam_step(state["theta"], g, state["m"], state["v"], state["t"],
                                                           LEARNING_RATE)

    sample_rng = onp.random.default_rng(2)
    return (train_step, lambda: flow.log_prob(x), lambda: flow.sample(NUM_SAMPLES, rng=sample_rng),
            flow.num_params)


def _torch_callables(torch, parameters, log_prob, sample, x):
    """(train_step, density, sample, number of parameters) of a PyTorch flow."""
    parameters = list(parameters)
    optimizer = torch.optim.Adam(parameters, lr=LEARNING_RATE)

    def train_step():
        optimizer.zero_grad(set_to_none=True)
        loss = -log_prob(x).sum() / x.shape[0]
        loss.backward()
        optimizer.step()

    def density():
        with torch.no_grad():
            return log_prob(x)

    def draw():
        with torch.no_grad():
            return sample()

    return train_step, density, draw, sum(p.numel() for p in parameters)


def build_nflows(peers, model, D, H, batch):
    torch = peers["torch"]  # nflows itself is imported in load_peers; its submodules here
    from nflows.distributions.normal import StandardNormal
    from nflows.flows.base import Flow
    from nflows.nn.nets import MLP
    from nflows.transforms import (
        AffineCouplingTransform,
        CompositeTransform,
        InverseTransform,
        MaskedAffineAutoregressiveTransform,
        ReversePermutation,
    )

    torch.manual_seed(0)
    layers = []
    for k in range(NUM_LAYERS):
        if model == "RealNVP":
            d = D // 2  # like maf_numpy: condition on the first half, then on the second half, ...
            mask = torch.ones(D)
            mask[:d] = -1 if k % 2 == 0 else 1
            mask[d:] = 1 if k % 2 == 0 else -1

            class Network(torch.nn.Module):  # nflows' MLP takes no context argument; the coupling passes one
                def __init__(self, in_features, out_features):
                    super().__init__()
                    self.mlp = MLP([in_features], [out_features], hidden_sizes=[H, H])

                def forward(self, inputs, context=None):
                    return self.mlp(inputs)

            network = Network

            layers.append(AffineCouplingTransform(mask, network))
        else:
            made = MaskedAffineAutoregressiveTransform(features=D, hidden_features=H, num_blocks=1,
                                                       use_residual_blocks=False, use_batch_norm=False)
            layers.append(made if model == "MAF" else InverseTransform(made))
            if k < NUM_LAYERS - 1:
                layers.append(ReversePermutation(features=D))
    flow = Flow(CompositeTransform(layers), StandardNormal([D]))
    x = torch.from_numpy(onp.random.default_rng(1).standard_normal((batch, D)).astype(onp.float32))
    return _torch_callables(torch, flow.parameters(), flow.log_prob, lambda: flow.sample(NUM_SAMPLES), x)


def build_zuko(peers, model, D, H, batch):
    torch, zuko = peers["torch"], peers["zuko"]
    torch.manual_seed(0)
    if model == "RealNVP":
        if not hasattr(zuko.flows, "RealNVP"):
            return None
        flow = zuko.flows.RealNVP(features=D, transforms=NUM_LAYERS, hidden_features=(H, H))
    else:
        flow = zuko.flows.MAF(features=D, transforms=NUM_LAYERS, hidden_features=(H, H))
        if model == "IAF":
            flow = zuko.flows.Flow(flow.transform.inv, flow.base)
    x = torch.from_numpy(onp.random.default_rng(1).standard_normal((batch, D)).astype(onp.float32))
    return _torch_callables(torch, flow.parameters(), lambda v: flow().log_prob(v),
                            lambda: flow().sample((NUM_SAMPLES,)), x)


# --- timing ----------------------------------------------------------------------------------------
def _time_repeat(function, number):
    start = time.perf_counter()
    for _ in range(number):
        function()
    return (time.perf_counter() - start) / number


def time_interleaved(functions, repeats, min_repeat_seconds, cell_budget_seconds, min_repeats=3):
    """Seconds per call of each function in each repeat, with the repeats interleaved and rotated.

    Every function is called once to warm up and, unless that took over a second, once more to estimate
    its time, which sets its calls per repeat (at least ``min_repeat_seconds`` a repeat). The number of
    rounds is ``repeats``, cut down (not below ``min_repeats``) when one round would make the cell last
    over ``cell_budget_seconds``.
    Round r runs the functions in the dict's order rotated by r. Garbage collection is off while timing.

    Returns
    -------
    dict of str -> ndarray of shape (rounds,)
    """
    names = list(functions)
    numbers, round_seconds = {}, 0.0
    for name in names:
        per_call = _time_repeat(functions[name], 1)  # warm up
        if per_call < 1.0:  # a first call also pays one-off costs: estimate again unless it is slow anyway
            per_call = _time_repeat(functions[name], 1)
        numbers[name] = max(1, math.ceil(min_repeat_seconds / max(per_call, 1e-9)))
        round_seconds += numbers[name] * per_call
    rounds = max(min_repeats, min(repeats, int(cell_budget_seconds / max(round_seconds, 1e-9))))
    seconds = {name: [] for name in names}
    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                seconds[name].append(_time_repeat(functions[name], numbers[name]))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: onp.array(values) for name, values in seconds.items()}


# --- the run ---------------------------------------------------------------------------------------
def _version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _ms(seconds):
    value = 1e3 * float(onp.median(seconds))
    return f"{value:.3g}" if value < 1000 else f"{value:.0f}"


def _ratio(mine, reference):
    ratios = mine / reference
    return float(onp.median(ratios)), float(ratios.min()), float(ratios.max())


def _format_ratio(ratio):
    return "-" if ratio is None else f"{ratio[0]:.2f} [{ratio[1]:.2f}-{ratio[2]:.2f}]"


def _fastest_peer(seconds):
    present = [name for name in PEERS if name in seconds]
    return onp.min([seconds[name] for name in present], axis=0) if present else None


def run(args):
    peers = load_peers()
    dtype32 = maf_numpy_dtype_argument()
    if dtype32 is None:
        print("maf_numpy has no dtype option (inspect.signature(maf_numpy.MAF)): float64 only")
    ours = {"maf_numpy f64": None}
    if dtype32 is not None:
        ours["maf_numpy f32"] = dtype32
    reference = args.reference and HAS_FAST
    if args.reference and not HAS_FAST:
        print("this maf_numpy has no fast option (inspect.signature(maf_numpy.MAF)): no fast=False column")
    peer_builders = {name: builder for name, builder in (("nflows", build_nflows), ("zuko", build_zuko))
                     if name in peers}
    rows = []
    for D, H, batch in CONFIGS:
        if D not in args.dims:
            continue
        for model in args.models:
            built = {name: build_maf_numpy(model, D, H, batch, dtype) for name, dtype in ours.items()}
            for name, builder in peer_builders.items():
                callables = builder(peers, model, D, H, batch)
                if callables is None:
                    print(f"{name} has no {model}: skipped")
                else:
                    built[name] = callables
            counts = {callables[3] for callables in built.values()}  # the same architecture everywhere?
            parameters = str(counts.pop()) if len(counts) == 1 else "/".join(str(c[3]) for c in built.values())
            slow = build_maf_numpy(model, D, H, batch, fast=False) if reference else None
            for t, task in enumerate(TASKS):
                functions = {name: callables[t] for name, callables in built.items()}
                seconds = time_interleaved(functions, args.repeats, args.min_repeat_seconds, args.cell_seconds)
                fastest_peer = _fastest_peer(seconds)
                row = {"D": D, "H": H, "batch": batch, "model": model, "task": task, "seconds": seconds,
                       "parameters": parameters,
                       "rounds": len(next(iter(seconds.values())))}
                for name in ours:
                    row[name, "peer"] = None if fastest_peer is None else _ratio(seconds[name], fastest_peer)
                    row[name, "zuko"] = _ratio(seconds[name], seconds["zuko"]) if "zuko" in seconds else None
                if slow is not None:  # a second pass, so that the slow reference does not cut the first's rounds
                    second = {REFERENCE: slow[t], "maf_numpy f64": built["maf_numpy f64"][t],
                              **{name: built[name][t] for name in PEERS if name in built}}
                    again = time_interleaved(second, args.repeats, args.min_repeat_seconds, args.cell_seconds)
                    row["seconds"][REFERENCE] = again[REFERENCE]
                    fastest_again = _fastest_peer(again)
                    row[REFERENCE, "peer"] = None if fastest_again is None else _ratio(again[REFERENCE],
                                                                                       fastest_again)
                    row[REFERENCE, "fast"] = _ratio(again[REFERENCE], again["maf_numpy f64"])
                    row["reference rounds"] = len(again[REFERENCE])
                rows.append(row)
                print(f"  done: D={D} {model} {task} ({row['rounds']} rounds"
                      + (f", fast=False {row['reference rounds']} rounds" if slow is not None else "") + ")",
                      flush=True)
    return rows, list(ours) + ([REFERENCE] if reference else []), list(peer_builders)


def table(rows, ours, peers, markdown):
    fast_rows = [name for name in ours if name != REFERENCE]
    header = (["D", "H", "batch", "model", "parameters", "task", "rounds"] + [f"{name} (ms)" for name in ours + peers]
              + [f"{name} / fastest peer" for name in ours])
    if REFERENCE in ours:
        header.append("fast=False / fast=True (f64)")
    body = []
    for row in rows:
        rounds = str(row["rounds"]) + (f" / {row['reference rounds']}" if "reference rounds" in row else "")
        cells = ([str(row["D"]), str(row["H"]), str(row["batch"]), row["model"], row["parameters"], row["task"],
                  rounds]
                 + [_ms(row["seconds"][name]) if name in row["seconds"] else "-" for name in ours + peers]
                 + [_format_ratio(row.get((name, "peer"))) for name in fast_rows])
        if REFERENCE in ours:
            cells += [_format_ratio(row.get((REFERENCE, "peer"))), _format_ratio(row.get((REFERENCE, "fast")))]
        body.append(cells)
    return _render(header, body, markdown)


def _render(header, body, markdown):
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(cells) + " |" for cells in body])
    widths = [max(len(cells[j]) for cells in [header, *body]) for j in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(cells, widths))
                     for cells in [header, *body])


FLOORS = [  # (column, task, ours, reference, limit, only for (D, model) or None)
    ("train f32 / zuko <= 0.8", "train step", "maf_numpy f32", "zuko", 0.8, None),
    ("train f64 / zuko <= 1.2", "train step", "maf_numpy f64", "zuko", 1.2, None),
    ("density f32 / peer <= 1.0", "density", "maf_numpy f32", "peer", 1.0, None),
    ("density f64 / peer <= 1.0", "density", "maf_numpy f64", "peer", 1.0, None),
    ("1000 samples f32 / peer <= 0.1", "1000 samples", "maf_numpy f32", "peer", 0.1, (64, "MAF")),
    ("1000 samples f64 / peer <= 0.1", "1000 samples", "maf_numpy f64", "peer", 0.1, (64, "MAF")),
]


def floors(rows, ours, markdown=False):
    """The speed floors as a table: per (D, model), each floor's median ratio and whether it is met.

    Training steps compare with zuko (float32), densities and samples with the fastest peer; the sampling
    floor is the D-pass direction, MAF at D = 64. "-" where a floor does not apply or was not measured.
    """
    columns = [floor for floor in FLOORS if floor[2] in ours]
    header = ["D", "model"] + [floor[0] for floor in columns]
    by_key = {(row["D"], row["model"], row["task"]): row for row in rows}
    body = []
    for D, model in dict.fromkeys((row["D"], row["model"]) for row in rows):
        cells = [str(D), model]
        for _, task, name, reference, limit, only in columns:
            row = by_key.get((D, model, task))
            ratio = None if row is None or (only is not None and only != (D, model)) else row[name, reference]
            cells.append("-" if ratio is None else f"{ratio[0]:.2f} {'met' if ratio[0] <= limit else 'NOT met'}")
        body.append(cells)
    return _render(header, body, markdown)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="3 rounds per cell and shorter repeats")
    parser.add_argument("--repeats", type=int, default=None, help="rounds per cell (default 7; --quick 3)")
    parser.add_argument("--min-repeat-seconds", type=float, default=None,
                        help="least duration of one repeat (default 0.1; --quick 0.03)")
    parser.add_argument("--cell-seconds", type=float, default=None,
                        help="time budget of one cell's rounds; slow cells get fewer rounds, at least 3 "
                             "(default 12; --quick 4)")
    parser.add_argument("--markdown", action="store_true", help="print the table in Markdown")
    parser.add_argument("--dims", nargs="+", type=int, default=[D for D, _, _ in CONFIGS],
                        choices=[D for D, _, _ in CONFIGS], help="configurations to run, by D (default all)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="leave out the float64 fast=False flow (the readable reference)")
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    defaults = (3, 0.03, 4.0) if args.quick else (7, 0.1, 12.0)
    args.repeats = args.repeats or defaults[0]
    args.min_repeat_seconds = args.min_repeat_seconds or defaults[1]
    args.cell_seconds = args.cell_seconds or defaults[2]

    tuned = False
    if not args.no_malloc_tuning:
        tuned = mf.timing.tune_malloc_for_timing() if hasattr(mf, "timing") else False
    start = time.perf_counter()
    rows, ours, peers = run(args)
    elapsed = time.perf_counter() - start

    torch = importlib.import_module("torch") if peers else None
    versions = [f"maf_numpy {getattr(mf, '__version__', '?')}"] + [
        f"{name} {_version(name)}" for name in ("numpy", "autograd", "torch", *peers) if name != "torch" or peers]
    print()
    print(f"maf_numpy against nflows and zuko, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
          f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; " + ", ".join(versions))
    print(f"maf_numpy imported from {os.path.dirname(mf.__file__)}")
    print("One thread each: OMP/OPENBLAS/MKL_NUM_THREADS=1 set before numpy/torch are imported"
          + (f", torch.set_num_threads(1) (torch reports {torch.get_num_threads()})" if torch else "") + ". "
          + ("glibc malloc tuned to keep freed temporaries (maf_numpy.timing.tune_malloc_for_timing)."
             if tuned else "malloc not tuned."))
    if HAS_FAST:
        print("maf_numpy f64 / f32: flows with fast=True (the kernels of maf_numpy.fast)"
              + ("; 'fast=False': the readable reference in float64, timed in a second interleaved pass of each "
                 "cell with the peers and the fast float64 flow (rounds after the slash)." if REFERENCE in ours
                 else "."))
    else:
        sliced = hasattr(getattr(mf, "made", None), "solve_sliced")
        print("maf_numpy without a fast option; its D-pass solver (MAF sampling, IAF density; not under autograd): "
              + ("degree-sliced (maf_numpy.made.solve_sliced)." if sliced else "D full network passes per layer."))
    print(f"5 layers, hidden (H, H), ReLU, order reversed between layers; PyTorch libraries in float32. Times are "
          f"medians (ms per call) over interleaved rounds of >= {args.min_repeat_seconds} s repeats; ratios are "
          f"the median [min-max] of per-round maf_numpy / min(nflows, zuko). Train step = loss + gradient + Adam "
          f"step on the batch; density = log_prob of the batch without gradient; samples = 1000 draws. "
          f"IAF train step and density run the sequential direction in every library. 'parameters' is the "
          f"trainable count, one number when all libraries agree (else maf_numpy/.../zuko).")
    print()
    print(table(rows, ours, peers, args.markdown))
    print()
    print("speed floors (median of the per-round ratios above; training against zuko, the rest against the "
          "fastest peer; the fast=False flow is not held to them):")
    print(floors(rows, ours, args.markdown))
    print(f"\ntotal time {elapsed:.0f} s")


if __name__ == "__main__":
    main()
