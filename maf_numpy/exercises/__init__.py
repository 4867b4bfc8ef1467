"""Checkers for the lessons' exercises: ``check(exercise_id, answer)``.

Each lesson's exercises are registered by a module of this package (``lesson01``, ``lesson02``, ...). In a
student's notebook an exercise's answer starts as a placeholder, ``answer = ...``, followed by a checker call::

    answer = ...  # your code here
    check("01.1", answer)

``check`` prints one of three things and never the expected answer:

- ``not attempted yet`` and a hint, while the answer is still the placeholder ``...``;
- ``not right yet`` and what is wrong (a sign, a factor, a shape, which entry), for a wrong answer;
- ``correct``, for a right one.

It returns None, False or True. The complete answers are in ``lessons/solutions/`` (between nbgrader's
``### BEGIN SOLUTION`` and ``### END SOLUTION`` markers); ``lessons/make_student_notebooks.py`` makes each student
notebook from its solution notebook.
"""

from .core import EXERCISES, NOT_ATTEMPTED, RIGHT, WRONG, Exercise, arrays_close, check, exercise, numbers_close

__all__ = ["check", "exercise", "EXERCISES", "Exercise", "numbers_close", "arrays_close", "NOT_ATTEMPTED", "WRONG",
           "RIGHT"]

# Each lesson's module registers its exercises when imported.
from . import (  # noqa: E402, F401, I001
    lesson01, lesson02, lesson03, lesson04, lesson05, lesson06, lesson07, lesson08, lesson09, lesson10,
)
