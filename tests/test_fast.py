"""Each kernel of maf_numpy.fast against the reference function it replaces, at the level of the kernel.

The fused MADE pass (``fast.made.made_pass``, ``made_pass_blocked``) against ``made.made_apply``; the fused affine
primitives against ``affine_inverse``/``affine_forward``; the layer kernels against the layers' own methods; the
degree-sliced solver against ``solve_autoregressive``; the whole-chain primitive against the layer loop; the
chunked Adam against ``optim.adam_step``: values, gradients, second derivatives and pass counts.
``tests/test_fast_equals_reference.py`` compares whole flows with ``fast=True`` and ``fast=False``.
"""

import autograd.numpy as anp
import numpy as onp
import pytest
from autograd import grad
from autograd.misc import flatten
from helpers import perturb

import maf_numpy as mf
from maf_numpy import fast, made, transforms
from maf_numpy.fast import chain as fast_chain
from maf_numpy.fast import layers as fast_layers
from maf_numpy.fast import made as fast_made
from maf_numpy.transforms import affine_forward, affine_inverse, solve_autoregressive

TOL = 1e-12


def weighted_output(inverse, g_z, g_log_det):
    """A scalar of a map's two outputs, sum(g_z * z) + sum(g_log_det * log_det), whose gradient checks the
    backward pass of ``inverse(params, x) -> (z, log_det)`` against any cotangents (g_z, g_log_det)."""
    def value(p, v):
        z, log_det = inverse(p, v)
        return anp.sum(g_z * z) + anp.sum(g_log_det * log_det)

    return value


def fused_apply(params, x, masks, activation, plan=None):
    """made.made_apply computed by the fused primitive (or its block-triangular form with a plan)."""
    if masks is None:
        masks = [1.0] * (len(params["W"]) + 1)
    if plan is None:
        out = fast_made.made_pass(params, x, masks, activation)
    else:
        out = fast_made.made_pass_blocked(params, x, plan, activation)
    return out[0], out[1]


def fused_method(layer, direction):
    """``(params, v) -> kernel(layer, direction, params, v)``: the kernel chosen at each call (traced or not)."""
    return lambda params, v: kernel(layer, direction, params, v)


def kernel(layer, direction, params, v, y=None):
    """The kernel the dispatch picks for this call (it must pick one), as ``(params, v) -> (out, log_det)``."""
    chosen = fast.layer_kernel(layer, direction, params, v, y)
    assert chosen is not None
    return chosen(layer, params, v, y)


def reference_maf_forward(layer, params, z):
    def step(x):
        return affine_forward(z, *layer.conditioner(params, x))

    return solve_autoregressive(step, layer.D, z.shape, layer.input_degrees)


def reference_iaf_inverse(layer, params, x):
    def step(z):
        return affine_inverse(x, *layer.conditioner(params, z))

    return solve_autoregressive(step, layer.D, x.shape, layer.input_degrees)


CASES = [  # (D, hidden, order, hidden_degrees, activation)
    *[(D, (16, 16), "sequential", "sequential", "relu") for D in range(1, 11)],
    *[(D, (7,), "random", "random", "tanh") for D in range(1, 11)],
    (6, (), "reversed", "sequential", "relu"),  # no hidden layer: a masked linear map
    (10, (3, 4), "random", "sequential", "relu"),  # narrower than D
    (10, (3,), "sequential", "random", "tanh"),
    (5, (9, 9, 9), "random", "random", "relu"),  # three hidden layers
    (8, (2,), "reversed", "sequential", "tanh"),
]


@pytest.mark.parametrize("D, hidden, order, hidden_degrees, activation", CASES)
@pytest.mark.parametrize("layer_class, reference", [(transforms.MAFLayer, reference_maf_forward),
                                                    (transforms.IAFLayer, reference_iaf_inverse)],
                         ids=["MAF-forward", "IAF-inverse"])
def test_sliced_solver_equals_reference(D, hidden, order, hidden_degrees, activation, layer_class, reference):
    rng = onp.random.default_rng(D)
    layer = layer_class(D, hidden, mf.masks.make_order(D, order, rng), hidden_degrees, activation, rng)
    params = perturb(layer.init_params(rng), rng, scale=0.5)
    u = rng.standard_normal((13, D))
    is_maf = layer_class is transforms.MAFLayer
    direction = "forward" if is_maf else "inverse"
    assert fast.layer_kernel(layer, direction, params, u).__name__.endswith("sliced")
    sliced = kernel(layer, direction, params, u)
    sliced_calls = layer.calls
    layer.calls = 0
    slow = reference(layer, params, u)
    assert layer.calls == sliced_calls == D  # one pass per sequential step, both ways
    onp.testing.assert_allclose(sliced[0], slow[0], rtol=TOL, atol=TOL)
    onp.testing.assert_allclose(sliced[1], slow[1], rtol=TOL, atol=TOL)
    layer.calls = 0
    own = layer.forward(params, u) if is_maf else layer.inverse(params, u)  # the layer's method is the reference
    assert layer.calls == D
    onp.testing.assert_array_equal(own[0], slow[0])


TIED_CASES = [  # explicit input degrees with ties or gaps: several coordinates per degree
    ("two groups", lambda: mf.masks.two_group_degrees(3, 2, (8,))),
    ("two groups, scattered A", lambda: mf.masks.two_group_degrees(6, [1, 4], (7, 5))),
    ("ties and a gap", lambda: [onp.array([1, 3, 3, 1, 4]), onp.array([1, 2, 3, 1, 3, 2]), onp.array([3, 1, 2])]),
    ("all one degree", lambda: [onp.array([1, 1, 1]), onp.array([0, 1, 1, 2])]),
    ("no hidden layer", lambda: [onp.array([2, 1, 2, 1])]),
]


@pytest.mark.parametrize("name, make_degrees", TIED_CASES, ids=[case[0] for case in TIED_CASES])
@pytest.mark.parametrize("layer_class", [transforms.MAFLayer, transforms.IAFLayer])
def test_sliced_solver_with_tied_or_skipped_degrees_equals_the_reference(name, make_degrees, layer_class):
    """A layer built with explicit degrees where several inputs share a degree (as a coupling layer's two groups
    do) or some degree is skipped: the sliced solver computes a whole degree's coordinates at once and gives the
    reference's answer, and the flow's default path round-trips (it once sampled wrongly here)."""
    rng = onp.random.default_rng(17)
    degrees = make_degrees()
    D = len(degrees[0])
    layer = layer_class(D, tuple(len(m) for m in degrees[1:]), rng=rng, degrees=degrees, activation="tanh")
    params = perturb(layer.init_params(rng), rng, scale=0.5)
    u = rng.standard_normal((9, D))
    is_maf = layer_class is transforms.MAFLayer
    direction = "forward" if is_maf else "inverse"
    sliced = kernel(layer, direction, params, u)
    slow = layer.forward(params, u) if is_maf else layer.inverse(params, u)
    onp.testing.assert_allclose(sliced[0], slow[0], rtol=TOL, atol=TOL)
    onp.testing.assert_allclose(sliced[1], slow[1], rtol=TOL, atol=TOL)
    flow = mf.Flow(D, [layer], rng=0)
    flow.params = [params]
    x = rng.standard_normal((9, D))
    z, log_det = flow.inverse(x)
    x_back, log_det_back = flow.forward(z)
    onp.testing.assert_allclose(x_back, x, atol=1e-10)
    onp.testing.assert_allclose(log_det_back, -log_det, atol=1e-10)


@pytest.mark.parametrize("cls", [mf.MAF, mf.IAF])
def test_flow_pass_counts_stay_K_times_D(cls):
    D, K = 5, 3
    flow = cls(D, num_layers=K, hidden=(12,), rng=0)
    x = flow.sample(20, rng=1)
    assert flow.passes == (K * D if cls is mf.MAF else K)
    flow.log_prob(x)
    assert flow.passes == (K if cls is mf.MAF else K * D)
    assert flow.passes_per_layer[1:] == [D if cls is mf.IAF else 1] * K


@pytest.mark.parametrize("cls", [mf.MAF, mf.IAF])
def test_flow_fast_path_round_trips(cls):
    flow = cls(7, num_layers=3, hidden=(20, 20), orders="random", rng=2)
    flow.params = perturb(flow.params, onp.random.default_rng(3), scale=0.2)
    z = onp.random.default_rng(4).standard_normal((30, 7))
    x, log_det_forward = flow.forward(z)
    z_back, log_det_inverse = flow.inverse(x)
    onp.testing.assert_allclose(z_back, z, atol=1e-10)
    onp.testing.assert_allclose(log_det_forward, -log_det_inverse, atol=1e-10)


def test_gradients_flow_through_forward_via_the_reference_path():
    """Under autograd the reference solver runs, so d/dparams of the sampled x is available and correct."""
    rng = onp.random.default_rng(5)
    layer = transforms.MAFLayer(4, (8,), "random", "sequential", "tanh", rng)
    params = perturb(layer.init_params(rng), rng)
    z = rng.standard_normal((6, 4))

    def objective(p):
        x, log_det = layer.forward(p, z)
        return anp.sum(x**2) + anp.sum(log_det)

    theta, unflatten = flatten(params)
    g = flatten(grad(objective)(params))[0]
    direction = rng.standard_normal(theta.shape)
    eps = 1e-6
    numeric = (objective(unflatten(theta + eps * direction))
               - objective(unflatten(theta - eps * direction))) / (2 * eps)
    assert abs(numeric - g @ direction) < 1e-6 * max(1.0, abs(numeric))


def test_the_dispatch_picks_the_sliced_solver_only_for_untraced_arrays():
    rng = onp.random.default_rng(6)
    layer = transforms.MAFLayer(3, (5,), "sequential", "sequential", "relu", rng)
    params = layer.init_params(rng)
    z = rng.standard_normal((2, 3))
    assert fast.layer_kernel(layer, "forward", params, z) is fast_layers.maf_forward_sliced
    seen = []
    grad(lambda p: seen.append(fast.layer_kernel(layer, "forward", p, z)) or anp.sum(p["b_mu"]))(params)
    assert seen == [fast_layers.maf_forward_steps]


@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
@pytest.mark.parametrize("masked", [True, False])
def test_masked_dense_vjp_equals_autograds_own_gradient(dtype, masked):
    """The hand-written backward pass of the fused layer against autograd differentiating h @ (M * W) + b."""
    rng = onp.random.default_rng(7)
    h, W, b = (rng.standard_normal(shape).astype(dtype) for shape in [(5, 4), (4, 3), (3,)])
    M = (rng.random((4, 3)) < 0.6).astype(dtype) if masked else 1.0
    g = rng.standard_normal((5, 3)).astype(dtype)

    def fused(h, W, b):
        return anp.sum(g * made.masked_dense(h, W, b, M))

    def unfused(h, W, b):
        return anp.sum(g * (h @ (M * W) + b))

    for argnum in range(3):
        ours, autograds = grad(fused, argnum)(h, W, b), grad(unfused, argnum)(h, W, b)
        assert ours.dtype == autograds.dtype == dtype
        onp.testing.assert_allclose(ours, autograds, rtol=1e-6 if dtype == onp.float32 else 1e-14)
    onp.testing.assert_array_equal(made.masked_dense(h, W, b, M), h @ (M * W) + b)


def test_fast_false_runs_the_reference_solver_with_the_same_passes_and_numbers():
    flow = mf.MAF(4, num_layers=2, hidden=(9,), rng=8)
    z = onp.random.default_rng(9).standard_normal((7, 4))
    sliced = flow.forward(z)[0]
    flow.fast = False
    reference = flow.forward(z)[0]
    assert flow.passes == 2 * 4
    onp.testing.assert_allclose(sliced, reference, rtol=TOL, atol=TOL)
    with pytest.raises(TypeError, match="fast"):
        flow.fast = "no"


@pytest.mark.parametrize("hidden", [(), (6,), (5, 7)])
@pytest.mark.parametrize("activation", ["relu", "tanh"])
@pytest.mark.parametrize("masked", [True, False])
def test_made_pass_backward_equals_autograds_gradient_of_the_layer_by_layer_form(hidden, activation, masked):
    """made_pass (one primitive, hand-written backward pass) against made.made_apply differentiated by
    autograd: same values, same gradient with respect to the parameters and to the input."""
    rng = onp.random.default_rng(10)
    D = 4
    degrees = mf.masks.made_degrees(D, hidden, "random", "sequential", rng)
    masks = mf.masks.made_masks(degrees) if masked else None
    params = perturb(made.init_made_params(D, hidden, D, rng), rng)
    x = rng.standard_normal((6, D))
    g_mu, g_alpha = rng.standard_normal((2, 6, D))

    def objective(apply):
        def value(p, v):
            mu, alpha = apply(p, v, masks, activation)
            return anp.sum(g_mu * mu + g_alpha * alpha)

        return value

    fused, by_layer = objective(fused_apply), objective(made.made_apply)
    onp.testing.assert_allclose(fused(params, x), by_layer(params, x), rtol=1e-14)
    for argnum in (0, 1):
        ours, autograds = grad(fused, argnum)(params, x), grad(by_layer, argnum)(params, x)
        onp.testing.assert_allclose(flatten(ours)[0], flatten(autograds)[0], rtol=1e-12, atol=1e-14)
    both = grad(lambda p, v: fused(p, v) + anp.sum(v**2), (0, 1))(params, x)  # params and x in one pass
    onp.testing.assert_allclose(both[1], grad(by_layer, 1)(params, x) + 2 * x, rtol=1e-12, atol=1e-14)


BLOCK_CASES = [  # (D, hidden, order, hidden_degrees, activation, num_blocks)
    *[(D, (16, 16), order, "sequential", "relu", 4) for D in range(1, 11) for order in ("sequential", "reversed")],
    *[(D, (7,), "random", "random", "tanh", 3) for D in range(1, 11)],
    (6, (), "reversed", "sequential", "relu", 4),  # no hidden layer: a masked linear map
    (10, (3, 4), "random", "sequential", "relu", 2),  # narrower than D
    (10, (3,), "sequential", "random", "tanh", 4),
    (5, (9, 9, 9), "random", "random", "relu", 8),  # three hidden layers, more blocks than some degrees
    (64, (80, 80), "sequential", "sequential", "relu", 4),
    (64, (70, 90), "random", "random", "tanh", 8),
    (4, (12,), "sequential", "sequential", "relu", 1),  # one block: the plain product, sorted
]


@pytest.mark.parametrize("D, hidden, order, hidden_degrees, activation, num_blocks", BLOCK_CASES)
def test_block_triangular_pass_equals_the_layer_by_layer_made(D, hidden, order, hidden_degrees, activation,
                                                              num_blocks):
    """made_apply with a block_plan (units sorted by degree, zero blocks of M * W skipped) against
    made.made_apply differentiated by autograd: same mu and alpha, same gradients for params and x."""
    rng = onp.random.default_rng(D + 100 * len(hidden))
    degrees = mf.masks.made_degrees(D, hidden, mf.masks.make_order(D, order, rng), hidden_degrees, rng)
    masks = mf.masks.made_masks(degrees)
    plan = fast_made.block_plan(degrees, masks, num_blocks)
    params = perturb(made.init_made_params(D, hidden, D, rng), rng)
    x = rng.standard_normal((9, D))
    g_mu, g_alpha = rng.standard_normal((2, 9, D))
    mu, alpha = fused_apply(params, x, masks, activation, plan)
    mu_ref, alpha_ref = made.made_apply(params, x, masks, activation)
    onp.testing.assert_allclose(mu, mu_ref, rtol=TOL, atol=TOL)
    onp.testing.assert_allclose(alpha, alpha_ref, rtol=TOL, atol=TOL)

    def objective(use_plan):
        def value(p, v):
            mu, alpha = (fused_apply(p, v, masks, activation, plan) if use_plan
                         else made.made_apply(p, v, masks, activation))
            return anp.sum(g_mu * mu + g_alpha * alpha)

        return value

    for argnums in (0, 1, (0, 1)):
        ours = grad(objective(True), argnums)(params, x)
        reference = grad(objective(False), argnums)(params, x)
        onp.testing.assert_allclose(flatten(ours)[0], flatten(reference)[0], rtol=TOL, atol=TOL)
    assert 0 < plan["fraction"] <= 1


def test_block_plan_skips_about_the_masked_half_of_a_wide_made():
    """With degrees spread evenly, B column blocks read about (B + 1) / (2B) of each product's rows."""
    degrees = mf.masks.made_degrees(64, (512, 512), "sequential", "sequential")
    plan = fast_made.block_plan(degrees, mf.masks.made_masks(degrees), num_blocks=4)
    hidden_to_hidden = plan["layers"][1]
    assert [block[2] for block in hidden_to_hidden["blocks"]] == [128, 256, 384, 512]
    assert abs(hidden_to_hidden["fraction"] - 5 / 8) < 0.01
    assert plan["fraction"] < 0.65


def test_block_triangular_pass_can_be_differentiated_twice():
    """The hand-written backward pass falls back to autograd through made.made_apply when it is traced
    itself, so a second derivative (here of the gradient's squared norm) matches the reference."""
    rng = onp.random.default_rng(11)
    D, hidden = 5, (8,)
    degrees = mf.masks.made_degrees(D, hidden, "random", "sequential", rng)
    masks = mf.masks.made_masks(degrees)
    plan = fast_made.block_plan(degrees, masks, 2)
    params = perturb(made.init_made_params(D, hidden, D, rng), rng)
    x = rng.standard_normal((4, D))

    def gradient_norm(use_plan):
        def value(v):
            mu, alpha = (fused_apply(params, v, masks, "tanh", plan) if use_plan
                         else made.made_apply(params, v, masks, "tanh"))
            return anp.sum(mu * alpha)

        return lambda v: anp.sum(grad(value)(v) ** 2)

    onp.testing.assert_allclose(grad(gradient_norm(True))(x), grad(gradient_norm(False))(x), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_flows_use_block_triangular_products_only_where_they_pay_and_agree_with_the_reference(dtype):
    flow = mf.MAF(20, num_layers=2, hidden=(256,), orders="random", rng=12, standardize=False, dtype=dtype)
    assert all(fast_made.block_plan_for(layer.network) is not None for layer in flow.layers)
    assert fast_made.block_plan_for(mf.MAF(8, num_layers=1, hidden=(128, 128), rng=0).layers[-1].network) is None
    flow.params = perturb(flow.params, onp.random.default_rng(13), scale=0.02)
    flow.params = [{key: [w.astype(dtype) for w in value] if isinstance(value, list) else value.astype(dtype)
                    for key, value in p.items()} for p in flow.params]
    x = onp.random.default_rng(14).standard_normal((16, 20)).astype(dtype)

    def loss(params):
        return -anp.sum(flow.log_density(params, x))

    blocked = flow.log_prob(x), flatten(grad(loss)(flow.params))[0]
    flow.fast = False
    plain = flow.log_prob(x), flatten(grad(loss)(flow.params))[0]
    tol = TOL if dtype == "float64" else 1e-4
    for ours, reference in zip(blocked, plain):
        assert ours.dtype == reference.dtype == onp.dtype(dtype)
        onp.testing.assert_allclose(ours, reference, rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
def test_fused_affine_primitives_equal_the_readable_maps_and_autograds_gradient(dtype):
    """_normalise / _generate / _signed_sum (one autograd node each, hand-written backward passes) against
    affine_inverse / affine_forward: the same numbers bit for bit, and autograd's own gradient."""
    rng = onp.random.default_rng(15)
    v, mu, alpha = (rng.standard_normal((5, 3)).astype(dtype) for _ in range(3))
    g, g_log_det = rng.standard_normal((5, 3)).astype(dtype), rng.standard_normal(5).astype(dtype)
    pairs = [(lambda v, mu, alpha: (fast_layers.normalise(v, mu, alpha), fast_layers.signed_sum(alpha, -1.0)),
              affine_inverse),
             (lambda v, mu, alpha: (fast_layers.generate(v, mu, alpha), fast_layers.signed_sum(alpha, 1.0)),
              affine_forward)]
    for fused, readable in pairs:
        for ours, reference in zip(fused(v, mu, alpha), readable(v, mu, alpha)):
            assert ours.dtype == dtype
            onp.testing.assert_array_equal(ours, reference)

        def objective(map_):
            return lambda *args: anp.sum(g * map_(*args)[0]) + anp.sum(g_log_det * map_(*args)[1])

        for argnum in range(3):
            ours = grad(objective(fused), argnum)(v, mu, alpha)
            autograds = grad(objective(readable), argnum)(v, mu, alpha)
            assert ours.dtype == dtype
            onp.testing.assert_allclose(ours, autograds, rtol=1e-6 if dtype == onp.float32 else 1e-14)


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("D", [2, 5])
def test_coupling_primitive_equals_the_concatenated_maps_and_autograds_gradient(D, flip):
    rng = onp.random.default_rng(16 + D)
    layer = transforms.AffineCoupling(D, (6,), flip=flip)
    v = rng.standard_normal((4, D))
    mu, alpha = rng.standard_normal((2, 4, len(layer.B)))
    g = rng.standard_normal((4, D))
    for inverse, affine in [(True, affine_inverse), (False, affine_forward)]:
        def fused(v, mu, alpha, inverse=inverse):
            return fast_layers.coupling_affine(v, mu, alpha, layer.A, layer.B, layer.unpermute, inverse)

        def readable(v, mu, alpha, affine=affine):
            w_B = affine(v[:, layer.B], mu, alpha)[0]
            return anp.concatenate([v[:, layer.A], w_B], axis=1)[:, layer.unpermute]

        onp.testing.assert_array_equal(fused(v, mu, alpha), readable(v, mu, alpha))
        for argnum in range(3):
            ours = grad(lambda *args: anp.sum(g * fused(*args)), argnum)(v, mu, alpha)
            onp.testing.assert_allclose(ours, grad(lambda *args: anp.sum(g * readable(*args)), argnum)(v, mu, alpha),
                                        rtol=1e-14, atol=1e-15)


IAF_CASES = [  # (D, hidden, order, hidden_degrees, activation)
    (4, (5,), "sequential", "sequential", "tanh"),
    (4, (8, 8), "reversed", "sequential", "relu"),
    (6, (16, 16), "random", "random", "tanh"),
    (7, (3, 4), "random", "sequential", "relu"),  # narrower than D
    (9, (12,), "sequential", "random", "relu"),
    (20, (260,), "random", "sequential", "relu"),  # wide: the MADE uses block-triangular products
]


@pytest.mark.parametrize("D, hidden, order, hidden_degrees, activation", IAF_CASES)
def test_iaf_density_gradient_by_the_implicit_function_theorem_equals_the_reference(D, hidden, order,
                                                                                     hidden_degrees, activation):
    """IAFLayer.inverse under autograd (sliced solve + implicit backward pass) against autograd through the D
    passes of the reference solver: same z and log-det, same gradients for params, x and both, D passes."""
    rng = onp.random.default_rng(D)
    layer = transforms.IAFLayer(D, hidden, mf.masks.make_order(D, order, rng), hidden_degrees, activation, rng)
    params = perturb(layer.init_params(rng), rng, scale=0.3 if D < 20 else 0.02)
    x = rng.standard_normal((6, D))
    g_z, g_log_det = rng.standard_normal((6, D)), rng.standard_normal(6)

    implicit, reference = (weighted_output(inverse, g_z, g_log_det)
                           for inverse in (fused_method(layer, "inverse"), layer.inverse))
    seen = []
    grad(lambda p: seen.append(fast.layer_kernel(layer, "inverse", p, x)) or anp.sum(p["b_mu"]))(params)
    assert seen == [fast_layers.iaf_inverse_implicit]
    for argnums in (0, 1, (0, 1)):
        layer.calls = 0
        ours = grad(implicit, argnums)(params, x)
        assert layer.calls == D
        expected = grad(reference, argnums)(params, x)
        onp.testing.assert_allclose(flatten(ours)[0], flatten(expected)[0], rtol=1e-10, atol=1e-12)
    onp.testing.assert_allclose(implicit(params, x), reference(params, x), rtol=1e-12)


@pytest.mark.parametrize("D, hidden, order, activation, wide", [
    (1, (4,), "sequential", "relu", False),
    (3, (8, 8), "reversed", "tanh", False),
    (6, (5,), "random", "relu", False),
    (20, (260,), "random", "relu", True),  # a block plan: the fused primitive runs made_pass_blocked
    (18, (256, 64), "sequential", "tanh", True),
])
def test_maf_layer_inverse_primitive_equals_the_layer_by_layer_made_and_affine_map(D, hidden, order, activation,
                                                                                   wide):
    """MAFLayer.inverse (MADE + affine map + log-det as one primitive) against made.made_apply followed by
    affine_inverse, differentiated by autograd: same z and log-det, same gradients for params, x and both."""
    rng = onp.random.default_rng(D)
    layer = transforms.MAFLayer(D, hidden, mf.masks.make_order(D, order, rng), "sequential", activation, rng)
    assert (fast_made.block_plan_for(layer.network) is not None) == wide
    params = perturb(layer.init_params(rng), rng, scale=0.3 if not wide else 0.02)
    x = rng.standard_normal((7, D))
    fused = fused_method(layer, "inverse")
    g_z, g_log_det = rng.standard_normal((7, D)), rng.standard_normal(7)

    def reference(p, v):
        return affine_inverse(v, *made.made_apply(p, v, layer.masks, activation))

    def objective(inverse):
        return weighted_output(inverse, g_z, g_log_det)

    layer.calls = 0
    assert fast.layer_kernel(layer, "inverse", params, x) is fast_layers.maf_inverse_fused
    for ours, expected in zip(fused(params, x), reference(params, x)):
        onp.testing.assert_allclose(ours, expected, rtol=TOL, atol=TOL)
    assert layer.calls == 1
    for argnums in (0, 1, (0, 1)):
        ours = grad(objective(fused), argnums)(params, x)
        expected = grad(objective(reference), argnums)(params, x)
        onp.testing.assert_allclose(flatten(ours)[0], flatten(expected)[0], rtol=TOL, atol=TOL)


@pytest.mark.parametrize("dtype", [onp.float64, onp.float32])
@pytest.mark.parametrize("P", [1, 7, 1000, 4099])
def test_chunked_adam_step_equals_the_formula_bit_for_bit(dtype, P):
    """fast.adam_step (chunk by chunk into preallocated arrays) against the five-line formula, optim.adam_step:
    the same bits, chunk boundaries included, the inputs untouched, and the formula's own promotion when a
    scalar is a NumPy float64 (the reference path)."""
    chunk_bytes = 256 * onp.dtype(dtype).itemsize  # several chunks
    rng = onp.random.default_rng(P)
    theta, g, m = (rng.standard_normal(P).astype(dtype) for _ in range(3))
    v = rng.random(P).astype(dtype)
    g[0] = 1e30 if dtype == onp.float32 else 1e200  # g**2 overflows to inf: the same inf in both
    before = [a.copy() for a in (theta, g, m, v)]
    for t, lr in [(1, 1e-3), (7, 0.25), (1000, 3)]:
        with onp.errstate(over="ignore"):
            ours = fast.adam.adam_step(theta, g, m, v, t, lr, chunk_bytes=chunk_bytes)
            reference = mf.optim.adam_step(theta, g, m, v, t, lr)
        for a, b in zip(ours, reference):
            assert a.dtype == b.dtype == dtype
            onp.testing.assert_array_equal(a, b)
    for a, b in zip((theta, g, m, v), before):
        onp.testing.assert_array_equal(a, b)
    with onp.errstate(over="ignore"):
        ours = fast.adam_step(theta, g, m, v, 2, onp.float64(1e-3))
        reference = mf.optim.adam_step(theta, g, m, v, 2, onp.float64(1e-3))
    for a, b in zip(ours, reference):
        assert a.dtype == b.dtype
        onp.testing.assert_array_equal(a, b)


def readable_coupling_inverse(layer, params, x):
    """AffineCoupling.inverse as the paper writes it: the MLP on x_A, affine_inverse on x_B, x_A copied."""
    mu, alpha = made.made_apply(params, x[:, layer.A], None, layer.activation)
    z_B, log_det = affine_inverse(x[:, layer.B], mu, alpha)
    return anp.concatenate([x[:, layer.A], z_B], axis=1)[:, layer.unpermute], log_det


@pytest.mark.parametrize("D, hidden, flip, activation", [
    (2, (6,), False, "relu"), (2, (5, 7), True, "tanh"), (5, (), False, "relu"), (5, (8, 8), True, "relu"),
    (9, (4, 6, 5), False, "tanh"),
])
def test_coupling_layer_inverse_primitive_equals_the_readable_coupling(D, hidden, flip, activation):
    """AffineCoupling.inverse (conditioner, affine map and log-det as one primitive, _coupling_normalise)
    against the MLP layer by layer, affine_inverse and a concatenation, differentiated by autograd: the same
    z and log-det, the same gradients for params, x and both, one pass counted."""
    rng = onp.random.default_rng(30 + D)
    layer = transforms.AffineCoupling(D, hidden, flip=flip, activation=activation)
    params = perturb(layer.init_params(rng), rng, scale=0.3)
    x = rng.standard_normal((7, D))
    g_z, g_log_det = rng.standard_normal((7, D)), rng.standard_normal(7)

    def objective(inverse):
        return weighted_output(inverse, g_z, g_log_det)

    layer.calls = 0
    fused = fused_method(layer, "inverse")
    for ours, expected in zip(fused(params, x), readable_coupling_inverse(layer, params, x)):
        onp.testing.assert_allclose(ours, expected, rtol=TOL, atol=TOL)
    assert layer.calls == 1
    for ours, expected in zip(layer.inverse(params, x), readable_coupling_inverse(layer, params, x)):
        onp.testing.assert_array_equal(ours, expected)  # the layer's own method is the readable coupling
    readable = objective(lambda p, v: readable_coupling_inverse(layer, p, v))
    for argnums in (0, 1, (0, 1)):
        ours = grad(objective(fused), argnums)(params, x)
        onp.testing.assert_allclose(flatten(ours)[0], flatten(grad(readable, argnums)(params, x))[0],
                                    rtol=TOL, atol=TOL)


def test_coupling_layer_inverse_keeps_float32_and_can_be_differentiated_twice():
    """The fused coupling in float32 stays float32 (values and gradients); its backward pass is differentiable
    again (the conditioner's backward pass switches to autograd's NumPy when traced)."""
    rng = onp.random.default_rng(40)
    layer = transforms.AffineCoupling(4, (6, 6), activation="tanh", dtype="float32")
    params = perturb(layer.init_params(rng), rng, scale=0.3)
    params = {key: [a.astype(onp.float32) for a in value] if isinstance(value, list) else value.astype(onp.float32)
              for key, value in params.items()}
    x = rng.standard_normal((5, 4)).astype(onp.float32)
    fused = fused_method(layer, "inverse")
    z, log_det = fused(params, x)
    assert z.dtype == log_det.dtype == onp.float32
    g = grad(lambda p: anp.sum(fused(p, x)[0] ** 2))(params)
    assert {a.dtype for a in flatten(g)[0:1]} == {onp.dtype(onp.float32)}

    params64 = {key: [a.astype(float) for a in value] if isinstance(value, list) else value.astype(float)
                for key, value in params.items()}
    x64 = x.astype(float)

    def gradient_norm(inverse):
        def value(v):
            z, log_det = inverse(params64, v)
            return anp.sum(z * z) + anp.sum(log_det)

        return lambda v: anp.sum(grad(value)(v) ** 2)

    ours = grad(gradient_norm(fused))(x64)
    expected = grad(gradient_norm(lambda p, v: readable_coupling_inverse(layer, p, v)))(x64)
    onp.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("masked", [True, False])
def test_made_pass_can_be_differentiated_twice(masked):
    """made_pass's backward pass runs in plain NumPy for plain arrays and in autograd's NumPy when traced:
    a second derivative (of the input gradient's squared norm, with respect to x and to the parameters)
    matches autograd through made.made_apply."""
    rng = onp.random.default_rng(12)
    D, hidden = 4, (6, 5)
    degrees = mf.masks.made_degrees(D, hidden, "random", "sequential", rng)
    masks = mf.masks.made_masks(degrees) if masked else None
    params = perturb(made.init_made_params(D, hidden, D, rng), rng)
    x = rng.standard_normal((3, D))

    def gradient_norm(apply):
        def value(p, v):
            mu, alpha = apply(p, v, masks, "tanh")
            return anp.sum(mu * alpha)

        return lambda p, v: anp.sum(grad(value, 1)(p, v) ** 2)

    for argnum in (0, 1):
        ours = grad(gradient_norm(fused_apply), argnum)(params, x)
        expected = grad(gradient_norm(made.made_apply), argnum)(params, x)
        onp.testing.assert_allclose(flatten(ours)[0], flatten(expected)[0], rtol=1e-10, atol=1e-12)


def test_block_pass_input_gradient_by_row_segments_equals_the_block_by_block_sum():
    """The backward product g_a @ V^T by row segments (one product per segment, written in place) against the
    block-by-block sum it replaces (used when a plan's row counts do not grow), for params and x."""
    rng = onp.random.default_rng(13)
    D, hidden = 12, (40, 40)
    degrees = mf.masks.made_degrees(D, hidden, "random", "random", rng)
    masks = mf.masks.made_masks(degrees)
    plan = fast_made.block_plan(degrees, masks, 4)
    assert all(layer["row_blocks"] is not None for layer in plan["layers"])
    no_segments = {**plan, "layers": [{**layer, "row_blocks": None} for layer in plan["layers"]]}
    params = perturb(made.init_made_params(D, hidden, D, rng), rng)
    x = rng.standard_normal((8, D))
    g_mu, g_alpha = rng.standard_normal((2, 8, D))

    def objective(p):
        def value(params, v):
            mu, alpha = fused_apply(params, v, masks, "relu", p)
            return anp.sum(g_mu * mu + g_alpha * alpha)

        return value

    ours = grad(objective(plan), (0, 1))(params, x)
    expected = grad(objective(no_segments), (0, 1))(params, x)
    onp.testing.assert_allclose(flatten(ours)[0], flatten(expected)[0], rtol=TOL, atol=TOL)
    assert fast_made._row_blocks([(0, 2, 5), (2, 4, 3)]) is None  # row counts that shrink: no segments
    assert fast_made._row_blocks([(0, 2, 0), (2, 4, 3), (4, 6, 3), (6, 8, 5)]) == [(0, 3, 2), (3, 5, 6)]


@pytest.mark.parametrize("wide", [False, True])
def test_maf_layer_inverse_primitive_can_be_differentiated_twice(wide):
    """MAFLayer.inverse's fused backward pass, when traced itself (a second derivative, with respect to x and
    to the parameters), goes through autograd on the readable form and matches it."""
    rng = onp.random.default_rng(14)
    D, hidden = (5, (7, 6)) if not wide else (18, (256,))
    layer = transforms.MAFLayer(D, hidden, mf.masks.make_order(D, "random", rng), "sequential", "tanh", rng)
    assert (fast_made.block_plan_for(layer.network) is not None) == wide
    params = perturb(layer.init_params(rng), rng, scale=0.3 if not wide else 0.02)
    x = rng.standard_normal((3, D))
    fused = fused_method(layer, "inverse")

    def reference(p, v):
        return affine_inverse(v, *made.made_apply(p, v, layer.masks, "tanh"))

    def gradient_norm(inverse, argnum):
        def value(p, v):
            z, log_det = inverse(p, v)
            return anp.sum(z * z) + anp.sum(log_det)

        return lambda p, v: anp.sum(flatten(grad(value, argnum)(p, v))[0] ** 2)

    for inner, outer in [(1, 1), (1, 0), (0, 1)]:
        ours = grad(gradient_norm(fused, inner), outer)(params, x)
        expected = grad(gradient_norm(reference, inner), outer)(params, x)
        onp.testing.assert_allclose(flatten(ours)[0], flatten(expected)[0], rtol=1e-9, atol=1e-11)


def _flows_for_the_chain():
    wide = mf.MAF(18, num_layers=2, hidden=(256,), standardize=False, rng=3)
    fitted = mf.MAF(3, num_layers=3, hidden=(6, 5), activation="tanh", rng=4)
    fitted.layers[0].fit(onp.random.default_rng(4).standard_normal((50, 3)) * [1.0, 2.0, 0.5] + 1.0)
    return [("MAF", mf.MAF(4, num_layers=3, hidden=(8, 8), standardize=False, rng=1)),
            ("MAF, fitted Standardize, tanh", fitted),
            ("MAF, block plan", wide),
            ("RealNVP D=2", mf.RealNVP(2, num_layers=4, hidden=(7,), rng=5)),
            ("RealNVP D=5", mf.RealNVP(5, num_layers=3, hidden=(6, 6), standardize=False, rng=6)),
            ("MAF float32", mf.MAF(3, num_layers=2, hidden=(8,), standardize=False, rng=7, dtype="float32"))]


@pytest.mark.parametrize("name, flow", _flows_for_the_chain(), ids=lambda v: v if isinstance(v, str) else "")
def test_whole_normalising_chain_as_one_primitive_equals_the_layer_by_layer_flow(name, flow):
    """fast.chain.normalise_chain (every layer's fused primitive in one autograd node) against the layers' fused
    kernels chained (each layer one node): the same z and log-det bit for bit, the same gradients for params, x
    and both, the same pass counts, and a second derivative through autograd; and against the reference
    layer loop (fast=False) to rounding."""
    rng = onp.random.default_rng(21)
    params = [perturb(p, rng, scale=0.3 if flow.dim < 18 else 0.02) if p else p for p in flow.params]
    params = [{k: [a.astype(flow.dtype) for a in v] if isinstance(v, list) else v.astype(flow.dtype)
               for k, v in p.items()} for p in params]
    x = rng.standard_normal((6, flow.dim)).astype(flow.dtype)
    g_z, g_log_det = rng.standard_normal((6, flow.dim)), rng.standard_normal(6)
    assert fast.select(flow.layers, "inverse", params, x) is fast_chain.normalise_chain

    def chain(p, v):
        return fast_chain.normalise_chain(flow.layers, p, v)

    def layer_by_layer(p, v):
        log_det = anp.zeros(v.shape[0], dtype=flow.dtype)
        for layer, p_layer in zip(flow.layers, p):
            chosen = fast.layer_kernel(layer, "inverse", p_layer, v)
            v, log_det_layer = layer.inverse(p_layer, v) if chosen is None else chosen(layer, p_layer, v, None)
            log_det = log_det + log_det_layer
        return v, log_det

    def objective(inverse):
        return weighted_output(inverse, g_z, g_log_det)

    with flow._counting_passes():
        z, log_det = chain(params, x)
    fused_passes = flow.passes_per_layer
    with flow._counting_passes():
        z_ref, log_det_ref = layer_by_layer(params, x)
    assert fused_passes == flow.passes_per_layer
    assert z.dtype == log_det.dtype == flow.dtype
    onp.testing.assert_array_equal(z, z_ref)
    onp.testing.assert_array_equal(log_det, log_det_ref)
    tol = TOL if flow.dtype == onp.float64 else 1e-5
    for argnums in (0, 1, (0, 1)):
        ours = grad(objective(chain), argnums)(params, x)
        expected = grad(objective(layer_by_layer), argnums)(params, x)
        onp.testing.assert_allclose(flatten(ours)[0], flatten(expected)[0], rtol=tol, atol=tol)
    if flow.dtype == onp.float64 and flow.dim < 18:
        def gradient_norm(inverse):
            return lambda v: anp.sum(grad(objective(inverse), 1)(params, v) ** 2)

        onp.testing.assert_allclose(grad(gradient_norm(chain))(x), grad(gradient_norm(layer_by_layer))(x),
                                    rtol=1e-9, atol=1e-11)
    flow.fast = False  # the reference: the flow's own loop over the layers' readable inverse maps
    z_reference, log_det_reference = flow.run("inverse", params, x)
    onp.testing.assert_allclose(z, z_reference, rtol=tol, atol=tol)
    onp.testing.assert_allclose(log_det, log_det_reference, rtol=tol, atol=tol)


def test_whole_chain_applies_only_where_every_layer_has_a_fused_primitive():
    """IAF (implicit fixed point), batch norm, a conditional MAF and a clamped MAF keep the layer-by-layer path;
    so does a plain parameter list holding traced arrays, and a subclass of a layer (it may override inverse)."""
    x = onp.zeros((2, 3))
    for flow in [mf.IAF(3, num_layers=2, hidden=(4,), rng=0), mf.MAF(3, num_layers=2, hidden=(4,), batch_norm=True,
                                                                   rng=0),
                 mf.MAF(3, num_layers=2, hidden=(4,), alpha_clamp=3.0, rng=0)]:
        assert fast.select(flow.layers, "inverse", flow.params, x) not in (None, fast_chain.normalise_chain)
    conditional = mf.ConditionalMAF(3, 2, num_layers=2, hidden=(4,), rng=0)
    assert fast.select(conditional.layers, "inverse", conditional.params, x, onp.zeros((2, 2))) not in (
        None, fast_chain.normalise_chain)
    flow = mf.MAF(3, num_layers=2, hidden=(4,), rng=0)
    assert fast.select(flow.layers, "inverse", flow.params, x) is fast_chain.normalise_chain

    class OwnInverse(transforms.MAFLayer):  # a subclass may override inverse: it keeps its own
        pass

    assert fast.select([OwnInverse(3, (4,))], "inverse", [flow.params[1]], x) is None
    assert fast.layer_kernel(OwnInverse(3, (4,)), "inverse", flow.params[1], x) is None
    seen = []
    grad(lambda w: seen.append(fast.select(flow.layers, "inverse", [{**flow.params[0]}, {
        **flow.params[1], "b_mu": flow.params[1]["b_mu"] * w}], x)) or w)(1.0)
    assert seen[0] is not fast_chain.normalise_chain
    seen = []
    grad(lambda w: seen.append(fast.layer_kernel(flow.layers[1], "inverse", {
        **flow.params[1], "b_mu": flow.params[1]["b_mu"] * w}, x)) or w)(1.0)
    assert seen == [None]  # a plain dict holding a traced array: a primitive cannot see into it
