"""Make each student notebook ``lessons/NN_*.ipynb`` from its solution notebook ``lessons/solutions/NN_*.ipynb``.

In a solution notebook every exercise's answer sits between nbgrader's markers, and the block ends by assigning
the answer to a name::

    ### BEGIN SOLUTION
    p_at_1 = np.exp(-0.5 * ((1 - 1) / 0.75) ** 2) / (0.75 * np.sqrt(2 * np.pi))
    ### END SOLUTION
    check("01.1", p_at_1)

The student version replaces the whole block by a placeholder for that name, ``p_at_1 = ...  # your code here``,
so the checker says "not attempted yet" until the student writes the code. In a markdown cell (a worked
explanation, a written answer) the region between the markers becomes ``*Your answer here.*``. Everything else is
copied; outputs are cleared (execute both versions afterwards, see lessons/README.md). nbgrader reads the same
markers, so the solution notebooks drop into an nbgrader course unchanged.

    python lessons/make_student_notebooks.py             # write every lessons/NN_*.ipynb from lessons/solutions/
    python lessons/make_student_notebooks.py --only 04   # just lesson 04 (then re-execute it)
    python lessons/make_student_notebooks.py --check     # exit 1 if a student notebook is out of date
"""

import argparse
import re
import sys
from pathlib import Path

import nbformat

LESSONS = Path(__file__).resolve().parent
SOLUTIONS = LESSONS / "solutions"
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
PLACEHOLDER = "{name} = ...  # your code here"


def student_source(source):
    """A code cell's source with every solution block replaced by its placeholder (unchanged if it has none)."""
    lines, out, block = source.split("\n"), [], None
    for line in lines:
        if line.strip() == BEGIN:
            block = []
            indent = line[:len(line) - len(line.lstrip())]
        elif line.strip() == END:
            if block is None:
                raise ValueError(f"{END} without {BEGIN} in:\n{source}")
            assigned = [re.match(r"\s*([A-Za-z_]\w*)\s*=[^=]", code) for code in block if code.strip()]
            if not assigned or assigned[-1] is None:
                raise ValueError(f"a solution block must end by assigning the answer to a name, got:\n{source}")
            out.append(indent + PLACEHOLDER.format(name=assigned[-1].group(1)))
            block = None
        elif block is not None:
            block.append(line)
        else:
            out.append(line)
    if block is not None:
        raise ValueError(f"{BEGIN} without {END} in:\n{source}")
    return "\n".join(out)


def student_markdown(source):
    """A markdown cell's source with every solution region replaced by ``*Your answer here.*``."""
    pattern = re.compile(rf"^[ \t]*{re.escape(BEGIN)}[ \t]*$.*?^[ \t]*{re.escape(END)}[ \t]*$", re.S | re.M)
    if source.count(BEGIN) != source.count(END):
        raise ValueError(f"unbalanced solution markers in a markdown cell:\n{source}")
    return pattern.sub("*Your answer here.*", source)


def student_notebook(solution):
    """The student version of a solution notebook (an nbformat notebook): placeholders, no outputs."""
    student = nbformat.from_dict(solution)
    for cell in student.cells:
        if cell.cell_type == "code":
            cell.source = student_source(cell.source)
            cell.outputs, cell.execution_count = [], None
        elif cell.cell_type == "markdown":
            cell.source = student_markdown(cell.source)
    return student


def pairs():
    """(solution path, student path) for every solution notebook."""
    return [(path, LESSONS / path.name) for path in sorted(SOLUTIONS.glob("[0-9][0-9]_*.ipynb"))]


def sources(notebook):
    return [(cell.cell_type, cell.source) for cell in notebook.cells]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check that every student notebook is up to date")
    parser.add_argument("--only", nargs="+", metavar="NN", help="lesson numbers to make (default: all)")
    args = parser.parse_args(argv)
    stale = []
    for solution_path, student_path in pairs():
        if args.only and solution_path.name[:2] not in args.only:
            continue
        expected = student_notebook(nbformat.read(solution_path, as_version=4))
        if args.check:
            if not student_path.exists() or sources(nbformat.read(student_path, as_version=4)) != sources(expected):
                stale.append(student_path.name)
        else:
            nbformat.write(expected, student_path)
            print(f"wrote {student_path.relative_to(LESSONS.parent)}")
    if stale:
        print(f"out of date (run python lessons/make_student_notebooks.py): {stale}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
