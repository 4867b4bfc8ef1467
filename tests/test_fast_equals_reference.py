"""fast=True gives the reference's answer: every public flow class, over a grid of the configurations it accepts.

Each case builds one flow, perturbs its parameters (so that nothing relies on the near-identity initialisation)
and fits its Standardize and BatchNorm layers to data, then computes the same things with ``flow.fast = True``
(kernels of maf_numpy.fast where the dispatch picks them) and ``flow.fast = False`` (the readable reference):
log_prob, inverse and forward (values and log-dets), samples, pass counts per layer, the gradient of the mean
log-density with respect to the parameters and to x, the gradient of a function of samples (a traced D-pass
direction), and a second derivative. float64 to 1e-10 (relative to the size of the numbers); float32 to 1e-4.
"""

import autograd.numpy as anp
import numpy as onp
import pytest
from autograd import grad
from helpers import perturb

import maf_numpy as mf
from maf_numpy import fast
from maf_numpy.optim import flat_vector
from maf_numpy.transforms import IAFLayer, MAFLayer

N = 7  # points per batch


def _tied_flow(layer_class, **options):
    """A one-layer flow whose MADE has explicit tied input degrees (several inputs per degree)."""
    def make():
        rng = onp.random.default_rng(0)
        degrees = mf.masks.two_group_degrees(5, [0, 3], (9, 7))
        layer = layer_class(5, (9, 7), rng=rng, degrees=degrees, activation="tanh", **options)
        return mf.Flow(5, [layer], rng=rng)

    return make


def _explicit_flow(layer_class):
    """A one-layer flow with explicit (untied) degrees that skip hidden degrees, through ``mf.Flow``."""
    def make():
        rng = onp.random.default_rng(1)
        degrees = [onp.array([3, 1, 4, 2]), onp.array([1, 1, 3, 3, 2]), onp.array([3, 1, 2])]
        return mf.Flow(4, [layer_class(4, (5, 3), rng=rng, degrees=degrees)], rng=rng)

    return make


# id -> (factory, context dimension C or 0)
CASES = {
    "MAF": (lambda: mf.MAF(4, num_layers=3, hidden=(12, 12), rng=0), 0),
    "MAF-random-orders-random-degrees": (lambda: mf.MAF(5, num_layers=2, hidden=(10,), orders="random",
                                                        hidden_degrees="random", activation="tanh", rng=1), 0),
    "MAF-sequential-orders": (lambda: mf.MAF(3, num_layers=2, hidden=(8,), orders="sequential", rng=2), 0),
    "MAF-reversed-orders-explicit-list": (lambda: mf.MAF(3, num_layers=2, hidden=(8,),
                                                         orders=[[2, 0, 1], [1, 2, 0]], rng=2), 0),
    "MAF-hidden-narrower-than-D": (lambda: mf.MAF(7, num_layers=2, hidden=(3, 4), rng=3), 0),
    "MAF-no-hidden-layer": (lambda: mf.MAF(4, num_layers=2, hidden=(), rng=4), 0),
    "MAF-D=1": (lambda: mf.MAF(1, num_layers=2, hidden=(5,), rng=5), 0),
    "MAF-no-standardize": (lambda: mf.MAF(3, num_layers=2, hidden=(6,), standardize=False, rng=6), 0),
    "MAF-clamp": (lambda: mf.MAF(4, num_layers=2, hidden=(8,), alpha_clamp=0.7, rng=7), 0),
    "MAF-batch-norm": (lambda: mf.MAF(4, num_layers=3, hidden=(8,), batch_norm=True, rng=8), 0),
    "MAF-wide-block-products": (lambda: mf.MAF(16, num_layers=2, hidden=(256,), standardize=False, rng=9), 0),
    "MAF-float32": (lambda: mf.MAF(4, num_layers=2, hidden=(8,), dtype="float32", rng=10), 0),
    "MAF-tied-degrees": (_tied_flow(MAFLayer), 0),
    "MAF-tied-degrees-clamp": (_tied_flow(MAFLayer, alpha_clamp=1.5), 0),
    "MAF-explicit-degrees": (_explicit_flow(MAFLayer), 0),
    "IAF": (lambda: mf.IAF(5, num_layers=2, hidden=(10, 10), rng=11), 0),
    "IAF-D=3": (lambda: mf.IAF(3, num_layers=2, hidden=(8,), rng=12), 0),
    "IAF-D=1": (lambda: mf.IAF(1, num_layers=1, hidden=(4,), rng=13), 0),
    "IAF-random-orders-narrow": (lambda: mf.IAF(6, num_layers=2, hidden=(3,), orders="random",
                                                hidden_degrees="random", activation="tanh", rng=14), 0),
    "IAF-clamp": (lambda: mf.IAF(4, num_layers=2, hidden=(8,), alpha_clamp=0.7, rng=15), 0),
    "IAF-batch-norm": (lambda: mf.IAF(4, num_layers=2, hidden=(8,), batch_norm=True, rng=16), 0),
    "IAF-wide-block-products": (lambda: mf.IAF(16, num_layers=1, hidden=(256,), standardize=False, rng=17), 0),
    "IAF-float32": (lambda: mf.IAF(4, num_layers=2, hidden=(8,), dtype="float32", rng=18), 0),
    "IAF-tied-degrees": (_tied_flow(IAFLayer), 0),
    "IAF-explicit-degrees": (_explicit_flow(IAFLayer), 0),
    "RealNVP-D=2": (lambda: mf.RealNVP(2, num_layers=3, hidden=(8,), rng=19), 0),
    "RealNVP-D=5-no-hidden": (lambda: mf.RealNVP(5, num_layers=2, hidden=(), rng=20), 0),
    "RealNVP-batch-norm-tanh": (lambda: mf.RealNVP(4, num_layers=3, hidden=(6, 6), batch_norm=True,
                                                   activation="tanh", rng=21), 0),
    "RealNVP-float32": (lambda: mf.RealNVP(3, num_layers=2, hidden=(8,), dtype="float32", rng=22), 0),
    "MADE": (lambda: mf.MADE(4, hidden=(12,), rng=23), 0),
    "MADE-random-order-clamp": (lambda: mf.MADE(5, hidden=(9, 9), order="random", alpha_clamp=2.0, rng=24), 0),
    "MADE-D=1": (lambda: mf.MADE(1, hidden=(3,), rng=25), 0),
    "ConditionalMADE": (lambda: mf.ConditionalMADE(3, 2, hidden=(8,), rng=26), 2),
    "ConditionalMAF": (lambda: mf.ConditionalMAF(4, 3, num_layers=2, hidden=(9,), rng=27), 3),
    "ConditionalMAF-clamp-batch-norm": (lambda: mf.ConditionalMAF(3, 2, num_layers=2, hidden=(8,), alpha_clamp=1.0,
                                                                  batch_norm=True, rng=28), 2),
    "MADEMoG": (lambda: mf.MADEMoG(3, hidden=(8,), components=3, rng=29), 0),
    "MAFMoG": (lambda: mf.MAFMoG(3, num_layers=2, hidden=(8,), components=3, rng=30), 0),
    "ConditionalMAFMoG": (lambda: mf.ConditionalMAFMoG(3, 2, num_layers=1, hidden=(8,), components=2, rng=31), 2),
    "OrderAgnosticMADE": (lambda: mf.OrderAgnosticMADE(4, hidden=(10,), num_masks=3, rng=32), 0),
    # Couplings the kernels decline (clamped; NICE's additive, scale=False) next to plain ones they serve: the
    # declined layers run their reference methods, the rest their kernels, and the whole chain is not fused.
    "couplings-clamped-and-plain-with-standardize": (lambda: mf.Flow(4, [
        mf.transforms.Standardize(4), mf.transforms.AffineCoupling(4, (8,), alpha_clamp=0.8),
        mf.transforms.AffineCoupling(4, (8,), flip=True),
        mf.transforms.AffineCoupling(4, (6, 6), activation="tanh", alpha_clamp=1.5)], rng=33), 0),
    "NICE-additive-couplings-logistic-base-and-an-affine-coupling": (lambda: mf.Flow(4, [
        mf.transforms.AffineCoupling(4, (8,), scale=False),
        mf.transforms.AffineCoupling(4, (8,), flip=True, scale=False), mf.transforms.AffineCoupling(4, (8,)),
        mf.transforms.ActNorm(4)], base=mf.bases.Logistic(4), rng=34), 0),
    "Glow-actnorm-linearlu-coupling-reverse": (lambda: mf.Flow(3, [
        mf.transforms.ActNorm(3), mf.transforms.LinearLU(3, rng=1), mf.transforms.AffineCoupling(3, (8,)),
        mf.transforms.ActNorm(3), mf.transforms.LinearLU(3, rng=2), mf.transforms.AffineCoupling(3, (8,), flip=True),
        mf.transforms.Reverse(3)], rng=35), 0),
    "Glow-float32-with-permutation": (lambda: mf.Flow(4, [
        mf.transforms.ActNorm(4, dtype="float32"), mf.transforms.LinearLU(4, rng=3, dtype="float32"),
        mf.transforms.AffineCoupling(4, (8,), dtype="float32"), mf.transforms.Permutation(4, rng=4),
        mf.transforms.AffineCoupling(4, (8,), dtype="float32", scale=False)], rng=36), 0),
}
# Flows whose log_prob, or sample, involves a kernel of maf_numpy.fast (so the comparison proves something).
USES_KERNELS = [name for name in CASES if not name.startswith("MADEMoG")]


def _tolerance(flow):
    return 1e-4 if flow.dtype == onp.float32 else 1e-10


def assert_close(ours, reference, flow, what):
    ours, reference = onp.asarray(ours, dtype=float), onp.asarray(reference, dtype=float)
    scale = max(1.0, float(onp.max(onp.abs(reference)))) if reference.size else 1.0
    error = float(onp.max(onp.abs(ours - reference))) if reference.size else 0.0
    assert error <= _tolerance(flow) * scale, f"{what}: fast and reference differ by {error:.3g} (scale {scale:.3g})"


def build(name):
    """The flow of one case, its data x, contexts y (or None), parameters perturbed and statistics fitted."""
    factory, C = CASES[name]
    flow = factory()
    rng = onp.random.default_rng(100)
    scale = 0.02 if flow.dim >= 16 else 0.3
    flow.params = [{key: [a.astype(flow.dtype) for a in value] if isinstance(value, list) else value.astype(flow.dtype)
                    for key, value in perturb(p, rng, scale).items()} for p in flow.params]
    x = (rng.standard_normal((N, flow.dim)) * 1.5 + 0.5).astype(flow.dtype)
    y = rng.standard_normal((N, C)).astype(flow.dtype) if C else None
    if hasattr(flow.layers[0], "fit"):
        flow.layers[0].fit(rng.standard_normal((50, flow.dim)) * 2.0 - 1.0)
    if flow.needs_refresh:
        flow.refresh_state(rng.standard_normal((60, flow.dim)), y=None if y is None else rng.standard_normal((60, C)))
    return flow, x, y


def _call(method, *args, y=None, **kwargs):
    return method(*args, **kwargs) if y is None else method(*args, y, **kwargs)


def both_ways(flow, compute):
    """compute() with flow.fast True, then False: (fast result, fast passes, reference result, reference passes)."""
    flow.fast = True
    ours = compute()
    ours_passes = list(flow.passes_per_layer)
    flow.fast = False
    reference = compute()
    return ours, ours_passes, reference, list(flow.passes_per_layer)


@pytest.mark.parametrize("name", list(CASES))
def test_log_prob_and_its_passes_equal_the_reference(name):
    flow, x, y = build(name)
    ours, ours_passes, reference, reference_passes = both_ways(flow, lambda: _call(flow.log_prob, x, y=y))
    assert ours.dtype == reference.dtype == flow.dtype
    assert_close(ours, reference, flow, "log_prob")
    assert ours_passes == reference_passes


@pytest.mark.parametrize("name", [name for name in CASES if name != "OrderAgnosticMADE"])
def test_inverse_and_forward_equal_the_reference_with_their_log_dets_and_passes(name):
    flow, x, y = build(name)
    z = onp.random.default_rng(5).standard_normal(x.shape).astype(flow.dtype)
    for method, v in ((flow.inverse, x), (flow.forward, z)):
        ours, ours_passes, reference, reference_passes = both_ways(flow, lambda m=method, v=v: _call(m, v, y=y))
        assert_close(ours[0], reference[0], flow, f"{method.__name__}: value")
        assert_close(ours[1], reference[1], flow, f"{method.__name__}: log_det")
        assert ours_passes == reference_passes


@pytest.mark.parametrize("name", list(CASES))
def test_samples_equal_the_reference_with_the_same_passes(name):
    flow, _, _ = build(name)
    y = onp.ones(flow.context_dim, dtype=flow.dtype) * 0.5 if flow.context_dim else None
    ours, ours_passes, reference, reference_passes = both_ways(flow, lambda: _call(flow.sample, 6, y=y, rng=3))
    assert_close(ours, reference, flow, "sample")
    assert ours_passes == reference_passes


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_with_respect_to_params_and_x_equal_the_reference(name):
    flow, x, y = build(name)
    if flow.needs_refresh:
        flow.training = True  # batch norm in training mode: minibatch statistics, as fit differentiates them

    def loss(params, v):
        return -anp.sum(flow.log_density(params, v, y)) / N

    def gradients():
        g_params, g_x = grad(loss, (0, 1))(flow.params, x)
        return flat_vector(g_params, flow.dtype), g_x

    ours, ours_passes, reference, reference_passes = both_ways(flow, gradients)
    assert ours[0].dtype == reference[0].dtype == flow.dtype
    assert_close(ours[0], reference[0], flow, "gradient with respect to params")
    assert_close(ours[1], reference[1], flow, "gradient with respect to x")


@pytest.mark.parametrize("name", [name for name in CASES if "batch-norm" not in name and "MoG" not in name
                                  and name != "OrderAgnosticMADE"])
def test_gradients_through_the_generative_direction_equal_the_reference(name):
    """A function of x = forward(z) (the D-pass direction of a MAF, traced), differentiated for params and z."""
    flow, _, y = build(name)
    z = onp.random.default_rng(6).standard_normal((N, flow.dim)).astype(flow.dtype)

    def objective(params, v):
        x, log_det = flow.run("forward", params, v, y)
        return anp.sum(anp.sin(x)) + anp.sum(log_det)

    def gradients():
        g_params, g_z = grad(objective, (0, 1))(flow.params, z)
        return flat_vector(g_params, flow.dtype), g_z

    ours, _, reference, _ = both_ways(flow, gradients)
    assert_close(ours[0], reference[0], flow, "gradient of forward with respect to params")
    assert_close(ours[1], reference[1], flow, "gradient of forward with respect to z")


@pytest.mark.parametrize("name", [name for name in CASES if CASES[name][1] == 0 and "float32" not in name
                                  and "wide" not in name and "batch-norm" not in name])
def test_second_derivatives_equal_the_reference(name):
    """The gradient of |d log p / d x|^2 with respect to x: the backward passes are themselves differentiated."""
    flow, x, _ = build(name)

    def score_norm(v):
        return anp.sum(grad(lambda w: anp.sum(flow.log_density(flow.params, w)))(v) ** 2)

    ours, _, reference, _ = both_ways(flow, lambda: grad(score_norm)(x))
    assert_close(ours, reference, flow, "second derivative")


@pytest.mark.parametrize("name", USES_KERNELS)
def test_the_fast_path_does_use_a_kernel_here(name):
    """Guards the grid itself: for these flows some kernel of maf_numpy.fast runs, so the comparisons above test
    something; with fast=False none does."""
    flow, x, y = build(name)
    layers = flow.layers if name != "OrderAgnosticMADE" else flow.made_layer.made_layers
    params = flow.params if name != "OrderAgnosticMADE" else [flow.params[-1]] * len(layers)
    chosen = [fast.select(layers, direction, params, x, y) for direction in ("inverse", "forward")]
    assert any(kernel is not None for kernel in chosen)
