"""The layers that port the nflib 2-D flows (NICE, RealNVP, Glow): NICE's additive coupling, the clamped coupling,
ActNorm, LinearLU (Glow's 1x1 convolution), Permutation and Reverse.

First the uniform properties on each of them (round trip, log-det against slogdet of the autograd Jacobian,
gradients against central differences); then the facts particular to each layer (an additive coupling is an
affine one with alpha = 0 and has no alpha head, ActNorm's data-dependent initialisation, W = P L (U + diag(s))
starting as a rotation, ...); the fast path declining what its kernels do not compute; RealNVP's new options;
and the Glow-style and NICE flows of the notebook, trained on moons, saved and loaded, integrating to one.
"""

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad, jacobian
from autograd.misc import flatten
from autograd.test_util import check_grads
from helpers import perturb

import maf_numpy as mf
from maf_numpy import fast, testing, transforms
from maf_numpy.fast.chain import fused_layer
from maf_numpy.fast.layers import KERNELS
from maf_numpy.made import init_made_params, made_apply, made_hidden
from maf_numpy.transforms import ActNorm, AffineCoupling, LinearLU, Permutation, Reverse
from maf_numpy.transforms.linear import lu_decompose, random_rotation

D = 3


def _in_dtype(params, dtype):
    if isinstance(params, dict):
        return {key: _in_dtype(value, dtype) for key, value in params.items()}
    if isinstance(params, list):
        return [_in_dtype(value, dtype) for value in params]
    return onp.asarray(params, dtype=dtype)


def _with_params(make_layer, scale=0.3):
    def make(D, rng, dtype="float64"):
        layer = make_layer(D, rng, dtype)
        return layer, _in_dtype(perturb(layer.init_params(rng), rng, scale), dtype)

    return make


def _actnorm(D, rng, dtype):
    layer = ActNorm(D, dtype=dtype)
    layer.initialize(layer.init_params(rng), rng.normal(1.5, 3.0, size=(40, D)))
    return layer


# id -> factory(D, rng, dtype) -> (layer, perturbed params)
NEW_LAYERS = {
    "additive-coupling": _with_params(lambda D, rng, dtype: AffineCoupling(D, (8, 8), activation="tanh", scale=False,
                                                                          dtype=dtype)),
    "additive-coupling-flipped-no-hidden": _with_params(lambda D, rng, dtype: AffineCoupling(
        D, (), flip=True, scale=False, dtype=dtype)),
    "coupling-clamped": _with_params(lambda D, rng, dtype: AffineCoupling(D, (8,), activation="tanh", alpha_clamp=0.5,
                                                                         dtype=dtype), scale=1.0),
    "actnorm": _with_params(_actnorm),
    "linear-lu": _with_params(lambda D, rng, dtype: LinearLU(D, rng=rng, dtype=dtype)),
    "permutation": _with_params(lambda D, rng, dtype: Permutation(D, rng=rng)),
    "reverse": _with_params(lambda D, rng, dtype: Reverse(D)),
}
WITHOUT_PARAMS = ("permutation", "reverse")


@pytest.fixture
def rng():
    return onp.random.default_rng(2024)


def build(name, rng, dim=D, dtype="float64"):
    layer, params = NEW_LAYERS[name](dim, rng, dtype)
    return layer, params, (rng.standard_normal((6, dim)) * 1.5).astype(dtype)


# --- the uniform properties ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NEW_LAYERS)
def test_inverse_undoes_forward_to_1e_10(name, rng):
    layer, params, v = build(name, rng)
    x, log_det_forward = layer.forward(params, v)
    z, log_det_inverse = layer.inverse(params, x)
    assert onp.max(onp.abs(z - v)) < 1e-10
    assert onp.max(onp.abs(layer.forward(params, layer.inverse(params, v)[0])[0] - v)) < 1e-10
    assert log_det_forward.shape == log_det_inverse.shape == (len(v),)
    onp.testing.assert_allclose(log_det_forward, -log_det_inverse, rtol=0, atol=1e-12)


@pytest.mark.parametrize("direction", ["inverse", "forward"])
@pytest.mark.parametrize("name", NEW_LAYERS)
def test_log_det_equals_slogdet_of_the_autograd_jacobian(name, direction, rng):
    layer, params, v = build(name, rng)
    log_det = getattr(layer, direction)(params, v)[1]
    for k, point in enumerate(v):
        J = jacobian(lambda u: getattr(layer, direction)(params, u[None, :])[0][0])(point)
        sign, log_abs_det = onp.linalg.slogdet(J)
        assert sign != 0
        assert abs(log_det[k] - log_abs_det) < 1e-10, f"point {k}: {log_det[k]} against slogdet {log_abs_det}"


@pytest.mark.parametrize("direction", ["inverse", "forward"])
@pytest.mark.parametrize("name", [name for name in NEW_LAYERS if name not in WITHOUT_PARAMS])
def test_parameter_gradients_match_central_differences(name, direction, rng):
    layer, params, v = build(name, rng)
    weights = rng.standard_normal(v.shape)

    def objective(p):
        out, log_det = getattr(layer, direction)(p, v)
        return np.sum(weights * out) + np.sum(np.cos(log_det))

    onp.random.seed(0)  # check_grads draws its random directions from NumPy's global generator
    check_grads(objective, modes=["rev"], order=1)(params)


@pytest.mark.parametrize("name", NEW_LAYERS)
def test_input_gradients_match_central_differences(name, rng):
    layer, params, v = build(name, rng)
    onp.random.seed(0)
    check_grads(lambda u: np.sum(np.sin(layer.forward(params, u)[0])), modes=["rev"], order=1)(v)
    check_grads(lambda u: np.sum(np.sin(layer.inverse(params, u)[0])), modes=["rev"], order=1)(v)


@pytest.mark.parametrize("name", NEW_LAYERS)
def test_float32_layers_compute_in_float32(name, rng):
    layer, params, v = build(name, rng, dtype="float32")
    for direction in ("inverse", "forward"):
        out, log_det = getattr(layer, direction)(params, v)
        assert out.dtype == log_det.dtype == onp.float32, direction
    testing.assert_round_trip(layer, v, params)  # to 1e-4 in float32


@pytest.mark.parametrize("name", NEW_LAYERS)
def test_config_and_state_rebuild_the_same_map(name, rng):
    layer, params, v = build(name, rng)
    rebuilt = type(layer)(**layer.config())
    rebuilt.set_state({key: onp.array(value) for key, value in layer.get_state().items()})
    for direction in ("inverse", "forward"):
        ours, theirs = getattr(layer, direction)(params, v), getattr(rebuilt, direction)(params, v)
        assert onp.array_equal(ours[0], theirs[0]) and onp.array_equal(ours[1], theirs[1])
    assert layer.calls == (2 if isinstance(layer, AffineCoupling) else 0)  # one conditioner pass per call


# --- NICE's additive coupling and the clamp -------------------------------------------------------------------
def test_made_apply_is_made_hidden_then_the_two_heads(rng):
    masks = mf.masks.made_masks(mf.masks.made_degrees(4, (7, 5), "random", "sequential", rng))
    params = perturb(init_made_params(4, (7, 5), 4, rng), rng)
    x = rng.standard_normal((5, 4))
    h_L = made_hidden(params, x, masks, "tanh")
    mu, alpha = made_apply(params, x, masks, "tanh")
    assert h_L.shape == (5, 5)
    assert onp.array_equal(mu, h_L @ (masks[-1] * params["W_mu"]) + params["b_mu"])
    assert onp.array_equal(alpha, h_L @ (masks[-1] * params["W_alpha"]) + params["b_alpha"])


def test_the_mu_head_alone_draws_the_same_numbers_as_the_first_head_of_both(rng):
    both = init_made_params(2, (6,), 3, onp.random.default_rng(5))
    mu_only = init_made_params(2, (6,), 3, onp.random.default_rng(5), heads=("mu",))
    assert sorted(mu_only) == ["W", "W_mu", "b", "b_mu"]
    for key in mu_only:
        assert all(onp.array_equal(a, b) for a, b in zip(onp.atleast_1d(mu_only[key]), onp.atleast_1d(both[key])))


def test_the_additive_coupling_has_no_alpha_head_and_zero_log_det(rng):
    layer, params, x = build("additive-coupling", rng)
    assert sorted(params) == ["W", "W_mu", "b", "b_mu"]
    z, log_det_dzdx = layer.inverse(params, x)
    assert onp.array_equal(log_det_dzdx, onp.zeros(len(x)))
    assert onp.array_equal(z[:, layer.A], x[:, layer.A])  # x_A passes through
    mu, alpha = layer.conditioner(params, x[:, layer.A])
    assert alpha is None
    assert onp.array_equal(z[:, layer.B], x[:, layer.B] - mu)  # NICE §3.2: z_B = x_B - mu(x_A)


def test_the_additive_coupling_is_the_affine_coupling_with_alpha_zero(rng):
    additive, params, x = build("additive-coupling", rng)
    affine = AffineCoupling(D, (8, 8), activation="tanh")
    zero_head = {**params, "W_alpha": onp.zeros_like(params["W_mu"]), "b_alpha": onp.zeros_like(params["b_mu"])}
    for direction in ("inverse", "forward"):
        ours, theirs = getattr(additive, direction)(params, x), getattr(affine, direction)(zero_head, x)
        onp.testing.assert_array_equal(ours[0], theirs[0])
        onp.testing.assert_array_equal(ours[1], theirs[1])


def test_the_clamped_coupling_is_the_affine_map_with_the_soft_clamped_log_scale(rng):
    layer, params, x = build("coupling-clamped", rng)
    mu, alpha = made_apply(params, x[:, layer.A], None, "tanh")
    alpha_clamped = transforms.soft_clamp(alpha, 0.5)
    assert onp.max(onp.abs(alpha)) > 0.5 > onp.max(onp.abs(alpha_clamped))  # the clamp is active here
    z, log_det = layer.inverse(params, x)
    onp.testing.assert_allclose(z[:, layer.B], (x[:, layer.B] - mu) * onp.exp(-alpha_clamped), rtol=0, atol=1e-14)
    onp.testing.assert_allclose(log_det, -onp.sum(alpha_clamped, axis=1), rtol=0, atol=1e-14)


def test_coupling_config_names_scale_and_clamp_only_when_they_differ_from_the_defaults():
    assert AffineCoupling(4, (8,)).config() == {"D": 4, "hidden": [8], "flip": False, "activation": "relu",
                                                "dtype": "float64"}
    assert AffineCoupling(4, (8,), scale=False).config()["scale"] is False
    assert AffineCoupling(4, (8,), alpha_clamp=2).config()["alpha_clamp"] == 2.0
    assert "scale=False" in repr(AffineCoupling(4, (8,), scale=False))


@pytest.mark.parametrize("options, error", [({"scale": False, "alpha_clamp": 1.0}, ValueError),
                                            ({"alpha_clamp": 0.0}, ValueError), ({"alpha_clamp": "1"}, TypeError),
                                            ({"scale": 1}, TypeError)])
def test_coupling_refuses_bad_options(options, error):
    with pytest.raises(error, match="alpha_clamp|scale"):
        AffineCoupling(4, (8,), **options)


# --- the fast path declines what its kernels do not compute ------------------------------------------------------
@pytest.mark.parametrize("options", [{"scale": False}, {"alpha_clamp": 0.5}])
def test_the_fast_dispatch_declines_additive_and_clamped_couplings(options, rng):
    layer = AffineCoupling(4, (8,), **options)
    params, x = layer.init_params(rng), rng.standard_normal((5, 4))
    for direction in ("inverse", "forward"):
        assert fast.layer_kernel(layer, direction, params, x) is None
    assert fused_layer(layer) is None
    assert fast.select([layer], "inverse", [params], x) is None
    plain = AffineCoupling(4, (8,))
    assert fast.layer_kernel(plain, "forward", plain.init_params(rng), x) is not None and fused_layer(plain)


def test_declining_the_clamped_coupling_matters_the_kernel_would_ignore_the_clamp(rng):
    layer, params, z = build("coupling-clamped", rng)
    kernel = KERNELS[(AffineCoupling, "forward", "conditioner")]
    assert onp.max(onp.abs(kernel(layer, params, z, None)[0] - layer.forward(params, z)[0])) > 1e-3


def test_realnvp_with_a_clamp_gives_the_same_numbers_fast_and_reference(rng):
    flow = mf.RealNVP(3, num_layers=3, hidden=(8,), alpha_clamp=0.3, rng=0)
    flow.params = perturb(flow.params, rng, 0.5)
    x = rng.standard_normal((7, 3))
    results = []
    for flag in (True, False):
        flow.fast = flag
        results.append((flow.log_prob(x), flow.sample(5, rng=1),
                        grad(lambda p: np.sum(flow.log_density(p, x)))(flow.params)[1]["W_alpha"]))
    for ours, reference in zip(*results):
        onp.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)


# --- RealNVP's options ------------------------------------------------------------------------------------------
def test_realnvp_passes_the_clamp_to_every_coupling_and_records_it_only_when_set(tmp_path):
    flow = mf.RealNVP(2, num_layers=3, hidden=(8,), alpha_clamp=1.5, rng=0)
    assert [layer.alpha_clamp for layer in flow.layers[1:]] == [1.5, 1.5, 1.5]
    assert flow.config["alpha_clamp"] == 1.5
    assert "alpha_clamp" not in mf.RealNVP(2, num_layers=3, hidden=(8,), rng=0).config
    flow.save(tmp_path / "clamped.npz")
    loaded = mf.load(tmp_path / "clamped.npz")
    assert [layer.alpha_clamp for layer in loaded.layers[1:]] == [1.5, 1.5, 1.5]
    x = onp.random.default_rng(0).standard_normal((5, 2))
    assert onp.array_equal(loaded.log_prob(x), flow.log_prob(x))


@pytest.mark.parametrize("option", [{"orders": "random"}, {"orders": [[0, 1], [1, 0]]}, {"hidden_degrees": "random"}])
def test_realnvp_refuses_orders_and_hidden_degrees_and_says_why(option):
    with pytest.raises(ValueError, match="no orderings.*two halves.*MAF and IAF take orders"):
        mf.RealNVP(2, num_layers=2, **option)


# --- ActNorm ----------------------------------------------------------------------------------------------------
def test_actnorm_initialisation_gives_zero_mean_and_unit_variance_on_its_batch(rng):
    layer = ActNorm(3)
    x = rng.normal([1.0, -2.0, 5.0], [0.1, 3.0, 7.0], size=(200, 3))
    assert not layer.initialized
    params = layer.initialize(layer.init_params(rng), x)
    assert layer.initialized and sorted(params) == ["log_scale", "shift"]
    z, log_det = layer.inverse(params, x)
    onp.testing.assert_allclose(z.mean(axis=0), 0.0, atol=1e-12)
    onp.testing.assert_allclose(z.var(axis=0), 1.0, atol=1e-12)
    onp.testing.assert_allclose(log_det, -onp.sum(onp.log(x.std(axis=0))), atol=1e-12)
    assert onp.array_equal(layer.get_state()["initialized"], onp.array(True))


def test_actnorm_before_initialisation_is_the_identity_and_a_constant_coordinate_keeps_scale_one(rng):
    layer = ActNorm(2)
    x = rng.standard_normal((4, 2))
    z, log_det = layer.inverse(layer.init_params(rng), x)
    assert onp.array_equal(z, x) and onp.array_equal(log_det, onp.zeros(4))
    params = layer.initialize(layer.init_params(rng), onp.stack([onp.full(10, 3.0), onp.arange(10.0)], axis=1))
    assert params["log_scale"][0] == 0.0 and params["shift"][0] == 3.0


def _glow(K=2, hidden=(16, 16), seed=0):
    """nflib's Glow-style stack: [ActNorm, LinearLU, AffineCoupling] * K, couplings alternating halves. tanh keeps
    each log-scale bounded far from the data, so the density stays finite on the whole integration grid (with
    ReLU, alpha grows linearly away from the data and exp(alpha) overflows there, compounding over layers)."""
    layers = []
    for k in range(K):
        layers += [ActNorm(2), LinearLU(2, rng=seed + k), AffineCoupling(2, hidden, flip=k % 2 == 1, activation="tanh")]
    return mf.Flow(2, layers, rng=seed)


def _nice(K=4, hidden=(16, 16), seed=0):
    """NICE (Dinh et al. 2015): additive couplings alternating halves, a diagonal scaling (ActNorm), logistic base."""
    layers = [AffineCoupling(2, hidden, flip=k % 2 == 1, scale=False) for k in range(K)] + [ActNorm(2)]
    return mf.Flow(2, layers, base=mf.bases.Logistic(2), rng=seed)


def test_flow_initialize_normalises_each_actnorm_input_as_it_is_pushed_through_the_layers_below():
    flow = _glow(K=2)
    x = mf.datasets.toy("moons", 500, rng=1)
    flow.params = perturb(flow.params, onp.random.default_rng(0), 0.3)
    flow.initialize(x)
    trace = flow.trace_inverse(x)
    for k, layer in enumerate(flow.layers):
        if isinstance(layer, ActNorm):
            assert layer.initialized
            onp.testing.assert_allclose(trace["values"][k + 1].mean(axis=0), 0.0, atol=1e-10)
            onp.testing.assert_allclose(trace["values"][k + 1].var(axis=0), 1.0, atol=1e-10)


def test_fit_initialises_actnorm_once_from_the_training_data(monkeypatch):
    seen = []
    initialize = ActNorm.initialize

    def counting(self, params, x):
        seen.append((self, onp.array(x)))
        return initialize(self, params, x)

    monkeypatch.setattr(ActNorm, "initialize", counting)
    flow = _glow(K=2)
    x_train, x_val = mf.datasets.toy("moons", 400, rng=2), mf.datasets.toy("moons", 100, rng=3)
    flow.fit(x_train, x_val, steps=3, batch_size=50, progress=False, rng=0)
    assert [layer for layer, _ in seen] == [flow.layers[0], flow.layers[3]]
    assert onp.array_equal(seen[0][1], x_train)  # the first ActNorm sees the training data itself
    flow.fit(x_train, x_val, steps=3, batch_size=50, progress=False, rng=0)
    assert len(seen) == 2  # already initialised: a second fit trains on
    assert onp.array_equal(flow.state()["layers"][0]["initialized"], onp.array(True))


# --- LinearLU, Permutation, Reverse ----------------------------------------------------------------------------
@pytest.mark.parametrize("dim", [1, 2, 3, 6])
def test_lu_decompose_factors_a_matrix_as_permutation_unit_lower_upper(dim, rng):
    A = rng.standard_normal((dim, dim))
    perm, L, U = lu_decompose(A)
    P = onp.eye(dim)[perm]
    onp.testing.assert_allclose(P @ L @ U, A, rtol=0, atol=1e-12)
    assert onp.array_equal(onp.sort(perm), onp.arange(dim))
    assert onp.array_equal(onp.diag(L), onp.ones(dim)) and onp.all(onp.triu(L, 1) == 0)
    assert onp.all(onp.tril(U, -1) == 0)
    assert onp.all(onp.abs(onp.tril(L, -1)) <= 1.0)  # partial pivoting: every multiplier at most 1
    Q = random_rotation(dim, rng)
    onp.testing.assert_allclose(Q @ Q.T, onp.eye(dim), atol=1e-12)


def test_linear_lu_starts_as_a_random_rotation_and_its_log_det_is_sum_log_s(rng):
    layer = LinearLU(4, rng=7)
    params = layer.init_params(rng)
    W = layer.weight(params)
    onp.testing.assert_allclose(W @ W.T, onp.eye(4), atol=1e-12)
    assert not onp.allclose(onp.abs(W), onp.eye(4)[layer.perm])  # a dense rotation, not a permutation
    params = perturb(params, rng)
    W = layer.weight(params)
    x = rng.standard_normal((5, 4))
    z, log_det = layer.inverse(params, x)
    onp.testing.assert_allclose(z, x @ W.T, atol=1e-12)  # z = W x per point
    onp.testing.assert_allclose(log_det, onp.linalg.slogdet(W)[1], atol=1e-12)
    onp.testing.assert_allclose(log_det, onp.sum(params["log_s"]), atol=1e-12)
    assert onp.linalg.slogdet(W)[0] == onp.linalg.det(onp.eye(4)[layer.perm]) * onp.prod(layer.sign)


def test_linear_lu_trains_only_the_strict_triangles_of_l_and_u(rng):
    layer = LinearLU(3, rng=1)
    params = perturb(layer.init_params(rng), rng)
    x = rng.standard_normal((4, 3))
    g = grad(lambda p: np.sum(np.sin(layer.inverse(p, x)[0])))(params)
    assert onp.all(onp.triu(g["L"]) == 0) and onp.all(onp.tril(g["U"]) == 0)
    assert onp.all(onp.tril(g["L"], -1)[onp.tril_indices(3, -1)] != 0)


def test_linear_lu_rebuilt_from_config_and_state_is_the_same_map_and_starts_orthogonal(rng):
    layer = LinearLU(3, rng=4)
    params, x = perturb(layer.init_params(rng), rng), rng.standard_normal((5, 3))
    rebuilt = type(layer)(**layer.config())  # draws another rotation, then takes layer's P and signs
    rebuilt.set_state(layer.get_state())
    assert onp.array_equal(rebuilt.inverse(params, x)[0], layer.inverse(params, x)[0])
    W = rebuilt.weight(rebuilt.init_params(rng))
    onp.testing.assert_allclose(W @ W.T, onp.eye(3), atol=1e-12)
    rebuilt.set_state({"perm": onp.array([2, 0, 1]), "sign": onp.array([1.0, -1.0, 1.0])})
    assert onp.array_equal(rebuilt.weight(rebuilt.init_params(rng)), onp.eye(3)[[2, 0, 1]] * [1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match="sign"):
        rebuilt.set_state({"perm": layer.perm, "sign": onp.array([1.0, 0.5, -1.0])})


def test_permutation_moves_columns_and_reverse_is_its_own_inverse(rng):
    x = rng.standard_normal((4, 5))
    layer = Permutation(5, order=[3, 0, 4, 1, 2])
    z, log_det = layer.inverse({}, x)
    assert onp.array_equal(z, x[:, [3, 0, 4, 1, 2]]) and onp.array_equal(log_det, onp.zeros(4))
    reverse = Reverse(5)
    assert onp.array_equal(reverse.inverse({}, x)[0], x[:, ::-1])
    assert onp.array_equal(reverse.forward({}, x)[0], reverse.inverse({}, x)[0])
    assert reverse.config() == {"D": 5} and Permutation(**layer.config()).order.tolist() == [3, 0, 4, 1, 2]
    assert layer.input_degrees is None and LinearLU(3).input_degrees is None  # no ordering makes them triangular
    assert not hasattr(layer, "dtype")  # no numbers: keeps its input's type


@pytest.mark.parametrize("order", [[0, 0, 1], [0, 1], [0, 1, 3], [0.0, 1.0, 2.0]])
def test_permutation_refuses_an_order_that_is_not_a_permutation(order):
    with pytest.raises(ValueError, match="permutation of range"):
        Permutation(3, order=order)


# --- the notebook's flows: Glow-style and NICE on moons --------------------------------------------------------
def _nll(flow, x):
    return -float(onp.mean(flow.log_prob(x)))


@pytest.mark.parametrize("make", [_glow, _nice], ids=["glow", "nice"])
def test_the_notebook_flows_train_on_moons_save_and_load_bit_for_bit_and_integrate_to_one(make, tmp_path):
    x_train, x_test = mf.datasets.toy("moons", 2000, rng=0), mf.datasets.toy("moons", 500, rng=1)
    flow = make()
    before = _nll(flow, x_test)
    history = flow.fit(x_train, steps=300, batch_size=128, lr=5e-3, progress=False, rng=0)
    after = _nll(flow, x_test)
    assert history["val_nll"][-1] < history["val_nll"][0]
    assert after < before - 0.5, f"test NLL {before:.3f} -> {after:.3f}"

    path = tmp_path / "flow.npz"
    flow.save(path)
    loaded = mf.load(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in flow.layers]
    assert type(loaded.base) is type(flow.base)
    assert [sorted(p) for p in loaded.params] == [sorted(p) for p in flow.params]
    assert onp.array_equal(flatten(loaded.params)[0], flatten(flow.params)[0])
    for ours, theirs in zip(flow.state()["layers"], loaded.state()["layers"]):
        assert ours.keys() == theirs.keys() and all(onp.array_equal(ours[key], theirs[key]) for key in ours)
    assert onp.array_equal(loaded.log_prob(x_test), flow.log_prob(x_test))
    assert onp.array_equal(loaded.sample(50, rng=3), flow.sample(50, rng=3))

    testing.assert_density_integrates_to_one(flow, half_width=6.0, num=401, n_samples=40_000)
