"""Checks at the public boundary: bad input gets a ValueError or TypeError that names the argument.

The math functions never check anything (they are traced by autograd); the public methods call these
first. Each message says what was expected and what arrived.
"""

import numbers
import warnings

import numpy as np
from autograd.tracer import getval, isbox

__all__ = ["as_generator", "check_data", "check_positive_int", "check_positive_float", "check_choice",
           "check_hidden", "check_bool", "check_dtype", "check_params", "check_context", "warn_if_not_finite"]

FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))
DTYPE_NAMES = ("float64", "float32")


def as_generator(rng, name="rng"):
    """Return a ``numpy.random.Generator`` from None, an int seed or a Generator (else TypeError)."""
    if rng is None or isinstance(rng, np.random.Generator):
        return np.random.default_rng(rng)
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{name} must be a non-negative int seed, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name} must be an int seed, a numpy.random.Generator or None, got {type(rng).__name__}")


def check_data(x, D, name="x"):
    """Check that x is a finite float64/float32 array of shape (n, D) with n >= 1; return it unchanged.

    Accepts autograd's traced arrays too, so that ``autograd.jacobian`` can differentiate the public
    methods with respect to x. Refuses ``np.matrix`` (``@`` and ``*`` mean other things on it) and masked
    arrays (the masked entries would silently take part in the computation).
    """
    value = getval(x)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of floats of shape (n, {D}), got {type(value).__name__}"
                        f"; convert it with np.asarray({name}, dtype=float)")
    if isinstance(value, (np.matrix, np.ma.MaskedArray)):
        raise TypeError(f"{name} must be a plain NumPy array of shape (n, {D}), got {type(value).__name__}; "
                        f"convert it with np.asarray({name})")
    if value.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name} must be a float array (float64 or float32), got dtype {value.dtype}; "
                        f"convert it with {name}.astype(np.float64)")
    if value.ndim != 2 or value.shape[1] != D:
        hint = f"; for one point use {name}[None, :]" if value.shape == (D,) else ""
        raise ValueError(f"{name} must have shape (n, {D}), got {value.shape}{hint}")
    if value.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one point, got an empty batch of shape {value.shape}")
    if not np.all(np.isfinite(value)):
        bad = int(np.sum(~np.isfinite(value)))
        raise ValueError(f"{name} must be finite, got {bad} NaN or inf value(s)")
    return x


def check_positive_int(value, name, minimum=1):
    """Check that ``value`` is an int (not bool) >= minimum; return it as a Python int."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_positive_float(value, name):
    """Check that ``value`` is a finite real number > 0; return it as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(value)


def check_choice(value, choices, name):
    """Check that ``value`` is one of ``choices`` (strings); return it."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def check_hidden(hidden):
    """Check hidden widths: a tuple/list of positive ints (may be empty); return a tuple."""
    if isinstance(hidden, numbers.Integral) and not isinstance(hidden, bool):
        hidden = (hidden,)
    if not isinstance(hidden, (tuple, list)):
        raise TypeError(f"hidden must be a tuple of positive ints, got {type(hidden).__name__} {hidden!r}")
    return tuple(check_positive_int(H, f"hidden[{l}]") for l, H in enumerate(hidden))


def check_dtype(dtype, name="dtype"):
    """Check a flow's floating-point type: ``"float64"`` or ``"float32"`` (or the NumPy types themselves).

    Returns the name, ``"float64"`` or ``"float32"``: what the flow's ``config`` stores.
    """
    if isinstance(dtype, str):
        if dtype in DTYPE_NAMES:
            return dtype
    else:
        try:
            if np.dtype(dtype) in FLOAT_DTYPES and dtype is not None:
                return np.dtype(dtype).name
        except TypeError:
            pass
    raise ValueError(f"{name} must be one of {DTYPE_NAMES}, got {dtype!r}")


def check_bool(value, name):
    """Check that ``value`` is True or False (a NumPy bool too); return it as a Python bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of length {len(value)}"
    if isinstance(value, dict):
        return f"a dict with keys {sorted(map(str, value))}"
    return type(value).__name__


def _check_tree(value, reference, path):
    value, reference = getval(value), getval(reference)
    if isinstance(reference, dict):
        if not isinstance(value, dict):
            raise ValueError(f"{path} must be a dict with keys {sorted(reference)}, got {_describe(value)}")
        if set(value) != set(reference):
            missing, extra = sorted(set(reference) - set(value)), sorted(map(str, set(value) - set(reference)))
            raise ValueError(f"{path} must have the keys {sorted(reference)}: missing {missing}, "
                             f"unexpected {extra}")
        for key in reference:
            _check_tree(value[key], reference[key], f"{path}[{key!r}]")
    elif isinstance(reference, (list, tuple)):
        if not isinstance(value, (list, tuple)) or len(value) != len(reference):
            raise ValueError(f"{path} must be a list of length {len(reference)}, got {_describe(value)}")
        for k, (v, r) in enumerate(zip(value, reference)):
            _check_tree(v, r, f"{path}[{k}]")
    else:
        if not isinstance(value, np.ndarray):
            raise TypeError(f"{path} must be a float array of shape {np.shape(reference)}, got "
                            f"{type(value).__name__}")
        if value.shape != np.shape(reference):
            raise ValueError(f"{path} must have shape {np.shape(reference)}, got {value.shape}")
        if value.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{path} must be a float array (float64 or float32), got dtype {value.dtype}")
        if not np.all(np.isfinite(value)):
            bad = int(np.sum(~np.isfinite(value)))
            raise ValueError(f"{path} must be finite, got {bad} NaN or inf value(s)")


def check_params(params, reference, name="params"):
    """Check that a parameter pytree has the structure of ``reference`` (a flow's own ``params``).

    The same nesting of lists and dicts, the same keys, arrays of the same shapes, float dtypes and
    finite values; each message names the offending entry, e.g. ``params[1]['W_mu']``. Traced pytrees
    (inside ``autograd.grad``) are checked by their values. Returns ``params`` unchanged.
    """
    value, reference = getval(params), getval(reference)
    if not isinstance(value, (list, tuple)) or len(value) != len(reference):
        raise ValueError(f"{name} must be a list of {len(reference)} per-layer dicts like flow.params, got "
                         f"{_describe(value)}")
    _check_tree(value, reference, name)
    return params


def warn_if_not_finite(result, what, name="x"):
    """Warn (RuntimeWarning) if ``result`` holds NaN or inf: the input was finite, so it overflowed.

    Returns ``result`` unchanged. Used by the public methods after computing, so that no NaN comes back
    without a message saying where it came from.
    """
    value = getval(result)
    finite = np.isfinite(value)
    if not np.all(finite):
        bad_points = int(np.sum(~finite.reshape(finite.shape[0], -1).all(axis=1))) if finite.ndim else 1
        n = finite.shape[0] if finite.ndim else 1
        kinds = ", ".join(f"{count} {label}" for label, count in (
            ("NaN", int(np.sum(np.isnan(value)))), ("-inf", int(np.sum(np.isneginf(value)))),
            ("+inf", int(np.sum(np.isposinf(value))))) if count)
        warnings.warn(f"{what} is not finite for {bad_points} of {n} points of {name} ({kinds} values): "
                      f"exp(alpha) or an intermediate value overflowed float64 (-inf: the density underflowed; "
                      f"NaN: inf - inf or inf * 0 followed, so the value could not be computed). Inputs far "
                      f"outside the data the flow was fitted to (or a flow that has not been fitted) can do "
                      f"this; check the scale of {name}.", RuntimeWarning, stacklevel=3)
    return result


def check_context(y, C, n, name="y"):
    """A context of a conditional flow: a finite float array of shape (n, C), or (C,) used for every row.

    Returns an array of shape (n, C).
    """
    value = getval(y)
    if isinstance(value, np.ndarray) and value.ndim == 1 and value.shape == (C,):
        y = np.broadcast_to(y, (n, C)) if not isbox(y) else np.ones((n, 1)) * y
    elif y is None:
        raise TypeError(f"{name} must be the context: a float array of shape ({n}, {C}) or ({C},), got None")
    check_data(y, C, name)
    if getval(y).shape[0] != n:
        raise ValueError(f"{name} must have one row per point ({n}) or shape ({C},), got shape {getval(y).shape}")
    return y
