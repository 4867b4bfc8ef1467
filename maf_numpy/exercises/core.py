"""The checker and its helpers (``maf_numpy.exercises`` re-exports them; the lesson modules import them from here)."""


import numbers

import numpy as np

__all__ = ["check", "exercise", "EXERCISES", "Exercise", "numbers_close", "arrays_close"]

NOT_ATTEMPTED = "not attempted yet"
WRONG = "not right yet"
RIGHT = "correct"


class Exercise:
    """One exercise: its id ("NN.k"), a title, a hint, and ``verify(answer) -> None if right, else a message``."""

    def __init__(self, exercise_id, title, hint, verify):
        self.id, self.title, self.hint, self.verify = exercise_id, title, hint, verify

    def __repr__(self):
        return f"Exercise({self.id!r}, {self.title!r})"


EXERCISES = {}


def exercise(exercise_id, title, hint):
    """Register the decorated ``verify(answer)`` function as exercise ``exercise_id``."""
    def register(verify):
        if exercise_id in EXERCISES:
            raise ValueError(f"exercise {exercise_id!r} is registered twice")
        EXERCISES[exercise_id] = Exercise(exercise_id, title, hint, verify)
        return verify

    return register


def check(exercise_id, answer):
    """Check an answer to exercise ``exercise_id`` and say so (see the module docstring).

    Returns
    -------
    None (not attempted), False (wrong) or True (right).
    """
    if exercise_id not in EXERCISES:
        raise KeyError(f"no exercise {exercise_id!r}; the exercises are {sorted(EXERCISES)}")
    item = EXERCISES[exercise_id]
    if answer is Ellipsis:
        print(f"Exercise {item.id} ({item.title}): {NOT_ATTEMPTED}. Hint: {item.hint}")
        return None
    try:
        problem = item.verify(answer)
    except Exception as error:  # noqa: BLE001 - any failure of a student's answer is reported, not raised
        problem = f"checking your answer raised {type(error).__name__}: {error}"
    if problem:
        print(f"Exercise {item.id} ({item.title}): {WRONG}: {problem}")
        return False
    print(f"Exercise {item.id} ({item.title}): {RIGHT}.")
    return True


def numbers_close(answer, expected, rtol=1e-6, atol=0.0, what="your number"):
    """None if ``answer`` is a real number within tolerance of ``expected``; else a message that says how it is
    wrong (its sign, a factor, or by how much, relatively) without giving ``expected``."""
    if isinstance(answer, (bool, np.bool_)) or not isinstance(answer, (numbers.Real, np.ndarray)) or np.ndim(answer):
        return f"{what} should be a single real number, got {type(answer).__name__} {answer!r}"
    answer = float(answer)
    if not np.isfinite(answer):
        return f"{what} is {answer}: not a finite number"
    if abs(answer - expected) <= atol + rtol * abs(expected):
        return None
    if expected != 0 and abs(-answer - expected) <= atol + rtol * abs(expected):
        return f"{what} has the wrong sign"
    if expected != 0 and answer != 0:
        ratio = answer / expected
        for factor, name in ((2.0, "twice"), (0.5, "half"), (np.e, "e times"), (1 / np.e, "1/e times")):
            if abs(ratio - factor) < 1e-3 * factor:
                return f"{what} is {name} what it should be: look for a factor you added or dropped"
    relative = abs(answer - expected) / max(abs(expected), 1e-12)
    return f"{what} is off by {relative:.0%} of the right value" if relative < 10 else f"{what} is far off"


def arrays_close(answer, expected, rtol=1e-6, atol=1e-9, what="your array"):
    """None if ``answer`` is an array of ``expected``'s shape within tolerance; else a message naming the shape
    or the first wrong entry (by index, not by value)."""
    try:
        answer = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        return f"{what} should be an array of numbers, got {type(answer).__name__}"
    expected = np.asarray(expected, dtype=float)
    if answer.shape != expected.shape:
        return f"{what} has shape {answer.shape}; it should have shape {expected.shape}"
    wrong = ~np.isclose(answer, expected, rtol=rtol, atol=atol)
    if wrong.any():
        index = tuple(int(i) for i in np.argwhere(wrong)[0])
        return f"{what} differs from the right one in {int(wrong.sum())} of {wrong.size} entries, first at {index}"
    return None
