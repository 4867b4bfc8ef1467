"""Bad-input fuzzing of every public entry point, from a fixed seed.

A seeded generator builds bad inputs of many kinds (wrong shapes, dtypes int/bool/object/complex/str,
NaN and inf at random positions, Python lists, empty batches and zero-size dimensions, broken parameter
pytrees, wrong rng types, bad n, unknown keyword values, bad fit options, damaged files) and sends each to
each public entry point that takes it. Every one must raise ValueError or TypeError whose message names
the argument: never another exception type, never a silent NaN, never a result. ``bad_input_counts()``
returns the number of cases of each kind (``pytest -s`` prints them).

Extreme but *valid* inputs (|x| up to 1e6) are a separate property: log_prob must come back with the
right shape and either finite values or a RuntimeWarning that names the cause; never +inf, never an
exception.
"""

import collections
import re
import warnings

import numpy as onp
import pytest
from autograd.misc import flatten

import maf_numpy as mf
from maf_numpy import datasets

SEED = 7
D = 3
REPEATS = 4  # random draws per (entry point, kind) pair where the kind is random (shapes, NaN positions ...)

FLOWS = {
    "MADE": mf.MADE(D, hidden=(6,), rng=0),
    "MAF": mf.MAF(D, num_layers=2, hidden=(6,), rng=0),
    "IAF": mf.IAF(D, num_layers=2, hidden=(6,), rng=0),
    "RealNVP": mf.RealNVP(D, num_layers=2, hidden=(6,), rng=0),
    "MAFMoG": mf.MAFMoG(D, num_layers=2, hidden=(6,), components=3, rng=0),
    "MAF-batch-norm": mf.MAF(D, num_layers=2, hidden=(6,), rng=0, batch_norm=True),
}
GOOD = onp.random.default_rng(0).normal(size=(12, D))
# errors: the exception types that count as a proper refusal (FileNotFoundError only for a missing file)
Case = collections.namedtuple("Case", "kind entry description call name errors",
                              defaults=[(ValueError, TypeError)])


# --- bad arrays ---------------------------------------------------------------------------------------
def bad_arrays(rng, D=D, dtypes=(int, bool, object, complex, str, onp.float16, onp.uint8, onp.int8)):
    """(kind, description, value) of bad data arrays for an argument of shape (n, D)."""
    n = int(rng.integers(1, 6))
    for _ in range(REPEATS):
        ndim = int(rng.choice([0, 1, 3]))
        shape = tuple(int(s) for s in rng.integers(1, 5, size=ndim))
        yield "wrong-shape", f"ndim {ndim} {shape}", rng.normal(size=shape)
        width = int(rng.choice([w for w in range(1, 7) if w != D]))
        yield "wrong-shape", f"({n}, {width})", rng.normal(size=(n, width))
    for dtype in dtypes:
        yield "dtype", f"dtype {onp.dtype(dtype)}", rng.normal(size=(n, D)).astype(dtype)
    for _ in range(REPEATS):
        for bad in (onp.nan, onp.inf, -onp.inf):
            x = rng.normal(size=(n, D))
            positions = rng.random(x.shape) < rng.uniform(0.05, 0.6)
            positions.flat[int(rng.integers(x.size))] = True
            x[positions] = bad
            yield "non-finite", f"{int(positions.sum())} x {bad} at random positions", x
    yield "python-container", "list of lists", rng.normal(size=(n, D)).tolist()
    yield "python-container", "tuple of tuples", tuple(map(tuple, rng.normal(size=(n, D))))
    yield "python-container", "list of 1-D arrays", list(rng.normal(size=(n, D)))
    yield "python-container", "python float", float(rng.normal())
    yield "python-container", "None", None
    for shape in ((0, D), (n, 0), (0, 0), (0,), (0, D, 1)):
        yield "empty-or-zero-size", f"shape {shape}", onp.zeros(shape)


# --- bad params pytrees --------------------------------------------------------------------------------
def bad_params(flow, rng):
    """(description, params) with a broken structure or broken arrays."""
    params = flow.params
    k = int(rng.integers(1, len(params))) if len(params) > 1 else 0
    layer = params[k]
    key = str(rng.choice(sorted(layer)))

    def with_entry(value):
        return params[:k] + [{**layer, key: value}] + params[k + 1:]

    yield "list one layer short", params[:-1]
    yield "list one layer too long", params + [{}]
    yield "a dict instead of the list", {"params": params}
    yield "an array instead of the list", onp.zeros(3)
    yield "None for a layer", params[:k] + [None] + params[k + 1:]
    yield f"missing key {key!r}", params[:k] + [{q: v for q, v in layer.items() if q != key}] + params[k + 1:]
    yield "an extra key", params[:k] + [{**layer, "gamma": onp.zeros(D)}] + params[k + 1:]
    entry = layer[key]
    if isinstance(entry, list):
        yield f"{key!r} list one short", with_entry(entry[:-1])
        entry = layer["W_mu"]
        key = "W_mu"
    yield f"{key!r} with a wrong shape", with_entry(onp.zeros(tuple(s + 1 for s in entry.shape)))
    yield f"{key!r} transposed-or-flattened", with_entry(entry.reshape(-1) if entry.ndim == 2 else entry[None])
    bad = entry.copy()
    bad.flat[int(rng.integers(bad.size))] = rng.choice([onp.nan, onp.inf, -onp.inf])
    yield f"{key!r} with one non-finite entry", with_entry(bad)
    yield f"{key!r} as int", with_entry(entry.astype(int))
    yield f"{key!r} as a list", with_entry(entry.tolist())


BAD_RNGS = [("str", "seed"), ("float", 1.5), ("bool", True), ("negative", -3), ("list", [1, 2]),
            ("array", onp.array([1])), ("RandomState", onp.random.RandomState(0)), ("dict", {"seed": 1})]
BAD_NS = [("zero", 0), ("negative", -2), ("float", 2.5), ("integral float", 3.0), ("str", "3"), ("bool", True),
          ("None", None), ("array", onp.array([3])), ("complex", 1j)]


# --- the cases ----------------------------------------------------------------------------------------
def data_entry_points(flow_name, flow):
    """(entry, name, call(value)) for every method that takes a data array."""
    entries = [("log_prob", "x", lambda v: flow.log_prob(v)), ("inverse", "x", lambda v: flow.inverse(v)),
               ("forward", "z", lambda v: flow.forward(v)), ("trace_inverse", "x", lambda v: flow.trace_inverse(v)),
               ("trace_forward", "z", lambda v: flow.trace_forward(v)),
               ("fit", "x_train", lambda v: flow.fit(v, steps=1, progress=False)),
               ("fit", "x_val", lambda v: flow.fit(GOOD, v, steps=1, progress=False))]
    if flow_name == "MADE":
        entries.append(("conditionals", "x", lambda v: flow.conditionals(v)))
    return entries


def cases(seed=SEED):
    """Every bad-input case, drawn from ``seed``: a list of Case(kind, entry, description, call, name)."""
    rng = onp.random.default_rng(seed)
    out = []
    for flow_name, flow in FLOWS.items():
        for entry, name, call in data_entry_points(flow_name, flow):
            for kind, description, value in bad_arrays(rng):
                if value is None and name == "x_val":
                    continue  # x_val=None is valid: fit holds out part of x_train
                out.append(Case(kind, f"{flow_name}.{entry}", f"{name}: {description}",
                                lambda call=call, value=value: call(value), name))
        methods = {"log_prob": lambda p, flow=flow: flow.log_prob(GOOD, params=p),
                   "inverse": lambda p, flow=flow: flow.inverse(GOOD, params=p),
                   "forward": lambda p, flow=flow: flow.forward(GOOD, params=p),
                   "sample": lambda p, flow=flow: flow.sample(2, rng=0, params=p)}
        for method, call in methods.items():
            for description, params in bad_params(flow, rng):
                out.append(Case("params", f"{flow_name}.{method}", description,
                                lambda call=call, params=params: call(params), "params"))
        samplers = {"sample": flow.sample}
        if flow_name == "IAF":
            samplers["sample_and_log_prob"] = flow.sample_and_log_prob
        for method, sample in samplers.items():
            for description, n in BAD_NS:
                out.append(Case("n", f"{flow_name}.{method}", f"n = {description}",
                                lambda sample=sample, n=n: sample(n), "n"))
            for description, bad in BAD_RNGS:
                out.append(Case("rng", f"{flow_name}.{method}", f"rng = {description}",
                                lambda sample=sample, bad=bad: sample(2, rng=bad), "rng"))
        for description, bad in BAD_RNGS:
            out.append(Case("rng", f"{flow_name}.fit", f"rng = {description}",
                            lambda flow=flow, bad=bad: flow.fit(GOOD, steps=1, rng=bad, progress=False), "rng"))
        for option, value in fit_options(rng):
            out.append(Case("fit-option", f"{flow_name}.fit", f"{option} = {value!r}",
                            lambda flow=flow, option=option, value=value: flow.fit(
                                GOOD, progress=False, **{"steps": 1, option: value}), option))
    out += constructor_cases(rng)
    out += dataset_cases(rng)
    return out


def fit_options(rng):
    ints = ("steps", "batch_size", "val_every", "patience", "checkpoint_every")
    for option in ints:
        for value in (0, -int(rng.integers(1, 100)), 2.5, "10", True, [1]):
            if option == "patience" and value is None:
                continue
            yield option, value
    for option in ("lr", "val_fraction"):
        for value in (0.0, -float(rng.uniform(0, 1)), float("nan"), float("inf"), "0.1", True, None):
            yield option, value
    yield "val_fraction", 1.0
    yield "val_fraction", float(rng.uniform(1, 5))
    for option in ("progress", "lr_decay"):
        for value in ("yes", 1, None, 0.0):
            yield option, value
    yield "checkpoint", 3.5
    yield "checkpoint", "no/such/folder/run.npz"
    yield "resume", 7
    yield "sped", 3  # an unknown keyword


def random_word(rng):
    return "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz_0123456789"), size=int(rng.integers(0, 12))))


def constructor_cases(rng):
    """Unknown keyword values, bad sizes and bad rng for every constructor."""
    out = []
    classes = {"MADE": mf.MADE, "MAF": mf.MAF, "IAF": mf.IAF, "RealNVP": mf.RealNVP}
    for class_name, cls in classes.items():
        bad = {"dim": [0, -1, 2.5, "3", True, None, onp.array([3])],
               "hidden": [(0,), (4, -1), (4, 2.5), "64", None, (True,), 4.0],
               "activation": ["sigmoid", None, 1, random_word(rng), "RELU"],
               "standardize": ["yes", 1, None],
               "rng": [value for _, value in BAD_RNGS]}
        if class_name != "MADE":
            bad["num_layers"] = [0, -3, 1.5, "2", None]
        if class_name == "RealNVP":
            bad["dim"].append(1)
        if class_name in ("MADE", "MAF", "IAF"):
            bad["hidden_degrees"] = ["weird", None, random_word(rng)]
        if class_name == "MADE":
            bad["order"] = ["diagonal", None, [0, 0, 1], [0, 1], [0, 1, 3], [0.0, 1.0, 2.0], random_word(rng)]
        if class_name in ("MAF", "IAF"):
            bad["orders"] = ["diagonal", None, [[0, 1, 2]], [[0, 1, 2], [0, 0, 1]], random_word(rng), 3]
        for argument, values in bad.items():
            kind = "rng" if argument == "rng" else "keyword-value"
            for value in values:
                kwargs = {"dim": D, "hidden": (4,), "num_layers": 2, argument: value}
                if class_name == "MADE":
                    kwargs.pop("num_layers")
                out.append(Case(kind, class_name, f"{argument} = {value!r}",
                                lambda cls=cls, kwargs=kwargs: cls(**kwargs), argument))
        out.append(Case("unknown-keyword", class_name, "hiden = (4,)", lambda cls=cls: cls(D, hiden=(4,)), "hiden"))
    return out


def dataset_cases(rng):
    out = []
    for name in [random_word(rng), "MOONS", None, 3]:
        out.append(Case("keyword-value", "datasets.toy", f"name = {name!r}", lambda name=name: datasets.toy(name, 5),
                        "name"))
    for description, n in BAD_NS:
        out.append(Case("n", "datasets.toy", f"n = {description}", lambda n=n: datasets.toy("moons", n), "n"))
    for description, bad in BAD_RNGS:
        out.append(Case("rng", "datasets.toy", f"rng = {description}",
                        lambda bad=bad: datasets.toy("moons", 5, rng=bad), "rng"))
    # datasets accepts any float dtype (it converts to float64), float16 included, so that is not bad here
    for kind, description, value in bad_arrays(rng, D=2, dtypes=(int, bool, object, complex, str, onp.uint8)):
        out.append(Case(kind, "datasets.toy_log_prob", f"x: {description}",
                        lambda value=value: datasets.toy_log_prob("fig1", value), "x"))
    return out


def file_cases(tmp_path, rng):
    """Files that are not models: random bytes, other archives, a checkpoint, truncations."""
    out = []
    good = tmp_path / "good.npz"
    FLOWS["MAF"].save(good)
    content = good.read_bytes()
    for k in range(REPEATS * 2):
        path = tmp_path / f"random-{k}.npz"
        path.write_bytes(rng.bytes(int(rng.integers(0, 2000))))
        out.append(Case("file", "load", "random bytes", lambda path=path: mf.load(path), path.name))
        path = tmp_path / f"truncated-{k}.npz"
        path.write_bytes(content[:int(rng.integers(0, len(content)))])
        out.append(Case("file", "load", "truncated model", lambda path=path: mf.load(path), path.name))
    path = tmp_path / "other.npz"
    onp.savez(path, weights=onp.zeros(3))
    out.append(Case("file", "load", "someone else's npz", lambda: mf.load(path), path.name))
    checkpoint = tmp_path / "run.npz"
    FLOWS["MAF"].fit(GOOD, steps=2, progress=False, checkpoint=checkpoint, rng=0)
    out.append(Case("file", "load", "a training checkpoint", lambda: mf.load(checkpoint), checkpoint.name))
    out.append(Case("file", "fit(resume=)", "a missing checkpoint", lambda: mf.MAF(D, num_layers=2, hidden=(6,)).fit(
        GOOD, steps=2, progress=False, resume=tmp_path / "nowhere.npz"), "resume", (FileNotFoundError,)))
    out.append(Case("file", "load", "a missing file", lambda: mf.load(tmp_path / "nowhere.npz"), "nowhere.npz",
                    (FileNotFoundError,)))
    out.append(Case("file", "fit(resume=)", "a model file", lambda: mf.MAF(D, num_layers=2, hidden=(6,), rng=0).fit(
        GOOD, steps=2, progress=False, resume=good), "resume"))
    for description, bad in (("int", 3), ("None", None), ("list", ["a.npz"])):
        out.append(Case("file", "load", f"path = {description}", lambda bad=bad: mf.load(bad), "path"))
        out.append(Case("file", "save", f"path = {description}", lambda bad=bad: mf.save(FLOWS["MAF"], bad), "path"))
    out.append(Case("file", "save", "flow = a dict", lambda: mf.save({}, tmp_path / "x.npz"), "flow"))
    return out


# --- running them -------------------------------------------------------------------------------------
def run(case):
    """None if the case is refused properly, else a sentence saying what went wrong."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = case.call()
    except case.errors as error:
        if re.search(rf"(?<![\w]){re.escape(case.name)}(?![\w])", str(error)):
            return None
        return f"{type(error).__name__} does not name {case.name!r}: {error}"
    except Exception as error:  # noqa: BLE001 - the point is to catch any other type
        expected = "/".join(error_type.__name__ for error_type in case.errors)
        return f"raised {type(error).__name__} (not {expected}): {error}"
    return f"accepted it and returned {type(result).__name__}"


def run_all(all_cases):
    """(counts by kind, list of failures)."""
    counts = collections.Counter(case.kind for case in all_cases)
    failures = [f"[{case.kind}] {case.entry}({case.description}): {problem}"
                for case in all_cases for problem in [run(case)] if problem is not None]
    return dict(sorted(counts.items())), failures


def bad_input_counts(tmp_path=None):
    """The number of bad-input cases of each kind (files need a folder: pass one to count them too)."""
    all_cases = cases() + (file_cases(tmp_path, onp.random.default_rng(SEED)) if tmp_path is not None else [])
    return dict(sorted(collections.Counter(case.kind for case in all_cases).items()))


def flat_params():
    return {name: flatten(flow.params)[0].copy() for name, flow in FLOWS.items()}


def test_every_bad_input_is_refused_with_an_error_naming_the_argument(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # fit(resume="no-such-checkpoint.npz") and friends look here
    before = flat_params()
    standardized = {name: flow.layers[0].fitted for name, flow in FLOWS.items()}
    all_cases = cases() + file_cases(tmp_path, onp.random.default_rng(SEED))
    counts, failures = run_all([case for case in all_cases if case.entry != "fit(resume=)"] +
                               [case for case in all_cases if case.entry == "fit(resume=)"])
    print(f"\nbad-input cases by kind ({sum(counts.values())} in all): {counts}")
    assert not failures, f"{len(failures)} of {sum(counts.values())} bad inputs were not refused properly:\n" + \
        "\n".join(failures[:20])
    after = flat_params()
    for name, flow in FLOWS.items():
        if name != "MAF":  # MAF was fitted for 2 steps on purpose, to write a checkpoint
            assert onp.array_equal(after[name], before[name]), f"a refused call changed {name}.params"
            assert flow.layers[0].fitted == standardized[name], f"a refused call fitted {name}'s Standardize"


def test_the_fuzz_covers_every_kind_of_bad_input(tmp_path):
    counts = bad_input_counts(tmp_path)
    expected = {"wrong-shape", "dtype", "non-finite", "python-container", "empty-or-zero-size", "params", "rng",
                "n", "keyword-value", "unknown-keyword", "fit-option", "file"}
    assert set(counts) == expected and min(counts.values()) >= 4, counts


# --- extreme but valid input --------------------------------------------------------------------------
@pytest.mark.parametrize("flow_name", ["MADE", "MAF", "IAF", "RealNVP"])
def test_extreme_valid_inputs_give_finite_log_prob_or_a_warning_that_names_the_cause(flow_name):
    """Points with |x| up to 1e6 (random scales, random directions) at a default-size fresh flow.

    Every point gets a log-density of the right shape that is finite, or -inf with a RuntimeWarning
    saying that float64 overflowed (the default keeps the paper's unconstrained exp(alpha)); never +inf, never an
    exception."""
    flow = getattr(mf, flow_name)(D, rng=0)
    rng = onp.random.default_rng(SEED)
    x = rng.normal(size=(300, D)) * 10.0 ** rng.uniform(0, 6, size=(300, 1))
    with warnings.catch_warnings(record=True) as caught, onp.errstate(all="ignore"):
        warnings.simplefilter("always")
        log_prob = flow.log_prob(x)
    assert log_prob.shape == (300,) and log_prob.dtype == onp.float64
    assert not onp.any(onp.isposinf(log_prob))
    bad = ~onp.isfinite(log_prob)
    outcome = {"finite": int((~bad).sum()), "-inf": int(onp.isneginf(log_prob).sum()),
               "NaN": int(onp.isnan(log_prob).sum())}
    print(f"\n{flow_name} at |x| up to 1e6: {outcome}")
    if bad.any():
        messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
        assert any(f"not finite for {int(bad.sum())} of 300 points of x" in m and "overflowed float64" in m
                   for m in messages), messages
    assert onp.all(onp.isfinite(log_prob[onp.max(onp.abs(x), axis=1) < 10]))  # near the data: always finite
    assert outcome["NaN"] == 0, "an underflowing density must read -inf, not NaN"
