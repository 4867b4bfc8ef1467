"""Save and load flows as ``.npz`` files: no pickle, a format name and version, and the configuration.

A file holds plain arrays only (``numpy.load(..., allow_pickle=False)`` reads it):

    __format__        "maf_numpy"                    the file is one of ours
    __version__       FORMAT_VERSION (int)           refused if it is not one we can read
    __config__        JSON text                      the class name and its constructor arguments
    params/<path>     every parameter array          e.g. params/1/W/0, params/1/b_mu
    state/<k>/<name>  each layer's structure arrays  degrees, standardisation shift and scale

``load`` rebuilds the object from the configuration, then installs the structure and the parameters,
so the loaded flow computes bit-for-bit the same numbers.
"""

import json
import os

import numpy as np

from .flows import IAF, MADE, MAF, RealNVP

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "save", "load"]

FORMAT_NAME = "maf_numpy"
FORMAT_VERSION = 1
CLASSES = {cls.__name__: cls for cls in (MADE, MAF, IAF, RealNVP)}


def _flatten_params(tree, prefix):
    if isinstance(tree, dict):
        items = tree.items()
    elif isinstance(tree, (list, tuple)):
        items = enumerate(tree)
    else:
        return {prefix: np.asarray(tree)}
    arrays = {}
    for key, value in items:
        arrays.update(_flatten_params(value, f"{prefix}/{key}"))
    return arrays


def _fill_params(tree, prefix, arrays):
    if isinstance(tree, dict):
        return {key: _fill_params(value, f"{prefix}/{key}", arrays) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [_fill_params(value, f"{prefix}/{k}", arrays) for k, value in enumerate(tree)]
    if prefix not in arrays:
        raise ValueError(f"the file lacks the parameter {prefix!r}: it is truncated or not a saved model")
    value = arrays[prefix]
    if value.shape != np.shape(tree):
        raise ValueError(f"parameter {prefix!r} has shape {value.shape} in the file, expected {np.shape(tree)}")
    return value


def save(flow, path):
    """Write ``flow`` to ``path`` (``.npz``; the suffix is added by NumPy if missing)."""
    name = type(flow).__name__
    if name not in CLASSES:
        raise TypeError(f"flow must be one of {tuple(CLASSES)}, got {name}")
    arrays = _flatten_params(flow.params, "params")
    for k, layer in enumerate(flow.layers):
        for key, value in layer.get_state().items():
            arrays[f"state/{k}/{key}"] = np.asarray(value)
    config = json.dumps({"class": name, "config": flow.config})
    np.savez(path, __format__=np.array(FORMAT_NAME), __version__=np.array(FORMAT_VERSION),
             __config__=np.array(config), **arrays)


def load(path):
    """Read a flow saved by :func:`save`. Raises ValueError for files of another format or version."""
    if not os.path.exists(path) and os.path.exists(str(path) + ".npz"):
        path = str(path) + ".npz"
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except ValueError as error:  # object arrays need pickle, which we never allow
        raise ValueError(f"{path} is not a maf_numpy model file: {error}") from error
    except (OSError, EOFError) as error:
        raise ValueError(f"{path} is not a readable .npz model file: {error}") from error
    if "__format__" not in arrays or str(arrays["__format__"]) != FORMAT_NAME:
        raise ValueError(f"{path} is not a maf_numpy model file (no '__format__ = {FORMAT_NAME}' entry)")
    version = int(arrays["__version__"])
    if version != FORMAT_VERSION:
        raise ValueError(f"{path} has format version {version}; this maf_numpy reads version {FORMAT_VERSION}")
    header = json.loads(str(arrays["__config__"]))
    if header.get("class") not in CLASSES:
        raise ValueError(f"{path} holds an unknown model class {header.get('class')!r}")
    config = dict(header["config"])
    if "hidden" in config:
        config["hidden"] = tuple(config["hidden"])
    flow = CLASSES[header["class"]](**config, rng=0)
    for k, layer in enumerate(flow.layers):
        prefix = f"state/{k}/"
        layer.set_state({key[len(prefix):]: value for key, value in arrays.items() if key.startswith(prefix)})
    flow.params = _fill_params(flow.params, "params", arrays)
    return flow
