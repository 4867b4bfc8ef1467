"""The dtype option: float32 flows compute, differentiate, train, save and load in float32."""

import autograd.numpy as anp
import numpy as onp
import pytest
from autograd import grad
from autograd.misc import flatten

import maf_numpy as mf

FLOW_CLASSES = {
    "MAF": lambda dtype, **kw: mf.MAF(3, num_layers=2, hidden=(8, 8), dtype=dtype, **kw),
    "IAF": lambda dtype, **kw: mf.IAF(3, num_layers=2, hidden=(8, 8), dtype=dtype, **kw),
    "RealNVP": lambda dtype, **kw: mf.RealNVP(3, num_layers=2, hidden=(8, 8), dtype=dtype, **kw),
    "MADE": lambda dtype, **kw: mf.MADE(3, hidden=(8, 8), activation="tanh", dtype=dtype, **kw),
}


def leaf_dtypes(tree):
    """The set of dtypes of a pytree's arrays (autograd's flatten would promote them: see train.flat_vector)."""
    if isinstance(tree, (list, tuple)):
        return set().union(*map(leaf_dtypes, tree)) if tree else set()
    if isinstance(tree, dict):
        return set().union(*map(leaf_dtypes, tree.values())) if tree else set()
    return {onp.asarray(tree).dtype}


def fitted_pair(name):
    """A float64 flow with non-trivial weights and a fitted Standardize layer, and its float32 twin."""
    rng = onp.random.default_rng(0)
    flow64, flow32 = FLOW_CLASSES[name]("float64", rng=1), FLOW_CLASSES[name]("float32", rng=1)
    theta, unflatten = flatten(flow64.params)
    flow64.params = unflatten(theta + 0.2 * rng.standard_normal(theta.shape))
    flow32.params = flatten(flow32.params)[1](flatten(flow64.params)[0].astype(onp.float32))
    data = rng.normal(1.0, 2.0, size=(40, 3))
    flow64.layers[0].fit(data)
    flow32.layers[0].fit(data)
    return flow64, flow32


@pytest.mark.parametrize("name", FLOW_CLASSES)
def test_float32_flow_outputs_are_float32(name):
    _, flow = fitted_pair(name)
    x = onp.random.default_rng(2).standard_normal((5, 3))  # float64 input: cast at the boundary
    assert leaf_dtypes(flow.params) == {onp.dtype(onp.float32)}
    assert flow.log_prob(x).dtype == onp.float32
    assert flow.sample(4, rng=0).dtype == onp.float32
    for output in (*flow.forward(x), *flow.inverse(x)):
        assert output.dtype == onp.float32


@pytest.mark.parametrize("name", FLOW_CLASSES)
def test_float32_gradients_stay_float32(name):
    """The float32 trap: a float64 constant anywhere would silently turn the backward pass into float64."""
    _, flow = fitted_pair(name)
    x = onp.random.default_rng(3).standard_normal((6, 3)).astype(onp.float32)
    g = grad(lambda p: -anp.sum(flow.log_density(p, x)) / x.shape[0])(flow.params)
    assert leaf_dtypes(g) == {onp.dtype(onp.float32)}
    assert onp.all(onp.isfinite(mf.train.flat_vector(g, onp.float32)))


@pytest.mark.parametrize("name", FLOW_CLASSES)
def test_float32_and_float64_flows_with_the_same_weights_agree(name):
    flow64, flow32 = fitted_pair(name)
    x = onp.random.default_rng(4).standard_normal((20, 3))
    for a, b in [(flow64.log_prob(x), flow32.log_prob(x)), (flow64.sample(20, rng=5), flow32.sample(20, rng=5)),
                 (flow64.inverse(x)[0], flow32.inverse(x)[0])]:
        onp.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5 * onp.max(onp.abs(a)))


def test_fit_trains_in_float32_with_float32_adam_state(tmp_path):
    flow = mf.MAF(2, num_layers=2, hidden=(16,), rng=0, dtype="float32")
    x = onp.random.default_rng(0).standard_normal((300, 2)) * [1.0, 0.3] + [2.0, -1.0]
    history = flow.fit(x, steps=30, batch_size=64, progress=False, rng=0, checkpoint=tmp_path / "run.npz")
    assert history["status"] in ("completed", "early_stopped")
    assert onp.isfinite(history["best_val_nll"])
    assert leaf_dtypes(flow.params) == {onp.dtype(onp.float32)}
    with onp.load(tmp_path / "run.npz") as checkpoint:
        for key in ("theta", "m", "v", "best_theta"):
            assert checkpoint[key].dtype == onp.float32, key
    assert flow.layers[0].shift.dtype == onp.float32


def test_save_and_load_keep_float32(tmp_path):
    _, flow = fitted_pair("IAF")
    flow.save(tmp_path / "flow.npz")
    restored = mf.load(tmp_path / "flow.npz")
    assert restored.config["dtype"] == "float32" and restored.dtype == onp.float32
    assert leaf_dtypes(restored.params) == {onp.dtype(onp.float32)}
    x = onp.random.default_rng(6).standard_normal((5, 3))
    assert onp.array_equal(restored.log_prob(x), flow.log_prob(x))


@pytest.mark.parametrize("dtype", ["float16", "int64", "double", None, onp.int32, 32])
def test_bad_dtype_is_refused_naming_dtype(dtype):
    with pytest.raises(ValueError, match="dtype"):
        mf.MAF(2, dtype=dtype)


def test_numpy_dtype_objects_are_accepted_and_stored_by_name():
    assert mf.RealNVP(2, dtype=onp.float32).config["dtype"] == "float32"
    assert mf.MAF(2).config["dtype"] == "float64"
