"""Building blocks of the flow classes: argument checks, layer orderings and the layers around the MADEs.

Used by :mod:`maf_numpy.flows`, :mod:`maf_numpy.conditional`, :mod:`maf_numpy.mog` and :mod:`maf_numpy.agnostic`
(and by anyone who writes a flow class of their own).
"""

from . import masks as _masks
from .transforms import BatchNorm, Standardize
from .validation import check_bool, check_choice, check_dtype, check_hidden, check_positive_float, check_positive_int

__all__ = ["ACTIVATION_NAMES", "LAYER_ORDERS", "layer_orders", "check_alpha_clamp", "check_common",
           "check_context_dim", "standardize_layers", "with_batch_norm", "optional_config"]

ACTIVATION_NAMES = ("relu", "tanh")
LAYER_ORDERS = ("alternate", "random", "sequential", "reversed")


def layer_orders(D, num_layers, orders="alternate", rng=None):
    """Orderings of the K autoregressive layers of a MAF or IAF.

    Parameters
    ----------
    D, num_layers : int
    orders : {"alternate", "random", "sequential", "reversed"} or list of K permutations
        ``"alternate"`` (the default, as in the MAF paper's code) reverses the ordering between
        consecutive layers: sequential, reversed, sequential, ...; ``"random"`` draws one permutation per
        layer; ``"sequential"``/``"reversed"`` use the same ordering in every layer.
    rng : numpy.random.Generator

    Returns
    -------
    list of ndarray of int, each a permutation of range(D)
    """
    if isinstance(orders, str):
        check_choice(orders, LAYER_ORDERS, "orders")
        if orders == "alternate":
            return [_masks.make_order(D, ("sequential", "reversed")[k % 2]) for k in range(num_layers)]
        return [_masks.make_order(D, orders, rng) for _ in range(num_layers)]
    if not isinstance(orders, (list, tuple)) or len(orders) != num_layers:
        raise ValueError(f"orders must be one of {LAYER_ORDERS} or a list of {num_layers} permutations "
                         f"of range({D}), got {orders!r}")
    permutations = []
    for k, order in enumerate(orders):
        try:
            permutations.append(_masks.make_order(D, order))
        except (TypeError, ValueError) as error:
            raise ValueError(f"orders[{k}] must be a permutation of range({D}), got {order!r}") from error
    return permutations


def check_alpha_clamp(alpha_clamp):
    """None, or a finite number c > 0 (the soft clamp's bound)."""
    return None if alpha_clamp is None else check_positive_float(alpha_clamp, "alpha_clamp")


def check_common(dim, num_layers, hidden, activation, dtype):
    """Check the arguments every flow class takes; return (dim, num_layers, hidden as a tuple, dtype name)."""
    dim = check_positive_int(dim, "dim")
    num_layers = check_positive_int(num_layers, "num_layers")
    hidden = check_hidden(hidden)
    check_choice(activation, ACTIVATION_NAMES, "activation")
    return dim, num_layers, hidden, check_dtype(dtype)


def standardize_layers(dim, standardize, dtype):
    """``[Standardize(dim)]`` when ``standardize``, else ``[]``: the layer next to the data."""
    return [Standardize(dim, dtype)] if check_bool(standardize, "standardize") else []


def with_batch_norm(layers, batch_norm, dim, dtype):
    """``layers`` with a BatchNorm after each but the last when ``batch_norm`` (MAF paper §4.1).

    (The authors' code, gpapamak/maf ``ml/models/mafs.py``, appends one after the last MADE too; here the
    last layer next to the base keeps its own shift and scale only.)
    """
    if not check_bool(batch_norm, "batch_norm"):
        return layers
    with_norms = []
    for layer in layers[:-1]:
        with_norms += [layer, BatchNorm(dim, dtype=dtype)]
    return with_norms + layers[-1:]


def optional_config(batch_norm=False, alpha_clamp=None, context_dim=0):
    """The options a flow records in its configuration only when they differ from their defaults, so that the
    configuration (and repr, and the files) of every other flow stays what it was before the option existed."""
    options = {"batch_norm": True} if batch_norm else {}
    if alpha_clamp is not None:
        options["alpha_clamp"] = alpha_clamp
    if context_dim:
        options["context_dim"] = context_dim
    return options


def check_context_dim(context_dim):
    """The number C of context inputs of a conditional flow: an int >= 1."""
    return check_positive_int(context_dim, "context_dim")
