"""Shared checks and the list of every bijection the property tests run over.

Each check computes one thing two ways (micrograd's habit) against an independent oracle:
``autograd.jacobian`` + ``numpy.linalg.slogdet`` for log-dets, the degrees for the Jacobian's zero
pattern, and the round trip for invertibility.
"""

import numpy as onp
from autograd import jacobian

import maf_numpy as mf
from maf_numpy import transforms

ATOL_ROUND_TRIP = 1e-10  # float64 round trips (inverse of forward is the identity)
ATOL_LOG_DET = 1e-10  # log-det against slogdet of the autograd Jacobian


def perturb(params, rng, scale=0.3):
    """Add N(0, scale^2) noise to every array of a parameter pytree (so no test relies on the
    near-identity initialisation, and zero biases cannot hide a wrong connection)."""
    if isinstance(params, dict):
        return {key: perturb(value, rng, scale) for key, value in params.items()}
    if isinstance(params, (list, tuple)):
        return [perturb(value, rng, scale) for value in params]
    return params + scale * rng.standard_normal(onp.shape(params))


# --- every single layer: (id, factory(D, rng) -> (layer, params)) ----------------------------------
def _autoregressive(cls, hidden=(16, 16), order="sequential", hidden_degrees="sequential", activation="tanh",
                    **options):
    def make(D, rng):
        layer = cls(D, hidden, mf.masks.make_order(D, order, rng), hidden_degrees, activation, rng, **options)
        return layer, perturb(layer.init_params(rng), rng)

    return make


class WithContext:
    """A conditional layer with its context y (C,) held fixed: a bijection of x that the suite can check."""

    def __init__(self, layer, y):
        self.layer, self.y = layer, y

    def _y(self, v):
        return onp.broadcast_to(self.y, (v.shape[0], len(self.y)))

    def forward(self, params, z):
        return self.layer.forward(params, z, self._y(z))

    def inverse(self, params, x):
        return self.layer.inverse(params, x, self._y(x))

    def __getattr__(self, name):
        return getattr(self.layer, name)


def _conditional(cls, C=3, **options):
    def make(D, rng):
        layer, params = _autoregressive(cls, context_dim=C, **options)(D, rng)
        return WithContext(layer, rng.normal(size=C)), params

    return make


def _coupling(flip):
    def make(D, rng):
        layer = transforms.AffineCoupling(D, (16, 16), flip=flip, activation="tanh")
        return layer, perturb(layer.init_params(rng), rng)

    return make


def _made_coupling(flip, hidden=(16, 16), activation="tanh"):
    def make(D, rng):
        layer = transforms.MADECoupling(D, hidden, flip=flip, activation=activation)
        return layer, perturb(layer.init_params(rng), rng)

    return make


def _standardize(D, rng):
    layer = transforms.Standardize(D).fit(rng.normal(1.5, 3.0, size=(50, D)))
    return layer, {}


def _batch_norm(D, rng):
    """BatchNorm in evaluation mode, with perturbed log_gamma and beta and random fixed statistics."""
    layer = transforms.BatchNorm(D).set_statistics(rng.normal(1.5, 3.0, size=(50, D)))
    return layer, perturb(layer.init_params(rng), rng)


LAYERS = {
    "MAF-sequential": _autoregressive(transforms.MAFLayer),
    "MAF-reversed": _autoregressive(transforms.MAFLayer, order="reversed"),
    "MAF-random-order": _autoregressive(transforms.MAFLayer, order="random"),
    "MAF-random-degrees": _autoregressive(transforms.MAFLayer, hidden_degrees="random"),
    "MAF-narrow-hidden": _autoregressive(transforms.MAFLayer, hidden=(2,), order="random"),
    "MAF-no-hidden": _autoregressive(transforms.MAFLayer, hidden=()),
    "MAF-relu-3-hidden": _autoregressive(transforms.MAFLayer, hidden=(12, 12, 12), activation="relu"),
    "IAF-sequential": _autoregressive(transforms.IAFLayer),
    "IAF-reversed": _autoregressive(transforms.IAFLayer, order="reversed"),
    "IAF-random-order": _autoregressive(transforms.IAFLayer, order="random"),
    "IAF-narrow-hidden": _autoregressive(transforms.IAFLayer, hidden=(2,), order="random"),
    "MAF-alpha-clamp": _autoregressive(transforms.MAFLayer, order="random", alpha_clamp=0.7),
    "IAF-alpha-clamp": _autoregressive(transforms.IAFLayer, alpha_clamp=0.7),
    "MAF-conditional": _conditional(transforms.MAFLayer, order="random"),
    "MAF-conditional-random-degrees": _conditional(transforms.MAFLayer, hidden_degrees="random"),
    "MAF-conditional-narrow-hidden": _conditional(transforms.MAFLayer, hidden=(2,)),
    "MAF-conditional-no-hidden": _conditional(transforms.MAFLayer, hidden=()),
    "IAF-conditional": _conditional(transforms.IAFLayer, order="reversed"),
    "coupling": _coupling(False),
    "coupling-flipped": _coupling(True),
    "coupling-as-made": _made_coupling(False),
    "coupling-as-made-flipped": _made_coupling(True),
    "coupling-as-made-no-hidden": _made_coupling(False, hidden=()),
    "coupling-as-made-relu": _made_coupling(False, hidden=(8,), activation="relu"),
    "standardize": _standardize,
    "batch-norm-evaluation-mode": _batch_norm,
}


# --- every flow: (id, factory(D, rng) -> flow with perturbed params) --------------------------------
def _flow(make):
    def build(D, rng):
        flow = make(D, int(rng.integers(1 << 30)))
        flow.layers[0].fit(rng.normal(0.5, 2.0, size=(100, D)))
        flow.params = perturb(flow.params, rng, 0.2)
        return flow

    return build


FLOWS = {
    "MADE": _flow(lambda D, seed: mf.MADE(D, hidden=(16, 16), order="random", activation="tanh", rng=seed)),
    "MAF": _flow(lambda D, seed: mf.MAF(D, num_layers=3, hidden=(16, 16), activation="tanh", rng=seed)),
    "MAF-random-orders": _flow(lambda D, seed: mf.MAF(D, 3, (16,), orders="random", activation="tanh",
                                                      rng=seed)),
    "IAF": _flow(lambda D, seed: mf.IAF(D, num_layers=3, hidden=(16, 16), activation="tanh", rng=seed)),
    "RealNVP": _flow(lambda D, seed: mf.RealNVP(D, num_layers=3, hidden=(16, 16), activation="tanh", rng=seed)),
}


# --- the shared checks -------------------------------------------------------------------------------
def assert_round_trip(forward, inverse, v):
    """inverse(forward(v)) == v and forward(inverse(v)) == v to ATOL_ROUND_TRIP."""
    error_fi = onp.max(onp.abs(inverse(forward(v)[0])[0] - v))
    error_if = onp.max(onp.abs(forward(inverse(v)[0])[0] - v))
    assert error_fi < ATOL_ROUND_TRIP, f"inverse(forward(z)) differs from z by {error_fi:.3e}"
    assert error_if < ATOL_ROUND_TRIP, f"forward(inverse(x)) differs from x by {error_if:.3e}"


def jacobians(f, v):
    """Per-point Jacobians of a batched map f: (n, D) -> ((n, D), log_det), shape (n, D, D)."""
    return onp.stack([jacobian(lambda u: f(u[None, :])[0][0])(point) for point in v])


def assert_log_det_matches_jacobian(f, v):
    """The log_det that f returns equals slogdet of its autograd Jacobian, point by point."""
    log_det = f(v)[1]
    sign, expected = onp.linalg.slogdet(jacobians(f, v))
    assert onp.all(sign != 0)
    error = onp.max(onp.abs(log_det - expected))
    assert error < ATOL_LOG_DET, f"log_det differs from slogdet(jacobian) by {error:.3e}"


def assert_jacobian_autoregressive(f, v, degrees):
    """d out_i / d in_j is zero unless degree(j) < degree(i) or i == j; the allowed part is non-empty.

    Returns the Jacobians, shape (n, D, D).
    """
    J = jacobians(f, v)
    degrees = onp.asarray(degrees)
    allowed = (degrees[None, :] < degrees[:, None]) | onp.eye(len(degrees), dtype=bool)
    leak = onp.max(onp.abs(J[:, ~allowed])) if (~allowed).any() else 0.0
    assert leak == 0.0, f"an output depends on an input of equal or higher degree (|J| = {leak:.3e})"
    assert onp.all(onp.abs(onp.diagonal(J, axis1=1, axis2=2)) > 0), "a diagonal entry of J is zero"
    return J


def assert_2d_density_integrates_to_one(log_prob, sample, half_width=14.0, num=561, n_samples=100_000, tol=3e-3):
    """Quadrature of exp(log_prob) on the square [-w, w]^2 (a num x num grid), plus the mass outside the
    square estimated from ``sample(n_samples)`` (random weights give some layers heavy tails), is 1 to tol."""
    t = onp.linspace(-half_width, half_width, num)
    X1, X2 = onp.meshgrid(t, t)
    grid = onp.stack([X1.ravel(), X2.ravel()], axis=1)
    mass_inside = onp.sum(onp.exp(log_prob(grid))) * (t[1] - t[0]) ** 2
    mass_outside = onp.mean(onp.any(onp.abs(sample(n_samples)) > half_width, axis=1))
    total = mass_inside + mass_outside
    assert abs(total - 1) < tol, f"grid mass {mass_inside:.5f} + outside mass {mass_outside:.5f} = {total:.5f}"
