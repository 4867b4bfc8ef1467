"""The exercises of lesson 06 (see ``lessons/solutions/`` for the complete notebook)."""

import numpy as np

from .core import arrays_close, exercise, numbers_close  # noqa: F401 - the helpers every lesson module uses

# Exercise 06.1: K_MAF MAF layers next to the data, then K_IAF IAF layers next to the base, in D dimensions.
MIXED_D, MIXED_K_MAF, MIXED_K_IAF = 10, 2, 3
# The lesson's small flows (section 1): D = 4 coordinates, K = 3 layers, 100 outside points.
D, K, N_OUT = 4, 3, 100


def _pair(answer, what):
    """(first, second) from a pair, or a message."""
    try:
        first, second = answer
    except (TypeError, ValueError):
        return None, f"give {what} as a pair (a tuple of two), got {type(answer).__name__}"
    return (first, second), None


@exercise("06.1", f"MADE passes of a flow with {MIXED_K_MAF} MAF and {MIXED_K_IAF} IAF layers in D = {MIXED_D}",
          "count each layer on its own: which variable does its MADE read, and is that variable known "
          "before the pass in the direction you run? The counts of the layers add up.")
def _(answer):
    import maf_numpy as mf
    T = mf.transforms
    layers = ([T.MAFLayer(MIXED_D, (8,), order=("sequential", "reversed")[k % 2]) for k in range(MIXED_K_MAF)]
              + [T.IAFLayer(MIXED_D, (8,), order=("sequential", "reversed")[k % 2]) for k in range(MIXED_K_IAF)])
    flow = mf.Flow(MIXED_D, layers, rng=0)
    flow.log_prob(np.random.default_rng(0).standard_normal((3, MIXED_D)))
    density = flow.passes
    flow.sample(3, rng=0)
    sampling = flow.passes
    pair, problem = _pair(answer, "(passes of log_prob, passes of sample)")
    if problem:
        return problem
    if tuple(pair) == (sampling, density) and sampling != density:
        return "you swapped the two counts: the first is log_prob's (x -> z), the second sample's (z -> x)"
    for value, expected, name in ((pair[0], density, "log_prob"), (pair[1], sampling, "sample")):
        problem = numbers_close(value, expected, rtol=0.0, atol=0.0, what=f"your pass count of {name}")
        if problem:
            return problem
    return None


def _scaled_maf_layer():
    """Section 2's MAF layer, its weights scaled far from the identity, and the outside points x_out."""
    import maf_numpy as mf
    maf = mf.MAF(D, 1, hidden=(16,), orders="random", standardize=False, rng=1)
    params = maf.params[0]
    params = {**params, "W_mu": 10 * params["W_mu"], "W_alpha": 10 * params["W_alpha"]}
    x_out = np.random.default_rng(0).standard_normal((2, N_OUT, D))[0]
    return maf.layers[0], params, x_out


@exercise("06.2", "the IAF-shaped inverse of a MAF layer: (mu', alpha') at x_out",
          "solve x_i = z_i exp(alpha_i) + mu_i for z_i and match the result to z_i = x_i exp(alpha'_i) + mu'_i; "
          "(mu, alpha) = maf_layer.conditioner(params, x_out) reads x_{<i}.")
def _(answer):
    layer, params, x_out = _scaled_maf_layer()
    mu, alpha = layer.conditioner(params, x_out)
    mu_prime, alpha_prime = -mu * np.exp(-alpha), -alpha
    pair, problem = _pair(answer, "(mu_prime, alpha_prime)")
    if problem:
        return problem
    mu_answer, alpha_answer = (np.asarray(a, dtype=float) for a in pair)
    if (mu_answer.shape == alpha_answer.shape == mu.shape and np.allclose(mu_answer, alpha_prime)
            and np.allclose(alpha_answer, mu_prime)):
        return "you swapped the two: the pair is (mu_prime, alpha_prime)"
    if alpha_answer.shape == alpha.shape and np.allclose(alpha_answer, alpha):
        return "alpha_prime: dividing by exp(alpha_i) is multiplying by exp(alpha'_i), so what is alpha'?"
    problem = arrays_close(alpha_answer, alpha_prime, rtol=1e-9, atol=1e-12, what="your alpha_prime")
    if problem:
        return problem
    if mu_answer.shape == mu.shape:
        for candidate, message in ((-mu, "mu_prime: (x_i - mu_i) exp(-alpha_i) also multiplies mu_i by exp(-alpha_i)"),
                                   (mu * np.exp(-alpha), "mu_prime has the wrong sign"),
                                   (-mu * np.exp(alpha), "mu_prime: check the sign of the exponent")):
            if np.allclose(mu_answer, candidate, rtol=1e-9, atol=1e-12):
                return message
    return arrays_close(mu_answer, mu_prime, rtol=1e-9, atol=1e-12, what="your mu_prime")


def _scaled_iaf():
    """Section 3's exercise IAF (weights scaled far from the identity) and its base points z_ex."""
    import maf_numpy as mf
    iaf = mf.IAF(D, K, hidden=(16,), standardize=False, rng=2)
    iaf.params = [{**p, "W_mu": 5 * p["W_mu"], "W_alpha": 5 * p["W_alpha"]} for p in iaf.params]
    z_ex = np.random.default_rng(5).standard_normal((10, D))
    return iaf, z_ex


@exercise("06.3", "log q(x) of an IAF's own samples, from its layers' alphas",
          "z -> x runs the layers starting from the one next to the base; each layer's MADE reads that "
          "layer's input, and the log-dets of the layers add up (section 3's formula).")
def _(answer):
    import maf_numpy as mf
    iaf, z_ex = _scaled_iaf()
    _, log_det = iaf.forward(z_ex)  # log|det dx/dz|
    log_base = mf.standard_normal_log_prob(z_ex)
    expected = log_base - log_det
    try:
        answer = np.asarray(answer, dtype=float)
    except (TypeError, ValueError):
        return f"give log q(x) as an array of {len(z_ex)} numbers, got {type(answer).__name__}"
    if answer.shape == expected.shape:
        wrong_order = np.zeros(len(z_ex))  # the layers run in list order, next to the data first
        v = z_ex
        for layer, p in zip(iaf.layers, iaf.params):
            mu, alpha = layer.conditioner(p, v)
            v, wrong_order = v * np.exp(alpha) + mu, wrong_order + alpha.sum(axis=1)
        for candidate, message in (
                (log_base + log_det, "wrong sign of the log-det: the density of x is log N(z) MINUS the alphas"),
                (log_base, "you left out the log-det, the sum of the alphas of every layer"),
                (-log_det, "you left out the base density log N(z; 0, I)"),
                (log_base - wrong_order, "the layers ran in the wrong order: z -> x starts at iaf.layers[-1], "
                                         "the layer next to the base"),
                (log_base - log_det.mean(), "sum the alphas per point (over the coordinates), not over the batch")):
            if np.allclose(answer, candidate, rtol=1e-9, atol=1e-12):
                return message
    return arrays_close(answer, expected, rtol=1e-9, atol=1e-12, what="your log q(x)")
