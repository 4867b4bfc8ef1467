"""The README's quick start is what CI runs: the test command in the README and in .ci/run agree."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    return re.findall(r"```bash\n(python3 -m venv[^\n]*)\n```", (ROOT / "README.md").read_text())


def test_readme_quick_start_has_a_demo_command_and_a_test_command():
    commands = readme_commands()
    assert len(commands) == 2
    assert commands[0].endswith("-m maf_numpy demo") and commands[1].endswith("-m pytest")


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert f"TEST_COMMAND='{readme_commands()[1]}'" in ci
