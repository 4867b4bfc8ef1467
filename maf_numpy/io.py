"""Save and load flows as ``.npz`` files: no pickle, a format name and version, and the configuration.

``save(flow, path)`` (also ``flow.save(path)``) and ``load(path)``; the file format is described in
:mod:`maf_numpy.npz`. ``load`` knows every flow class of the library, registered by the modules imported
here: :data:`CLASSES`.
"""

from . import agnostic, bases, conditional, mog, transforms  # noqa: F401 - importing them registers their classes
from .flow import Flow
from .npz import (
    BASE_CLASSES,
    FLOW_CLASSES,
    HEADER_KEYS,
    LAYER_CLASSES,
    fill_params,
    install_layer_state,
    read_arrays,
    read_header,
    resolve_path,
)
from .npz import save_flow as save

__all__ = ["CLASSES", "save", "load"]

CLASSES = FLOW_CLASSES  # every flow class load can rebuild, by name


def load(path):
    """Read a flow saved by :func:`save`.

    Parameters
    ----------
    path : str or os.PathLike
        The file; ``.npz`` is appended if ``path`` does not exist but ``path + ".npz"`` does.

    Returns
    -------
    Flow (one of the classes in ``CLASSES``)
        Same class, configuration, structure and parameters: it computes bit for bit the same numbers.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        For a file that is not a readable ``.npz``, not one of ours, of another format version, holds an
        object array (load never unpickles), or whose contents do not match its configuration.
    """
    path = resolve_path(path)
    arrays = read_arrays(path)
    class_name, config = read_header(arrays, path)
    if "hidden" in config and isinstance(config["hidden"], list):
        config["hidden"] = tuple(config["hidden"])
    try:
        flow = _composition(config, path) if class_name == "Flow" else CLASSES[class_name](**config, rng=0)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: the configuration in the file is not valid for {class_name}: {error}") from error
    used = set(HEADER_KEYS)
    install_layer_state(flow, arrays, path, used)
    flow.params = fill_params(flow.params, "params", arrays, path, used)
    extra = sorted(set(arrays) - used)
    if extra:
        raise ValueError(f"{path} holds entries its configuration does not explain: {extra[:5]}"
                         f"{' ...' if len(extra) > 5 else ''}; it is damaged or was written by something else")
    return flow


def _composition(config, path):
    """A composed ``Flow`` rebuilt from its layers' and base's registered classes and ``config()``."""
    def build(spec, registry, what, register):
        name = spec.get("class") if isinstance(spec, dict) else None
        if name not in registry:
            raise ValueError(f"{path} holds a {what} of class {name!r}, which is not registered here: define it "
                             f"and call maf_numpy.{register}({name}) before loading")
        return registry[name](**spec["config"])

    layers = [build(spec, LAYER_CLASSES, "layer", "register_layer") for spec in config["layers"]]
    base = build(config["base"], BASE_CLASSES, "base density", "register_base")
    return Flow(config["dim"], layers, base=base, rng=0, dtype=config["dtype"])
