"""Property checks for flows and for layers you write yourself: pytest assertions that explain what broke.

A normalising flow is correct when a handful of mathematical facts hold, and each fact can be computed two
ways: once by the code under test, once by an independent oracle (``autograd.jacobian``, central differences,
a quadrature grid, a statistical test). Each function below checks one fact and raises ``AssertionError``
naming the property, the worst point or coordinate (by index) and the size of the error next to the
tolerance, with a hint about the usual cause. They work on

- **any layer**: an object with ``D``, ``init_params(rng)``, ``inverse(params, x[, y]) -> (z, log|det dz/dx|)``,
  ``forward(params, z[, y]) -> (x, log|det dx/dz|)`` (log-dets of shape (n,)), a ``calls`` counter of network
  passes and, usually, ``input_degrees`` (D,). Pass its ``params`` (and a context ``y`` for a conditional
  layer: shape (C,) for every point, or (n, C));
- **any flow** with the library's protocol (:class:`~maf_numpy.MAF`, :class:`~maf_numpy.IAF`,
  :class:`~maf_numpy.RealNVP`, :class:`~maf_numpy.MADE`, :class:`~maf_numpy.Flow`, ...): the checks call its pure
  ``run(direction, params, v, y)`` (``params`` defaults to ``flow.params``) or its public ``log_prob``,
  ``sample``, ``inverse`` and ``passes``.

The properties (``forward`` is generative, z -> x; ``inverse`` is normalising, x -> z):

:func:`assert_round_trip`
    ``inverse(forward(z)) == z`` and ``forward(inverse(x)) == x``: the layer is a bijection and its two
    directions are the same bijection. Exact up to rounding, so the tolerance is tiny: 1e-10 in float64,
    1e-4 in float32 (:func:`default_atol`).
:func:`assert_log_det_matches_jacobian`
    The log-det a map returns equals ``log|det J|`` with J the (D, D) Jacobian of that map at each point,
    computed by ``autograd.jacobian`` and ``numpy.linalg.slogdet``. This is the term that makes
    ``log p(x) = log N(z; 0, I) + log|det dz/dx|`` a density (MAF paper §2.2).
:func:`assert_autoregressive`
    ``d out_i / d in_j = 0`` unless ``degree(j) < degree(i)`` or ``i == j``, and ``d out_i / d in_i != 0``:
    the Jacobian is triangular in the ordering (MADE §4; MAF §3.1), which is why its log-det is the sum of
    the diagonal's logs. Exact zeros are required. The parameters are perturbed with noise first, so a
    weight that happens to be initialised to zero cannot hide a connection the masks should have cut. Both
    directions are checked: the D-pass solver zeroes the coordinates that are not yet exact after each pass,
    so its output is triangular whatever its conditioner reads, and a leak shows only in the one-pass
    direction. For an affine autoregressive layer (MAF, IAF, MADE coupling) the conditioner (mu, alpha) is
    checked too, *strictly*: mu_i and alpha_i may read only inputs of lower degree, never input i itself. A
    MADE output mask written ``<=`` instead of ``<`` breaks only this (and the log-det): the map's own J_ii
    may depend on x_i, so its zero pattern stays triangular.
:func:`assert_gradients_match_finite_differences`
    autograd's gradient of a scalar of the outputs, ``sum(w * out) + sum(c * log_det)`` with random weights
    w and c, equals central differences ``(f(theta + h u) - f(theta - h u)) / (2 h)`` along random unit
    directions u, with respect to the parameters and to the inputs, to ``1e-6 + 1e-6 |numeric|`` with
    h = 1e-6 in float64 (the step and tolerances of ``autograd.test_util.check_grads``). It catches a
    hand-written VJP (``autograd.extend.defvjp``) that is wrong, which no forward computation can reveal.
:func:`assert_density_integrates_to_one`
    For a 2-D flow, ``integral exp(log_prob(x)) dx = 1``: quadrature on a square grid plus the mass outside
    the square, estimated from the flow's own samples. A wrong constant in ``log_prob`` (a missing
    log-det, a wrong ``log 2 pi``) shows up as a total of ``exp(constant)``.
:func:`assert_samples_match_density`
    ``inverse(sample(n))`` is N(0, I): the flow samples from the density that ``log_prob`` evaluates (given
    the log-det check, log_prob is the density of ``forward(z)``, z ~ N(0, I)). Moments of order 1 and 2
    are compared with their standard errors, and each coordinate's distribution with the standard normal's
    by a Kolmogorov-Smirnov statistic.
:func:`assert_pass_counts`
    The number of network passes of ``log_prob`` and ``sample`` (a flow) or ``inverse`` and ``forward``
    (a layer): K and K * D for a K-layer MAF in D dimensions, the other way round for an IAF, K and K for
    RealNVP (MAF paper §3). A missing pass of the D-pass solver, or a wasted one, changes the count.

Using them in pytest: each function returns quietly or raises ``AssertionError``, so call it in a test::

    import numpy as np
    import pytest

    import maf_numpy as mf
    from maf_numpy import testing, transforms

    @pytest.mark.parametrize("order", ["sequential", "random"])
    def test_my_layer_is_a_correct_bijection(order):
        rng = np.random.default_rng(0)
        layer = transforms.MAFLayer(4, (16,), order, activation="tanh", rng=rng)
        params = layer.init_params(rng)
        v = rng.standard_normal((6, 4))
        testing.assert_round_trip(layer, v, params)
        for direction in ("inverse", "forward"):
            testing.assert_log_det_matches_jacobian(layer, v, direction, params)
        testing.assert_autoregressive(layer, v, params=params)
        testing.assert_gradients_match_finite_differences(layer, v, params)
        testing.assert_pass_counts(layer, inverse=1, forward=4, params=params)

    def test_my_flow_is_a_normalised_density():
        flow = mf.MAF(2, num_layers=3, hidden=(16,), rng=0)
        testing.assert_density_integrates_to_one(flow)
        testing.assert_samples_match_density(flow)
        testing.assert_pass_counts(flow, log_prob=3, sample=3 * 2)

The checks are deterministic: every random draw (perturbations, directions, samples) comes from the ``rng``
argument (default 0), so a test that passes once passes every time. They need only numpy and autograd (no
scipy; no pytest either: they raise plain ``AssertionError``, ``TypeError`` and ``ValueError``).
``tests/test_testing.py`` shows each check catching the bug it exists for, with a deliberately broken layer.
"""

import math

import autograd.numpy as anp
import numpy as onp
from autograd import grad, jacobian

from .transforms import AffineAutoregressive

__all__ = [
    "assert_round_trip", "assert_log_det_matches_jacobian", "assert_autoregressive",
    "assert_gradients_match_finite_differences", "assert_density_integrates_to_one",
    "assert_samples_match_density", "assert_pass_counts", "default_atol", "jacobians",
]

ATOL_FLOAT64 = 1e-10  # round trips and log-dets in float64: exact up to rounding
ATOL_FLOAT32 = 1e-4  # the same in float32 (about 1e-7 relative precision, amplified by D passes and exp)
DIRECTIONS = ("inverse", "forward")


# --- tolerances ----------------------------------------------------------------------------------------
def default_atol(dtype):
    """Default absolute tolerance of the exact properties (round trip, log-det) for arrays of ``dtype``.

    Parameters
    ----------
    dtype : numpy dtype or str

    Returns
    -------
    float
        ``1e-10`` for float64 (and anything wider), ``1e-4`` for float32 and narrower floats.
    """
    return ATOL_FLOAT32 if onp.dtype(dtype).itemsize <= 4 else ATOL_FLOAT64


# --- what the checks need from a layer or a flow ---------------------------------------------------------
def _is_flow(obj):
    """A flow has layers, params and the pure ``run(direction, params, v, y)``; a layer takes params."""
    return callable(getattr(obj, "run", None)) and hasattr(obj, "layers") and hasattr(obj, "params")


def _resolve_params(obj, params):
    if params is not None:
        return params
    if _is_flow(obj):
        return obj.params
    raise TypeError(f"params is required to check a layer ({type(obj).__name__}): pass the parameters to "
                    "check, e.g. params = layer.init_params(numpy.random.default_rng(0))")


def _as_batch(v, name="v"):
    v = onp.asarray(v)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"{name} must be a batch of points of shape (n, D) with n >= 1, got shape {v.shape}")
    if not onp.issubdtype(v.dtype, onp.floating):
        v = v.astype(onp.float64)
    return v


def _context_rows(y, n):
    """The context as one row per point, (n, C), or None."""
    if y is None:
        return None
    y = onp.asarray(y)
    return onp.broadcast_to(y, (n, y.shape[-1])) if y.ndim == 1 else y


def _apply(obj, direction, params, v, y=None):
    """``direction`` ("inverse" or "forward") of a layer or a flow: (output (n, D), log_det (n,))."""
    if _is_flow(obj):
        return obj.run(direction, params, v, y)
    method = getattr(obj, direction)
    return method(params, v) if y is None else method(params, v, y)


def _perturb(params, rng, scale):
    """params + N(0, scale^2) noise on every floating-point array of the pytree, keeping dtypes."""
    if isinstance(params, dict):
        return {key: _perturb(value, rng, scale) for key, value in params.items()}
    if isinstance(params, (list, tuple)):
        return type(params)(_perturb(value, rng, scale) for value in params)
    array = onp.asarray(params)
    if not onp.issubdtype(array.dtype, onp.floating):
        return params
    return (array + scale * rng.standard_normal(array.shape)).astype(array.dtype)


def _degree_of(obj):
    degrees = getattr(obj, "input_degrees", None)
    return None if degrees is None else onp.asarray(degrees)


def jacobians(obj, v, direction="inverse", params=None, y=None):
    """The Jacobian of a layer's or a flow's map at each point, by ``autograd.jacobian``.

    Parameters
    ----------
    obj : layer or flow
    v : ndarray of shape (n, D)
        The points (inputs of ``direction``).
    direction : {"inverse", "forward"}
    params : pytree or None
        The parameters (required for a layer; a flow's default is ``flow.params``).
    y : ndarray of shape (C,) or (n, C), or None
        The context of a conditional layer or flow.

    Returns
    -------
    J : ndarray of shape (n, D, D)
        ``J[k, i, j] = d out_i / d in_j`` at point k.
    """
    v = _as_batch(v)
    params = _resolve_params(obj, params)
    rows = _context_rows(y, len(v))

    def at(k):
        y_k = None if rows is None else rows[k:k + 1]
        return jacobian(lambda u: _apply(obj, direction, params, u[None, :], y_k)[0][0])(v[k])

    return onp.stack([at(k) for k in range(len(v))])


def _worst(error):
    """Index (a tuple) of the largest entry of an error array, NaN counting as the largest."""
    error = onp.where(onp.isnan(error), onp.inf, error)
    return onp.unravel_index(onp.argmax(error), error.shape), error


# --- round trip ----------------------------------------------------------------------------------------
def assert_round_trip(obj, v, params=None, y=None, atol=None):
    """Assert that ``inverse(forward(z)) == z`` and ``forward(inverse(x)) == x`` (the map is a bijection).

    Parameters
    ----------
    obj : layer or flow
    v : ndarray of shape (n, D)
        Used both as z (through forward, then inverse) and as x (through inverse, then forward).
    params : pytree or None
        The parameters (required for a layer; a flow's default is ``flow.params``).
    y : ndarray of shape (C,) or (n, C), or None
        The context of a conditional layer or flow.
    atol : float or None
        Largest allowed ``|round trip - v|`` of any coordinate; None: :func:`default_atol` of v's dtype
        (1e-10 in float64, 1e-4 in float32).

    Raises
    ------
    AssertionError
        Naming the direction that failed, the worst point and coordinate, and the error against atol.
    """
    v = _as_batch(v)
    params = _resolve_params(obj, params)
    atol = default_atol(v.dtype) if atol is None else atol
    rows = _context_rows(y, len(v))
    for first, second, name in (("forward", "inverse", "z"), ("inverse", "forward", "x")):
        back = _apply(obj, second, params, _apply(obj, first, params, v, rows)[0], rows)[0]
        (k, i), error = _worst(onp.abs(onp.asarray(back) - v))
        if error[k, i] <= atol:
            continue
        message = (f"round trip failed: {second}({first}({name})) should give back {name}.\n"
                   f"  worst at point {k}, coordinate {i}: got {back[k, i]:.10g}, expected {v[k, i]:.10g}; "
                   f"|error| = {error[k, i]:.3e} > atol = {atol:.1e}.")
        degrees = _degree_of(obj)
        wrong = onp.flatnonzero(onp.max(error, axis=0) > atol)
        if degrees is not None and len(degrees) == v.shape[1]:
            message += f"\n  coordinates off: {wrong.tolist()}, of degrees {degrees[wrong].tolist()}."
            if len(onp.unique(degrees)) > 1 and set(degrees[wrong].tolist()) == {int(degrees.max())}:
                message += (" Only the coordinates of the highest degree are wrong: if this direction solves an "
                            "autoregressive recursion (MAF sampling, IAF density), a D-pass solver that stops one "
                            "pass early leaves exactly those inexact (pass k fixes degree k).")
        message += ("\n  Hint: the two directions must compute the same conditioner from the same params; a "
                    "sequential direction needs all D passes.")
        raise AssertionError(message)


# --- log-det against the Jacobian -----------------------------------------------------------------------
def _directions(obj, direction):
    if direction == "both":
        return [d for d in DIRECTIONS if callable(getattr(obj, d, None))]
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be 'inverse', 'forward' or 'both', got {direction!r}")
    return [direction]


def assert_log_det_matches_jacobian(obj, v, direction="inverse", params=None, y=None, atol=None):
    """Assert that the returned log-det is ``log|det J|`` of the map's autograd Jacobian J, point by point.

    ``inverse`` must return log|det dz/dx| and ``forward`` log|det dx/dz|, each of shape (n,). The oracle is
    ``numpy.linalg.slogdet(autograd.jacobian(...))`` at each point, so this also needs J to be
    non-singular.

    Parameters
    ----------
    obj : layer or flow
    v : ndarray of shape (n, D)
        The inputs of ``direction`` (one Jacobian, D reverse passes, per point: keep n small).
    direction : {"inverse", "forward", "both"}
    params : pytree or None
        The parameters (required for a layer; a flow's default is ``flow.params``).
    y : ndarray of shape (C,) or (n, C), or None
        The context of a conditional layer or flow.
    atol : float or None
        Largest allowed |log_det - slogdet|; None: :func:`default_atol` (1e-10 float64, 1e-4 float32).

    Returns
    -------
    J : ndarray of shape (n, D, D)
        The Jacobians of the (last) direction checked.

    Raises
    ------
    AssertionError
        If a log-det has the wrong shape, a Jacobian is singular, or a log-det differs from slogdet by more
        than atol (worst point, both values, and a hint when the sign is flipped).
    """
    v = _as_batch(v)
    params = _resolve_params(obj, params)
    atol = default_atol(v.dtype) if atol is None else atol
    rows = _context_rows(y, len(v))
    J = None
    for d in _directions(obj, direction):
        log_det = onp.asarray(_apply(obj, d, params, v, rows)[1])
        if log_det.shape != (len(v),):
            raise AssertionError(f"log-det of {d}: must have shape (n,) = ({len(v)},), one number per point, got "
                                 f"shape {log_det.shape} (sum over the D coordinates, not over the batch)")
        J = jacobians(obj, v, d, params, y)
        sign, expected = onp.linalg.slogdet(J)
        if onp.any(sign == 0):
            k = int(onp.flatnonzero(sign == 0)[0])
            raise AssertionError(f"log-det of {d}: the Jacobian is singular at point {k} (det J = 0), so the map "
                                 f"is not invertible there; diagonal of J: {onp.diagonal(J[k]).tolist()}")
        (k,), error = _worst(onp.abs(log_det - expected))
        if error[k] <= atol:
            continue
        name = "log|det dz/dx|" if d == "inverse" else "log|det dx/dz|"
        message = (f"log-det of {d} does not match slogdet of the autograd Jacobian: {d} must return {name}.\n"
                   f"  worst at point {k}: returned {log_det[k]:.10g}, slogdet(J) = {expected[k]:.10g}; "
                   f"|error| = {error[k]:.3e} > atol = {atol:.1e}.")
        if onp.all(onp.abs(log_det + expected) <= max(atol, 1e-12 * onp.max(onp.abs(expected)))):
            message += ("\n  The returned log-det is exactly minus the Jacobian's: its sign is flipped (inverse and "
                        "forward return log-dets of opposite sign, each that of the map that was called).")
        else:
            message += ("\n  Hint: log|det J| of a triangular J is the sum of log|J_ii|; a conditioner that reads its "
                        "own coordinate (a non-strict mask) makes J_ii differ from exp(+-alpha_i).")
        raise AssertionError(message)
    return J


# --- the autoregressive structure -----------------------------------------------------------------------
def _conditioner_jacobians(conditioner, params, v, rows):
    """[(n, D_out, D) per output of the conditioner] at each point of v."""
    def outputs(u, y_k):
        result = conditioner(params, u[None, :]) if y_k is None else conditioner(params, u[None, :], y_k)
        return anp.stack([out[0] for out in result])  # (number of outputs, D)

    per_point = [jacobian(lambda u, k=k: outputs(u, None if rows is None else rows[k:k + 1]))(v[k])
                 for k in range(len(v))]
    return onp.stack(per_point, axis=1)  # (outputs, n, D, D)


def assert_autoregressive(obj, v, degrees=None, params=None, y=None, direction="both", conditioner="auto",
                          perturbation=0.1, rng=0, atol=0.0):
    """Assert that the Jacobian is triangular in the ordering: output i reads input j only if
    ``degree(j) < degree(i)`` or ``i == j``, and ``d out_i / d in_i != 0``.

    The parameters are first perturbed by N(0, perturbation^2) noise, so that a weight initialised to zero
    (an output head, a bias) cannot hide a connection that the masks should have cut. Every direction the
    object has is checked (``direction="both"``). For an affine autoregressive layer (MAFLayer, IAFLayer,
    MADECoupling: a :class:`~maf_numpy.transforms.AffineAutoregressive`) the conditioner's outputs (mu, alpha)
    are also checked *strictly*: they may read only inputs of lower degree, not input i itself.

    Parameters
    ----------
    obj : layer or flow
    v : ndarray of shape (n, D)
        The points (used as the input of each direction).
    degrees : array of int, shape (D,), or None
        The degree of each coordinate (its position in the ordering: 1 is generated first; equal degrees are
        allowed, e.g. the two groups of a coupling layer). None: ``obj.input_degrees`` (a flow must be given
        them: a stack of layers with different orders is not autoregressive in any one order).
    params : pytree or None
        The parameters (required for a layer; a flow's default is ``flow.params``), before perturbation.
    y : ndarray of shape (C,) or (n, C), or None
        The context of a conditional layer or flow.
    direction : {"both", "inverse", "forward"}
    conditioner : "auto", callable or None
        ``conditioner(params, v[, y]) -> (mu, alpha, ...)``, each (n, D), to check strictly; "auto" uses
        ``obj.conditioner`` for an AffineAutoregressive layer and skips the check otherwise; None skips it.
    perturbation : float
        Standard deviation of the noise added to every parameter (0: check the parameters as given).
    rng : int or numpy.random.Generator
        Seeds the noise.
    atol : float
        Largest allowed |d out_i / d in_j| of a forbidden pair (0: exact zeros, as masks give).

    Returns
    -------
    dict
        ``{direction: J}`` with J, of shape (n, D, D), the Jacobians at the perturbed parameters.

    Raises
    ------
    AssertionError
        Naming the direction (or the conditioner's output), the output i and input j with their degrees, the
        point, and |d out_i / d in_j| against atol; or the point and coordinate of a zero diagonal entry.
    """
    v = _as_batch(v)
    params = _resolve_params(obj, params)
    if degrees is None:
        degrees = _degree_of(obj)
        if degrees is None:
            raise TypeError(f"{type(obj).__name__} has no input_degrees: pass degrees=(D,) array of the order to "
                            "check (for a flow, the degrees of one autoregressive layer, e.g. layers[-1])")
    degrees = onp.asarray(degrees)
    D = v.shape[1]
    if degrees.shape != (D,):
        raise ValueError(f"degrees must have shape ({D},), got {degrees.shape}")
    if perturbation:
        params = _perturb(params, onp.random.default_rng(rng), perturbation)
    rows = _context_rows(y, len(v))
    allowed = (degrees[None, :] < degrees[:, None]) | onp.eye(D, dtype=bool)
    rule = "output i may depend on input j only if degree(j) < degree(i) or i == j"
    result = {}
    for d in _directions(obj, direction):
        J = jacobians(obj, v, d, params, y)
        result[d] = J
        _check_zero_pattern(J, allowed, degrees, atol, f"the Jacobian of {d}", rule)
        diagonal = onp.abs(onp.diagonal(J, axis1=1, axis2=2))
        if not onp.all(diagonal > 0):
            k, i = (int(a[0]) for a in onp.nonzero(~(diagonal > 0)))
            raise AssertionError(f"autoregressive property: the Jacobian of {d} has a zero diagonal entry at point "
                                 f"{k}, coordinate {i}: d out_{i} / d in_{i} = {J[k, i, i]:.3e}, so the map is not "
                                 "invertible there (every output must depend on its own input)")
    if isinstance(conditioner, str):
        if conditioner != "auto":
            raise ValueError(f"conditioner must be 'auto', a callable or None, got {conditioner!r}")
        conditioner = obj.conditioner if isinstance(obj, AffineAutoregressive) else None
    if conditioner is not None:
        strict = degrees[None, :] < degrees[:, None]
        for index, J in enumerate(_conditioner_jacobians(conditioner, params, v, rows)):
            name = ("mu", "alpha")[index] if index < 2 else f"output {index}"
            _check_zero_pattern(J, strict, degrees, atol, f"the conditioner's {name}",
                                "mu_i and alpha_i may read only inputs of strictly lower degree, not x_i itself "
                                "(a MADE's output mask must be strict: degree(hidden) < degree(output))", name)
    return result


def _check_zero_pattern(J, allowed, degrees, atol, what, rule, symbol="out"):
    if allowed.all():
        return
    leak = onp.where(allowed[None], 0.0, onp.abs(J))
    (k, i, j), leak = _worst(leak)
    if leak[k, i, j] <= atol:
        return
    pairs = sorted({(int(a), int(b)) for a, b in zip(*onp.nonzero(onp.max(leak, axis=0) > atol))})
    shown = ", ".join(f"({a}, {b})" for a, b in pairs[:8]) + (", ..." if len(pairs) > 8 else "")
    raise AssertionError(f"autoregressive property violated by {what}: {rule}.\n"
                         f"  worst at point {k}: output {i} (degree {degrees[i]}) depends on input {j} "
                         f"(degree {degrees[j]}): |d {symbol}_{i} / d in_{j}| = {leak[k, i, j]:.3e} > atol = "
                         f"{atol:.1e}.\n"
                         f"  forbidden (output, input) pairs that are nonzero: {shown}.\n"
                         "  Hint: check the masks (hidden: <=, output: strict <) and that the degrees used to build "
                         "them are those of the ordering.")


# --- gradients against central differences --------------------------------------------------------------
def _leaves(tree, path="params"):
    """[(path string, array)] of the floating-point arrays of a pytree, in a fixed order."""
    if isinstance(tree, dict):
        return [leaf for key, value in tree.items() for leaf in _leaves(value, f"{path}[{key!r}]")]
    if isinstance(tree, (list, tuple)):
        return [leaf for i, value in enumerate(tree) for leaf in _leaves(value, f"{path}[{i}]")]
    array = onp.asarray(tree)
    return [(path, array)] if onp.issubdtype(array.dtype, onp.floating) else []


def _replace_leaves(tree, values):
    """The pytree with its floating-point arrays taken, in :func:`_leaves` order, from the iterator values."""
    if isinstance(tree, dict):
        return {key: _replace_leaves(value, values) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_replace_leaves(value, values) for value in tree)
    array = onp.asarray(tree)
    return next(values) if onp.issubdtype(array.dtype, onp.floating) else tree


def _matching(tree, like):
    """The arrays of ``tree`` at the positions of :func:`_leaves` ``(like)``, in that order."""
    if isinstance(like, dict):
        return [a for key, value in like.items() for a in _matching(tree[key], value)]
    if isinstance(like, (list, tuple)):
        return [a for item, value in zip(tree, like) for a in _matching(item, value)]
    return [tree] if onp.issubdtype(onp.asarray(like).dtype, onp.floating) else []


class _Vector:
    """A pytree (or one array) seen as a flat float64 vector theta, with entries named by their path."""

    def __init__(self, tree, name):
        self.tree, self.is_array = tree, not isinstance(tree, (dict, list, tuple))
        self.leaves = _leaves(tree, name)
        self.theta = onp.concatenate([a.ravel().astype(onp.float64) for _, a in self.leaves] or [onp.zeros(0)])

    def rebuild(self, theta):
        arrays, start = [], 0
        for _, a in self.leaves:
            arrays.append(theta[start:start + a.size].reshape(a.shape).astype(a.dtype))
            start += a.size
        return arrays[0] if self.is_array else _replace_leaves(self.tree, iter(arrays))

    def flat(self, tree):
        """A pytree of the same structure (e.g. a gradient) as a flat vector, in the order of ``theta``
        (following this pytree's keys: a gradient's dict may list them in another order)."""
        return onp.concatenate([onp.ravel(a).astype(onp.float64) for a in _matching(tree, self.tree)]
                               or [onp.zeros(0)])

    def name(self, index):
        start = 0
        for path, a in self.leaves:
            if index < start + a.size:
                position = onp.unravel_index(index - start, a.shape)
                return path + (str(list(int(p) for p in position)) if a.shape else "")
            start += a.size
        raise IndexError(index)


def assert_gradients_match_finite_differences(obj, v, params=None, y=None, direction="both",
                                              wrt=("params", "inputs"), step=None, rtol=None, atol=None,
                                              num_directions=3, rng=0):
    """Assert that autograd's gradients equal central finite differences, for the parameters and the inputs.

    The scalar differentiated is ``f = sum(w * out) + sum(c * log_det)``, with (out, log_det) the result of
    ``direction`` and w (n, D), c (n,) fixed standard normal weights, so every output and every log-det
    counts. Along ``num_directions`` random unit directions u (in parameter space, or in input space)::

        autograd:  grad(f) . u        central difference:  (f(theta + h u) - f(theta - h u)) / (2 h)

    must agree to ``atol + rtol * |central difference|``. When they do not, every entry is then differenced
    on its own to name the worst one (e.g. ``params['W_alpha'][3, 1]`` or point 2, coordinate 0).

    Parameters
    ----------
    obj : layer or flow
    v : ndarray of shape (n, D)
        The inputs of ``direction``.
    params : pytree or None
        The parameters (required for a layer; a flow's default is ``flow.params``).
    y : ndarray of shape (C,) or (n, C), or None
        The context of a conditional layer or flow (held fixed).
    direction : {"both", "inverse", "forward"}
    wrt : sequence of {"params", "inputs"}
        What to differentiate with respect to.
    step : float or None
        h; None: 1e-6 in float64 (the step of ``autograd.test_util.check_grads``), 1e-2 in float32.
    rtol, atol : float or None
        None: 1e-6 each in float64 (check_grads' tolerances), 1e-2 and 1e-3 in float32.
    num_directions : int
        Random directions per (direction, wrt) pair.
    rng : int or numpy.random.Generator
        Seeds the weights w, c and the directions.

    Raises
    ------
    AssertionError
        Naming the map, what was differentiated, both directional derivatives against the tolerance, and the
        worst single entry with its autograd and finite-difference values.
    """
    v = _as_batch(v)
    params = _resolve_params(obj, params)
    low = default_atol(onp.result_type(v, *[a for _, a in _leaves(params)])) == ATOL_FLOAT32
    step = (1e-2 if low else 1e-6) if step is None else step
    rtol = (1e-2 if low else 1e-6) if rtol is None else rtol
    atol = (1e-3 if low else 1e-6) if atol is None else atol
    rng = onp.random.default_rng(rng)
    rows = _context_rows(y, len(v))
    for what in wrt:
        if what not in ("params", "inputs"):
            raise ValueError(f"wrt must contain 'params' and/or 'inputs', got {what!r}")
    for d in _directions(obj, direction):
        w, c = rng.standard_normal(v.shape), rng.standard_normal(len(v))

        def objective(p, u, d=d, w=w, c=c):
            out, log_det = _apply(obj, d, p, u, rows)
            return anp.sum(w * out) + anp.sum(c * log_det)

        for what in wrt:
            argnum, tree = (0, params) if what == "params" else (1, v)
            vector = _Vector(tree, "params" if what == "params" else "v")
            if vector.theta.size == 0:
                continue  # nothing to differentiate (a layer without parameters)

            def f(theta, vector=vector, argnum=argnum):
                value = vector.rebuild(theta)
                return float(objective(value, v) if argnum == 0 else objective(params, value))

            gradient = vector.flat(grad(objective, argnum)(params, v))
            for index in range(num_directions):
                u = rng.standard_normal(vector.theta.size)
                u /= onp.linalg.norm(u)
                analytic = gradient @ u
                numeric = (f(vector.theta + step * u) - f(vector.theta - step * u)) / (2 * step)
                tolerance = atol + rtol * abs(numeric)
                if abs(analytic - numeric) <= tolerance:
                    continue
                raise AssertionError(
                    f"gradient check failed for {d} with respect to the {what}: autograd and central differences "
                    f"disagree on f = sum(w * out) + sum(c * log_det).\n"
                    f"  along random unit direction {index}: autograd {analytic:.10g}, central difference "
                    f"{numeric:.10g} (step {step:.0e}); |difference| = {abs(analytic - numeric):.3e} > tolerance "
                    f"{tolerance:.3e} (atol {atol:.0e} + rtol {rtol:.0e} * |central difference|).\n"
                    + _worst_entry(f, vector, gradient, step, what)
                    + "\n  Hint: a wrong gradient with right values usually comes from a hand-written VJP "
                    "(autograd.extend.defvjp) or a step autograd cannot follow (in-place assignment, a value "
                    "converted to a plain float or NumPy array).")


def _worst_entry(f, vector, gradient, step, what, limit=20_000):
    """The entry whose autograd partial derivative differs most from its central difference."""
    if vector.theta.size > limit:
        return f"  ({vector.theta.size} entries: too many to difference one by one)"
    numeric = onp.empty_like(vector.theta)
    for index in range(vector.theta.size):
        e = onp.zeros_like(vector.theta)
        e[index] = step
        numeric[index] = (f(vector.theta + e) - f(vector.theta - e)) / (2 * step)
    (index,), error = _worst(onp.abs(gradient - numeric))
    name = vector.name(index)
    if what == "inputs":
        point, coordinate = onp.unravel_index(index, vector.leaves[0][1].shape)
        name = f"point {point}, coordinate {coordinate}"
    return (f"  worst entry: {name}: autograd {gradient[index]:.10g}, central difference {numeric[index]:.10g}, "
            f"|difference| = {error[index]:.3e}.")


# --- flows: normalisation, sampling, pass counts -------------------------------------------------------
def _log_prob(flow, x, y):
    return onp.asarray(flow.log_prob(x) if y is None else flow.log_prob(x, y))


def _sample(flow, n, y, rng):
    return onp.asarray(flow.sample(n, rng=rng) if y is None else flow.sample(n, y, rng=rng))


def assert_density_integrates_to_one(flow, half_width=14.0, num=561, n_samples=100_000, tol=3e-3, y=None, rng=0):
    """Assert that a 2-D flow's density integrates to one: ``integral exp(log_prob(x)) dx = 1``.

    The integral is the mass on the square [-w, w]^2, by the rectangle rule on a ``num x num`` grid of step
    ``2 w / (num - 1)``, plus the mass outside the square, estimated as the fraction of ``n_samples`` of the
    flow's own samples that fall outside (random weights can give heavy tails). Cheap in 2-D only.

    Parameters
    ----------
    flow : flow of dimension 2
        Anything with ``log_prob(x[, y])`` and ``sample(n[, y], rng=)``.
    half_width : float
        w: the grid covers [-w, w]^2.
    num : int
        Grid points per axis.
    n_samples : int
        Samples used to estimate the mass outside the square.
    tol : float
        Largest allowed |total - 1| (quadrature error plus the sampling error of the outside mass).
    y : ndarray of shape (C,) or None
        The context of a conditional flow: checks that p(x | y) integrates to one for this y.
    rng : int or numpy.random.Generator
        Seeds the samples.

    Raises
    ------
    AssertionError
        With the grid mass, the outside mass, the total against tol, the constant log(total) by which
        log_prob would be off, and the largest density on the grid's edge (large: widen the grid).
    """
    dim = getattr(flow, "dim", 2)
    if dim != 2:
        raise ValueError(f"assert_density_integrates_to_one needs a 2-D flow (a grid in D dimensions costs num^D "
                         f"points), got dim = {dim}")
    t = onp.linspace(-half_width, half_width, num)
    X1, X2 = onp.meshgrid(t, t)
    grid = onp.stack([X1.ravel(), X2.ravel()], axis=1)
    density = onp.exp(_log_prob(flow, grid, y))
    mass_inside = onp.sum(density) * (t[1] - t[0]) ** 2
    mass_outside = onp.mean(onp.any(onp.abs(_sample(flow, n_samples, y, rng)) > half_width, axis=1))
    total = mass_inside + mass_outside
    if abs(total - 1) < tol:
        return
    on_edge = onp.any(onp.abs(grid) == half_width, axis=1)
    k = int(onp.argmax(onp.where(on_edge, density, -1.0)))
    raise AssertionError(
        f"density does not integrate to one: mass {mass_inside:.6f} on the grid [-{half_width:g}, {half_width:g}]^2 "
        f"({num} x {num} points) + {mass_outside:.6f} outside (from {n_samples} samples) = {total:.6f}; "
        f"|total - 1| = {abs(total - 1):.3e} > tol = {tol:.1e}.\n"
        f"  log(total) = {math.log(total) if total > 0 else -math.inf:.5f}: log_prob would be off by about this "
        "constant (a missing or extra log-det term, a wrong normalising constant such as 0.5 * D * log(2 pi)).\n"
        f"  largest density on the grid's edge: {density[k]:.3e} at grid point {k} = {grid[k].tolist()} "
        "(if not small, widen half_width; if the density is sharp, raise num).")


def _normal_cdf(values):
    """Phi(v) = (1 + erf(v / sqrt 2)) / 2, elementwise (math.erf: no scipy)."""
    return 0.5 * (1.0 + onp.vectorize(math.erf)(onp.asarray(values) / math.sqrt(2.0)))


def assert_samples_match_density(flow, n=20_000, y=None, rng=0, z_threshold=5.0, ks_alpha=1e-4):
    """Assert that the inverse of the flow's samples is N(0, I), so ``sample`` draws from ``log_prob``'s density.

    z = inverse(sample(n)) must be standard normal. Two tests, both with thresholds stated here:

    - moments: each mean ``m_i = mean(z_i)`` and each second moment ``s_ij = mean(z_i z_j)`` (i <= j) is
      compared with its value under N(0, I) (0, and 1 if i == j else 0) in units of its standard error,
      ``1 / sqrt(n)`` for m_i and s_ij (i != j), ``sqrt(2 / n)`` for s_ii; every one must be within
      ``z_threshold`` standard errors;
    - Kolmogorov-Smirnov: for each coordinate, ``KS = max |F_n(t) - Phi(t)|`` (F_n the empirical CDF) must be
      below the asymptotic critical value ``sqrt(-log(ks_alpha / 2) / 2) / sqrt(n)`` of level ks_alpha.

    Only for flows with a standard normal base: a flow whose ``base`` attribute is anything but a
    ``StandardNormal`` (a MoG or logistic base) gets a TypeError.

    Parameters
    ----------
    flow : flow
        Anything with ``sample(n[, y], rng=)`` and ``inverse(x[, y]) -> (z, log_det)``.
    n : int
        Number of samples.
    y : ndarray of shape (C,) or None
        The context of a conditional flow.
    rng : int or numpy.random.Generator
        Seeds the samples.
    z_threshold : float
        Allowed standard errors of each moment (5: a correct flow fails with probability about 1e-6 per moment).
    ks_alpha : float
        Level of each coordinate's Kolmogorov-Smirnov test.

    Raises
    ------
    AssertionError
        With the worst moment (its indices, value, expected value and standard errors) or the worst coordinate's
        KS statistic, against the threshold.
    TypeError
        If the flow's base is not a standard normal.
    """
    base = getattr(flow, "base", None)
    if base is not None and type(base).__name__ != "StandardNormal":
        raise TypeError(f"assert_samples_match_density compares inverse(sample) with N(0, I), but this flow's base is "
                        f"{type(base).__name__}: check its samples against its own base instead")
    x = _sample(flow, n, y, rng)
    z = onp.asarray(flow.inverse(x)[0] if y is None else flow.inverse(x, y)[0], dtype=onp.float64)
    D = z.shape[1]
    scores, names = [], []
    for i in range(D):
        scores.append(onp.mean(z[:, i]) * math.sqrt(n))
        names.append((f"mean(z_{i})", onp.mean(z[:, i]), 0.0, 1 / math.sqrt(n)))
        for j in range(i, D):
            expected, se = (1.0, math.sqrt(2 / n)) if i == j else (0.0, 1 / math.sqrt(n))
            value = onp.mean(z[:, i] * z[:, j])
            scores.append((value - expected) / se)
            names.append((f"mean(z_{i} z_{j})", value, expected, se))
    (k,), scores = _worst(onp.abs(onp.array(scores)))
    if scores[k] > z_threshold:
        name, value, expected, se = names[k]
        raise AssertionError(f"samples do not match the density: inverse(sample({n})) is not N(0, I).\n"
                             f"  worst moment: {name} = {value:.5f}, expected {expected:g} with standard error "
                             f"{se:.5f}: {scores[k]:.1f} standard errors > threshold {z_threshold:g}.\n"
                             "  Hint: sample must push base draws z ~ N(0, I) through forward (all the layers, in "
                             "reverse order), the map whose inverse log_prob evaluates.")
    critical = math.sqrt(-math.log(ks_alpha / 2) / 2) / math.sqrt(n)
    ks = []
    for i in range(D):
        s = onp.sort(z[:, i])
        F = _normal_cdf(s)
        ks.append(max(onp.max(onp.arange(1, n + 1) / n - F), onp.max(F - onp.arange(n) / n)))
    (i,), ks = _worst(onp.array(ks))
    if ks[i] > critical:
        raise AssertionError(f"samples do not match the density: inverse(sample({n})) is not N(0, I).\n"
                             f"  coordinate {i}: Kolmogorov-Smirnov statistic max|F_n - Phi| = {ks[i]:.5f} > critical "
                             f"value {critical:.5f} (level {ks_alpha:g}, sqrt(-log(alpha / 2) / 2) / sqrt(n)).")


def assert_pass_counts(obj, log_prob=None, sample=None, inverse=None, forward=None, params=None, y=None, n=3,
                       rng=0):
    """Assert the number of network passes (conditioner evaluations) of each public computation.

    For a flow, ``log_prob`` and ``sample`` (and ``inverse``, ``forward``) are called and ``flow.passes``
    (or ``flow.passes_per_layer``) compared with the expected count. For a layer, ``inverse`` and ``forward``
    are called and ``layer.calls`` compared. A K-layer MAF in D dimensions takes K passes for the density and
    K * D to sample; an IAF the other way round; RealNVP K both ways (MAF paper §3).

    Parameters
    ----------
    obj : layer or flow
    log_prob, sample, inverse, forward : int, sequence of int, or None
        The expected count: an int for the total, a sequence for each layer of a flow (compared with
        ``passes_per_layer``), None to skip. ``log_prob`` and ``sample`` exist for flows only.
    params : pytree or None
        A layer's parameters (required for a layer); for a flow, ``flow.params`` when None.
    y : ndarray of shape (C,) or None
        The context of a conditional layer or flow.
    n : int
        Batch size of the calls.
    rng : int or numpy.random.Generator
        Seeds the points (standard normal) and the samples.

    Raises
    ------
    AssertionError
        Naming the computation, the expected and counted passes, and the counts of every layer.
    """
    rng = onp.random.default_rng(rng)
    expected = {"log_prob": log_prob, "sample": sample, "inverse": inverse, "forward": forward}
    if _is_flow(obj):
        v = rng.standard_normal((n, obj.dim))
        for name, count in expected.items():
            if count is None:
                continue
            method = getattr(obj, name)
            if name == "sample":
                method(n, rng=rng, params=params) if y is None else method(n, y, rng=rng, params=params)
            else:
                method(v, params=params) if y is None else method(v, y, params=params)
            per_layer = list(obj.passes_per_layer)
            _check_count(f"flow.{name}", count, obj.passes, per_layer)
        return
    for name in ("log_prob", "sample"):
        if expected[name] is not None:
            raise TypeError(f"a layer has no {name}: count a layer's passes with inverse= and forward=")
    params = _resolve_params(obj, params)
    v = rng.standard_normal((n, obj.D))
    rows = _context_rows(y, n)
    for name in ("inverse", "forward"):
        if expected[name] is None:
            continue
        obj.calls = 0
        _apply(obj, name, params, v, rows)
        _check_count(f"layer.{name}", expected[name], obj.calls, None)


def _check_count(what, expected, counted, per_layer):
    hint = ("\n  A MAF layer takes 1 pass to normalise (x -> z) and D to generate (the D-pass solver); an IAF layer "
            "the other way round; a coupling layer 1 each way; Standardize and BatchNorm 0.")
    if isinstance(expected, (list, tuple)):
        if per_layer is None:
            raise TypeError(f"{what}: a layer has one count; pass an int")
        if list(expected) != per_layer:
            k = next(k for k, (a, b) in enumerate(zip(expected, per_layer)) if a != b) \
                if len(expected) == len(per_layer) else None
            where = "the number of layers differs" if k is None else \
                f"first wrong layer {k}: expected {expected[k]}, counted {per_layer[k]}"
            raise AssertionError(f"pass count of {what}: expected {list(expected)} per layer, counted {per_layer} "
                                 f"({where})." + hint)
        return
    if counted != expected:
        layers = "" if per_layer is None else f" (per layer: {per_layer})"
        raise AssertionError(f"pass count of {what}: expected {expected} network passes, counted {counted}{layers}."
                             + hint)
