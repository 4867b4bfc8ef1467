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


def python_blocks():
    return re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def test_the_readmes_custom_training_loop_runs_and_lowers_the_loss():
    """The ten-line loop on mf.Adam, run exactly as the README writes it."""
    import maf_numpy as mf

    (block,) = [block for block in python_blocks() if "optimizer = mf.Adam" in block]
    namespace = {"mf": mf}
    exec(block, namespace)  # noqa: S102 - the README's own example
    x = mf.datasets.toy("moons", 2000, rng=1)
    assert -namespace["flow"].log_prob(x).mean() < 2.2  # N(0, I) on moons scores about 3.2


def test_the_readmes_composition_example_builds_trains_saves_and_copies(tmp_path, monkeypatch):
    import maf_numpy as mf

    (block,) = [block for block in python_blocks() if "T.LinearLU" in block]
    monkeypatch.chdir(tmp_path)
    namespace = {"mf": mf, "x_train": mf.datasets.toy("moons", 500, rng=0)}
    exec(block.replace("steps=500", "steps=20"), namespace)  # noqa: S102 - the README's own example
    assert (tmp_path / "glow.npz").exists()
    assert type(namespace["nice"].base).__name__ == "Logistic"
