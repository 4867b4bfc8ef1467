"""Interrupt-safe and resumable training: KeyboardInterrupt, atomic checkpoints, bit-identical resume.

A KeyboardInterrupt (Jupyter's stop button) is simulated by wrapping the gradient function that ``fit``
builds (``train.value_and_grad``) so that its k-th call raises; a crash is the same with another
exception, which ``fit`` must not swallow. No real signals are sent.
"""

import json
import os
import warnings

import numpy as onp
import pytest
from autograd import value_and_grad
from autograd.misc import flatten

import maf_numpy as mf
from maf_numpy import datasets, npz, train
from maf_numpy.checkpoint import CHECKPOINT_VERSION

FACTORIES = {
    "MAF": lambda: mf.MAF(2, num_layers=2, hidden=(8,), rng=0),
    "RealNVP": lambda: mf.RealNVP(2, num_layers=2, hidden=(8,), rng=0),
    "IAF": lambda: mf.IAF(2, num_layers=2, hidden=(8,), rng=0),
}
OPTIONS = {"steps": 60, "batch_size": 64, "lr": 3e-3, "val_every": 5, "patience": 20, "progress": False}


@pytest.fixture(scope="module")
def moons():
    return datasets.toy("moons", 300, rng=0), datasets.toy("moons", 100, rng=1)


def flat(flow):
    return flatten(flow.params)[0]


def without_time(history):
    return {key: value for key, value in history.items() if key != "time"}


def raise_at_call(k, exception=KeyboardInterrupt):
    """A stand-in for autograd's value_and_grad whose gradient function raises on its k-th call."""
    def make(loss):
        loss_and_grad = value_and_grad(loss)
        calls = [0]

        def wrapped(*args):
            calls[0] += 1
            if calls[0] == k:
                raise exception("simulated")
            return loss_and_grad(*args)

        return wrapped

    return make


def fit_interrupted_at(monkeypatch, flow, k, *args, exception=KeyboardInterrupt, **kwargs):
    with monkeypatch.context() as patch:
        patch.setattr(train, "value_and_grad", raise_at_call(k, exception))
        return flow.fit(*args, **kwargs)


# --- KeyboardInterrupt ---------------------------------------------------------------------------------
def test_keyboard_interrupt_ends_training_cleanly_and_keeps_the_best_params(moons, monkeypatch):
    x_train, x_val = moons
    flow = FACTORIES["MAF"]()
    history = fit_interrupted_at(monkeypatch, flow, 23, x_train, x_val, rng=0, **OPTIONS)
    assert history["status"] == "interrupted" and history["steps_run"] == 22
    assert "interrupted after step 22 (KeyboardInterrupt)" in history["message"]
    assert "pass checkpoint=path" in history["message"]
    assert history["step"] == [5, 10, 15, 20] and history["best_step"] > 0
    nll = -onp.mean(flow.log_prob(x_val))
    assert nll == pytest.approx(history["best_val_nll"], rel=1e-12)  # the best params are in the model


def test_an_interrupt_before_the_first_step_leaves_the_initial_params(moons, monkeypatch):
    x_train, x_val = moons
    flow = FACTORIES["MAF"]()
    before = flat(flow).copy()
    history = fit_interrupted_at(monkeypatch, flow, 1, x_train, x_val, rng=0, **OPTIONS)
    assert history["status"] == "interrupted" and history["steps_run"] == 0
    assert onp.array_equal(flat(flow), before)


def test_an_interrupted_fit_prints_its_message_when_progress_is_on(moons, monkeypatch, capsys):
    x_train, x_val = moons
    fit_interrupted_at(monkeypatch, FACTORIES["MAF"](), 8, x_train, x_val, rng=0, **{**OPTIONS, "progress": True})
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith("training interrupted after step 7")


def test_a_crash_that_is_not_an_interrupt_propagates(moons, monkeypatch):
    x_train, x_val = moons
    with pytest.raises(MemoryError, match="simulated"):
        fit_interrupted_at(monkeypatch, FACTORIES["MAF"](), 5, x_train, x_val, rng=0, exception=MemoryError,
                           **OPTIONS)


# --- resume: bit for bit the run that was never interrupted -------------------------------------------
def reference_run(name, x_train, x_val, **options):
    flow = FACTORIES[name]()
    history = flow.fit(x_train, x_val, rng=0, **{**OPTIONS, **options})
    return flat(flow), history


def assert_same_run(flow, history, reference):
    params, expected = reference
    assert onp.array_equal(flat(flow), params), "the resumed run ends with other parameters"
    assert without_time(history) == without_time(expected)
    assert len(history["time"]) == len(expected["time"])


@pytest.mark.parametrize("holdout", [False, True], ids=["x_val", "held-out-split"])
@pytest.mark.parametrize("name", ["MAF", "RealNVP"])
def test_a_run_interrupted_at_step_k_and_resumed_ends_bit_identical(moons, monkeypatch, tmp_path, name, holdout):
    x_train, x_val = moons
    x_val = None if holdout else x_val
    reference = reference_run(name, x_train, x_val)
    path = tmp_path / "run.npz"
    interrupted = fit_interrupted_at(monkeypatch, FACTORIES[name](), 33, x_train, x_val, rng=0, checkpoint=path,
                                     **OPTIONS)
    assert interrupted["status"] == "interrupted" and interrupted["steps_run"] == 32
    assert f"resume={str(path)!r}" in interrupted["message"]
    flow = FACTORIES[name]()  # a fresh kernel: same model, same data, the checkpoint
    history = flow.fit(x_train, x_val, resume=path, **OPTIONS)
    assert_same_run(flow, history, reference)
    assert history["val_source"] == reference[1]["val_source"]


def test_a_run_interrupted_twice_and_an_iaf_still_end_bit_identical(moons, monkeypatch, tmp_path):
    x_train, x_val = moons
    reference = reference_run("IAF", x_train, x_val)
    path = tmp_path / "run.npz"
    fit_interrupted_at(monkeypatch, FACTORIES["IAF"](), 11, x_train, x_val, rng=0, checkpoint=path, **OPTIONS)
    second = fit_interrupted_at(monkeypatch, FACTORIES["IAF"](), 27, x_train, x_val, resume=path, checkpoint=path,
                                **OPTIONS)
    assert second["status"] == "interrupted" and second["steps_run"] == 10 + 26
    flow = FACTORIES["IAF"]()
    assert_same_run(flow, flow.fit(x_train, x_val, resume=path, **OPTIONS), reference)


def test_early_stopping_after_a_resume_stops_at_the_same_step(moons, monkeypatch, tmp_path):
    x_train, x_val = moons
    options = {"steps": 400, "patience": 2, "lr": 3e-2}
    reference = reference_run("MAF", x_train[:40], x_val, **options)
    assert reference[1]["status"] == "early_stopped"
    path = tmp_path / "run.npz"
    k = reference[1]["steps_run"] - 7
    fit_interrupted_at(monkeypatch, FACTORIES["MAF"](), k, x_train[:40], x_val, rng=0, checkpoint=path,
                       **{**OPTIONS, **options})
    flow = FACTORIES["MAF"]()
    assert_same_run(flow, flow.fit(x_train[:40], x_val, resume=path, **{**OPTIONS, **options}), reference)


@pytest.mark.parametrize("holdout", [False, True], ids=["x_val", "held-out-split"])
def test_a_crash_resumes_from_the_last_periodic_checkpoint_bit_identical(moons, monkeypatch, tmp_path, holdout):
    """A crash (here MemoryError at step 38) is not caught: the checkpoint of step 35 is what survives."""
    x_train, x_val = moons
    x_val = None if holdout else x_val
    reference = reference_run("MAF", x_train, x_val)
    path = tmp_path / "run.npz"
    with pytest.raises(MemoryError):
        fit_interrupted_at(monkeypatch, FACTORIES["MAF"](), 38, x_train, x_val, rng=0, checkpoint=path,
                           checkpoint_every=7, exception=MemoryError, **OPTIONS)
    with onp.load(path, allow_pickle=False) as archive:
        assert json.loads(str(archive["__run__"]))["step"] == 35
    flow = FACTORIES["MAF"]()
    assert_same_run(flow, flow.fit(x_train, x_val, resume=path, **OPTIONS), reference)


def test_resume_restores_the_standardize_layer_of_the_checkpoint(moons, monkeypatch, tmp_path):
    x_train, x_val = moons
    path = tmp_path / "run.npz"
    first = FACTORIES["MAF"]()
    fit_interrupted_at(monkeypatch, first, 12, x_train * 3 + 1, x_val, rng=0, checkpoint=path, **OPTIONS)
    fresh = FACTORIES["MAF"]()
    assert not fresh.layers[0].fitted
    fresh.fit(x_train * 3 + 1, x_val, resume=path, **{**OPTIONS, "steps": 60})
    assert fresh.layers[0].fitted and onp.array_equal(fresh.layers[0].shift, first.layers[0].shift)


def test_resuming_a_finished_run_returns_its_history_without_training(moons, tmp_path):
    x_train, x_val = moons
    path = tmp_path / "run.npz"
    flow = FACTORIES["MAF"]()
    history = flow.fit(x_train, x_val, rng=0, checkpoint=path, **OPTIONS)
    again = FACTORIES["MAF"]()
    resumed = again.fit(x_train, x_val, resume=path, **OPTIONS)
    assert without_time(resumed) == without_time(history) and resumed["status"] == "completed"
    assert onp.array_equal(flat(again), flat(flow))


def with_a_harmless_overflow(flow):
    """The flow, whose log-density now overflows an exp at every evaluation without changing its value."""
    log_density = flow.log_density
    flow.log_density = lambda params, x, y=None: log_density(params, x, y) + onp.minimum(onp.exp(1000.0), 0.0)
    return flow


def test_the_float_warnings_of_a_run_survive_an_interrupt_and_a_resume_bit_identical(moons, monkeypatch, tmp_path):
    x_train, x_val = moons
    done, path = tmp_path / "done.npz", tmp_path / "run.npz"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the summary warning of each run
        flow = with_a_harmless_overflow(FACTORIES["MAF"]())
        expected = flow.fit(x_train, x_val, rng=0, checkpoint=done, **OPTIONS)
        reference = flat(flow), expected
        fit_interrupted_at(monkeypatch, with_a_harmless_overflow(FACTORIES["MAF"]()), 33, x_train, x_val, rng=0,
                           checkpoint=path, **OPTIONS)
        resumed = with_a_harmless_overflow(FACTORIES["MAF"]())
        history = resumed.fit(x_train, x_val, resume=path, **OPTIONS)
        finished = FACTORIES["MAF"]().fit(x_train, x_val, resume=done, **OPTIONS)  # no training: no new warnings
    assert {(r["during"], r["count"]) for r in reference[1]["warnings"]} == {("loss and gradient", 60),
                                                                            ("validation", 13)}
    assert_same_run(resumed, history, reference)  # history["warnings"] included
    assert without_time(finished) == without_time(reference[1])


def test_a_checkpoint_written_before_history_warnings_existed_resumes_with_none(moons, checkpoint, tmp_path):
    x_train, x_val = moons

    def without_warnings(arrays):
        run = json.loads(str(arrays["__run__"]))
        del run["warnings"]
        return {**arrays, "__run__": onp.array(json.dumps(run))}

    history = FACTORIES["MAF"]().fit(x_train, x_val, resume=rewrite(checkpoint, tmp_path, without_warnings),
                                     **OPTIONS)
    assert history["status"] == "completed" and history["warnings"] == []


def test_a_generator_passed_to_fit_moves_on_as_if_it_drew_every_epoch(moons):
    x_train, x_val = moons
    rng = onp.random.default_rng(5)
    FACTORIES["MAF"]().fit(x_train, x_val, rng=rng, **OPTIONS)
    expected = onp.random.default_rng(5)
    for _ in range(1 + (OPTIONS["steps"] - 1) // (300 // 64)):  # the first order, then one per new epoch
        expected.permutation(300)
    assert rng.bit_generator.state == expected.bit_generator.state


# --- the checkpoint file --------------------------------------------------------------------------------
@pytest.fixture
def checkpoint(moons, monkeypatch, tmp_path):
    x_train, x_val = moons
    path = tmp_path / "run.npz"
    fit_interrupted_at(monkeypatch, FACTORIES["MAF"](), 20, x_train, x_val, rng=0, checkpoint=path, **OPTIONS)
    return path


def test_the_checkpoint_is_plain_arrays_with_its_own_format_and_json_generator_state(checkpoint):
    with onp.load(checkpoint, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    assert str(arrays["__format__"]) == npz.CHECKPOINT_FORMAT_NAME == "maf_numpy-checkpoint"
    assert int(arrays["__version__"]) == CHECKPOINT_VERSION
    assert not any(value.dtype.hasobject for value in arrays.values())
    for key in ("theta", "m", "v", "best_theta", "order", "train_losses", "history/val_nll", "state/0/shift"):
        assert key in arrays, key
    rng_state = json.loads(str(arrays["rng_state"]))
    assert rng_state["bit_generator"] == "PCG64" and isinstance(rng_state["state"]["state"], int)
    run = json.loads(str(arrays["__run__"]))
    assert run["step"] == 19 and run["history"]["status"] == "interrupted"
    assert run["options"]["batch_size"] == 64 and run["data"]["x_train"]["shape"] == [300, 2]


def test_load_refuses_a_checkpoint_and_says_how_to_use_it(checkpoint):
    with pytest.raises(ValueError, match="training checkpoint.*not a model file.*resume=path"):
        mf.load(checkpoint)


def test_resume_refuses_a_model_file_and_says_how_to_load_it(moons, tmp_path):
    x_train, x_val = moons
    flow = FACTORIES["MAF"]()
    flow.save(tmp_path / "model.npz")
    with pytest.raises(ValueError, match="^resume: .*model file written by save.*not a training checkpoint"):
        flow.fit(x_train, x_val, resume=tmp_path / "model.npz", **OPTIONS)


def rewrite(path, tmp_path, change):
    with onp.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    out = tmp_path / "changed.npz"
    onp.savez(out, **change(arrays))
    return out


REFUSALS = {  # id: (flow factory, change to the data, fit options, change to the file, message)
    "other-model-configuration": (lambda: mf.MAF(2, num_layers=3, hidden=(8,), rng=0), None, {}, None,
                                  "^resume: .*written for another model"),
    "other-model-class": (FACTORIES["RealNVP"], None, {}, None, "^resume: .*written for another model"),
    "other-data-shape": (None, lambda x: x[:200], {}, None, r"^resume: x_train has shape \(200, 2\).*\(300, 2\)"),
    "other-data-values": (None, lambda x: x + 1.0, {}, None, "^resume: x_train has the shape .* but other values"),
    "other-batch-size": (None, None, {"batch_size": 32}, None, "^resume: the checkpoint's run used batch_size=64"),
    "other-steps": (None, None, {"steps": 80}, None, "^resume: the checkpoint's run used steps=60"),
    "x_val-none-now": (None, None, {"x_val": None}, None, "^resume: the checkpoint's run was given x_val=an array"),
    "newer-version": (None, None, {}, lambda a: {**a, "__version__": onp.array(CHECKPOINT_VERSION + 1)},
                      "^resume: .*checkpoint version 2; this maf_numpy reads version 1"),
    "not-ours": (None, None, {}, lambda a: {**a, "__format__": onp.array("nflows")},
                 "^resume: .*not a maf_numpy checkpoint"),
    "damaged-run-json": (None, None, {}, lambda a: {**a, "__run__": onp.array("{oops")}, "^resume: .*'__run__'"),
    "damaged-float-warnings": (None, None, {}, lambda a: {**a, "__run__": onp.array(json.dumps(
        {**json.loads(str(a["__run__"])), "warnings": [{"message": 1}]}))}, "^resume: .*'warnings' entry"),
    "unknown-lr-schedule": (None, None, {}, lambda a: {**a, "__run__": onp.array(json.dumps(
        {**json.loads(str(a["__run__"])), "options": {**json.loads(str(a["__run__"]))["options"],
                                                      "lr_schedule": "linear"}}))},
        "^resume: the checkpoint's lr_schedule must be 'cooldown' or 'cosine', got 'linear'"),
    "theta-wrong-shape": (None, None, {}, lambda a: {**a, "theta": a["theta"][:-1]}, "^resume: .*'theta'"),
    "order-not-a-permutation": (None, None, {}, lambda a: {**a, "order": onp.zeros_like(a["order"])},
                                "^resume: .*'order' is not a permutation"),
    "bad-generator-state": (None, None, {}, lambda a: {**a, "rng_state": onp.array('{"bit_generator": "Evil"}')},
                            "^resume: .*'rng_state'"),
    "negative-standardize-scale": (None, None, {}, lambda a: {**a, "state/0/scale": -onp.ones(2)},
                                   "^resume: .*'state/0/scale' must be positive"),
    "missing-layer-state": (None, None, {}, lambda a: {k: v for k, v in a.items() if k != "state/1/degrees_0"},
                            "^resume: .*lacks the layer state 'state/1/degrees_0'"),
    "object-array": (None, None, {}, lambda a: {**a, "m": onp.array([None], dtype=object)},
                     "^resume: .*object array.*never unpickles"),
}


@pytest.mark.parametrize("factory, data, options, change, message", REFUSALS.values(), ids=REFUSALS.keys())
def test_resume_refuses_a_checkpoint_of_another_run_or_a_damaged_one(moons, checkpoint, tmp_path, factory, data,
                                                                      options, change, message):
    x_train, x_val = moons
    flow = (factory or FACTORIES["MAF"])()
    before = flat(flow).copy()
    path = checkpoint if change is None else rewrite(checkpoint, tmp_path, change)
    options = {**OPTIONS, "x_val": x_val, **options}
    with pytest.raises(ValueError, match=message):
        flow.fit(x_train if data is None else data(x_train), resume=path, **options)
    assert onp.array_equal(flat(flow), before) and not flow.layers[0].fitted  # refused before any change


@pytest.mark.parametrize("keep", [0.0, 0.5, 0.9], ids=["empty", "half", "last-10%-missing"])
def test_resume_refuses_a_truncated_checkpoint(moons, checkpoint, tmp_path, keep):
    x_train, x_val = moons
    content = checkpoint.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(content[:int(len(content) * keep)])
    with pytest.raises(ValueError, match="^resume: .*(truncated or damaged|not a maf_numpy checkpoint)"):
        FACTORIES["MAF"]().fit(x_train, x_val, resume=truncated, **OPTIONS)


BAD_ARGUMENTS = {
    "resume-missing-file": ({"resume": "nowhere.npz"}, FileNotFoundError, "^resume: no maf_numpy checkpoint"),
    "resume-not-a-path": ({"resume": 3}, TypeError, "^resume must be a str or os.PathLike, got int"),
    "checkpoint-not-a-path": ({"checkpoint": 3.5}, TypeError, "^checkpoint must be a str or os.PathLike"),
    "checkpoint-in-a-missing-folder": ({"checkpoint": "no/such/folder/run.npz"}, ValueError,
                                       "^checkpoint must be a path in an existing folder"),
    "checkpoint_every-without-checkpoint": ({"checkpoint_every": 5}, ValueError,
                                            "^checkpoint_every needs checkpoint=path"),
    "checkpoint_every-zero": ({"checkpoint": "run.npz", "checkpoint_every": 0}, ValueError,
                              "^checkpoint_every must be >= 1"),
    "checkpoint_every-float": ({"checkpoint": "run.npz", "checkpoint_every": 2.5}, TypeError,
                               "^checkpoint_every must be an int"),
}


@pytest.mark.parametrize("options, error, message", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_bad_checkpoint_arguments_are_refused_naming_them(moons, tmp_path, monkeypatch, options, error, message):
    monkeypatch.chdir(tmp_path)
    x_train, x_val = moons
    with pytest.raises(error, match=message):
        FACTORIES["MAF"]().fit(x_train, x_val, **{**OPTIONS, **options})
    assert os.listdir(tmp_path) == []


# --- atomic writes: a crash at any moment leaves the previous checkpoint readable ------------------------
def crash_in(where):
    """Patches that make the next checkpoint write die at one moment: inside np.savez after half the
    bytes, at fsync, or at the rename."""
    def savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError("disk full (simulated)")

    def fail(*args, **kwargs):
        raise OSError(f"{where} failed (simulated)")

    return {"savez": (npz.np, "savez", savez), "fsync": (npz.os, "fsync", fail),
            "replace": (npz.os, "replace", fail)}[where]


@pytest.mark.parametrize("where", ["savez", "fsync", "replace"])
def test_a_crash_while_writing_a_checkpoint_leaves_the_previous_one_readable(moons, checkpoint, monkeypatch,
                                                                             tmp_path, where):
    x_train, x_val = moons
    before = checkpoint.read_bytes()
    module, name, replacement = crash_in(where)
    with monkeypatch.context() as patch:
        patch.setattr(module, name, replacement)
        with pytest.raises(OSError, match="simulated"):
            FACTORIES["MAF"]().fit(x_train, x_val, resume=checkpoint, checkpoint=checkpoint, **OPTIONS)
    assert checkpoint.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["run.npz"]  # no temporary file left behind
    flow = FACTORIES["MAF"]()
    assert flow.fit(x_train, x_val, resume=checkpoint, **OPTIONS)["status"] == "completed"


def test_save_is_atomic_too(tmp_path, monkeypatch):
    flow = FACTORIES["MAF"]()
    flow.save(tmp_path / "model.npz")
    before = (tmp_path / "model.npz").read_bytes()
    with monkeypatch.context() as patch:
        patch.setattr(npz.os, "replace", crash_in("replace")[2])
        with pytest.raises(OSError):
            FACTORIES["RealNVP"]().save(tmp_path / "model.npz")
    assert (tmp_path / "model.npz").read_bytes() == before and os.listdir(tmp_path) == ["model.npz"]
    assert isinstance(mf.load(tmp_path / "model.npz"), mf.MAF)


def _jitter(x_batch, rng):
    """A stand-in for dequantisation: fresh noise at every call."""
    return x_batch + 0.05 * rng.standard_normal(x_batch.shape)


@pytest.mark.parametrize("holdout", [False, True], ids=["x_val", "held-out-split"])
def test_a_run_with_augmentation_and_a_context_resumes_bit_identical(moons, monkeypatch, tmp_path, holdout):
    """The per-step generators of ``augment`` (and of a flow's training loss) derive from the run's starting
    generator state, which the checkpoint holds: a resumed run draws the same noise at every step."""
    x_train, x_val = moons
    y_train, y_val = onp.eye(2)[(x_train[:, 1] > 0).astype(int)], onp.eye(2)[(x_val[:, 1] > 0).astype(int)]
    data = (x_train, y_train) if holdout else (x_train, y_train, x_val, y_val)
    options = {**OPTIONS, "augment": _jitter}

    def make():
        return mf.ConditionalMAF(2, 2, num_layers=2, hidden=(8,), rng=0)

    reference = make()
    expected = reference.fit(*data, rng=0, **options)
    path = tmp_path / "run.npz"
    interrupted = fit_interrupted_at(monkeypatch, make(), 20, *data, rng=0, checkpoint=path, **options)
    assert interrupted["status"] == "interrupted"
    flow = make()
    assert_same_run(flow, flow.fit(*data, resume=path, **options), (flat(reference), expected))
