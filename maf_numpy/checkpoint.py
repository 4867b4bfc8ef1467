"""Training checkpoints: the whole state of a ``fit`` run in one ``.npz`` file, to resume it bit for bit.

A checkpoint holds the current and best parameters, Adam's state (m, v, t), the step, the best validation NLL,
the data order and cursor, the random generator's state (as JSON text), the history, the layers' structure
(Standardize shift and scale, degrees, batch-norm statistics), the fit options and a fingerprint of the data;
no pickle. It is written atomically (:func:`maf_numpy.npz.atomic_savez`). :func:`maf_numpy.train.fit` writes
it (``checkpoint=``) and reads it back (``resume=``), refusing a checkpoint of another model, other data or
other options with a message that says which.
"""

import json
import time

import numpy as onp

from . import npz
from .optim import flat_vector

__all__ = ["CHECKPOINT_VERSION", "RUN_OPTIONS", "FINISHED", "state_to_json", "state_from_json",
           "generator_from_state", "write_checkpoint", "read_checkpoint"]

CHECKPOINT_VERSION = 1
# The options that decide the trajectory: a resumed run must use the values the checkpoint was written with.
RUN_OPTIONS = ("steps", "batch_size", "lr", "val_every", "patience", "val_fraction", "lr_decay", "ema",
               "weight_decay")
OPTION_DEFAULTS = {"weight_decay": 0.0}  # for checkpoints written before the option existed
# The shape of fit's lr_decay schedule (train._step_size): "cooldown" since 2026-12; checkpoints written before
# that decayed along a cosine over the whole run, and a resumed run keeps the schedule it started with.
SCHEDULE_BEFORE_2026_12 = "cosine"
BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
FINISHED = ("completed", "early_stopped", "diverged", "stopped")


# --- the random generator's state as JSON text --------------------------------------------------------
def state_to_json(state):
    """``bit_generator.state`` (a dict of ints, and arrays for MT19937) as JSON text, never pickle."""
    def encode(value):
        if isinstance(value, onp.ndarray):
            return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
        if isinstance(value, onp.integer):
            return int(value)
        raise TypeError(f"cannot store {type(value).__name__} in a generator state")

    return json.dumps(state, default=encode)


def state_from_json(text):
    def decode(value):
        return onp.array(value["__ndarray__"], dtype=value["dtype"]) if "__ndarray__" in value else value

    return json.loads(text, object_hook=decode)


def generator_from_state(state):
    """A numpy.random.Generator in exactly the given bit-generator state."""
    bit_generator = getattr(onp.random, state["bit_generator"])()
    bit_generator.state = state
    return onp.random.Generator(bit_generator)


# --- checkpoints ---------------------------------------------------------------------------------------
def write_checkpoint(path, state, run):
    """Write the whole run state atomically to ``path`` (see ``fit``'s ``checkpoint`` argument)."""
    history = state["history"]
    meta = {"options": run.options, "data": run.fingerprint, "step": state["step"], "cursor": state["cursor"],
            "since_best": state["since_best"], "elapsed": time.perf_counter() - run.start,
            "history": {key: value for key, value in history.items() if not isinstance(value, list)},
            "warnings": history.get("warnings", [])}  # the float warnings' counts: a list of small dicts
    arrays = {
        "__format__": onp.array(npz.CHECKPOINT_FORMAT_NAME), "__version__": onp.array(CHECKPOINT_VERSION),
        "__model__": onp.array(npz.model_header(run.flow)), "__run__": onp.array(json.dumps(meta)),
        "rng_state": onp.array(state_to_json(state["rng_state"])),
        "split_rng_state": onp.array(state_to_json(run.split_rng_state)),
        "theta": state["theta"], "m": state["m"], "v": state["v"], "best_theta": state["best_theta"],
        "order": onp.asarray(state["order"], dtype=onp.int64),
        "train_losses": onp.array(state["train_losses"], dtype=onp.float64),
        "history/step": onp.array(history["step"], dtype=onp.int64),
        **{f"history/{key}": onp.array(history[key], dtype=onp.float64) for key in ("train_nll", "val_nll", "time")},
        **npz.layer_state_arrays(run.flow),
    }
    if state.get("theta_avg") is not None:
        arrays["theta_avg"] = state["theta_avg"]
    npz.atomic_savez(path, arrays)


def read_checkpoint(resume, flow, options, fingerprint):
    """Read and check a checkpoint against this flow, these options and this data; return its contents.

    Nothing changes in ``flow`` until every check has passed; then the layers' structure (Standardize
    shift and scale, degrees) is installed from the checkpoint.
    """
    try:
        path = npz.resolve_path(resume, "checkpoint")
    except TypeError:
        raise TypeError(f"resume must be a str or os.PathLike, got {type(resume).__name__}") from None
    except FileNotFoundError as error:
        raise FileNotFoundError(f"resume: {error}") from None
    try:
        arrays = npz.read_arrays(path)
    except ValueError as error:
        raise ValueError(f"resume: {error}".replace("model file", "checkpoint")) from error
    meta = _check_checkpoint_header(arrays, path, flow)
    _check_same_run(meta, path, options, fingerprint)
    lr_schedule = meta["options"].get("lr_schedule", SCHEDULE_BEFORE_2026_12)
    if lr_schedule not in ("cooldown", SCHEDULE_BEFORE_2026_12):
        raise ValueError(f"resume: the checkpoint's lr_schedule must be 'cooldown' or 'cosine', got {lr_schedule!r} "
                         f"({path})")
    state = _checkpoint_state(arrays, meta, path, flow, fingerprint, options)
    split_rng_state = _checked_generator_state(arrays, "split_rng_state", path)
    try:
        npz.install_layer_state(flow, arrays, path, set())  # checks every entry before installing any
    except ValueError as error:
        raise ValueError(f"resume: {error}") from error
    return {"state": state, "elapsed": float(meta["elapsed"]), "split_rng_state": split_rng_state,
            "lr_schedule": lr_schedule}


def _check_checkpoint_header(arrays, path, flow):
    """Format name, version and model configuration; returns the run's JSON metadata."""
    def text(key):
        value = arrays.get(key)
        return str(value) if value is not None and value.shape == () and value.dtype.kind == "U" else None

    if text("__format__") == npz.FORMAT_NAME:
        raise ValueError(f"resume: {path} is a model file written by save(), not a training checkpoint; load "
                         f"it with maf_numpy.load(path), or pass checkpoint=path to fit to write checkpoints")
    if text("__format__") != npz.CHECKPOINT_FORMAT_NAME:
        raise ValueError(f"resume: {path} is not a maf_numpy checkpoint (no '__format__ = "
                         f"{npz.CHECKPOINT_FORMAT_NAME}' entry)")
    npz.check_version(arrays, CHECKPOINT_VERSION, path, "checkpoint", prefix="resume: ")
    if text("__model__") is None or _json(text("__model__")) != _json(npz.model_header(flow)):
        raise ValueError(f"resume: {path} was written for another model, {text('__model__')}; this flow is "
                         f"{npz.model_header(flow)}. Build the same model to resume")
    meta = _json(text("__run__")) if text("__run__") is not None else None
    keys = {"options", "data", "step", "cursor", "since_best", "elapsed", "history"}
    if not isinstance(meta, dict) or not keys <= set(meta):
        raise ValueError(f"resume: {path} has no valid '__run__' entry; it is damaged")
    return meta


def _json(text):
    try:
        return json.loads(text)
    except (TypeError, json.JSONDecodeError):
        return None


def _check_same_run(meta, path, options, fingerprint):
    """The fit options and the data must be those of the checkpoint's run (bit-identical continuation)."""
    for name in ("x_train", "x_val", "y_train", "y_val"):
        old, new = meta["data"].get(name), fingerprint.get(name)
        if old is None or new is None:
            if old != new:
                given = ["None" if v is None else "an array" for v in (old, new)]
                raise ValueError(f"resume: the checkpoint's run was given {name}={given[0]}, this call "
                                 f"{name}={given[1]}; pass the same data to continue that run ({path})")
            continue
        if (old.get("shape"), old.get("dtype")) != (new["shape"], new["dtype"]):
            raise ValueError(f"resume: {name} has shape {tuple(new['shape'])} and dtype {new['dtype']}, but the "
                             f"checkpoint was trained on shape {tuple(old.get('shape') or ())} and dtype "
                             f"{old.get('dtype')} ({path})")
        if old.get("sha256") != new["sha256"]:
            raise ValueError(f"resume: {name} has the shape of the checkpoint's data but other values; resume "
                             f"with the data the run was started on ({path})")
    saved = meta["options"]
    for key in RUN_OPTIONS:
        if saved.get(key, OPTION_DEFAULTS.get(key)) != options[key]:
            raise ValueError(f"resume: the checkpoint's run used {key}={saved.get(key)!r}, this call has "
                             f"{key}={options[key]!r}; pass the same options to continue that run ({path})")


def _checked_generator_state(arrays, key, path):
    value = arrays.get(key)
    try:
        state = state_from_json(str(value))
        if state["bit_generator"] not in BIT_GENERATORS:
            raise ValueError(state["bit_generator"])
        generator_from_state(state)
    except (TypeError, ValueError, KeyError, AttributeError, json.JSONDecodeError) as error:
        raise ValueError(f"resume: {path} has no valid {key!r} entry (a bit generator state as JSON): "
                         f"{error!r}") from None
    return state


def _checkpoint_state(arrays, meta, path, flow, fingerprint, options):
    """Rebuild the run state from the checkpoint's arrays, checking each shape and dtype."""
    theta = flat_vector(flow.params, getattr(flow, "dtype", onp.dtype(onp.float64)))
    n_train = fingerprint["x_train"]["shape"][0]
    if options["val_fraction"] is not None:
        n_train -= max(1, int(round(options["val_fraction"] * n_train)))
    expected = {"theta": theta.shape, "m": theta.shape, "v": theta.shape, "best_theta": theta.shape,
                "order": (n_train,), "train_losses": None, "history/step": None, "history/train_nll": None,
                "history/val_nll": None, "history/time": None}
    if options["ema"] is not None:
        expected["theta_avg"] = theta.shape
    for key, shape in expected.items():
        value = arrays.get(key)
        kind = "iu" if key in ("order", "history/step") else "f"
        if value is None or value.dtype.kind not in kind or (value.ndim != 1 if shape is None else
                                                            value.shape != shape):
            raise ValueError(f"resume: {path}: entry {key!r} is missing or has the wrong shape or dtype "
                             f"(expected {'a vector' if shape is None else shape}); it is damaged")
    if not onp.array_equal(onp.sort(arrays["order"]), onp.arange(n_train)):
        raise ValueError(f"resume: {path}: 'order' is not a permutation of range({n_train}); it is damaged")
    history = {**meta["history"], "step": arrays["history/step"].tolist(),
               **{key: arrays[f"history/{key}"].tolist() for key in ("train_nll", "val_nll", "time")}}
    if history.get("status") not in ("running", "interrupted", *FINISHED):
        raise ValueError(f"resume: {path}: unknown run status {history.get('status')!r}; it is damaged")
    history["warnings"] = _checked_float_warnings(meta.get("warnings", []), path)  # none in older checkpoints
    if history["status"] == "interrupted":
        history.update(status="running", message="")
    return {"step": int(meta["step"]), "theta": arrays["theta"], "m": arrays["m"], "v": arrays["v"],
            "best_theta": arrays["best_theta"], "since_best": int(meta["since_best"]),
            "train_losses": arrays["train_losses"].tolist(), "order": arrays["order"],
            "cursor": int(meta["cursor"]), "rng_state": _checked_generator_state(arrays, "rng_state", path),
            "history": history, "theta_avg": arrays["theta_avg"] if options["ema"] is not None else None}


def _checked_float_warnings(records, path):
    """history["warnings"] as written by fit: a list of {message, during, count, first_step, last_step,
    n_steps}."""
    keys = {"message": str, "during": str, "count": int, "first_step": int, "last_step": int, "n_steps": int}
    if not isinstance(records, list) or not all(
            isinstance(record, dict) and set(record) == set(keys)
            and all(isinstance(record[key], kind) for key, kind in keys.items()) for record in records):
        raise ValueError(f"resume: {path}: the run's 'warnings' entry is not a list of float-warning counts; "
                         f"it is damaged")
    return records
