"""Checks at the public boundary: bad input gets a ValueError or TypeError that names the argument.

The math functions never check anything (they are traced by autograd); the public methods call these
first. Each message says what was expected and what arrived.
"""

import numbers

import numpy as np
from autograd.tracer import getval

__all__ = ["as_generator", "check_data", "check_positive_int", "check_choice", "check_hidden"]


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
    """Check that x is a finite float array of shape (n, D) with n >= 1; return it unchanged.

    Accepts autograd's traced arrays too, so that ``autograd.jacobian`` can differentiate the public
    methods with respect to x.
    """
    value = getval(x)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"{name} must be a NumPy array of floats of shape (n, {D}), got {type(value).__name__}")
    if value.dtype.kind != "f":
        raise TypeError(f"{name} must be a float array (float64 or float32), got dtype {value.dtype}")
    if value.ndim != 2 or value.shape[1] != D:
        hint = "; for one point use x[None, :]" if value.shape == (D,) else ""
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
