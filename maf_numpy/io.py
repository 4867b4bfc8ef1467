"""Save and load flows as ``.npz`` files: no pickle, a format name and version, and the configuration.

``save(flow, path)`` (also ``flow.save(path)``) and ``load(path)``; the file format is described in
:mod:`maf_numpy.npz`. ``load`` knows every flow class of the library, registered by the modules imported
here: :data:`CLASSES`.
"""

from . import agnostic, conditional, flows, mog  # noqa: F401 - importing them registers their flow classes
from .npz import FLOW_CLASSES, HEADER_KEYS, fill_params, install_layer_state, read_arrays, read_header, resolve_path
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
        flow = CLASSES[class_name](**config, rng=0)
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
