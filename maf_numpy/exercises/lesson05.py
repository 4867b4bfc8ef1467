"""The exercises of lesson 05 (see ``lessons/solutions/`` for the complete notebook)."""

import itertools
import math

import numpy as np

from .core import arrays_close, exercise, numbers_close  # noqa: F401 - the helpers every lesson module uses

# Exercise 05.1: the answer is exact; a Monte-Carlo estimate (or a good model's test NLL) lands within this of it.
NEAR = 0.02
# Exercise 05.2: C independent copies of the Figure 1 density, columns (x1 of every copy, then x2 of every copy).
COPIES = 3


def _is(value, candidate):
    return abs(value - candidate) <= 1e-6 * max(abs(candidate), 1.0)


@exercise("05.1", "the test NLL of a perfect model on the Figure 1 density",
          "a perfect model has q = p, so its expected NLL is -E_p[log p(x)] = H[p]. Chain rule: "
          "H[x1, x2] = H[x2] + H[x1 | x2]; a Gaussian of variance s^2 has entropy 0.5 log(2 pi e s^2). "
          "Check it by averaging -mf.datasets.toy_log_prob over many samples of mf.datasets.toy.")
def _(answer):
    import maf_numpy as mf
    expected = float(mf.datasets.toy_entropy("fig1"))  # exact for this toy
    if isinstance(answer, np.ndarray) and answer.size == 1:
        answer = answer.reshape(())
    problem = numbers_close(answer, expected, rtol=1e-6, what="your entropy")
    if problem is None or "single real number" in problem or "finite" in problem:
        return problem
    value, log_2pie = float(answer), math.log(2 * math.pi * math.e)
    if abs(value - expected) <= NEAR:
        return ("close, but not exact: a Monte-Carlo estimate or a model's test NLL only comes near it. This "
                "entropy has a closed form: derive it with the chain rule")
    if _is(value, log_2pie + math.log(4.0)):
        return "you used 4 as the standard deviation of x2; N(x2 | 0, 4) has variance 4 here"
    if _is(value, 0.5 * (log_2pie + math.log(4.0))) or _is(value, 0.5 * log_2pie):
        return "that is the entropy of one factor only: the chain rule adds H[x2] and H[x1 | x2]"
    if _is(value, expected / math.log(2)):
        return "that is in bits: the lesson measures NLLs in nats (natural logarithm)"
    return problem


def _exact_orders(copies=COPIES):
    """Every order (generation order of column indices) in which a Gaussian MADE is exact for ``copies``
    independent copies of the Figure 1 density, columns (x1 of each copy, then x2 of each copy)."""
    from maf_numpy import masks
    exact = set()
    for order in itertools.permutations(range(2 * copies)):
        degree = masks.input_degrees(np.array(order))  # the library's convention: degree[c] = 1 + position of c
        if all(degree[copies + j] < degree[j] for j in range(copies)):  # x2 of copy j before its x1
            exact.add(order)
    return exact


@exercise("05.2", f"every exact order of one Gaussian MADE for {COPIES} copies of the Figure 1 density",
          "a Gaussian MADE in an order is exact when every conditional of p in that order is Gaussian. "
          "Section 7 found the 2-D answer; the copies are independent. itertools.permutations(range(6)) "
          "lists all 720 orders.")
def _(answer):
    D = 2 * COPIES
    try:
        orders = [tuple(int(i) for i in np.asarray(order).ravel()) for order in answer]
    except (TypeError, ValueError):
        return f"give a list of orders, each a sequence of the {D} column indices, got {type(answer).__name__}"
    if not orders:
        return "your list is empty"
    for k, order in enumerate(orders):
        if sorted(order) != list(range(D)):
            return f"your order #{k} is not a permutation of the column indices 0..{D - 1}: {list(order)}"
    seen = set()
    for k, order in enumerate(orders):
        if order in seen:
            return f"your order #{k} appears twice in your list"
        seen.add(order)
    exact = _exact_orders()
    wrong = [k for k, order in enumerate(orders) if order not in exact]
    if wrong:
        return (f"{len(wrong)} of your {len(orders)} orders are not exact, the first is #{wrong[0]} "
                f"{list(orders[wrong[0]])}: in that order some conditional of p is not Gaussian")
    if len(seen) < len(exact):
        return f"all {len(seen)} of your orders are exact, but some exact orders are missing from your list"
    return None
