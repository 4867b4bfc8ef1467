"""Flows of your own: composing layers and bases, their state, saving them, and training them your own way.

- ``mf.Flow(dim, layers, base=..., rng=...)`` composes library layers over a base density, prints what it is,
  and saves and loads bit for bit; a layer class of your own saves once registered, and not before.
- ``flow.state()`` / ``load_state`` / ``copy()`` carry params *and* layer state; assigning another flow's params
  to a flow whose state differs warns.
- ``fit(callback=..., weight_decay=..., sampler=...)`` and ``mf.Adam`` for custom loops.
"""

import inspect
import warnings

import autograd.numpy as anp
import numpy as onp
import pytest
from autograd import value_and_grad
from helpers import perturb

import maf_numpy as mf
from maf_numpy import transforms
from maf_numpy.mog import MADEMoGBase


def composed(base=None, rng=0):
    """A composition of every library layer family that needs no data: Standardize, MAF, batch norm, coupling."""
    layers = [transforms.Standardize(3), transforms.MAFLayer(3, (8,), order="random", rng=onp.random.default_rng(1)),
              transforms.BatchNorm(3), transforms.AffineCoupling(3, (6,), flip=True),
              transforms.MADECoupling(3, (5,)), transforms.IAFLayer(3, (7,), activation="tanh")]
    return mf.Flow(3, layers, base=base, rng=rng)


def fitted(flow, rng=2):
    rng = onp.random.default_rng(rng)
    flow.layers[0].fit(rng.normal(1.0, 2.0, size=(40, flow.dim)))
    flow.params = perturb(flow.params, rng, 0.2)
    if flow.needs_refresh:
        flow.refresh_state(rng.normal(1.0, 2.0, size=(40, flow.dim)))
    return flow


X = onp.random.default_rng(3).normal(1.0, 2.0, size=(6, 3))


def test_a_composed_flow_takes_an_int_seed_and_says_what_it_is():
    flow = composed(rng=0)
    assert onp.array_equal(mf.optim.flat_vector(flow.params, float),
                           mf.optim.flat_vector(composed(rng=0).params, float))
    text = repr(flow)
    for name in ("Flow(dim=3", "Standardize", "MAFLayer", "BatchNorm", "AffineCoupling", "MADECoupling", "IAFLayer",
                 "base=StandardNormal(D=3)"):
        assert name in text, text


@pytest.mark.parametrize("base", [None, mf.Logistic(3), "mog"], ids=["standard-normal", "logistic", "made-mog"])
def test_a_composed_flow_saves_and_loads_bit_for_bit(tmp_path, base):
    if base == "mog":
        base = MADEMoGBase(3, (6,), components=2, rng=onp.random.default_rng(4))
    flow = fitted(composed(base=base))
    flow.save(tmp_path / "flow.npz")
    loaded = mf.load(tmp_path / "flow.npz")
    assert type(loaded) is mf.Flow and repr(loaded) == repr(flow)
    assert onp.array_equal(loaded.log_prob(X), flow.log_prob(X))
    assert onp.array_equal(loaded.sample(5, rng=1), flow.sample(5, rng=1))


class SinhArcsinh:
    """A user's elementwise layer: x = sinh((arcsinh(z) + a) * exp(b)) per coordinate (Jones & Pewsey 2009)."""

    def __init__(self, D, dtype="float64"):
        self.D, self.dtype, self.calls = D, onp.dtype(dtype), 0
        self.input_degrees = onp.ones(D, dtype=int)

    def init_params(self, rng):
        return {"a": onp.zeros(self.D), "b": onp.zeros(self.D)}

    def forward(self, params, z):
        u = (anp.arcsinh(z) + params["a"]) * anp.exp(params["b"])
        x = anp.sinh(u)
        log_det = anp.sum(anp.log(anp.cosh(u)) + params["b"] - 0.5 * anp.log1p(z**2), axis=-1)
        return x, log_det

    def inverse(self, params, x):
        z = anp.sinh(anp.arcsinh(x) * anp.exp(-params["b"]) - params["a"])
        return z, -self.forward(params, z)[1]

    def config(self):
        return {"D": self.D, "dtype": self.dtype.name}

    def get_state(self):
        return {}

    def set_state(self, state):
        pass


def test_a_layer_of_your_own_must_be_registered_before_its_flow_can_be_saved(tmp_path):
    flow = mf.Flow(2, [transforms.MAFLayer(2, (4,)), SinhArcsinh(2)], rng=0)
    flow.params = perturb(flow.params, onp.random.default_rng(0), 0.3)
    with pytest.raises(TypeError, match=r"SinhArcsinh: it is not registered.*register_layer\(SinhArcsinh\)"):
        flow.save(tmp_path / "mine.npz")
    assert mf.register_layer(SinhArcsinh) is SinhArcsinh
    flow.save(tmp_path / "mine.npz")
    loaded = mf.load(tmp_path / "mine.npz")
    x = onp.random.default_rng(1).standard_normal((4, 2))
    assert onp.array_equal(loaded.log_prob(x), flow.log_prob(x))
    onp.testing.assert_allclose(loaded.forward(loaded.inverse(x)[0])[0], x, atol=1e-10)


def test_registering_something_that_is_not_a_layer_names_what_it_lacks():
    class NotALayer:
        def forward(self, params, z):
            return z, 0

    with pytest.raises(TypeError, match=r"NotALayer cannot be registered as a layer: it lacks \['init_params', "
                                        r"'inverse', 'config', 'get_state', 'set_state'\]"):
        mf.register_layer(NotALayer)
    with pytest.raises(TypeError, match="layers\\[0\\] \\(NotALayer\\) does not follow the layer protocol"):
        mf.Flow(2, [NotALayer()], rng=0)


def test_state_load_state_and_copy_carry_params_and_layer_state():
    flow = fitted(mf.MAF(3, num_layers=2, hidden=(8,), batch_norm=True, rng=0))
    expected = flow.log_prob(X)
    duplicate = flow.copy()
    assert onp.array_equal(duplicate.log_prob(X), expected)
    duplicate.params[1]["b_mu"][:] += 1.0  # independent arrays
    assert onp.array_equal(flow.log_prob(X), expected)
    fresh = mf.MAF(3, num_layers=2, hidden=(8,), batch_norm=True, rng=5)
    state = flow.state()
    assert set(state) == {"params", "layers", "base"} and state["layers"][0]["fitted"]
    fresh.load_state(state)
    assert onp.array_equal(fresh.log_prob(X), expected)
    with pytest.raises(ValueError, match="params"):
        mf.MAF(3, num_layers=3, hidden=(8,), rng=0).load_state(state)


def test_assigning_a_trained_flows_params_to_an_unfitted_flow_warns():
    """The silent trap: the Standardize shift and scale are layer state, not params."""
    trained = fitted(mf.MAF(2, num_layers=2, hidden=(8,), rng=0))
    new = mf.MAF(2, num_layers=2, hidden=(8,), rng=0)
    with pytest.warns(UserWarning, match="layer state differs.*load_state\\(other.state\\(\\)\\)"):
        new.params = trained.params
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        twin = mf.MAF(2, num_layers=2, hidden=(8,), rng=0)
        twin.load_state(trained.state())  # the one obvious way: no warning
        twin.params = trained.params  # the same state now: no warning either
    assert onp.array_equal(twin.log_prob(X[:, :2]), trained.log_prob(X[:, :2]))


def test_backward_is_not_a_method_and_the_error_points_to_forward_and_inverse():
    with pytest.raises(AttributeError, match="inverse\\(x\\).*normalises.*forward\\(z\\).*generates"):
        _ = mf.MAF(2, rng=0).backward


def test_help_on_fit_shows_its_real_signature_and_documentation():
    flow = mf.MAF(2, rng=0)
    parameters = inspect.signature(flow.fit).parameters
    assert list(parameters)[:2] == ["x_train", "x_val"]
    assert {"steps", "lr", "callback", "weight_decay", "sampler", "ema"} <= set(parameters)
    assert "maximum likelihood" in flow.fit.__doc__
    assert mf.plotting.__name__ == "maf_numpy.plotting"


def test_the_callback_sees_every_validation_and_can_stop_the_run():
    x = mf.datasets.toy("moons", 400, rng=0)
    flow = mf.MAF(2, num_layers=2, hidden=(8,), rng=0)
    seen = []

    def callback(step, history, current):
        seen.append((step, history["val_nll"][-1], current.log_prob(x[:50]).mean()))
        return step < 30

    history = flow.fit(x, steps=100, val_every=10, progress=False, rng=0, callback=callback)
    assert [step for step, _, _ in seen] == [10, 20, 30]
    assert history["status"] == "stopped" and history["steps_run"] == 30
    assert "callback" in history["message"]


def test_decoupled_weight_decay_follows_adamw():
    """theta <- adam(theta) - lr * weight_decay * theta, with the same Adam update as without decay."""
    params = [{"w": onp.array([1.0, -2.0, 3.0])}]
    g = [{"w": onp.array([0.5, 0.5, -1.0])}]
    plain, decayed = mf.Adam(params, lr=0.1), mf.Adam(params, lr=0.1, weight_decay=0.01)
    for _ in range(3):
        before = decayed.theta.copy()
        adam_only = mf.optim.adam_step(before, mf.optim.flat_vector(g, float), decayed.m, decayed.v, decayed.t + 1,
                                       0.1)[0]
        decayed.step(g)
        plain.step(g)
        onp.testing.assert_array_equal(decayed.theta, adam_only - 0.1 * 0.01 * before)
    assert onp.all(onp.abs(decayed.theta) < onp.abs(plain.theta))
    x = mf.datasets.toy("moons", 300, rng=0)
    history = mf.MAF(2, num_layers=1, hidden=(8,), rng=0).fit(x, steps=20, progress=False, rng=0, weight_decay=1e-2)
    assert history["status"] == "completed"
    with pytest.raises(ValueError, match="weight_decay"):
        mf.MAF(2, rng=0).fit(x, steps=2, weight_decay=-1.0)


def test_a_sampler_draws_fresh_data_at_every_step_reproducibly():
    calls = []

    def sampler(n, rng):
        calls.append(n)
        return mf.datasets.toy("moons", n, rng=rng)

    runs = []
    for _ in range(2):
        flow = mf.MAF(2, num_layers=2, hidden=(8,), rng=0)
        history = flow.fit(sampler=sampler, steps=20, batch_size=64, val_every=10, progress=False, rng=3)
        runs.append((history["val_nll"], flow.log_prob(onp.zeros((1, 2)))))
    assert runs[0][0] == runs[1][0] and onp.array_equal(runs[0][1], runs[1][1])
    assert calls.count(64) == 2 * 20  # one fresh batch per step
    with pytest.raises(ValueError, match="x_train must be None"):
        mf.MAF(2, rng=0).fit(onp.zeros((10, 2)), sampler=sampler)
    with pytest.raises(ValueError, match="checkpoint"):
        mf.MAF(2, rng=0).fit(sampler=sampler, checkpoint="run.npz")


@pytest.mark.parametrize("fast", [True, False])
def test_a_ten_line_custom_loop_with_adam_trains_and_both_adams_agree(fast):
    x = mf.datasets.toy("moons", 512, rng=0)
    flow = mf.MAF(2, num_layers=2, hidden=(16,), rng=0, standardize=False)
    optimizer = mf.Adam(flow.params, lr=3e-3, fast=fast)
    loss_and_grad = value_and_grad(lambda p, batch: -anp.sum(flow.log_density(p, batch)) / len(batch))
    losses = []
    for step in range(60):
        loss, g = loss_and_grad(flow.params, x[(step % 4) * 128:(step % 4 + 1) * 128])
        flow.params = optimizer.step(g)
        losses.append(loss)
    assert onp.mean(losses[-10:]) < onp.mean(losses[:10]) - 0.2
    other = mf.Adam(mf.MAF(2, num_layers=2, hidden=(16,), rng=0, standardize=False).params, lr=3e-3, fast=not fast)
    g = [{key: onp.ones_like(value) if not isinstance(value, list) else [onp.ones_like(v) for v in value]
          for key, value in p.items()} for p in flow.params]
    a, b = mf.Adam(flow.params, lr=1e-2, fast=fast), mf.Adam(flow.params, lr=1e-2, fast=not fast)
    assert onp.array_equal(mf.optim.flat_vector(a.step(g), float), mf.optim.flat_vector(b.step(g), float))
    assert other.t == 0


def test_a_mog_flow_keeps_its_base_as_an_object_with_the_last_params_entry():
    flow = mf.MAFMoG(2, num_layers=2, hidden=(8,), components=3, rng=0)
    assert isinstance(flow.base, MADEMoGBase) and len(flow.params) == len(flow.layers) + 1
    flow.log_prob(X[:, :2])
    assert flow.passes_per_layer == [0, 1, 1, 1]  # Standardize, two MAF layers, the base's network
