"""Tests for the command line, ``python -m maf_numpy``: help, the demo in fast mode, fit, bad arguments.

Each test runs the real command in a subprocess (with this interpreter), as a user would.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import maf_numpy as mf
from maf_numpy.__main__ import (
    DEMO_MODELS,
    DEMO_OUT,
    DEMO_TOYS,
    format_table,
    make_parser,
    toy_splits,
    train_and_measure,
)

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args, cwd=None, timeout=120):
    env = dict(os.environ, MAF_FAST="")  # the tests choose fast mode themselves
    return subprocess.run([sys.executable, "-m", "maf_numpy", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=timeout)


def test_help_exits_zero_and_names_the_subcommands():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    assert "demo" in result.stdout and "fit" in result.stdout


def test_fast_demo_prints_a_row_per_model_and_writes_the_three_figures_where_out_says(tmp_path):
    out, cwd = tmp_path / "chosen", tmp_path / "cwd"
    cwd.mkdir()
    result = run_cli("demo", "--fast", "--out", out, cwd=cwd, timeout=60)
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("test NLL ± 2se", 1)[1]  # the table, after its header
    for toy in DEMO_TOYS:
        for model, _ in DEMO_MODELS:
            assert any(line.split()[:2] == [toy, model] for line in table.splitlines()), (toy, model)
    for name in [f"demo_{toy}.png" for toy in DEMO_TOYS] + ["demo_nll_curves.png"]:
        path = out / name
        assert path.is_file() and path.stat().st_size > 1000, name
    assert f"figures written to {out}{os.sep}: demo_" in result.stdout  # says where they went
    assert list(cwd.iterdir()) == []  # nothing in the default folder or anywhere else


def test_the_demos_default_folder_is_not_tracked_so_the_readme_command_changes_no_tracked_file():
    assert make_parser().parse_args(["demo"]).out == DEMO_OUT != "figures"
    assert make_parser().parse_args(["demo", "--out", "figures"]).out == "figures"  # how to regenerate them
    assert f"{DEMO_OUT}/" in (ROOT / ".gitignore").read_text().splitlines()
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    git = ["git", "-C", str(ROOT)]
    assert subprocess.run([*git, "ls-files", "--", DEMO_OUT], capture_output=True, text=True).stdout == ""
    ignored = subprocess.run([*git, "check-ignore", "-q", f"{DEMO_OUT}/demo_fig1.png"])
    assert ignored.returncode == 0, f"git does not ignore {DEMO_OUT}/"
    tracked = subprocess.run([*git, "ls-files", "--", "figures/demo_fig1.png"], capture_output=True, text=True)
    assert tracked.stdout.strip() == "figures/demo_fig1.png"  # --out figures rewrites the tracked copies


def test_help_says_where_the_demo_writes_and_how_to_regenerate_the_tracked_figures():
    result = run_cli("demo", "--help")
    assert result.returncode == 0, result.stderr
    assert f"default: {DEMO_OUT}" in result.stdout and "--out figures" in result.stdout
    epilog = run_cli("--help").stdout
    assert f"figures in ./{DEMO_OUT}" in epilog and "demo --out figures" in epilog


def test_fit_writes_a_model_that_load_reads_back_with_the_same_log_prob(tmp_path):
    out = tmp_path / "model.npz"
    result = run_cli("fit", "--data", "fig1", "--flow", "maf", "--layers", "2", "--hidden", "8,8", "--steps", "5",
                     "--n-train", "200", "--quiet", "--out", out)
    assert result.returncode == 0, result.stderr
    assert "held-out NLL" in result.stdout and str(out) in result.stdout
    flow = mf.load(out)
    assert isinstance(flow, mf.MAF) and flow.config["num_layers"] == 2 and flow.config["hidden"] == (8, 8)
    x = mf.datasets.toy("fig1", 50, rng=123)
    log_p = flow.log_prob(x)
    assert np.all(np.isfinite(log_p))
    np.testing.assert_array_equal(mf.load(out).log_prob(x), log_p)


def test_fit_default_output_name_is_flow_then_data(tmp_path):
    result = run_cli("fit", "--data", "moons", "--flow", "made", "--hidden", "8", "--steps", "3",
                     "--n-train", "100", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert isinstance(mf.load(tmp_path / "made_moons.npz"), mf.MADE)


def test_unknown_flow_exits_nonzero_and_lists_the_choices():
    result = run_cli("fit", "--data", "fig1", "--flow", "glow")
    assert result.returncode != 0
    for choice in ("made", "maf", "iaf", "realnvp"):
        assert choice in result.stderr


def test_unknown_data_exits_nonzero_and_lists_the_toys():
    result = run_cli("fit", "--data", "swissroll", "--flow", "maf")
    assert result.returncode != 0
    for name in mf.datasets.toy_names():
        assert name in result.stderr


def test_layers_with_made_is_refused():
    result = run_cli("fit", "--data", "fig1", "--flow", "made", "--layers", "3")
    assert result.returncode != 0 and "--layers" in result.stderr


def test_demo_retrains_a_diverged_model_with_a_smaller_step_size_and_marks_it():
    x_train, x_val, x_test = toy_splits("fig1", 300, 100, 100, seed=0)
    result = train_and_measure("MAF-5", "maf", x_train, x_val, x_test, steps=30, seed=0, entropy=3.531, lr=1.0)
    assert result["notes"][0].startswith("diverged at step") and "lr 1" in result["notes"][0]
    assert result["lr"] < 1.0 and np.isfinite(result["nll"])
    table = format_table([("fig1", result)])
    assert "MAF-5*" in table and "* fig1 MAF-5: diverged" in table


def test_fit_trains_a_maf_mog_and_a_batch_norm_maf_that_load_reads_back(tmp_path):
    for flow_args, cls in ((["--flow", "mafmog"], mf.MAFMoG), (["--flow", "realnvp", "--batch-norm"], mf.RealNVP)):
        out = tmp_path / f"{cls.__name__}.npz"
        result = run_cli("fit", "--data", "moons", *flow_args, "--layers", "2", "--hidden", "8", "--steps", "5",
                         "--n-train", "100", "--quiet", "--out", out)
        assert result.returncode == 0, result.stderr
        flow = mf.load(out)
        assert type(flow) is cls
        assert cls is mf.MAFMoG or flow.config.get("batch_norm") is True


def test_batch_norm_with_a_single_made_is_refused():
    result = run_cli("fit", "--data", "moons", "--flow", "made", "--batch-norm", "--steps", "1")
    assert result.returncode != 0 and "--batch-norm applies to --flow maf, iaf or realnvp" in result.stderr
