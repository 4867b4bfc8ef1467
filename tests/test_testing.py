"""The public property toolkit, maf_numpy.testing: every check passes on every layer and flow of the library,
and each one catches the bug it exists for.

The second half builds deliberately broken layers and flows, one bug each, and shows which check fails and
what its message says (the property, the worst index, the error against the tolerance):

| bug                                                  | caught by                                         |
| ---------------------------------------------------- | ------------------------------------------------- |
| MADE output mask ``<=`` instead of ``<``             | assert_autoregressive (the conditioner), log-det  |
| a mask that lets every input through (a real leak)   | assert_autoregressive (the Jacobian's pattern)    |
| log-det with its sign flipped                        | assert_log_det_matches_jacobian                   |
| D-pass solver stopping after D - 1 passes            | assert_round_trip, assert_pass_counts             |
| log_prob + log 1.01 (a density of total mass 1.01)   | assert_density_integrates_to_one                  |
| a wasted network pass                                | assert_pass_counts                                |
| a primitive with a wrong VJP (autograd.extend)       | assert_gradients_match_finite_differences         |
| samples drawn from the wrong distribution            | assert_samples_match_density                      |
"""

import math
import textwrap

import autograd.numpy as np
import numpy as onp
import pytest
from autograd.extend import defvjp, primitive
from helpers import perturb

import maf_numpy as mf
from maf_numpy import masks, testing, transforms

D = 3  # layers
C = 2  # context size of the conditional layers
K = 3  # layers of the flows


# --- every layer type: (layer, params, context y or None) ----------------------------------------------------
def _made_layer(cls, order="random", **options):
    def make(rng):
        layer = cls(D, (16, 16), order, "sequential", "tanh", rng, **options)
        y = rng.standard_normal(C) if options.get("context_dim") else None
        return layer, perturb(layer.init_params(rng), rng), y

    return make


def _coupling(cls, flip):
    def make(rng):
        layer = cls(D, (16,), flip=flip, activation="tanh")
        return layer, perturb(layer.init_params(rng), rng), None

    return make


def _standardize(rng):
    return transforms.Standardize(D).fit(rng.normal(1.5, 3.0, size=(50, D))), {}, None


def _batch_norm(rng):
    layer = transforms.BatchNorm(D).set_statistics(rng.normal(1.5, 3.0, size=(50, D)))
    return layer, perturb(layer.init_params(rng), rng), None


LAYERS = {  # id: (factory, passes of inverse, passes of forward)
    "MAFLayer": (_made_layer(transforms.MAFLayer), 1, D),
    "MAFLayer-clamp": (_made_layer(transforms.MAFLayer, alpha_clamp=0.7), 1, D),
    "MAFLayer-context": (_made_layer(transforms.MAFLayer, context_dim=C), 1, D),
    "MAFLayer-context-clamp": (_made_layer(transforms.MAFLayer, context_dim=C, alpha_clamp=0.7), 1, D),
    "IAFLayer": (_made_layer(transforms.IAFLayer, "reversed"), D, 1),
    "IAFLayer-clamp": (_made_layer(transforms.IAFLayer, alpha_clamp=0.7), D, 1),
    "IAFLayer-context": (_made_layer(transforms.IAFLayer, context_dim=C), D, 1),
    "IAFLayer-context-clamp": (_made_layer(transforms.IAFLayer, context_dim=C, alpha_clamp=0.7), D, 1),
    "AffineCoupling": (_coupling(transforms.AffineCoupling, False), 1, 1),
    "AffineCoupling-flipped": (_coupling(transforms.AffineCoupling, True), 1, 1),
    "MADECoupling": (_coupling(transforms.MADECoupling, False), 1, 1),
    "MADECoupling-flipped": (_coupling(transforms.MADECoupling, True), 1, 1),
    "Standardize": (_standardize, 0, 0),
    "BatchNorm-evaluation-mode": (_batch_norm, 0, 0),
    "AffineCoupling-additive-NICE": (_coupling(lambda *a, **k: transforms.AffineCoupling(*a, **k, scale=False),
                                               False), 1, 1),
    "AffineCoupling-clamp": (_coupling(lambda *a, **k: transforms.AffineCoupling(*a, **k, alpha_clamp=0.7),
                                       True), 1, 1),
    "ActNorm": (lambda rng: _actnorm(rng), 0, 0),
    "LinearLU": (lambda rng: _unordered(transforms.LinearLU(D, rng=rng), rng), 0, 0),
    "Permutation": (lambda rng: _unordered(transforms.Permutation(D, rng=rng), rng), 0, 0),
    "Reverse": (lambda rng: _unordered(transforms.Reverse(D), rng), 0, 0),
}
# Layers with no autoregressive order (a dense or permuting linear map): every check but the zero pattern applies.
UNORDERED = ("LinearLU", "Permutation", "Reverse")


def _actnorm(rng):
    layer = transforms.ActNorm(D)
    x = rng.normal(1.5, 3.0, size=(50, D))
    return layer, perturb(layer.initialize(layer.init_params(rng), x), rng), None


def _unordered(layer, rng):
    params = layer.init_params(rng)
    return layer, perturb(params, rng) if params else params, None


def build_layer(name, seed=0):
    rng = onp.random.default_rng(seed)
    layer, params, y = LAYERS[name][0](rng)
    return layer, params, y, rng.standard_normal((5, D))


@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_passes_the_round_trip_and_log_det_checks(name):
    layer, params, y, v = build_layer(name)
    testing.assert_round_trip(layer, v, params, y)
    J = testing.assert_log_det_matches_jacobian(layer, v, "both", params, y)
    assert J.shape == (len(v), D, D)


@pytest.mark.parametrize("name", [name for name in LAYERS if name not in UNORDERED])
def test_every_layer_passes_the_autoregressive_check_in_both_directions(name):
    layer, params, y, v = build_layer(name)
    jacobians = testing.assert_autoregressive(layer, v, params=params, y=y)
    assert set(jacobians) == {"inverse", "forward"}


@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_passes_the_gradient_check(name):
    layer, params, y, v = build_layer(name)
    testing.assert_gradients_match_finite_differences(layer, v, params, y)


@pytest.mark.parametrize("name", LAYERS)
def test_every_layer_takes_its_documented_number_of_passes(name):
    layer, params, y, _ = build_layer(name)
    _, inverse, forward = LAYERS[name]
    testing.assert_pass_counts(layer, inverse=inverse, forward=forward, params=params, y=y)


# --- flows (2-D, so that the density can be integrated on a grid) ---------------------------------------------
def _flow(make):
    def build(seed=0):
        rng = onp.random.default_rng(seed)
        flow = make()
        flow.layers[0].fit(rng.normal(0.5, 2.0, size=(100, 2)))
        flow.params = perturb(flow.params, rng, 0.2)
        return flow

    return build


FLOWS = {  # id: (factory, passes of log_prob, passes of sample, context)
    "MADE": (_flow(lambda: mf.MADE(2, hidden=(16, 16), activation="tanh", rng=0)), 1, 2, None),
    "MAF": (_flow(lambda: mf.MAF(2, num_layers=K, hidden=(16,), activation="tanh", rng=0)), K, K * 2, None),
    "IAF": (_flow(lambda: mf.IAF(2, num_layers=K, hidden=(16,), activation="tanh", rng=0)), K * 2, K, None),
    "RealNVP": (_flow(lambda: mf.RealNVP(2, num_layers=K, hidden=(16,), activation="tanh", rng=0)), K, K, None),
    "ConditionalMAF": (_flow(lambda: mf.ConditionalMAF(2, C, num_layers=2, hidden=(16,), activation="tanh", rng=0)),
                       2, 4, onp.array([0.5, -1.0])),
}


def build_flow(name):
    make, _, _, y = FLOWS[name]
    return make(), y, onp.random.default_rng(1).normal(0.5, 2.0, size=(4, 2))


@pytest.mark.parametrize("name", FLOWS)
def test_every_flow_passes_the_bijection_and_gradient_checks(name):
    flow, y, x = build_flow(name)
    testing.assert_round_trip(flow, x, y=y)
    testing.assert_log_det_matches_jacobian(flow, x, "both", y=y)
    testing.assert_gradients_match_finite_differences(flow, x, y=y)


@pytest.mark.parametrize("name", FLOWS)
def test_every_flow_density_integrates_to_one_and_its_samples_match_it(name):
    flow, y, _ = build_flow(name)
    testing.assert_density_integrates_to_one(flow, y=y)
    testing.assert_samples_match_density(flow, y=y)


@pytest.mark.parametrize("name", FLOWS)
def test_every_flow_takes_its_documented_number_of_passes(name):
    flow, y, _ = build_flow(name)
    _, log_prob, sample, _ = FLOWS[name]
    testing.assert_pass_counts(flow, log_prob=log_prob, sample=sample, y=y)
    per_layer = [0] + [log_prob // (len(flow.layers) - 1)] * (len(flow.layers) - 1)  # Standardize: no pass
    testing.assert_pass_counts(flow, log_prob=per_layer, y=y)


def test_a_made_flow_is_autoregressive_in_its_layers_order_but_a_maf_stack_is_not():
    made, _, x = build_flow("MADE")
    testing.assert_autoregressive(made, x, degrees=made.layers[-1].input_degrees)
    maf, _, x = build_flow("MAF")  # orders (0, 1), (1, 0), (0, 1): the composition is dense
    with pytest.raises(AssertionError, match=r"output 0 \(degree 1\) depends on input 1 \(degree 2\)"):
        testing.assert_autoregressive(maf, x, degrees=maf.layers[1].input_degrees)
    with pytest.raises(TypeError, match="degrees"):
        testing.assert_autoregressive(maf, x)


# --- any object with the protocol, float32, and the arguments ------------------------------------------------
class ElementwiseAffine:
    """A layer written from scratch with only the protocol: x = z * exp(s) + t, coordinate by coordinate."""

    def __init__(self, D):
        self.D, self.calls = D, 0
        self.input_degrees = onp.ones(D, dtype=int)

    def init_params(self, rng):
        return {"s": rng.normal(size=self.D), "t": rng.normal(size=self.D)}

    def forward(self, params, z):
        return z * np.exp(params["s"]) + params["t"], np.sum(params["s"]) * np.ones(z.shape[0])

    def inverse(self, params, x):
        return (x - params["t"]) * np.exp(-params["s"]), -np.sum(params["s"]) * np.ones(x.shape[0])


def test_a_layer_written_from_scratch_passes_every_layer_check():
    layer = ElementwiseAffine(4)
    params = layer.init_params(onp.random.default_rng(0))
    v = onp.random.default_rng(1).standard_normal((6, 4))
    testing.assert_round_trip(layer, v, params)
    testing.assert_log_det_matches_jacobian(layer, v, "both", params)
    testing.assert_autoregressive(layer, v, params=params)
    testing.assert_gradients_match_finite_differences(layer, v, params)
    testing.assert_pass_counts(layer, inverse=0, forward=0, params=params)


def test_the_default_tolerance_follows_the_dtype_and_float32_layers_pass_with_it():
    assert testing.default_atol(onp.float64) == 1e-10 and testing.default_atol("float32") == 1e-4
    rng = onp.random.default_rng(0)
    layer = transforms.MAFLayer(D, (16,), "random", activation="tanh", rng=rng, dtype="float32")
    params = layer.init_params(rng)
    v = rng.standard_normal((5, D)).astype(onp.float32)
    testing.assert_round_trip(layer, v, params)
    testing.assert_log_det_matches_jacobian(layer, v, "both", params)
    testing.assert_autoregressive(layer, v, params=params)
    testing.assert_gradients_match_finite_differences(layer, v, params)
    with pytest.raises(AssertionError, match=r"> atol = 1\.0e-12"):  # float32 rounding is far above 1e-12
        testing.assert_round_trip(layer, v, params, atol=1e-12)


def test_the_example_in_the_module_docstring_runs():
    doc = testing.__doc__
    code = doc[doc.index("call it in a test::") + len("call it in a test::"):doc.index("The checks are deterministic")]
    namespace = {}
    exec(textwrap.dedent(code), namespace)
    for order in ("sequential", "random"):
        namespace["test_my_layer_is_a_correct_bijection"](order)
    namespace["test_my_flow_is_a_normalised_density"]()


def test_bad_arguments_get_errors_that_say_what_to_pass():
    layer, params, _, v = build_layer("MAFLayer")
    with pytest.raises(TypeError, match="params is required"):
        testing.assert_round_trip(layer, v)
    with pytest.raises(ValueError, match=r"shape \(n, D\)"):
        testing.assert_round_trip(layer, v[0], params)
    with pytest.raises(ValueError, match="direction"):
        testing.assert_log_det_matches_jacobian(layer, v, "sideways", params)
    with pytest.raises(ValueError, match="2-D flow"):
        testing.assert_density_integrates_to_one(mf.MAF(3, num_layers=1, hidden=(4,), rng=0))
    with pytest.raises(TypeError, match="a layer has no log_prob"):
        testing.assert_pass_counts(layer, log_prob=1, params=params)
    with pytest.raises(TypeError, match="N\\(0, I\\).*base is MADEMoGBase"):
        testing.assert_samples_match_density(mf.MAFMoG(2, num_layers=1, hidden=(4,), components=2, rng=0))


# === the bugs each check exists for ===========================================================================
def _non_strict_maf_layer(rng, hidden=(16, 16)):
    """A MAF layer whose MADE output mask uses <= instead of <: mu_i and alpha_i also read x_i."""
    layer = transforms.MAFLayer(D, hidden, "random", activation="tanh", rng=rng)
    degrees = layer.network.degrees
    leaky = masks.made_masks(degrees)
    leaky[-1] = (degrees[-1][:, None] <= degrees[0][None, :]).astype(float)  # the bug: should be <
    layer.network.masks = leaky
    return layer


def test_a_non_strict_output_mask_is_caught_by_the_conditioner_check_and_the_log_det():
    rng = onp.random.default_rng(0)
    layer = _non_strict_maf_layer(rng)
    params, v = layer.init_params(rng), rng.standard_normal((5, D))
    with pytest.raises(AssertionError, match=r"(?s)conditioner's (mu|alpha).*point \d+: output (\d) \(degree \d\) "
                                             r"depends on input \2 .*> atol = 0"):
        testing.assert_autoregressive(layer, v, params=params)
    with pytest.raises(AssertionError, match=r"(?s)log-det of inverse does not match.*point \d+.*> atol = 1\.0e-10"):
        testing.assert_log_det_matches_jacobian(layer, v, "inverse", params)
    # Why the conditioner is checked: the layer's own Jacobian stays triangular (the leak is on its diagonal,
    # where any dependence is allowed), so the zero pattern of the map alone cannot see this bug.
    testing.assert_autoregressive(layer, v, params=params, conditioner=None)


def test_the_perturbation_exposes_a_leak_that_zero_initialised_output_weights_hide():
    rng = onp.random.default_rng(0)
    layer = _non_strict_maf_layer(rng)
    params = layer.init_params(rng)
    params.update(W_mu=0 * params["W_mu"], W_alpha=0 * params["W_alpha"])  # a common "start at identity" init
    v = rng.standard_normal((5, D))
    testing.assert_autoregressive(layer, v, params=params, perturbation=0.0)  # hidden: mu, alpha are constants
    with pytest.raises(AssertionError, match="conditioner"):
        testing.assert_autoregressive(layer, v, params=params)  # default: params + N(0, 0.1^2) noise


def test_a_mask_that_lets_every_input_through_is_caught_by_the_jacobian_pattern():
    rng = onp.random.default_rng(0)
    layer = transforms.IAFLayer(D, (16,), "sequential", activation="tanh", rng=rng)
    leaky = list(layer.network.masks)
    leaky[0] = onp.ones_like(leaky[0])  # the bug: the first hidden layer reads every input
    layer.network.masks = leaky
    params, v = perturb(layer.init_params(rng), rng), rng.standard_normal((5, D))
    # output 1 (degree 2) reads the hidden units of degree 1, which now read input 2 (degree 3) as well
    with pytest.raises(AssertionError, match=r"(?s)Jacobian of forward.*point \d: output \d \(degree \d\) depends "
                                             r"on input \d \(degree \d\).*> atol = 0.*forbidden \(output, input\) "
                                             r"pairs that are nonzero: \(1, 2\)\."):
        testing.assert_autoregressive(layer, v, params=params, conditioner=None)
    # Only the one-pass direction shows it: the D-pass solver of IAF's inverse zeroes the coordinates not yet
    # exact after each pass, so its output is triangular whatever the conditioner reads. Hence "both" directions.
    testing.assert_autoregressive(layer, v, params=params, direction="inverse", conditioner=None)


class FlippedSignMAFLayer(transforms.MAFLayer):
    """Returns minus the right log-det in both directions (so the two still add up to zero)."""

    def inverse(self, params, x, y=None):
        z, log_det = super().inverse(params, x, y)
        return z, -log_det

    def forward(self, params, z, y=None):
        x, log_det = super().forward(params, z, y)
        return x, -log_det


@pytest.mark.parametrize("direction", ["inverse", "forward"])
def test_a_flipped_log_det_sign_is_caught_and_named(direction):
    rng = onp.random.default_rng(0)
    layer = FlippedSignMAFLayer(D, (16,), "random", activation="tanh", rng=rng)
    params, v = perturb(layer.init_params(rng), rng), rng.standard_normal((5, D))
    testing.assert_round_trip(layer, v, params)  # the map itself is right
    with pytest.raises(AssertionError, match=rf"(?s)log-det of {direction}.*worst at point \d.*> atol.*sign is "
                                             "flipped"):
        testing.assert_log_det_matches_jacobian(layer, v, direction, params)


class MissingPassMAFLayer(transforms.MAFLayer):
    """forward runs the D-pass solver for D - 1 passes only: the coordinate of degree D is never made exact."""

    def forward(self, params, z, y=None):
        def step(x):
            mu, alpha = self.conditioner(params, x, y)
            return transforms.affine_forward(z, mu, alpha)

        return transforms.solve_autoregressive(step, self.D - 1, z.shape, self.input_degrees, z.dtype)


def test_a_missing_solver_pass_is_caught_by_the_round_trip_and_the_pass_count():
    rng = onp.random.default_rng(0)
    layer = MissingPassMAFLayer(D, (16,), "random", activation="tanh", rng=rng)
    params, v = perturb(layer.init_params(rng), rng), rng.standard_normal((5, D))
    last = int(onp.flatnonzero(layer.input_degrees == D)[0])
    with pytest.raises(AssertionError, match=rf"(?s)round trip failed.*point \d, coordinate {last}.*> atol = "
                                             r"1\.0e-10.*Only the coordinates of the highest degree"):
        testing.assert_round_trip(layer, v, params)
    with pytest.raises(AssertionError, match=rf"pass count of layer.forward: expected {D} network passes, "
                                             rf"counted {D - 1}"):
        testing.assert_pass_counts(layer, inverse=1, forward=D, params=params)


class ScaledDensityMAF(mf.MAF):
    """log_prob + log 1.01: a density whose total mass is 1.01."""

    def log_prob(self, x, params=None):
        return super().log_prob(x, params) + math.log(1.01)


def test_a_density_scaled_by_1_01_is_caught_by_the_integral():
    flow = _flow(lambda: ScaledDensityMAF(2, num_layers=K, hidden=(16,), activation="tanh", rng=0))()
    with pytest.raises(AssertionError, match=r"(?s)does not integrate to one.*= 1\.01\d+; \|total - 1\| = 1\.0\d+e-02 "
                                             r"> tol = 3\.0e-03.*log\(total\) = 0\.01\d+: log_prob would be off"):
        testing.assert_density_integrates_to_one(flow)


class WastefulMAFLayer(transforms.MAFLayer):
    """Evaluates its conditioner twice in the density direction (the second result is thrown away)."""

    def inverse(self, params, x, y=None):
        self.conditioner(params, x, y)
        return super().inverse(params, x, y)


class WastefulMAF(mf.MAF):
    layer_class = WastefulMAFLayer


def test_a_wasted_pass_is_caught_by_the_pass_count():
    flow = WastefulMAF(2, num_layers=K, hidden=(8,), rng=0)
    testing.assert_pass_counts(flow, sample=K * 2)  # sampling is unaffected
    with pytest.raises(AssertionError, match=rf"pass count of flow.log_prob: expected {K} network passes, counted "
                                             rf"{2 * K} \(per layer: \[0, 2, 2, 2\]\)"):
        testing.assert_pass_counts(flow, log_prob=K, sample=K * 2)
    with pytest.raises(AssertionError, match=r"first wrong layer 1: expected 1, counted 2"):
        testing.assert_pass_counts(flow, log_prob=[0, 1, 1, 1])


@primitive
def tanh_with_a_wrong_vjp(a):
    return onp.tanh(a)


defvjp(tanh_with_a_wrong_vjp, lambda ans, a: lambda g: g * (1 - ans))  # the bug: d tanh = 1 - tanh^2


class WrongGradientMAFLayer(transforms.MAFLayer):
    """Soft-clamps alpha with a tanh whose hand-written VJP is wrong: right values, wrong gradients."""

    def conditioner(self, params, v, y=None):
        mu, alpha = self.network(params, v, y)
        return mu, 2.0 * tanh_with_a_wrong_vjp(alpha / 2.0)


def test_a_wrong_vjp_is_caught_by_the_gradient_check_and_only_by_it():
    rng = onp.random.default_rng(0)
    layer = WrongGradientMAFLayer(D, (16,), "random", activation="tanh", rng=rng)
    params, v = perturb(layer.init_params(rng), rng), rng.standard_normal((5, D))
    # Values are right, and the Jacobian's diagonal (exp(-alpha_i), alpha_i not a function of x_i) is too, so
    # the round trip, the log-det and the zero pattern all pass:
    testing.assert_round_trip(layer, v, params)
    testing.assert_log_det_matches_jacobian(layer, v, "both", params)
    testing.assert_autoregressive(layer, v, params=params)
    with pytest.raises(AssertionError, match=r"(?s)gradient check failed for inverse with respect to the params.*"
                                             r"> tolerance.*worst entry: params\['\w+'\]"):
        testing.assert_gradients_match_finite_differences(layer, v, params, direction="inverse", wrt=["params"])
    with pytest.raises(AssertionError, match=r"(?s)with respect to the inputs.*worst entry: point \d, coordinate \d"):
        testing.assert_gradients_match_finite_differences(layer, v, params, direction="inverse", wrt=["inputs"])


class WrongSamplesMAF(mf.MAF):
    """Samples by pushing the wrong base draws through forward: ``wrong_base(n, rng)`` instead of N(0, I)."""

    wrong_base = None

    def sample(self, n, rng=None, params=None):
        return self.forward(self.wrong_base(n, onp.random.default_rng(rng)), params)[0]


@pytest.mark.parametrize("base, caught", [
    (lambda n, rng: 1.1 * rng.standard_normal((n, 2)), r"mean\(z_\d z_\d\) = 1\.2\d+, expected 1"),
    (lambda n, rng: 0.1 + rng.standard_normal((n, 2)), r"mean\(z_\d\) = 0\.1\d+, expected 0"),
    (lambda n, rng: rng.multivariate_normal([0, 0], [[1, 0.1], [0.1, 1]], n), r"mean\(z_0 z_1\) = 0\.\d+, expected 0"),
    # the right mean and covariance, the wrong shape: only the Kolmogorov-Smirnov test sees it
    (lambda n, rng: rng.uniform(-math.sqrt(3), math.sqrt(3), (n, 2)), r"Kolmogorov-Smirnov statistic.*> critical"),
], ids=["wider", "shifted", "correlated", "uniform"])
def test_samples_from_the_wrong_distribution_are_caught(base, caught):
    flow = _flow(lambda: WrongSamplesMAF(2, num_layers=K, hidden=(16,), activation="tanh", rng=0))()
    flow.wrong_base = base
    with pytest.raises(AssertionError, match=rf"(?s)samples do not match the density.*{caught}"):
        testing.assert_samples_match_density(flow)


def test_the_messages_carry_the_numbers_a_student_needs():
    """Each message names the property, the index of the worst point or coordinate, and error vs tolerance."""
    rng = onp.random.default_rng(0)
    layer = MissingPassMAFLayer(D, (16,), "sequential", activation="tanh", rng=rng)
    params, v = perturb(layer.init_params(rng), rng), rng.standard_normal((5, D))
    with pytest.raises(AssertionError) as error:
        testing.assert_round_trip(layer, v, params)
    message = str(error.value)
    for piece in ("round trip failed", "worst at point", "coordinate 2", "|error| =", "> atol = 1.0e-10",
                  "coordinates off: [2], of degrees [3]"):
        assert piece in message, (piece, message)
