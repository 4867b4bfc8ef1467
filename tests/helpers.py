"""The list of every bijection the property tests run over, and the parameter noise they use.

The checks themselves (round trip, log-det against slogdet of the autograd Jacobian, the Jacobian's zero
pattern, gradients against central differences, a 2-D density integrating to one) are the public toolkit
:mod:`maf_numpy.testing`, which the test files call with these layers and flows.
"""

import numpy as onp

import maf_numpy as mf
from maf_numpy import transforms


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
    # NICE's additive coupling (scale=False: no alpha head), a clamped RealNVP coupling, and ActNorm initialised
    # from data, then perturbed. (Permutation, Reverse and LinearLU have no input_degrees, which the zero-pattern
    # test needs: tests/test_new_layers.py runs the other properties on them.)
    "coupling-additive-NICE": lambda D, rng: (
        layer := transforms.AffineCoupling(D, (16, 16), activation="tanh", scale=False),
        perturb(layer.init_params(rng), rng)),
    "coupling-additive-NICE-flipped": lambda D, rng: (
        layer := transforms.AffineCoupling(D, (16,), flip=True, activation="relu", scale=False),
        perturb(layer.init_params(rng), rng)),
    "coupling-clamped": lambda D, rng: (
        layer := transforms.AffineCoupling(D, (16, 16), flip=True, activation="tanh", alpha_clamp=0.7),
        perturb(layer.init_params(rng), rng, scale=1.0)),
    "actnorm": lambda D, rng: (
        layer := transforms.ActNorm(D),
        perturb(layer.initialize(layer.init_params(rng), rng.normal(1.5, 3.0, size=(50, D))), rng)),
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
