"""Files written before the code was split into the reference and fast/ still load and resume, bit for bit.

``tests/data/v1_*.npz`` were written by maf_numpy's format version 1 before the restructure (models: MAF, IAF with
batch norm, RealNVP, MAF MoG, conditional MAF; a training checkpoint of a MAF interrupted after 7 of 20 steps), with
``v1_expected.json`` holding the log-densities they computed then. Loaded now, with either path, they compute the
same numbers, and the checkpoint resumes to the end of the uninterrupted run.
"""

import json
import os

import numpy as onp
import pytest

import maf_numpy as mf

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


@pytest.fixture(scope="module")
def expected():
    with open(os.path.join(DATA, "v1_expected.json"), encoding="utf-8") as file:
        return json.load(file)


@pytest.mark.parametrize("name", ["maf", "iaf_batch_norm", "realnvp", "mafmog", "conditional_maf"])
@pytest.mark.parametrize("fast", [True, False])
def test_a_model_saved_in_format_1_loads_and_computes_what_it_computed_then(expected, name, fast):
    flow = mf.load(os.path.join(DATA, f"v1_{name}.npz"))
    flow.fast = fast
    probe = onp.array(expected["probe"])
    if name == "conditional_maf":
        log_prob = flow.log_prob(probe, onp.eye(2)[[0, 1, 0, 1, 0]])
    else:
        log_prob = flow.log_prob(probe)
    onp.testing.assert_allclose(log_prob, expected[name], rtol=1e-12, atol=1e-12)


def test_a_checkpoint_written_in_format_1_resumes_to_the_end_of_the_uninterrupted_run(expected, tmp_path):
    path = tmp_path / "run.npz"
    path.write_bytes(open(os.path.join(DATA, "v1_checkpoint.npz"), "rb").read())
    x = mf.datasets.toy("moons", 300, rng=0)
    flow = mf.MAF(2, num_layers=2, hidden=(8,), rng=5)
    # the run's own options: fit's defaults were lr=1e-3 and patience=20 then; its lr_decay was the cosine over
    # the whole run (the checkpoint predates the cooldown schedule), which the resumed run keeps
    history = flow.fit(x, steps=20, batch_size=64, val_every=5, progress=False, rng=0, resume=path, lr=1e-3,
                       patience=20)
    assert history["status"] == "completed" and history["steps_run"] == 20
    assert abs(history["best_val_nll"] - expected["checkpoint_best_val_nll"]) < 1e-12
    onp.testing.assert_allclose(flow.log_prob(onp.array(expected["probe"])), expected["checkpoint_log_prob"],
                                rtol=1e-12, atol=1e-12)
