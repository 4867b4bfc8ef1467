"""save / load: a .npz with no pickle inside, a format name and version, and the configuration.

A loaded flow must be the same model bit for bit (class, configuration, parameters, structure, and so
every number it computes), and ``load`` must refuse anything else with an error that says what is wrong,
without ever unpickling.
"""

import json
import pickle

import numpy as onp
import pytest

import maf_numpy as mf
from maf_numpy import datasets, npz

D = 3

FACTORIES = {
    "MADE-sequential": lambda s: mf.MADE(D, hidden=(8, 8), standardize=s, rng=1),
    "MADE-random-order-random-degrees": lambda s: mf.MADE(D, hidden=(8, 8), order="random",
                                                          hidden_degrees="random", standardize=s, rng=2),
    "MAF-alternate": lambda s: mf.MAF(D, num_layers=3, hidden=(8, 8), standardize=s, rng=3),
    "MAF-random-orders-random-degrees": lambda s: mf.MAF(D, num_layers=3, hidden=(8,), orders="random",
                                                         hidden_degrees="random", standardize=s, rng=4),
    "IAF": lambda s: mf.IAF(D, num_layers=2, hidden=(8, 8), activation="tanh", standardize=s, rng=5),
    "RealNVP": lambda s: mf.RealNVP(D, num_layers=3, hidden=(8, 8), standardize=s, rng=6),
}


def data(n=200, seed=0):
    rng = onp.random.default_rng(seed)
    return rng.normal(0.0, 1.0, size=(n, D)) @ onp.array([[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.5]]) + 3.0


def build(name, standardize, fitted):
    flow = FACTORIES[name](standardize)
    if fitted:  # changes the parameters and fits the Standardize layer
        flow.fit(data(), steps=15, batch_size=64, lr=1e-2, rng=0, progress=False)
    return flow


def flat(tree, prefix="params"):
    """{path: array} of a parameter pytree, to compare two pytrees entry by entry."""
    if isinstance(tree, dict):
        return {k: v for key, value in tree.items() for k, v in flat(value, f"{prefix}/{key}").items()}
    if isinstance(tree, (list, tuple)):
        return {k: v for i, value in enumerate(tree) for k, v in flat(value, f"{prefix}/{i}").items()}
    return {prefix: tree}


@pytest.fixture
def saved(tmp_path):
    """A fitted MAF saved to disk, and the arrays of its file (to tamper with)."""
    flow = build("MAF-alternate", True, True)
    path = tmp_path / "maf.npz"
    flow.save(path)
    with onp.load(path, allow_pickle=False) as archive:
        arrays = {key: archive[key] for key in archive.files}
    return flow, path, arrays


# --- round trip ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("fitted", [False, True], ids=["fresh", "after-fit"])
@pytest.mark.parametrize("standardize", [True, False], ids=["standardize", "no-standardize"])
@pytest.mark.parametrize("name", FACTORIES)
def test_save_then_load_gives_the_same_model_bit_for_bit(name, standardize, fitted, tmp_path):
    flow = build(name, standardize, fitted)
    path = tmp_path / "model.npz"
    flow.save(path)
    loaded = mf.load(path)

    assert type(loaded) is type(flow)
    assert loaded.config == flow.config
    original, restored = flat(flow.params), flat(loaded.params)
    assert original.keys() == restored.keys()
    for key in original:
        assert restored[key].dtype == original[key].dtype, key
        assert onp.array_equal(restored[key], original[key]), key
    for layer, twin in zip(flow.layers, loaded.layers):  # structure: degrees, standardisation
        state, state_loaded = layer.get_state(), twin.get_state()
        assert state.keys() == state_loaded.keys()
        for key in state:
            assert onp.array_equal(state[key], state_loaded[key]), key

    x = data(50, seed=1)
    assert onp.array_equal(loaded.log_prob(x), flow.log_prob(x))
    assert onp.array_equal(loaded.sample(20, rng=0), flow.sample(20, rng=0))


def test_a_fitted_standardize_layer_survives_the_round_trip(saved):
    flow, path, _ = saved
    loaded = mf.load(path)
    assert flow.layers[0].fitted and loaded.layers[0].fitted
    assert onp.array_equal(loaded.layers[0].shift, flow.layers[0].shift)
    assert onp.array_equal(loaded.layers[0].scale, flow.layers[0].scale)


def test_the_file_is_plain_arrays_readable_without_pickle(saved):
    _, path, _ = saved
    with onp.load(path, allow_pickle=False) as archive:
        keys = set(archive.files)
        dtypes = {key: archive[key].dtype for key in archive.files}  # would raise on an object array
    assert {"__format__", "__version__", "__config__"} <= keys
    assert not any(dtype.hasobject for dtype in dtypes.values())
    assert any(key.startswith("params/") for key in keys) and any(key.startswith("state/") for key in keys)


def test_the_header_names_the_format_version_and_configuration(saved):
    flow, _, arrays = saved
    assert str(arrays["__format__"]) == npz.FORMAT_NAME
    assert int(arrays["__version__"]) == npz.FORMAT_VERSION
    header = json.loads(str(arrays["__config__"]))
    assert header == {"class": "MAF", "config": json.loads(json.dumps(flow.config))}


def test_load_accepts_a_pathlib_path_and_a_path_without_the_npz_suffix(tmp_path):
    flow = build("RealNVP", True, False)
    flow.save(tmp_path / "model")  # NumPy appends .npz
    assert (tmp_path / "model.npz").exists()
    x = data(10)
    assert onp.array_equal(mf.load(tmp_path / "model").log_prob(x), flow.log_prob(x))
    assert onp.array_equal(mf.load(str(tmp_path / "model.npz")).log_prob(x), flow.log_prob(x))


def test_a_loaded_model_can_be_trained_further(saved):
    _, path, _ = saved
    loaded = mf.load(path)
    history = loaded.fit(data(), steps=5, batch_size=64, rng=0, progress=False)
    assert history["steps_run"] == 5 and onp.all(onp.isfinite(loaded.log_prob(data(10))))


def test_save_refuses_something_that_is_not_a_flow(tmp_path):
    with pytest.raises(TypeError, match="cannot save a flow of class object: it is not registered"):
        mf.save(object(), tmp_path / "x.npz")


# --- refusals -----------------------------------------------------------------------------------------
def test_load_refuses_an_npz_that_is_not_ours(tmp_path):
    path = tmp_path / "other.npz"
    onp.savez(path, weights=onp.zeros((3, 3)), bias=onp.zeros(3))
    with pytest.raises(ValueError, match="not a maf_numpy model file.*__format__"):
        mf.load(path)


def test_load_refuses_a_newer_format_version(saved, tmp_path):
    _, _, arrays = saved
    path = tmp_path / "future.npz"
    onp.savez(path, **{**arrays, "__version__": onp.array(npz.FORMAT_VERSION + 1)})
    with pytest.raises(ValueError, match=f"format version {npz.FORMAT_VERSION + 1}.*reads version "
                                         f"{npz.FORMAT_VERSION}"):
        mf.load(path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.0], ids=["half", "last-10%-missing", "empty"])
def test_load_refuses_a_truncated_file(saved, tmp_path, keep):
    _, path, _ = saved
    content = path.read_bytes()
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(content[:int(len(content) * keep)])
    with pytest.raises(ValueError, match="truncated or damaged"):
        mf.load(truncated)


UNPICKLED = []


def _record_unpickling():
    UNPICKLED.append(True)
    return "unpickled!"


class Booby:
    """An object whose unpickling leaves a trace: load must never trigger it."""

    def __reduce__(self):
        return (_record_unpickling, ())


@pytest.mark.parametrize("entry", ["evil", "__format__", "params/1/W/0"])
def test_load_refuses_an_object_array_and_never_unpickles(saved, tmp_path, entry):
    _, _, arrays = saved
    path = tmp_path / "pickled.npz"
    onp.savez(path, **{**arrays, entry: onp.array([Booby()], dtype=object)})
    UNPICKLED.clear()
    with pytest.raises(ValueError, match="object array.*never unpickles"):
        mf.load(path)
    assert UNPICKLED == []
    with onp.load(path, allow_pickle=True) as archive:  # the trap is live: pickle would have sprung it
        archive[entry]
    assert UNPICKLED == [True]
    UNPICKLED.clear()


def test_load_refuses_a_pickle_file_without_unpickling_it(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps(Booby()))
    UNPICKLED.clear()
    with pytest.raises(ValueError, match="not a maf_numpy model file.*pickle"):
        mf.load(path)
    assert UNPICKLED == []


def test_load_refuses_a_folder(tmp_path):
    with pytest.raises(ValueError, match="not a readable .npz model file"):
        mf.load(tmp_path)


def test_load_refuses_a_training_checkpoint_and_points_to_resume(tmp_path):
    flow = FACTORIES["MAF-alternate"](True)
    flow.fit(data(), steps=3, rng=0, progress=False, checkpoint=tmp_path / "run.npz")
    with pytest.raises(ValueError, match="training checkpoint .*not a model file.*resume=path"):
        mf.load(tmp_path / "run.npz")


def test_save_replaces_the_file_atomically_and_leaves_no_temporary_file(saved, tmp_path):
    flow, path, _ = saved
    mf.RealNVP(D, num_layers=2, hidden=(4,), rng=0).save(path)  # over an existing file
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]
    assert isinstance(mf.load(path), mf.RealNVP)


def test_save_refuses_a_path_that_is_not_a_path():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, got int"):
        mf.save(mf.MAF(D, num_layers=1, hidden=(4,), rng=0), 3)


def test_load_refuses_a_single_npy_array(tmp_path):
    path = tmp_path / "array.npy"
    onp.save(path, onp.zeros(3))
    with pytest.raises(ValueError, match="single .npy array"):
        mf.load(path)


def test_load_says_which_parameter_is_missing(saved, tmp_path):
    _, _, arrays = saved
    path = tmp_path / "missing.npz"
    onp.savez(path, **{key: value for key, value in arrays.items() if key != "params/2/W_alpha"})
    with pytest.raises(ValueError, match="lacks the parameter 'params/2/W_alpha'"):
        mf.load(path)


def test_a_missing_file_raises_file_not_found_naming_the_path(tmp_path):
    path = tmp_path / "nowhere.npz"
    with pytest.raises(FileNotFoundError, match="no maf_numpy model file at .*nowhere.npz"):
        mf.load(path)
    with pytest.raises(FileNotFoundError, match=r"nowhere'.*nor at .*nowhere.npz"):
        mf.load(tmp_path / "nowhere")


def test_load_refuses_a_path_that_is_not_a_path():
    with pytest.raises(TypeError, match="path must be a str or os.PathLike"):
        mf.load(3)


def _replace(key, value):
    return lambda arrays: {**arrays, key: value}


def _drop(key):
    return lambda arrays: {k: v for k, v in arrays.items() if k != key}


TAMPERING = {  # id: (change to the file's arrays, what the message must say)
    "version-not-an-int": (_replace("__version__", onp.array("one")), "no valid '__version__'"),
    "no-version": (_drop("__version__"), "no valid '__version__'"),
    "older-version": (_replace("__version__", onp.array(0)), "format version 0"),
    "format-of-someone-else": (_replace("__format__", onp.array("nflows")), "not a maf_numpy model file"),
    "no-config": (_drop("__config__"), "no valid '__config__'"),
    "config-not-json": (_replace("__config__", onp.array("{not json")), "no valid '__config__'"),
    "unknown-class": (_replace("__config__", onp.array('{"class": "Glow", "config": {}}')),
                      "unknown model class 'Glow'"),
    "config-with-a-bad-argument": (_replace("__config__", onp.array(
        '{"class": "MAF", "config": {"dim": 3, "num_layers": 3, "hidden": [8, 8], "colour": "red"}}')),
        "configuration in the file is not valid for MAF.*colour"),
    "config-that-disagrees-with-the-arrays": (_replace("__config__", onp.array(
        '{"class": "MAF", "config": {"dim": 3, "num_layers": 3, "hidden": [16, 16]}}')),
        "shape"),
    "parameter-of-the-wrong-shape": (_replace("params/1/W/0", onp.zeros((4, 8))),
                                     r"'params/1/W/0' has shape \(4, 8\).*needs \(3, 8\)"),
    "integer-parameter": (_replace("params/1/b_mu", onp.zeros(3, dtype=int)), "'params/1/b_mu' has dtype int"),
    "nan-parameter": (_replace("params/1/b_mu", onp.full(3, onp.nan)), "'params/1/b_mu' holds NaN"),
    "extra-parameter": (_replace("params/9/W/0", onp.zeros(3)), r"does not explain: \['params/9/W/0'\]"),
    "missing-degrees": (_drop("state/2/degrees_0"), "lacks the layer state 'state/2/degrees_0'"),
    "input-degrees-not-a-permutation": (_replace("state/1/degrees_0", onp.array([1, 1, 2])),
                                        "'state/1/degrees_0' must be a permutation of 1..3"),
    "hidden-degree-out-of-range": (_replace("state/1/degrees_1", onp.full(8, 7)),
                                   "'state/1/degrees_1' .* must lie in 0..2"),
    "negative-standardize-scale": (_replace("state/0/scale", -onp.ones(3)), "'state/0/scale' must be positive"),
}


@pytest.mark.parametrize("change, message", TAMPERING.values(), ids=TAMPERING.keys())
def test_load_refuses_a_tampered_file_and_says_what_is_wrong(saved, tmp_path, change, message):
    _, _, arrays = saved
    path = tmp_path / "tampered.npz"
    onp.savez(path, **change(arrays))
    with pytest.raises(ValueError, match=message):
        mf.load(path)


def test_load_never_raises_anything_but_value_error_on_corrupted_bytes(saved, tmp_path):
    """Random byte damage anywhere in the file: a ValueError (or, if the damage hit nothing that matters,
    the same model), never a zipfile / zlib / KeyError / NotImplementedError from the inside."""
    flow, path, _ = saved
    content = path.read_bytes()
    rng = onp.random.default_rng(0)
    x = data(5)
    damaged = tmp_path / "damaged.npz"
    for _ in range(60):
        corrupt = bytearray(content)
        for position in rng.integers(0, len(content), size=rng.integers(1, 8)):
            corrupt[position] = int(rng.integers(256))
        damaged.write_bytes(bytes(corrupt))
        try:
            loaded = mf.load(damaged)
        except ValueError:
            continue
        assert onp.array_equal(loaded.log_prob(x), flow.log_prob(x))


def test_toy_data_model_round_trip_keeps_its_density_in_data_units(tmp_path):
    """End to end on a named toy: the loaded model gives the same held-out NLL."""
    x = datasets.toy("moons", 500, rng=0)
    flow = mf.MAF(2, num_layers=2, hidden=(16,), rng=0)
    flow.fit(x, steps=20, rng=0, progress=False)
    flow.save(tmp_path / "moons.npz")
    x_test = datasets.toy("moons", 200, rng=1)
    assert onp.array_equal(mf.load(tmp_path / "moons.npz").log_prob(x_test), flow.log_prob(x_test))
