"""The exercises of lesson 02 (see ``lessons/solutions/`` for the complete notebook)."""

import itertools
import numbers

import numpy as np

from .core import arrays_close, exercise, numbers_close  # noqa: F401 - the helpers every lesson module uses

# The MADE paper's Figure 1: ordering x_2, x_3, x_1 (0-based [1, 2, 0]) and two hidden layers of 4 units.
FIG1_ORDER, FIG1_HIDDEN = [1, 2, 0], ([2, 1, 2, 2], [1, 2, 2, 1])
# Exercise 02.3: D variables in the sequential ordering, one hidden layer of H units.
NARROW_D, NARROW_H = 5, 3


def _fig1_degrees():
    from .. import masks
    return [masks.input_degrees(masks.make_order(3, FIG1_ORDER))] + [np.array(m) for m in FIG1_HIDDEN]


def _integers(answer, what):
    """``answer`` as a 1-D int array, or a message saying why it is not one."""
    if isinstance(answer, (set, frozenset)):
        answer = sorted(answer)
    if isinstance(answer, numbers.Integral) and not isinstance(answer, (bool, np.bool_)):
        answer = [answer]
    try:
        values = np.asarray(answer)
    except Exception:  # noqa: BLE001
        values = None
    if values is None or values.ndim != 1 or values.dtype.kind not in "iuf" or values.dtype == bool:
        return None, f"{what} should be a list of integers, got {type(answer).__name__} {answer!r}"
    if values.dtype.kind == "f" and not np.all(values == np.round(values)):
        return None, f"{what} should hold whole numbers"
    return values.astype(int), None


@exercise("02.1", "path counts of the MADE paper's Figure 1",
          "entry (j, i) of the product M^1 M^2 M^V counts the paths from input j to output i; "
          "rows of your answer are outputs, columns inputs.")
def _(answer):
    from .. import masks
    expected = masks.connectivity(masks.made_masks(_fig1_degrees()))
    try:
        values = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        return f"your C should be a 3x3 array of numbers, got {type(answer).__name__}"
    if values.shape == expected.shape and not np.allclose(values, expected) and np.allclose(values.T, expected):
        return "you have the transpose: rows must be the outputs x̂_i and columns the inputs x_j"
    if values.shape == expected.shape and np.array_equal(values > 0, expected > 0) and not np.allclose(
            values, expected):
        return "the zeros are in the right places, but some entries are not the number of paths"
    return arrays_close(values, expected, rtol=0, atol=1e-9, what="your C")


@exercise("02.2", "outputs that see themselves with a leaky output mask",
          "build M^V with m^L(k) <= m^0(d), multiply the masks, and look at the diagonal of the path counts.")
def _(answer):
    from .. import masks
    degrees = _fig1_degrees()
    hidden_masks = masks.made_masks(degrees)[:-1]
    leaky_output = (degrees[-1][:, None] <= degrees[0][None, :]).astype(float)
    C = masks.connectivity([*hidden_masks, leaky_output])
    expected = sorted(int(d) + 1 for d in np.flatnonzero(np.diag(C) > 0))
    values, problem = _integers(answer, "your list of outputs")
    if problem:
        return problem
    given = sorted(set(values.tolist()))
    if len(given) != len(values):
        return "your list names an output twice"
    if given == expected:
        return None
    if 0 in given:
        return "number the outputs from 1, as x̂_1, x̂_2, x̂_3 (your list holds a 0: 0-based indices?)"
    if any(d < 1 or d > 3 for d in given):
        return "the outputs are x̂_1, x̂_2, x̂_3: give numbers between 1 and 3"
    extra, missing = sorted(set(given) - set(expected)), sorted(set(expected) - set(given))
    parts = [f"x̂_{d} does not see x_{d}" for d in extra]
    if missing:
        parts.append(f"{len(missing)} leaking output{'s are' if len(missing) > 1 else ' is'} missing from your list")
    return "; ".join(parts)


def _connected_pairs(hidden):
    """(number of allowed pairs with at least one path, the lost pairs, the inputs of degree < D that reach no
    output) for one hidden layer with degrees ``hidden`` and the sequential ordering (x_d has degree d)."""
    from .. import masks
    m0 = masks.input_degrees(masks.make_order(NARROW_D))
    C = masks.connectivity(masks.made_masks([m0, np.asarray(hidden)]))
    allowed = m0[None, :] < m0[:, None]
    lost = [(j + 1, i + 1) for i, j in zip(*np.nonzero(allowed & (C == 0)))]
    unused = [j + 1 for j in range(NARROW_D) if m0[j] < NARROW_D and C[:, j].sum() == 0]
    return int((C[allowed] > 0).sum()), lost, unused


@exercise("02.3", f"a narrow hidden layer, D = {NARROW_D}, H = {NARROW_H}",
          "the pair (x_j, x̂_i) has a path exactly when some hidden unit has a degree m with "
          "m^0(j) <= m < m^0(i); ask which pairs only one degree can serve, and which degree x_4 needs.")
def _(answer):
    values, problem = _integers(answer, "your hidden degrees")
    if problem:
        return problem
    if len(values) != NARROW_H:
        return f"give one degree per hidden unit: {NARROW_H} integers, got {len(values)}"
    if values.max() >= NARROW_D:
        return f"a unit of degree {values.max()} >= D = {NARROW_D} feeds no output: it is wasted"
    if values.min() < 1:
        return f"a unit of degree {values.min()} < 1 sees no input: it is wasted"
    count, lost, unused = _connected_pairs(values)
    if unused:
        names = ", ".join(f"x_{j}" for j in unused)
        verb = "reaches" if len(unused) == 1 else "reach"
        return f"with your degrees {names} {verb} no output: every conditional ignores it"
    scores = [_connected_pairs(hidden) for hidden in itertools.product(range(1, NARROW_D), repeat=NARROW_H)]
    best = max(pairs for pairs, _, unused_inputs in scores if not unused_inputs)
    if count == best:
        return None
    total = NARROW_D * (NARROW_D - 1) // 2
    pairs = ", ".join(f"x_{j} -> x̂_{i}" for j, i in lost)
    return f"your degrees connect {count} of the {total} allowed pairs (lost: {pairs}); another choice connects more"
