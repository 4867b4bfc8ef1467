"""The .npz files of saved flows and training checkpoints: no pickle, a format name and version, the configuration.

A file holds plain arrays only (``numpy.load(..., allow_pickle=False)`` reads it):

    __format__        "maf_numpy"                    the file is one of ours
    __version__       FORMAT_VERSION (int)           refused if it is not one we can read
    __config__        JSON text                      the class name and its constructor arguments
    params/<path>     every parameter array          e.g. params/1/W/0, params/1/b_mu
    state/<k>/<name>  each layer's structure arrays  degrees, standardisation shift and scale, batch-norm
                                                     evaluation statistics (mean, var, refreshed)

:func:`maf_numpy.io.load` rebuilds the object from the configuration, then installs the structure and the
parameters, so the loaded flow computes bit-for-bit the same numbers. This module is the low level (arrays,
files, the header, the registry of flow classes that the flow modules fill); it imports no flow.

Files are written atomically (:func:`atomic_savez`): the arrays go to a temporary file in the same
folder, which is flushed, ``fsync``-ed and then renamed over the target with ``os.replace``, so a crash
at any moment leaves either the old file or the new one, never half of one. Training checkpoints
(:func:`maf_numpy.train.fit` with ``checkpoint=``) use the same machinery with their own format name,
``CHECKPOINT_FORMAT_NAME``; ``load`` refuses them with a message that says how to use them.
"""

import contextlib
import json
import os
import tempfile
import zipfile
import zlib

import numpy as np
from numpy.lib.npyio import NpzFile

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "CHECKPOINT_FORMAT_NAME", "HEADER_KEYS", "FLOW_CLASSES",
           "LAYER_CLASSES", "BASE_CLASSES", "register_flow_classes", "register_layer_classes",
           "register_base_classes", "state_owners", "composition_config", "save_flow", "model_header",
           "flatten_params", "fill_params", "check_version", "layer_state_arrays", "atomic_savez", "resolve_path",
           "read_arrays", "read_header", "check_state", "install_layer_state"]

FORMAT_NAME = "maf_numpy"
FORMAT_VERSION = 1
CHECKPOINT_FORMAT_NAME = "maf_numpy-checkpoint"  # written by train.fit(checkpoint=...), read by resume=
FLOW_CLASSES = {}  # class name -> class, filled by register_flow_classes in the flow modules
LAYER_CLASSES = {}  # the same for the layers of a composed mf.Flow(dim, layers, base=...)
BASE_CLASSES = {}  # and for its base density
LAYER_PROTOCOL = ("init_params", "forward", "inverse", "config", "get_state", "set_state")
BASE_PROTOCOL = ("init_params", "log_prob", "sample", "config", "get_state", "set_state")


def _register(registry, classes, what, protocol):
    for cls in classes:
        if not isinstance(cls, type):
            raise TypeError(f"register a {what} class, got {type(cls).__name__} {cls!r}")
        missing = [name for name in protocol if not callable(getattr(cls, name, None))]
        if missing:
            raise TypeError(f"{cls.__name__} cannot be registered as a {what}: it lacks {missing} (the {what} "
                            f"protocol: {', '.join(protocol)}; config() returns the constructor's keyword arguments)")
        known = registry.get(cls.__name__)
        if known is not None and known is not cls:
            raise ValueError(f"another {what} class is registered under the name {cls.__name__!r} "
                             f"({known.__module__}.{known.__qualname__}); give yours another name")
        registry[cls.__name__] = cls
    return classes[0] if len(classes) == 1 else classes


def register_flow_classes(*classes):
    """Make flow classes savable and loadable by name: ``save`` writes the name, ``load`` rebuilds the class
    from it with the saved configuration (``flow.config``) as keyword arguments. Returns the class (so it can
    decorate one)."""
    return _register(FLOW_CLASSES, classes, "flow", ("log_density",))


def register_layer_classes(*classes):
    """Make layer classes savable inside a composed ``mf.Flow``: ``save`` writes each layer's class name and
    ``config()``, ``load`` rebuilds it as ``cls(**config)`` and installs its state and parameters. A class of
    your own must be registered before it is saved (``mf.register_layer``); a class that lacks part of the
    protocol is refused with a TypeError that lists what is missing. Returns the class."""
    return _register(LAYER_CLASSES, classes, "layer", LAYER_PROTOCOL)


def register_base_classes(*classes):
    """The same as :func:`register_layer_classes`, for base densities (``mf.register_base``)."""
    return _register(BASE_CLASSES, classes, "base density", BASE_PROTOCOL)


def state_owners(flow):
    """The objects whose ``get_state()`` a file stores, in order: the layers, then the base (``state/<k>/``)."""
    return [*flow.layers, flow.base]


def composition_config(flow):
    """The configuration of a composed ``Flow``: its dimension, dtype, and each layer's and the base's class name
    and ``config()``; a TypeError names a class that is not registered."""
    def spec(obj, registry, what, register):
        name = type(obj).__name__
        if registry.get(name) is not type(obj):
            raise TypeError(f"cannot save a {what} of class {name}: it is not registered. Call "
                            f"maf_numpy.{register}({name}) once, after defining it (its config() must return its "
                            f"constructor's keyword arguments), then save; load needs the same registration")
        return {"class": name, "config": obj.config()}

    return {"dim": flow.dim, "dtype": flow.dtype.name,
            "layers": [spec(layer, LAYER_CLASSES, "layer", "register_layer") for layer in flow.layers],
            "base": spec(flow.base, BASE_CLASSES, "base density", "register_base")}


HEADER_KEYS = ("__format__", "__version__", "__config__")
# What a damaged archive can raise while it is opened or an entry is read.
_READ_ERRORS = (OSError, EOFError, zipfile.BadZipFile, zlib.error, KeyError, NotImplementedError)


def flatten_params(tree, prefix):
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return {prefix: np.asarray(tree)}
    arrays = {}
    for key, value in items:
        arrays.update(flatten_params(value, f"{prefix}/{key}"))
    return arrays


def fill_params(tree, prefix, arrays, path, used):
    """Rebuild a parameter pytree shaped like ``tree`` from the file's arrays, checking each one."""
    if isinstance(tree, dict):
        return {key: fill_params(value, f"{prefix}/{key}", arrays, path, used) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [fill_params(value, f"{prefix}/{k}", arrays, path, used) for k, value in enumerate(tree)]
    if prefix not in arrays:
        raise ValueError(f"{path} lacks the parameter {prefix!r}: it is damaged or not a saved model")
    value = arrays[prefix]
    used.add(prefix)
    if value.shape != np.shape(tree):
        raise ValueError(f"{path}: parameter {prefix!r} has shape {value.shape}, the configuration needs "
                         f"{np.shape(tree)}")
    if value.dtype not in (np.float64, np.float32):
        raise ValueError(f"{path}: parameter {prefix!r} has dtype {value.dtype}, expected float64 or float32")
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{path}: parameter {prefix!r} holds NaN or inf values")
    return value


def check_version(arrays, expected, path, what, prefix=""):
    """Refuse a file whose ``__version__`` entry is missing, not an int, or not ``expected``."""
    version = arrays.get("__version__")
    if version is None or version.shape != () or version.dtype.kind not in "iu":
        raise ValueError(f"{prefix}{path} has no valid '__version__' entry (an int); it is damaged")
    if int(version) != expected:
        raise ValueError(f"{prefix}{path} has {what} version {int(version)}; this maf_numpy reads version "
                         f"{expected} only")


def save_flow(flow, path):
    """Write ``flow`` to ``path`` (``.npz``; the suffix is added if missing): ``maf_numpy.save``, ``flow.save``.

    Parameters
    ----------
    flow : Flow
        Any registered flow class (:data:`FLOW_CLASSES`: MADE, MAF, IAF, RealNVP, the MoG, conditional and
        order-agnostic flows).
    path : str or os.PathLike
    """
    arrays = {"__format__": np.array(FORMAT_NAME), "__version__": np.array(FORMAT_VERSION),
              "__config__": np.array(model_header(flow)), **flatten_params(flow.params, "params"),
              **layer_state_arrays(flow)}
    atomic_savez(path, arrays)


def model_header(flow):
    """The JSON text that names a flow's class and configuration (TypeError if it cannot be saved). A composed
    ``Flow`` is saved as its layers' and base's classes and configurations (:func:`composition_config`)."""
    name = type(flow).__name__
    if name == "Flow" and "Flow" not in FLOW_CLASSES:
        return json.dumps({"class": "Flow", "config": composition_config(flow)})
    if FLOW_CLASSES.get(name) is not type(flow):
        raise TypeError(f"cannot save a flow of class {name}: it is not registered. A composition of layers saves "
                        f"as maf_numpy.Flow(dim, layers, base=...); a subclass of your own needs "
                        f"maf_numpy.register_flow({name}) and a config dict of its constructor's arguments")
    return json.dumps({"class": name, "config": flow.config})


def layer_state_arrays(flow):
    """``{"state/<k>/<name>": array}``: each layer's structure (degrees, standardisation), then the base's, as
    stored."""
    return {f"state/{k}/{key}": np.asarray(value) for k, owner in enumerate(state_owners(flow))
            for key, value in owner.get_state().items()}


def atomic_savez(path, arrays):
    """Write ``arrays`` to ``path`` (``.npz`` appended if missing) so that a crash leaves the old file intact.

    The archive is written to a temporary file in the same folder, flushed and ``fsync``-ed, then
    renamed over ``path`` with ``os.replace`` (atomic on POSIX and Windows); the folder is ``fsync``-ed
    too where the system allows it. Refuses object arrays (``np.savez`` would pickle them).

    Returns
    -------
    str
        The path written.
    """
    for key, value in arrays.items():  # np.savez would pickle an object array: never write one
        if value.dtype.hasobject:
            raise TypeError(f"cannot save {key!r}: it is an object array ({value.dtype}), not numbers")
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    if not path.endswith(".npz"):
        path = path + ".npz"
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(prefix=".tmp-", suffix=".npz", dir=folder)
    try:
        with os.fdopen(descriptor, "wb") as file:
            np.savez(file, **arrays)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, os.stat(path).st_mode & 0o777 if os.path.exists(path) else 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _fsync_folder(folder)
    return path


def _fsync_folder(folder):
    """Make the rename itself durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    with contextlib.suppress(OSError, AttributeError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def resolve_path(path, what="model file"):
    """``os.fspath(path)``, or ``path + ".npz"`` when only that exists (FileNotFoundError if neither)."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}") from None
    if not os.path.exists(path):
        if path.endswith(".npz") or not os.path.exists(path + ".npz"):
            also = "" if path.endswith(".npz") else f" (nor at {path + '.npz'!r})"
            raise FileNotFoundError(f"no maf_numpy {what} at {path!r}{also}")
        path = path + ".npz"
    return path


def read_arrays(path):
    """Every array of an .npz file, read with ``allow_pickle=False``; ValueError if that is impossible."""
    try:
        data = np.load(path, allow_pickle=False)
    except ValueError as error:  # not an .npz or .npy: NumPy would need pickle to read it, and we never do
        raise ValueError(f"{path} is not a maf_numpy model file (.npz): NumPy cannot read it without "
                         f"pickle, which load never uses ({error})") from error
    except _READ_ERRORS as error:
        raise ValueError(f"{path} is not a readable .npz model file (truncated or damaged?): {error}") from error
    if not isinstance(data, NpzFile):
        raise ValueError(f"{path} holds a single .npy array, not a maf_numpy model file (.npz)")
    arrays = {}
    with data:
        for key in data.files:
            try:
                arrays[key] = data[key]
            except ValueError as error:
                if "allow_pickle" not in str(error):
                    raise ValueError(f"{path} is damaged: its entry {key!r} cannot be read ({error})") from error
                raise ValueError(f"{path} is not a maf_numpy model file: its entry {key!r} is an object "
                                 f"array, which needs pickle; load never unpickles ({error})") from error
            except _READ_ERRORS as error:
                raise ValueError(f"{path} is damaged: its entry {key!r} cannot be read ({error})") from error
    return arrays


def read_header(arrays, path):
    """Check format name and version; return (class name, configuration dict)."""
    fmt = arrays.get("__format__")
    if fmt is not None and fmt.shape == () and fmt.dtype.kind == "U" and str(fmt) == CHECKPOINT_FORMAT_NAME:
        raise ValueError(f"{path} is a training checkpoint ('__format__ = {CHECKPOINT_FORMAT_NAME}'), not a "
                         f"model file: continue the run with flow.fit(x_train, ..., resume=path), or save "
                         f"the model with flow.save()")
    if fmt is None or fmt.shape != () or fmt.dtype.kind != "U" or str(fmt) != FORMAT_NAME:
        raise ValueError(f"{path} is not a maf_numpy model file (no '__format__ = {FORMAT_NAME}' entry)")
    check_version(arrays, FORMAT_VERSION, path, "format")
    config = arrays.get("__config__")
    try:
        header = json.loads(str(config)) if config is not None and config.dtype.kind == "U" else None
    except json.JSONDecodeError:
        header = None
    if not isinstance(header, dict) or not isinstance(header.get("config"), dict):
        raise ValueError(f"{path} has no valid '__config__' entry (JSON with 'class' and 'config'); "
                         f"it is damaged")
    if header.get("class") not in FLOW_CLASSES and header.get("class") != "Flow":
        raise ValueError(f"{path} holds an unknown model class {header.get('class')!r}; expected one of "
                         f"{tuple(FLOW_CLASSES)}")
    return header["class"], dict(header["config"])


def check_state(key, value, expected, dim, path):
    """A state array must look like the one the configuration builds (same shape and kind)."""
    if value.shape != np.shape(expected) or value.dtype.kind != np.asarray(expected).dtype.kind:
        raise ValueError(f"{path}: {key!r} has shape {value.shape} and dtype {value.dtype}, the configuration "
                         f"needs shape {np.shape(expected)} and dtype {np.asarray(expected).dtype}")
    name = key.rsplit("/", 1)[-1]
    if name == "degrees_0" and not np.array_equal(np.sort(value), np.sort(expected)):
        if np.array_equal(np.sort(expected), np.arange(1, dim + 1)):
            raise ValueError(f"{path}: {key!r} must be a permutation of 1..{dim} (input degrees), got {value}")
        raise ValueError(f"{path}: {key!r} must hold the input degrees {np.sort(expected).tolist()} (in any "
                         f"order), got {value}")
    if name.startswith("degrees_") and name != "degrees_0" and (value.min(initial=0) < 0 or
                                                                value.max(initial=0) > max(dim - 1, 0)):
        raise ValueError(f"{path}: {key!r} (hidden degrees) must lie in 0..{max(dim - 1, 0)}")
    if name in ("shift", "scale") and not np.all(np.isfinite(value)):
        raise ValueError(f"{path}: {key!r} holds NaN or inf values")
    if name == "scale" and not np.all(value > 0):
        raise ValueError(f"{path}: {key!r} must be positive")
    if name in ("mean", "var") and not np.all(np.isfinite(value)):  # BatchNorm's evaluation statistics
        raise ValueError(f"{path}: {key!r} holds NaN or inf values")
    if name == "var" and not np.all(value >= 0):
        raise ValueError(f"{path}: {key!r} (a variance) must be >= 0")


def install_layer_state(flow, arrays, path, used):
    """Check every ``state/<k>/<name>`` entry against the configuration, then install it in the layers.

    All entries are checked before any layer changes, so a refused file leaves ``flow`` untouched.
    """
    states = []
    for k, layer in enumerate(state_owners(flow)):
        state = {}
        for name, expected in layer.get_state().items():
            key = f"state/{k}/{name}"
            if key not in arrays:
                raise ValueError(f"{path} lacks the layer state {key!r}: it is damaged or not a saved model")
            check_state(key, arrays[key], expected, flow.dim, path)
            state[name] = arrays[key]
            used.add(key)
        states.append(state)
    for layer, state in zip(state_owners(flow), states):
        layer.set_state(state)
