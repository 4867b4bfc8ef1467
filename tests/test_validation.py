"""Bad input at the public boundary: a ValueError or TypeError whose message names the
argument, never a silent NaN, a result of the wrong shape, or a traceback from deep inside NumPy.
"""

import warnings

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad

import maf_numpy as mf
from maf_numpy import validation

D = 3

FLOWS = {
    "MADE": lambda: mf.MADE(D, hidden=(8, 8), rng=0),
    "MAF": lambda: mf.MAF(D, num_layers=2, hidden=(8, 8), rng=0),
    "IAF": lambda: mf.IAF(D, num_layers=2, hidden=(8, 8), rng=0),
    "RealNVP": lambda: mf.RealNVP(D, num_layers=2, hidden=(8, 8), rng=0),
    "MADEMoG": lambda: mf.MADEMoG(D, hidden=(8, 8), components=3, rng=0),
    "MAFMoG": lambda: mf.MAFMoG(D, num_layers=2, hidden=(8, 8), components=3, rng=0),
    "MAF-batch-norm": lambda: mf.MAF(D, num_layers=2, hidden=(8, 8), rng=0, batch_norm=True),
}

GOOD = onp.random.default_rng(0).normal(size=(20, D))

# Every public method that takes a data array: (call, name of the argument it must name).
METHODS = {
    "log_prob": (lambda flow, v: flow.log_prob(v), "x"),
    "inverse": (lambda flow, v: flow.inverse(v), "x"),
    "forward": (lambda flow, v: flow.forward(v), "z"),
    "trace_inverse": (lambda flow, v: flow.trace_inverse(v), "x"),
    "trace_forward": (lambda flow, v: flow.trace_forward(v), "z"),
    "fit-x_train": (lambda flow, v: flow.fit(v, steps=1, progress=False), "x_train"),
    "fit-x_val": (lambda flow, v: flow.fit(GOOD, v, steps=1, progress=False), "x_val"),
}

with warnings.catch_warnings():  # NumPy discourages np.matrix, which is the point of refusing it
    warnings.simplefilter("ignore", PendingDeprecationWarning)
    matrix = onp.matrix(onp.zeros((2, D)))
masked = onp.ma.masked_array(onp.zeros((2, D)), mask=onp.zeros((2, D), dtype=bool))
masked.mask[0, 0] = True

BAD_DATA = {  # id: (value, exception, what the message says after "<name> must ...")
    "wrong-second-dimension": (onp.zeros((4, D + 1)), ValueError, rf"have shape \(n, {D}\), got \(4, {D + 1}\)"),
    "one-dimensional": (onp.zeros(D), ValueError, rf"have shape \(n, {D}\), got \({D},\); for one point use"),
    "three-dimensional": (onp.zeros((2, 4, D)), ValueError, rf"have shape \(n, {D}\), got \(2, 4, {D}\)"),
    "scalar-array": (onp.array(1.0), ValueError, rf"have shape \(n, {D}\), got \(\)"),
    "empty-batch": (onp.zeros((0, D)), ValueError, "hold at least one point"),
    "nan": (onp.array([[0.0, onp.nan, 1.0]]), ValueError, "be finite, got 1 NaN or inf"),
    "inf": (onp.array([[0.0, onp.inf, 1.0]] * 2), ValueError, "be finite, got 2 NaN or inf"),
    "minus-inf": (onp.array([[-onp.inf, 0.0, 1.0]]), ValueError, "be finite"),
    "int-dtype": (onp.zeros((2, D), dtype=int), TypeError, "be a float array .*got dtype int64"),
    "bool-dtype": (onp.zeros((2, D), dtype=bool), TypeError, "be a float array .*got dtype bool"),
    "object-dtype": (onp.zeros((2, D), dtype=object), TypeError, "be a float array .*got dtype object"),
    "complex-dtype": (onp.zeros((2, D), dtype=complex), TypeError, "be a float array .*got dtype complex128"),
    "float16": (onp.zeros((2, D), dtype=onp.float16), TypeError, "be a float array .*got dtype float16"),
    "string-array": (onp.array([["a", "b", "c"]]), TypeError, "be a float array .*got dtype <U1"),
    "python-list": ([[0.0, 0.0, 0.0]], TypeError, rf"be a NumPy array of floats of shape \(n, {D}\), got list"),
    "python-float": (1.0, TypeError, "be a NumPy array .*got float"),
    "none": (None, TypeError, "be a NumPy array .*got NoneType"),
    "np-matrix": (matrix, TypeError, "be a plain NumPy array .*got matrix"),
    "masked-array": (masked, TypeError, "be a plain NumPy array .*got MaskedArray"),
}


# x_val=None is valid (fit then holds out part of x_train), so that one pair is not a bad input.
BAD_CALLS = [pytest.param(method, *case, id=f"{method}-{key}") for method in METHODS
             for key, case in BAD_DATA.items() if not (key == "none" and method == "fit-x_val")]


@pytest.mark.parametrize("method, value, error, message", BAD_CALLS)
@pytest.mark.parametrize("flow_name", FLOWS)
def test_bad_data_is_refused_with_an_error_naming_the_argument(flow_name, method, value, error, message):
    flow = FLOWS[flow_name]()
    call, name = METHODS[method]
    with pytest.raises(error, match=rf"^{name} must {message}"):
        call(flow, value)


@pytest.mark.parametrize("value, error, message", BAD_DATA.values(), ids=BAD_DATA.keys())
def test_made_conditionals_refuses_bad_x_too(value, error, message):
    with pytest.raises(error, match=rf"^x must {message}"):
        FLOWS["MADE"]().conditionals(value)


@pytest.mark.parametrize("flow_name", FLOWS)
def test_a_refused_fit_leaves_the_flow_untouched(flow_name):
    flow = FLOWS[flow_name]()
    params = [dict(p) for p in flow.params]
    with pytest.raises(ValueError):
        flow.fit(GOOD, onp.zeros((3, D + 1)), steps=1, progress=False)
    assert not getattr(flow.layers[0], "fitted", False)
    assert all(p[key] is q[key] for p, q in zip(flow.params, params) for key in p)


# --- good input: the right shapes, finite, float64 -------------------------------------------------
@pytest.mark.parametrize("n", [1, 5])
@pytest.mark.parametrize("dtype", [onp.float64, onp.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("flow_name", FLOWS)
def test_good_input_gives_finite_results_of_the_documented_shapes(flow_name, dtype, n):
    flow = FLOWS[flow_name]()
    v = GOOD[:n].astype(dtype)
    log_prob = flow.log_prob(v)
    z, log_det = flow.inverse(v)
    x, log_det_forward = flow.forward(v)
    samples = flow.sample(n, rng=0)
    assert log_prob.shape == (n,) and z.shape == (n, D) and log_det.shape == (n,)
    assert x.shape == (n, D) and log_det_forward.shape == (n,) and samples.shape == (n, D)
    for result in (log_prob, z, log_det, x, log_det_forward, samples):
        assert onp.all(onp.isfinite(result))


@pytest.mark.parametrize("flow_name", FLOWS)
def test_strided_and_fortran_ordered_views_give_the_same_numbers(flow_name):
    flow = FLOWS[flow_name]()
    wide = onp.repeat(GOOD, 2, axis=1)[:, ::2]  # a non-contiguous view equal to GOOD
    assert onp.array_equal(flow.log_prob(wide), flow.log_prob(GOOD))
    assert onp.array_equal(flow.log_prob(onp.asfortranarray(GOOD)), flow.log_prob(GOOD))


# --- sample: n and rng ------------------------------------------------------------------------------
BAD_N = {"zero": (0, ValueError, "n must be >= 1, got 0"), "negative": (-1, ValueError, "n must be >= 1"),
         "float": (2.5, TypeError, "n must be an int, got float"),
         "integral-float": (3.0, TypeError, "n must be an int, got float"),
         "string": ("3", TypeError, "n must be an int, got str"),
         "bool": (True, TypeError, "n must be an int, got bool"),
         "none": (None, TypeError, "n must be an int, got NoneType"),
         "array": (onp.array([3]), TypeError, "n must be an int, got ndarray")}


@pytest.mark.parametrize("n, error, message", BAD_N.values(), ids=BAD_N.keys())
@pytest.mark.parametrize("flow_name", FLOWS)
def test_sample_refuses_a_bad_n_naming_n(flow_name, n, error, message):
    with pytest.raises(error, match=f"^{message}"):
        FLOWS[flow_name]().sample(n)


@pytest.mark.parametrize("n, error, message", BAD_N.values(), ids=BAD_N.keys())
def test_iaf_sample_and_log_prob_refuses_a_bad_n_naming_n(n, error, message):
    with pytest.raises(error, match=f"^{message}"):
        FLOWS["IAF"]().sample_and_log_prob(n)


def test_sample_accepts_a_numpy_integer_n():
    assert FLOWS["MAF"]().sample(onp.int64(4), rng=0).shape == (4, D)


BAD_RNG = {"string": ("abc", TypeError, "rng must be an int seed, a numpy.random.Generator or None, got str"),
           "float": (1.5, TypeError, "rng must be an int seed.*got float"),
           "bool": (True, TypeError, "rng must be an int seed.*got bool"),
           "legacy-RandomState": (onp.random.RandomState(0), TypeError, "rng must be .*got RandomState"),
           "negative-seed": (-1, ValueError, "rng must be a non-negative int seed, got -1")}


@pytest.mark.parametrize("rng, error, message", BAD_RNG.values(), ids=BAD_RNG.keys())
@pytest.mark.parametrize("where", ["sample", "constructor", "fit"])
def test_a_bad_rng_is_refused_naming_rng(where, rng, error, message):
    with pytest.raises(error, match=f"^{message}"):
        if where == "sample":
            FLOWS["MAF"]().sample(3, rng=rng)
        elif where == "constructor":
            mf.MAF(D, num_layers=1, hidden=(4,), rng=rng)
        else:
            FLOWS["MAF"]().fit(GOOD, steps=1, rng=rng, progress=False)


def test_an_int_seed_and_a_generator_seeded_alike_give_the_same_samples():
    flow = FLOWS["MAF"]()
    assert onp.array_equal(flow.sample(5, rng=3), flow.sample(5, rng=onp.random.default_rng(3)))


# --- constructors -----------------------------------------------------------------------------------
ALL = (mf.MADE, mf.MAF, mf.IAF, mf.RealNVP)
LAYERED = (mf.MAF, mf.IAF, mf.RealNVP)
AUTOREGRESSIVE = (mf.MAF, mf.IAF)

CONSTRUCTOR_CASES = [  # (classes, keyword arguments, exception, message)
    (ALL, {"dim": 0}, ValueError, "dim must be >= 1, got 0"),
    (ALL, {"dim": -1}, ValueError, "dim must be >= 1, got -1"),
    (ALL, {"dim": 2.5}, TypeError, "dim must be an int, got float 2.5"),
    (ALL, {"dim": "3"}, TypeError, "dim must be an int, got str"),
    (ALL, {"dim": True}, TypeError, "dim must be an int, got bool"),
    (ALL, {"dim": None}, TypeError, "dim must be an int, got NoneType"),
    (LAYERED, {"num_layers": 0}, ValueError, "num_layers must be >= 1, got 0"),
    (LAYERED, {"num_layers": -2}, ValueError, "num_layers must be >= 1"),
    (LAYERED, {"num_layers": 2.0}, TypeError, "num_layers must be an int, got float"),
    (ALL, {"hidden": (0,)}, ValueError, r"hidden\[0\] must be >= 1, got 0"),
    (ALL, {"hidden": (8, -3)}, ValueError, r"hidden\[1\] must be >= 1, got -3"),
    (ALL, {"hidden": (8, 2.5)}, TypeError, r"hidden\[1\] must be an int, got float"),
    (ALL, {"hidden": (8.0,)}, TypeError, r"hidden\[0\] must be an int, got float"),
    (ALL, {"hidden": "64"}, TypeError, "hidden must be a tuple of positive ints, got str"),
    (ALL, {"hidden": None}, TypeError, "hidden must be a tuple of positive ints, got NoneType"),
    (ALL, {"activation": "sigmoid"}, ValueError, r"activation must be one of \('relu', 'tanh'\), got 'sigmoid'"),
    (ALL, {"activation": None}, ValueError, "activation must be one of"),
    (ALL, {"standardize": "yes"}, TypeError, "standardize must be True or False, got .*'yes'"),
    (ALL, {"standardize": 1}, TypeError, "standardize must be True or False, got .*1"),
    ((mf.MADE, *AUTOREGRESSIVE), {"hidden_degrees": "weird"}, ValueError,
     r"hidden_degrees must be one of \('sequential', 'random'\), got 'weird'"),
    ((mf.MADE,), {"order": "diagonal"}, ValueError, "order must be one of .*permutation of range.*'diagonal'"),
    ((mf.MADE,), {"order": [0, 0, 1]}, ValueError, r"order must be .*permutation of range\(3\), got \[0, 0, 1\]"),
    ((mf.MADE,), {"order": [0, 1]}, ValueError, r"order must be .*permutation of range\(3\), got \[0, 1\]"),
    ((mf.MADE,), {"order": [0.0, 1.0, 2.0]}, ValueError, "order must be .*permutation"),
    ((mf.MADE,), {"order": None}, ValueError, "order must be one of"),
    (AUTOREGRESSIVE, {"orders": "diagonal"}, ValueError, "orders must be one of .*'diagonal'"),
    (AUTOREGRESSIVE, {"num_layers": 2, "orders": [[0, 1, 2]]}, ValueError,
     "orders must be one of .*a list of 2 permutations of range"),
    (AUTOREGRESSIVE, {"num_layers": 2, "orders": [[0, 1, 2], [0, 0, 1]]}, ValueError,
     r"orders?(\[1\])? must be .*permutation of range\(3\)"),
    (AUTOREGRESSIVE, {"orders": None}, ValueError, "orders must be one of"),
    ((mf.RealNVP,), {"dim": 1}, ValueError, "dim must be at least 2 for RealNVP"),
]


CONSTRUCTOR_PARAMS = [
    pytest.param(cls, kwargs, error, message,
                 id=f"{cls.__name__}-" + "-".join(f"{key}={value!r}" for key, value in kwargs.items()))
    for classes, kwargs, error, message in CONSTRUCTOR_CASES for cls in classes
]


@pytest.mark.parametrize("cls, kwargs, error, message", CONSTRUCTOR_PARAMS)
def test_constructors_refuse_bad_arguments_naming_them(cls, kwargs, error, message):
    kwargs = {"dim": D, "hidden": (8,), **kwargs}
    with pytest.raises(error, match=f"^{message}"):
        cls(**kwargs)


@pytest.mark.parametrize("cls", (mf.MADE, mf.MAF, mf.IAF), ids=lambda c: c.__name__)
def test_an_unknown_keyword_is_a_type_error(cls):
    with pytest.raises(TypeError, match="unexpected keyword argument 'hiden'"):
        cls(D, hiden=(8,))


# --- D = 1 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", (mf.MADE, mf.MAF, mf.IAF), ids=lambda c: c.__name__)
def test_one_dimensional_flows_work(cls):
    flow = cls(1, hidden=(8,), rng=0)
    x = onp.random.default_rng(1).normal(2.0, 3.0, size=(200, 1))
    history = flow.fit(x, steps=20, lr=1e-2, rng=0, progress=False)
    assert history["status"] in ("completed", "early_stopped")
    log_prob = flow.log_prob(x)
    assert log_prob.shape == (200,) and onp.all(onp.isfinite(log_prob))
    z, log_det = flow.inverse(x)
    x_again, log_det_forward = flow.forward(z)
    assert onp.max(onp.abs(x_again - x)) < 1e-12 and onp.max(onp.abs(log_det + log_det_forward)) < 1e-12
    assert flow.sample(7, rng=0).shape == (7, 1)


def test_one_dimensional_realnvp_is_refused_naming_dim():
    with pytest.raises(ValueError, match="^dim must be at least 2 for RealNVP"):
        mf.RealNVP(dim=1)


# --- params= ----------------------------------------------------------------------------------------
BAD_PARAMS_OUTER = {
    "list-too-short": lambda p: p[:-1],
    "list-too-long": lambda p: p + [{}],
    "dict": lambda p: {"params": p},
    "array": lambda p: onp.zeros(3),
    "string": lambda p: "params",
}


@pytest.mark.parametrize("method", ["log_prob", "inverse", "forward", "sample"])
@pytest.mark.parametrize("change", BAD_PARAMS_OUTER.values(), ids=BAD_PARAMS_OUTER.keys())
@pytest.mark.parametrize("flow_name", FLOWS)
def test_params_of_the_wrong_structure_are_refused_naming_params(flow_name, change, method):
    flow = FLOWS[flow_name]()
    bad = change(flow.params)
    with pytest.raises(ValueError, match=rf"^params must be a list of {len(flow.params)} per-layer dicts"):
        if method == "sample":
            flow.sample(3, params=bad)
        else:
            getattr(flow, method)(GOOD, params=bad)


def _set(key, value):
    def change(params):
        params = [dict(p) for p in params]
        params[-1] = {**params[-1], key: value(params[-1][key])}
        return params

    return change


def _drop(key):
    def change(params):
        params = [dict(p) for p in params]
        params[-1] = {k: v for k, v in params[-1].items() if k != key}
        return params

    return change


BAD_PARAMS_INNER = {  # id: (change to the last layer's dict, exception, message)
    "wrong-weight-shape": (_set("W_mu", lambda v: onp.zeros((v.shape[0] + 1, v.shape[1]))), ValueError,
                           r"params\[\d\]\['W_mu'\] must have shape"),
    "bias-that-would-broadcast": (_set("b_mu", lambda v: onp.zeros(5)), ValueError,
                                  r"params\[\d\]\['b_mu'\] must have shape"),
    "bias-of-shape-1-by-D": (_set("b_alpha", lambda v: v[None, :]), ValueError,
                             r"params\[\d\]\['b_alpha'\] must have shape"),
    "scalar-bias": (_set("b_mu", lambda v: onp.float64(0.0)), TypeError,
                    r"params\[\d\]\['b_mu'\] must be a float array"),
    "missing-key": (_drop("W_alpha"), ValueError, r"params\[\d\] must have the keys .*missing \['W_alpha'\]"),
    "list-for-a-layer": (lambda p: p[:-1] + [[1, 2]], ValueError, r"params\[\d\] must be a dict"),
    "int-weights": (_set("W_mu", lambda v: v.astype(int)), TypeError,
                    r"params\[\d\]\['W_mu'\] must be a float array .*int64"),
    "nan-weights": (_set("W_mu", lambda v: v * onp.nan), ValueError, r"params\[\d\]\['W_mu'\] must be finite"),
    "hidden-list-too-short": (_set("W", lambda v: v[:-1]), ValueError,
                              r"params\[\d\]\['W'\] must be a list of length 2"),
}


@pytest.mark.parametrize("change, error, message", BAD_PARAMS_INNER.values(), ids=BAD_PARAMS_INNER.keys())
@pytest.mark.parametrize("flow_name", FLOWS)
def test_check_params_names_the_bad_entry(flow_name, change, error, message):
    flow = FLOWS[flow_name]()
    with pytest.raises(error, match=f"^{message}"):
        validation.check_params(change(flow.params), flow.params)


@pytest.mark.parametrize("change, error, message", BAD_PARAMS_INNER.values(), ids=BAD_PARAMS_INNER.keys())
@pytest.mark.parametrize("flow_name", FLOWS)
def test_params_with_bad_inner_arrays_are_refused_by_the_public_methods(flow_name, change, error, message):
    flow = FLOWS[flow_name]()
    with pytest.raises(error, match=f"^{message}"):
        flow.log_prob(GOOD, params=change(flow.params))


@pytest.mark.parametrize("flow_name", FLOWS)
def test_check_params_accepts_the_flows_own_params_and_traced_params(flow_name):
    """The README's gradient one-liner still works through the check (autograd boxes the pytree)."""
    flow = FLOWS[flow_name]()
    assert validation.check_params(flow.params, flow.params) is flow.params
    assert validation.check_params(tuple(flow.params), flow.params) is not None
    g = grad(lambda p: -np.mean(flow.log_density(validation.check_params(p, flow.params), GOOD)))(flow.params)
    assert len(g) == len(flow.params)


# --- fit options ------------------------------------------------------------------------------------
FIT_CASES = {
    "steps=0": ({"steps": 0}, ValueError, "steps must be >= 1, got 0"),
    "steps=2.5": ({"steps": 2.5}, TypeError, "steps must be an int"),
    "batch_size=-1": ({"batch_size": -1}, ValueError, "batch_size must be >= 1, got -1"),
    "batch_size=0": ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    "lr=0": ({"lr": 0}, ValueError, "lr must be a finite number > 0, got 0"),
    "lr=-1e-3": ({"lr": -1e-3}, ValueError, "lr must be a finite number > 0"),
    "lr=nan": ({"lr": float("nan")}, ValueError, "lr must be a finite number > 0, got nan"),
    "lr=inf": ({"lr": float("inf")}, ValueError, "lr must be a finite number > 0, got inf"),
    "lr='1e-3'": ({"lr": "1e-3"}, TypeError, "lr must be a number, got str"),
    "patience=0": ({"patience": 0}, ValueError, "patience must be >= 1, got 0"),
    "patience=1.5": ({"patience": 1.5}, TypeError, "patience must be an int"),
    "val_fraction=1.5": ({"val_fraction": 1.5}, ValueError, r"val_fraction must be in \(0, 1\)"),
    "val_fraction=1": ({"val_fraction": 1.0}, ValueError, r"val_fraction must be in \(0, 1\)"),
    "val_fraction=0": ({"val_fraction": 0.0}, ValueError, "val_fraction must be a finite number > 0"),
    "val_fraction=nan": ({"val_fraction": float("nan")}, ValueError, "val_fraction must be a finite number > 0"),
    "val_every=0": ({"val_every": 0}, ValueError, "val_every must be >= 1, got 0"),
}


@pytest.mark.parametrize("options, error, message", FIT_CASES.values(), ids=FIT_CASES.keys())
def test_fit_refuses_bad_options_naming_them(options, error, message):
    flow = FLOWS["MAF"]()
    with pytest.raises(error, match=f"^{message}"):
        flow.fit(GOOD, **{"steps": 1, "progress": False, **options})
    assert not flow.layers[0].fitted  # refused before touching the flow


def test_fit_refuses_one_point_when_it_must_hold_some_out():
    with pytest.raises(ValueError, match="val_fraction .*x_train must hold at least 2 points"):
        FLOWS["MAF"]().fit(GOOD[:1], steps=1, progress=False)


@pytest.mark.parametrize("option", ["progress", "lr_decay"])
def test_fit_refuses_a_non_bool_switch_naming_it(option):
    with pytest.raises(TypeError, match=f"^{option} must be True or False"):
        FLOWS["MAF"]().fit(GOOD, steps=1, **{"progress": False, option: "yes"})


def test_check_bool_accepts_numpy_bools_and_refuses_the_rest():
    assert validation.check_bool(onp.True_, "flag") is True
    for bad in ("yes", 1, None):
        with pytest.raises(TypeError, match="^flag must be True or False"):
            validation.check_bool(bad, "flag")


# --- extreme but valid input ------------------------------------------------------------------------
@pytest.mark.parametrize("flow_name", FLOWS)
def test_a_fresh_flow_gives_finite_log_prob_up_to_ten_units_from_the_origin(flow_name):
    flow = FLOWS[flow_name]()
    x = onp.random.default_rng(1).uniform(-10, 10, size=(500, D))
    assert onp.all(onp.isfinite(flow.log_prob(x)))


@pytest.mark.parametrize("scale", [1e2, 1e4, 1e6])
@pytest.mark.parametrize("flow_name", [name for name in FLOWS if hasattr(mf, name)])
def test_extreme_inputs_give_finite_log_prob_or_a_runtime_warning(flow_name, scale):
    """Documented behaviour: the unconstrained exp(alpha) (the paper's form, the default) overflows float64 for |x| far
    outside the data (a fresh default-size MAF from |x| ~ 30 on, since its Standardize layer is still the
    identity); log_prob is then -inf or NaN for those points, and a RuntimeWarning says so. It never
    raises. (Default sizes: 5 layers of (64, 64), where the overflow does happen.)"""
    flow = getattr(mf, flow_name)(D, rng=0)
    x = onp.random.default_rng(1).normal(size=(200, D)) * scale
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        log_prob = flow.log_prob(x)
    assert log_prob.shape == (200,)
    assert not onp.any(onp.isposinf(log_prob))
    if not onp.all(onp.isfinite(log_prob)):
        assert any(issubclass(w.category, RuntimeWarning) for w in caught)


@pytest.mark.parametrize("flow_name", ["MAF", "IAF"])
def test_a_non_finite_log_prob_warns_naming_x_even_when_numpy_is_silenced(flow_name):
    flow = getattr(mf, flow_name)(D, rng=0)  # default size: overflows at this scale
    x = onp.random.default_rng(1).normal(size=(200, D)) * 1e6
    with onp.errstate(all="ignore"), pytest.warns(RuntimeWarning, match="not finite for .* points of x"):
        flow.log_prob(x)


def test_warn_if_not_finite_counts_the_bad_points():
    with pytest.warns(RuntimeWarning, match=r"log_prob is not finite for 2 of 3 points of x \(1 NaN, 1 -inf "
                                            r"values\): .*overflowed float64 \(-inf: the density underflowed"):
        validation.warn_if_not_finite(onp.array([0.0, onp.nan, -onp.inf]), "log_prob")
    with pytest.warns(RuntimeWarning, match="z is not finite for 1 of 2 points of x"):
        validation.warn_if_not_finite(onp.array([[0.0, onp.inf], [1.0, 2.0]]), "z")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        validation.warn_if_not_finite(onp.zeros(4), "log_prob")
