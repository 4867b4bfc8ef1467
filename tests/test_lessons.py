"""Every lesson notebook runs top to bottom in fast mode (MAF_FAST=1, fewer training steps), is committed
executed (with its outputs), and imports maf_numpy instead of redefining it."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

LESSONS = Path(__file__).resolve().parents[1] / "lessons"
NOTEBOOKS = sorted(LESSONS.glob("[0-9][0-9]_*.ipynb"))


def test_there_are_lessons_to_run():
    assert NOTEBOOKS, "no notebooks in lessons/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_is_committed_executed_and_imports_the_library(path):
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.execution_count is not None for cell in code), "committed without running it"
    assert any("import maf_numpy as mf" in cell.source for cell in code)
    assert not any(cell.get("outputs") and any(out.get("output_type") == "error" for out in cell.outputs)
                   for cell in code), "the committed outputs hold an error"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[path.stem for path in NOTEBOOKS])
def test_notebook_runs_top_to_bottom_in_fast_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MAF_FAST", "1")
    monkeypatch.setenv("MAF_FIGURES_DIR", str(tmp_path))  # never overwrite the committed figures
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(LESSONS)}}).execute()  # the kernel inherits os.environ
    assert list(tmp_path.glob("*.png")), "the notebook wrote no figure"
