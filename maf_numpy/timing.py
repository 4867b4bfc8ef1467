"""Timing helpers: interleaved repeats, the density/sampling trade-off against D, log-log slopes.

The MAF paper's remark on the trade-off (§3.2): a MAF evaluates a density in one MADE pass per layer but
samples in D sequential passes; an IAF does the opposite; RealNVP (§3.3) takes one pass both ways. The
pass counts are exact (``flow.passes``); this module turns them into measured times. Lesson:
``lessons/08_tradeoff_density_vs_sampling_time_vs_D.ipynb``; script: ``benchmarks/tradeoff_vs_D.py``.

**BLAS threads.** Set ``OPENBLAS_NUM_THREADS=1`` (and ``OMP_NUM_THREADS=1``, ``MKL_NUM_THREADS=1``) in the
environment *before NumPy is first imported*, e.g. ``OPENBLAS_NUM_THREADS=1 python script.py`` or
``os.environ.setdefault(...)`` in the first lines of a script or notebook. The matrices here are small, and
a multi-threaded BLAS on a shared machine makes the times slower and erratic. This module never changes
the setting itself (it is imported after NumPy, when it is too late anyway); :func:`blas_threads` reports
it, using ``threadpoolctl`` if that is installed (it is optional, not a dependency).

**Memory.** By default glibc's malloc hands large freed blocks (over 128 KB at first; the threshold then
adapts to the allocation history) back to the system, so the next call page-faults them in again. For a
batch of 256 points that starts around D = 64 and can make a one-pass call 2-3x slower, by an amount that
changes from run to run. :func:`tune_malloc_for_timing` asks glibc to keep such blocks for
reuse; it changes the whole process, so the lesson and the benchmark call it explicitly and the library
never does.

**Which code is timed.** :func:`measure_tradeoff` builds its flows with ``fast=True`` (the library's default)
unless told ``fast=False``. With ``fast=False`` the flows run the readable reference code: MAF sampling and
IAF density evaluation make D full MADE passes per layer (:func:`maf_numpy.transforms.solve_autoregressive`),
the cost of the paper's algorithm as written. With ``fast=True`` they run the degree-sliced solver
(:func:`maf_numpy.fast.solver.solve_sliced`): the same D sequential steps per layer with about one pass of
arithmetic in all. The pass counts (``flow.passes``) are the same either way.

**Noise.** :func:`time_calls` interleaves the repeats of the functions it compares (A B C A B C ...), so
that a slow moment of a shared machine hits all of them alike, and reports the median. Ratios of times
measured together are far more stable than the times themselves. Nothing here is asserted on wall-clock
time by the tests.
"""

import ctypes
import ctypes.util
import gc
import math
import os
import time
from dataclasses import dataclass, field

import numpy as np

from .validation import check_bool, check_positive_float, check_positive_int

__all__ = ["Timing", "TradeoffPoint", "time_calls", "measure_tradeoff", "loglog_slope", "blas_threads",
           "tradeoff_table", "tune_malloc_for_timing", "MODEL_NAMES"]

MODEL_NAMES = ("MAF", "IAF", "RealNVP")
BLAS_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
MAX_NUMBER = 1_000_000


@dataclass(frozen=True)
class Timing:
    """Seconds per call of one function over ``repeats`` interleaved repeats of ``number`` calls each.

    Attributes
    ----------
    median, min, max : float
        Median, smallest and largest of ``seconds`` (seconds per call).
    number : int
        Calls per repeat.
    seconds : tuple of float
        Seconds per call in each repeat (the repeat's total divided by ``number``), in the order run.
    """

    median: float
    min: float
    max: float
    number: int
    seconds: tuple = field(repr=False)

    @property
    def repeats(self):
        return len(self.seconds)


def _time_batch(function, number, clock):
    start = clock()
    for _ in range(number):
        function()
    return clock() - start


def _choose_number(function, min_seconds, clock):
    """Calls per repeat so that one repeat lasts >= min_seconds; the calibration calls warm up too."""
    number = 1
    while True:
        seconds = _time_batch(function, number, clock)
        if seconds >= min_seconds or number >= MAX_NUMBER:
            return number
        # aim a little above the target from the rate just measured, and grow at least twofold
        estimate = math.ceil(1.2 * number * min_seconds / seconds) if seconds > 0 else MAX_NUMBER
        number = min(MAX_NUMBER, max(2 * number, estimate))


def time_calls(functions, repeats=7, number=None, min_repeat_seconds=0.02, clock=time.perf_counter):
    """Time zero-argument callables with interleaved repeats: A B C A B C ...

    Each function is first warmed up: called once if ``number`` is given, or calibrated if not (batches of
    1, 2, ... calls until one batch lasts ``min_repeat_seconds``, which sets its ``number``). Then
    ``repeats`` rounds run; in each round every function runs one repeat of ``number`` calls, in the
    order of the dict. Garbage collection is off while timing (as in :mod:`timeit`).

    Set the BLAS threads before NumPy is imported (module docstring); this function does not.

    Parameters
    ----------
    functions : dict of str -> callable
        Zero-argument callables to compare; their return values are discarded.
    repeats : int
        Number of interleaved rounds; the median over them is reported.
    number : int or None
        Calls per repeat, the same for all functions; ``None`` chooses it per function so that one repeat
        lasts at least ``min_repeat_seconds`` (so fast functions are not timed below the clock's
        resolution, and slow ones are called once per repeat).
    min_repeat_seconds : float
    clock : callable
        Returns seconds; :func:`time.perf_counter` by default (the tests pass a fake clock).

    Returns
    -------
    dict of str -> Timing
        Seconds per call of each function: median, min, max over the repeats, and ``number``.
    """
    if not isinstance(functions, dict) or not functions:
        raise TypeError(f"functions must be a non-empty dict of name -> callable, got {type(functions).__name__}")
    for name, function in functions.items():
        if not callable(function):
            raise TypeError(f"functions[{name!r}] must be a zero-argument callable, got {type(function).__name__}")
    repeats = check_positive_int(repeats, "repeats")
    min_repeat_seconds = check_positive_float(min_repeat_seconds, "min_repeat_seconds")
    if number is not None:
        number = check_positive_int(number, "number")

    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        numbers = {}
        for name, function in functions.items():  # warm up (and calibrate)
            if number is None:
                numbers[name] = _choose_number(function, min_repeat_seconds, clock)
            else:
                function()
                numbers[name] = number
        seconds = {name: [] for name in functions}
        for _ in range(repeats):
            for name, function in functions.items():  # interleaved: one repeat of each per round
                seconds[name].append(_time_batch(function, numbers[name], clock) / numbers[name])
    finally:
        if gc_was_enabled:
            gc.enable()
    return {name: Timing(median=float(np.median(values)), min=min(values), max=max(values),
                         number=numbers[name], seconds=tuple(values))
            for name, values in seconds.items()}


@dataclass(frozen=True)
class TradeoffPoint:
    """One (model, D) point of :func:`measure_tradeoff`.

    Attributes
    ----------
    model : str
        ``"MAF"``, ``"IAF"`` or ``"RealNVP"``.
    D, K : int
        Dimension and number of layers.
    density, sampling : Timing
        Seconds per call of ``flow.log_prob(x)`` with x of shape (n, D), and of ``flow.sample(n)``.
    density_passes, sampling_passes : int
        Conditioner (MADE or coupling network) evaluations of one call, read from ``flow.passes``.
    num_params : int
        ``flow.num_params``.
    fast : bool
        ``flow.fast`` of the timed flow: False when it ran the readable reference code.
    """

    model: str
    D: int
    K: int
    density: Timing
    sampling: Timing
    density_passes: int
    sampling_passes: int
    num_params: int
    fast: bool = True

    @property
    def ratio(self):
        """Median sampling time / median density time (tracks D for MAF, 1/D for IAF, 1 for RealNVP)."""
        return self.sampling.median / self.density.median


def _build_flow(model, D, K, hidden, rng, fast=True):
    from . import flows  # here, so that timing helpers load without building anything

    classes = {"MAF": flows.MAF, "IAF": flows.IAF, "RealNVP": flows.RealNVP}
    if model not in classes:
        raise ValueError(f"model_names must hold names from {MODEL_NAMES}, got {model!r}")
    return classes[model](D, num_layers=K, hidden=hidden, standardize=False, rng=rng, fast=fast)


def measure_tradeoff(model_names=MODEL_NAMES, dims=(2, 4, 8, 16, 32, 64, 128, 256), K=1, hidden=(128,), n=256,
                     repeats=5, min_repeat_seconds=0.02, rng=0, fast=True):
    """Time density evaluation and sampling of untrained flows against the dimension D.

    Builds every model at every D (``standardize=False``, untrained: the cost of a pass does not depend on
    the values of the weights), calls ``flow.log_prob`` and ``flow.sample`` once each on 2 points to read the
    exact pass counts from ``flow.passes`` (they do not depend on the batch size), then times
    ``flow.log_prob(x)`` with x of shape (n, D) and ``flow.sample(n)``: both directions of all models at
    all D in one :func:`time_calls`: the repeats are interleaved across models, directions *and*
    dimensions, so a slow moment of the machine does not bend the curves against D. The calls are the
    public methods on plain arrays, so no autograd tracing happens.

    Set the BLAS threads before NumPy is imported (module docstring); this function does not.

    Parameters
    ----------
    model_names : sequence of {"MAF", "IAF", "RealNVP"}
    dims : sequence of int
        Dimensions D (at least 2: RealNVP splits x in two).
    K : int
        Layers per flow.
    hidden : tuple of int
        Hidden widths of every MADE / coupling network, fixed across D.
    n : int
        Batch size of both calls.
    repeats : int
    min_repeat_seconds : float
        See :func:`time_calls`.
    rng : int
        Seeds the parameters, the data x and the samples.
    fast : bool
        Passed to the flow constructors (``flow.fast``). True (the library's default) times what a flow runs
        by default: MAF sampling and IAF density evaluation with the degree-sliced solver, D sequential steps
        per layer with about one pass of arithmetic. False times the readable reference code: D full MADE
        passes per layer in those two directions, the cost of the paper's algorithm as written. The pass
        counts are the same either way.

    Returns
    -------
    dict of (str, int) -> TradeoffPoint
        Keyed by ``(model, D)``, for D in ``dims`` and then model in ``model_names``.

    Notes
    -----
    Expected passes: MAF ``K`` for the density and ``K * D`` for samples, IAF the other way round, RealNVP
    ``K`` both ways (MAF §3.1-§3.3).
    """
    K = check_positive_int(K, "K")
    n = check_positive_int(n, "n")
    fast = check_bool(fast, "fast")
    dims = [check_positive_int(D, "dims", minimum=2) for D in dims]
    flows, functions, passes = {}, {}, {}
    for D in dims:
        x = np.random.default_rng(rng).standard_normal((n, D))
        for model in model_names:
            flow = flows[model, D] = _build_flow(model, D, K, hidden, rng, fast)
            functions[model, D, "density"] = lambda flow=flow, x=x: flow.log_prob(x)
            functions[model, D, "sampling"] = lambda flow=flow: flow.sample(n, rng=rng)
            flow.log_prob(x[:2])  # the pass counts do not depend on the batch size: count them on 2 points
            passes[model, D, "density"] = flow.passes
            flow.sample(2, rng=rng)
            passes[model, D, "sampling"] = flow.passes
    timings = time_calls(functions, repeats=repeats, min_repeat_seconds=min_repeat_seconds)
    return {(model, D): TradeoffPoint(model=model, D=D, K=K, density=timings[model, D, "density"],
                                      sampling=timings[model, D, "sampling"],
                                      density_passes=passes[model, D, "density"],
                                      sampling_passes=passes[model, D, "sampling"], num_params=flow.num_params,
                                      fast=flow.fast)
            for (model, D), flow in flows.items()}


def loglog_slope(x, y):
    """Least-squares slope b of log y = a + b log x: the exponent of a power law y = c x^b.

    Parameters
    ----------
    x, y : sequence of float
        At least two positive values each, of the same length, not all x equal.

    Returns
    -------
    float
    """
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.ndim != 1 or x.shape != y.shape or len(x) < 2:
        raise ValueError(f"x and y must be 1-D of the same length >= 2, got shapes {x.shape} and {y.shape}")
    if not (np.all(x > 0) and np.all(y > 0) and np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("x and y must be finite and positive to fit a line on log-log axes")
    if np.all(x == x[0]):
        raise ValueError("x must hold at least two different values to fit a slope")
    return float(np.polyfit(np.log(x), np.log(y), 1)[0])


def blas_threads():
    """Report the BLAS thread settings: the environment variables and, if ``threadpoolctl`` is installed,
    the threads each loaded BLAS library really uses. Changes nothing.

    Returns
    -------
    dict
        ``{variable: value or None}`` for OPENBLAS/OMP/MKL_NUM_THREADS, plus ``"threadpoolctl"``: a list of
        ``(library, num_threads)`` pairs, or None when threadpoolctl is not installed.
    """
    report = {variable: os.environ.get(variable) for variable in BLAS_VARIABLES}
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        report["threadpoolctl"] = None
    else:
        report["threadpoolctl"] = [(info.get("internal_api"), info.get("num_threads")) for info in threadpool_info()]
    return report


def tune_malloc_for_timing(mmap_threshold=16 * 2**20, trim_threshold=256 * 2**20):
    """Ask glibc's malloc to keep freed temporaries for reuse, for steadier timings (Linux with glibc only).

    Calls ``mallopt(M_MMAP_THRESHOLD, mmap_threshold)`` and ``mallopt(M_TRIM_THRESHOLD, trim_threshold)``,
    the run-time equivalents of the environment variables ``MALLOC_MMAP_THRESHOLD_`` and
    ``MALLOC_TRIM_THRESHOLD_``: blocks below ``mmap_threshold`` bytes come from the heap instead of fresh
    pages, and the heap is trimmed only when ``trim_threshold`` bytes are free at its top. This affects the
    whole process for the rest of its life (more memory kept, no change in results); nothing in the library
    calls it. See the module docstring for why timings need it.

    Returns
    -------
    bool
        True if both settings were accepted, False where glibc's ``mallopt`` is not available.
    """
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))) and bool(mallopt(M_TRIM_THRESHOLD, int(trim_threshold)))


def tradeoff_table(results, D=None, markdown=False):
    """Format the points of :func:`measure_tradeoff` as a table (one row per point, or only dimension D).

    Columns: model, K, D, density time, sampling time, their ratio, both pass counts, parameters. Times
    are medians in milliseconds.

    Returns
    -------
    str
        Plain text, or a Markdown table when ``markdown=True``.
    """
    header = ["model", "K", "D", "density (ms)", "sampling (ms)", "sampling / density", "density passes",
              "sampling passes", "parameters"]
    rows = [[p.model, str(p.K), str(p.D), f"{1e3 * p.density.median:.3g}", f"{1e3 * p.sampling.median:.3g}",
             f"{p.ratio:.3g}", str(p.density_passes), str(p.sampling_passes), f"{p.num_params:,}"]
            for p in results.values() if D is None or p.D == D]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])
    widths = [max(len(row[j]) for row in [header, *rows]) for j in range(len(header))]
    return "\n".join("  ".join(cell.rjust(width) for cell, width in zip(row, widths)) for row in [header, *rows])
