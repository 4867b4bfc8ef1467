"""The exercises of lesson 08 (see ``lessons/solutions/`` for the complete notebook)."""

import math

import numpy as np

from .core import arrays_close, exercise, numbers_close  # noqa: F401 - the helpers every lesson module uses

# Exercise 08.1: a hybrid flow in D = HYBRID_D, its layers from the data side to the base side.
HYBRID_D = 40
HYBRID_LAYERS = ("MAF", "MAF", "coupling", "IAF", "coupling", "MAF")

# Exercises 08.2 and 08.3: the cost model of section 1, T = c1 + passes * (c0 + 3 c n D H), with these constants.
COST = {"c0": 0.1e-3, "c": 0.1e-9, "n": 256, "H": 128}
SLOPE_K, SLOPE_DIMS = 1, (4, 256)
RATIO_K, RATIO_D, RATIO_C1 = 5, 48, 0.5e-3


def build_hybrid(D=HYBRID_D, hidden=(8,), rng=0):
    """The flow of exercise 08.1: ``mf.Flow(D, layers)`` with ``HYBRID_LAYERS`` (orders alternate, halves too)."""
    import maf_numpy as mf
    T = mf.transforms
    rng = np.random.default_rng(rng)
    layers = []
    for k, kind in enumerate(HYBRID_LAYERS):
        order = "sequential" if k % 2 == 0 else "reversed"
        if kind == "MAF":
            layers.append(T.MAFLayer(D, hidden, order, rng=rng))
        elif kind == "IAF":
            layers.append(T.IAFLayer(D, hidden, order, rng=rng))
        else:
            layers.append(T.AffineCoupling(D, hidden, flip=bool(k % 2)))
    return mf.Flow(D, layers, rng=rng)


def _hybrid_passes():
    flow = build_hybrid()
    flow.log_prob(np.zeros((2, HYBRID_D)))
    density = flow.passes
    flow.sample(2, rng=0)
    return {"log_prob": density, "sample": flow.passes}


@exercise("08.1", f"passes of a hybrid flow of MAF, IAF and coupling layers in D = {HYBRID_D}",
          "add up the layers: for each kind, is the direction one pass (every input of its conditioner known at "
          "once) or D passes (the inputs produced one degree at a time)? log_prob runs every layer's inverse, "
          "sample every layer's forward.")
def _(answer):
    if not isinstance(answer, dict) or set(answer) != {"log_prob", "sample"}:
        return "your answer should be a dict with exactly the keys 'log_prob' and 'sample'"
    expected = _hybrid_passes()
    if answer["log_prob"] == expected["sample"] and answer["sample"] == expected["log_prob"]:
        return "you swapped the two directions: log_prob runs x -> z (inverse), sample runs z -> x (forward)"
    problems = []
    for key in ("log_prob", "sample"):
        problem = numbers_close(answer[key], expected[key], rtol=0, atol=0, what=f"your {key} count")
        if problem and "single real number" not in problem and "finite" not in problem:
            per_kind = {"MAF": 1 if key == "log_prob" else HYBRID_D, "IAF": HYBRID_D if key == "log_prob" else 1,
                        "coupling": 1}
            for kind, passes in per_kind.items():
                count = HYBRID_LAYERS.count(kind)
                other = HYBRID_D if passes == 1 else 1
                if kind != "coupling" and answer[key] == expected[key] + count * (other - passes):
                    problem = f"your {key} count has the {kind} layers in the wrong direction"
                if kind == "coupling" and answer[key] == expected[key] + count * (HYBRID_D - 1):
                    problem = f"your {key} count gives the coupling layers D passes; how many does one take?"
        if problem:
            problems.append(problem)
    return "; ".join(problems) or None


def cost_model(passes, D, c1=0.0, c0=COST["c0"], c=COST["c"], n=COST["n"], H=COST["H"]):
    """Seconds per call predicted by section 1's model: c1 + passes * (c0 + 3 c n D H)."""
    return c1 + passes * (c0 + 3 * c * n * D * H)


def _predicted_slope():
    low, high = SLOPE_DIMS
    t_low, t_high = (cost_model(SLOPE_K * D, D) for D in SLOPE_DIMS)
    return math.log(t_high / t_low) / math.log(high / low)


@exercise("08.2", f"the log-log slope of the sequential direction's time from D = {SLOPE_DIMS[0]} to {SLOPE_DIMS[1]}, "
                  "from the cost model",
          "write T(D) = passes(D) * (c0 + 3 c n D H) with the sequential direction's pass count, evaluate it at both "
          "ends, and take the slope of the line through the two points on log-log axes: log(T2/T1) / log(D2/D1).")
def _(answer):
    expected = _predicted_slope()
    problem = numbers_close(answer, expected, rtol=0.01, what="your slope")
    if problem and "single real number" not in problem and "finite" not in problem:
        if abs(answer - 2.0) < 1e-9:
            return "2 is the limit for D -> infinity; at these D the fixed cost c0 per pass still counts"
        if abs(answer - 1.0) < 0.2:
            return "that is about the slope of a one-pass direction: the sequential one makes K * D passes"
    return problem


def _predicted_ratio():
    passes = RATIO_K * RATIO_D
    return cost_model(passes, RATIO_D, c1=RATIO_C1) / cost_model(RATIO_K, RATIO_D, c1=RATIO_C1)


@exercise("08.3", f"the MAF's sampling/density time ratio at K = {RATIO_K}, D = {RATIO_D}, with a per-call cost c1",
          "both calls pay c1 once; sampling makes K * D passes and density evaluation K, each costing "
          "c0 + 3 c n D H. Divide the two predicted times.")
def _(answer):
    expected = _predicted_ratio()
    problem = numbers_close(answer, expected, rtol=0.01, what="your ratio")
    if problem and "single real number" not in problem and "finite" not in problem:
        if abs(answer - RATIO_D) < 1e-9:
            return f"{RATIO_D} = D is the pass ratio; the per-call cost c1 pulls the time ratio away from it"
    return problem
