"""The lessons: each is a student notebook generated from a solution notebook, both committed executed, both
running top to bottom in fast mode (MAF_FAST=1, fewer training steps), importing maf_numpy instead of
redefining it. Every lesson has at least two exercises; in the student version each answer is a placeholder and
its checker says "not attempted yet", in the solution version every checker says "correct". Numbers that the
markdown quotes from a computed output (marked ``<!--out-->`` right after the number) match that output."""

import re
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from maf_numpy.exercises import EXERCISES, NOT_ATTEMPTED, RIGHT, WRONG

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
STUDENT = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))
SOLUTION = sorted((LESSONS / "solutions").glob("[0-9][0-9]_*.ipynb"))
BOTH = [*STUDENT, *SOLUTION]
ID = [f"{path.parent.name}/{path.stem}" for path in BOTH]
sys.path.insert(0, str(LESSONS))
import make_student_notebooks  # noqa: E402

CHECK_CALL = re.compile(r"""check\(\s*["'](\d\d\.\d+)["']""")


def exercise_ids(notebook):
    """The exercise ids of the checker calls in a notebook's code cells, in order."""
    return [match for cell in notebook.cells if cell.cell_type == "code" for match in CHECK_CALL.findall(cell.source)]


def output_text(notebook):
    """All text the code cells printed or displayed, one string."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []) if cell.cell_type == "code" else []:
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


def assert_checkers_say(notebook, expected):
    """Every exercise's checker printed ``expected`` (NOT_ATTEMPTED or RIGHT), and none printed anything else."""
    text = output_text(notebook)
    for exercise_id in exercise_ids(notebook):
        lines = [line for line in text.splitlines() if line.startswith(f"Exercise {exercise_id} (")]
        assert lines, f"exercise {exercise_id}: its checker printed nothing"
        assert all(expected in line for line in lines), f"exercise {exercise_id}: {lines}"
    for other in {NOT_ATTEMPTED, WRONG, RIGHT + "."} - {expected, expected + "."}:
        assert f"): {other}" not in text, f"a checker said {other!r}"


def test_there_are_lessons_with_solutions():
    assert STUDENT and [path.name for path in SOLUTION] == [path.name for path in STUDENT]


@pytest.mark.parametrize("path", STUDENT, ids=[path.stem for path in STUDENT])
def test_the_student_notebook_is_generated_from_its_solution_notebook(path):
    solution = nbformat.read(LESSONS / "solutions" / path.name, as_version=4)
    expected = make_student_notebooks.student_notebook(solution)
    assert make_student_notebooks.sources(nbformat.read(path, as_version=4)) == make_student_notebooks.sources(
        expected), f"{path.name} is out of date: run python lessons/make_student_notebooks.py and re-execute it"


@pytest.mark.parametrize("path", STUDENT, ids=[path.stem for path in STUDENT])
def test_every_lesson_has_at_least_two_exercises_with_placeholders_and_checkers(path):
    notebook = nbformat.read(path, as_version=4)
    ids = exercise_ids(notebook)
    number = path.name[:2]
    assert len(set(ids)) >= 2 and all(exercise_id.startswith(number + ".") for exercise_id in ids), ids
    assert all(exercise_id in EXERCISES for exercise_id in ids), [i for i in ids if i not in EXERCISES]
    placeholders = sum(cell.source.count("= ...  # your code here") for cell in notebook.cells
                       if cell.cell_type == "code")
    assert placeholders >= len(set(ids))
    assert not any(make_student_notebooks.BEGIN in cell.source for cell in notebook.cells)


@pytest.mark.parametrize("path", BOTH, ids=ID)
def test_notebook_is_committed_executed_and_imports_the_library(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count is not None for cell in code), "committed without running it"
    assert any("import maf_numpy as mf" in cell.source for cell in code)
    assert not any(cell.get("outputs") and any(out.get("output_type") == "error" for out in cell.outputs)
                   for cell in code), "the committed outputs hold an error"


@pytest.mark.parametrize("path", BOTH, ids=ID)
def test_the_committed_checkers_say_not_attempted_for_students_and_correct_for_solutions(path):
    notebook = nbformat.read(path, as_version=4)
    assert_checkers_say(notebook, RIGHT if path.parent.name == "solutions" else NOT_ATTEMPTED)


NUMBER = re.compile(r"[-−]?\d+(?:[.,]\d+)*(?:\.\d+)?(?:e[-+]?\d+)?")
MARKED = re.compile(r"([-−]?\d[\d,]*(?:\.\d+)?(?:e[-+]?\d+)?)\s*(?:%|×|x|s|ms|nats?)?\s*<!--\s*out\s*-->")


def _value(text):
    return float(text.replace("−", "-").replace(",", ""))


@pytest.mark.parametrize("path", BOTH, ids=ID)
def test_numbers_the_markdown_quotes_from_outputs_match_the_outputs(path):
    """A number marked ``<!--out-->`` must appear among the printed numbers, equal after rounding to as many
    decimals as the markdown shows (so 0.0041 printed may be quoted as 0.004)."""
    notebook = nbformat.read(path, as_version=4)
    printed = [_value(match) for match in NUMBER.findall(output_text(notebook)) if match.strip(",.")]
    for cell in notebook.cells:
        if cell.cell_type != "markdown":
            continue
        for quoted in MARKED.findall(cell.source):
            decimals = len(quoted.split(".")[1]) if "." in quoted and "e" not in quoted else 0
            value = _value(quoted)
            assert any(abs(round(p, decimals) - value) <= 0.51 * 10 ** -decimals or abs(p - value) <= 1e-9 * abs(value)
                       for p in printed), f"the markdown quotes {quoted}, which no output of {path.name} shows"


@pytest.mark.parametrize("path", BOTH, ids=ID)
def test_notebook_runs_top_to_bottom_in_fast_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MAF_FAST", "1")
    monkeypatch.setenv("MAF_FIGURES_DIR", str(tmp_path))  # never overwrite the committed figures
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()  # the kernel inherits os.environ
    assert list(tmp_path.glob("*.png")), "the notebook wrote no figure"
    assert_checkers_say(notebook, RIGHT if path.parent.name == "solutions" else NOT_ATTEMPTED)
