"""The exercises of lesson 04 (see ``lessons/solutions/`` for the complete notebook)."""

import functools

import numpy as np

from .core import arrays_close, exercise, numbers_close  # noqa: F401 - the helpers every lesson module uses

# Exercise 04.1: the configuration whose passes the student computes.
PASSES_K, PASSES_D = 4, 7
PASSES_KEYS = ("MAF log_prob", "MAF sample", "IAF log_prob", "IAF sample")
# Exercise 04.3: the fitted Gaussian MADE of the notebook, rebuilt here with the same seeds:
#     made_fig1 = mf.MADE(2, hidden=(16, 16), order="reversed", rng=0)
#     made_fig1.fit(mf.datasets.toy("fig1", 4000, rng=0), steps=100, lr=3e-3, rng=0, progress=False)
FIG1_N, FIG1_SEED, FIG1_HIDDEN, FIG1_ORDER, FIG1_STEPS, FIG1_LR = 4000, 0, (16, 16), "reversed", 100, 3e-3


def _measured_passes():
    """The library's own pass counts for a K = PASSES_K, D = PASSES_D MAF and IAF."""
    import maf_numpy as mf
    counts = {}
    x = np.random.default_rng(0).standard_normal((2, PASSES_D))
    for name, flow_class in (("MAF", mf.MAF), ("IAF", mf.IAF)):
        flow = flow_class(PASSES_D, num_layers=PASSES_K, hidden=(8,), rng=0)
        flow.log_prob(x)
        counts[f"{name} log_prob"] = flow.passes
        flow.sample(2, rng=0)
        counts[f"{name} sample"] = flow.passes
    return counts


@exercise("04.1", f"MADE passes of a {PASSES_K}-layer MAF and IAF in D = {PASSES_D}",
          "per layer: one pass when every input of the MADE is known at once, D passes when the inputs are "
          "produced one degree at a time. Which inputs does each MADE read, in each direction?")
def _(answer):
    if not isinstance(answer, dict):
        return f"your answer should be a dict with the keys {list(PASSES_KEYS)}, got {type(answer).__name__}"
    missing = [key for key in PASSES_KEYS if key not in answer]
    if missing:
        return f"your dict lacks the key(s) {missing}"
    expected = _measured_passes()
    problems = []
    for key in PASSES_KEYS:
        problem = numbers_close(answer[key], expected[key], rtol=0, atol=0, what=f"your count for {key!r}")
        if problem and "single real number" not in problem and "finite" not in problem:
            other = key.replace("log_prob", "sample") if key.endswith("log_prob") else key.replace("sample", "log_prob")
            if answer[key] == expected[other]:
                problem = f"your count for {key!r} is the one of the other direction ({other!r})"
            elif answer[key] * PASSES_K == expected[key]:
                problem = f"your count for {key!r} is that of one layer; the flow has K = {PASSES_K}"
        if problem:
            problems.append(problem)
    return "; ".join(problems) or None


def _test_mades():
    """Seeded Gaussian MADEs with non-trivial conditionals and standardisation, and points to evaluate them at."""
    import maf_numpy as mf
    rng = np.random.default_rng(404)
    cases = []
    for D, order in ((3, "random"), (5, "reversed")):
        made = mf.MADE(D, hidden=(16, 16), order=order, activation="tanh", rng=rng)
        made.params = [{}, made.made_layer.network.init_params(rng, output_scale=1.0)]
        scale = rng.uniform(0.2, 3.0, D)
        made.layers[0].fit(rng.standard_normal((200, D)) * scale + rng.normal(0, 2, D))
        cases.append((made, rng.standard_normal((20, D)) * scale))
    return cases


@exercise("04.2", "log p(x) of a Gaussian MADE from its conditionals",
          "made.conditionals(x) gives (mu, alpha) in the standardised coordinates: standardise x with "
          "made.layers[0].inverse({}, x), sum log N(x_i | mu_i, exp(alpha_i)^2) over i, then add the "
          "Standardize layer's log-det.")
def _(answer):
    if not callable(answer):
        return f"your answer should be a function of (made, x), got {type(answer).__name__}"
    for made, x in _test_mades():
        expected = made.log_prob(x)
        given = answer(made, x)
        try:
            given = np.asarray(given, dtype=float)
        except (TypeError, ValueError):
            return f"your function should return an array of numbers, got {type(given).__name__}"
        if given.shape != expected.shape:
            return (f"for {len(x)} points in D = {x.shape[1]} your function returned shape {given.shape}; it should "
                    f"return one log-density per point, shape {expected.shape}")
        wrong = ~np.isclose(given, expected, rtol=1e-9, atol=1e-9)
        if not wrong.any():
            continue
        difference = given - expected
        _, log_det_std = made.layers[0].inverse({}, x)
        if np.allclose(difference, -log_det_std, rtol=1e-9, atol=1e-9):
            return "you left out the Standardize layer's log-det (its shift and scale are part of the model)"
        if np.allclose(difference, difference[0], rtol=0, atol=1e-9):
            return ("your log-densities are off by the same constant at every point: check the constants "
                    "(-0.5 log 2 pi per coordinate, and the Standardize layer's log-det)")
        return (f"for a MADE in D = {x.shape[1]} your log-densities differ from the right ones at {int(wrong.sum())} "
                f"of {len(x)} points; standardise x before comparing it with mu")
    return None


@functools.lru_cache(maxsize=1)
def _fitted_fig1_made():
    """The notebook's fitted Gaussian MADE, made_fig1 (retrained here with the same seeds: a fraction of a second)."""
    import maf_numpy as mf
    made = mf.MADE(2, hidden=FIG1_HIDDEN, order=FIG1_ORDER, rng=0)
    made.fit(mf.datasets.toy("fig1", FIG1_N, rng=FIG1_SEED), steps=FIG1_STEPS, lr=FIG1_LR, rng=0, progress=False)
    return made


@exercise("04.3", "a one-layer MAF that is made_fig1",
          "build mf.MAF(2, num_layers=1, ...) in the MADE's order, then give it the MADE's params and the "
          "Standardize layer's state (shift and scale are state, not params).")
def _(answer):
    import maf_numpy as mf
    if isinstance(answer, mf.MADE) or not isinstance(answer, mf.MAF):
        return f"your answer should be an mf.MAF (built with mf.MAF(...)), got {type(answer).__name__}"
    mafs = [layer for layer in answer.layers if isinstance(layer, mf.transforms.MAFLayer)]
    if len(mafs) != 1 or answer.dim != 2:
        return f"your MAF should have D = 2 and one MAF layer; it has D = {answer.dim} and {len(mafs)} MAF layers"
    reference = _fitted_fig1_made()
    x = mf.datasets.toy("fig1", 500, rng=1)
    if np.allclose(answer.log_prob(x), reference.log_prob(x), rtol=0, atol=1e-9):
        return None
    if not np.array_equal(mafs[0].input_degrees, reference.made_layer.input_degrees):
        return ("its MADE generates the variables in another order than made_fig1's (see orders= in mf.MAF, "
                "and made_fig1.made_layer.order)")
    if [m.shape for m in mafs[0].degrees] != [m.shape for m in reference.degrees] or not all(
            np.array_equal(a, b) for a, b in zip(mafs[0].degrees, reference.degrees)):
        return "its hidden layers or hidden degrees differ from made_fig1's: build it with the same hidden sizes"
    standardize = [layer for layer in answer.layers if isinstance(layer, mf.transforms.Standardize)]
    if not standardize:
        return "your MAF has no Standardize layer, but made_fig1 has one: keep standardize=True"
    reference_std = reference.layers[0]
    if not (np.allclose(standardize[0].shift, reference_std.shift) and
            np.allclose(standardize[0].scale, reference_std.scale)):
        return ("the log-likelihoods differ: the Standardize layer's shift and scale are not made_fig1's. They are "
                "layer state that fit sets, not params")
    return "the log-likelihoods differ: its MADE's weights are not made_fig1's params"
