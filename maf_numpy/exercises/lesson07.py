"""The exercises of lesson 07 (see ``lessons/solutions/`` for the complete notebook)."""

import numpy as np

from .core import arrays_close, exercise, numbers_close  # noqa: F401 - the helpers every lesson module uses

# Exercise 07.1: the layer size and split whose free Jacobian entries the student counts.
FREE_D, FREE_A, FREE_HIDDEN = 10, 4, (16, 16)


def _free_counts():
    """[MAF layer, coupling layer]: pairs (i, j), i != j, with a path from input j to output i, from the masks."""
    import maf_numpy as mf
    counts = []
    full = mf.masks.made_degrees(FREE_D, FREE_HIDDEN)
    two_group = mf.masks.two_group_degrees(FREE_D, FREE_A, FREE_HIDDEN)
    for degrees in (full, two_group):
        C = mf.masks.connectivity(mf.masks.made_masks(degrees))
        counts.append(int(np.sum(C[~np.eye(FREE_D, dtype=bool)] > 0)))
    return counts


@exercise("07.1", f"free Jacobian entries below the diagonal, MAF layer against coupling layer, D = {FREE_D}, "
                  f"|A| = {FREE_A}",
          "an entry dz_i/dx_j (i != j) is free when some path leads from input j to output i: build the degrees "
          "(mf.masks.made_degrees, mf.masks.two_group_degrees), the masks, mf.masks.connectivity, and count the "
          "non-zero entries off the diagonal. Or count by hand: which x_j may each z_i read?")
def _(answer):
    try:
        values = np.asarray(answer, dtype=float).ravel()
    except (TypeError, ValueError):
        return f"your answer should be two numbers [MAF layer, coupling layer], got {type(answer).__name__}"
    if values.shape != (2,):
        return f"your answer should hold two numbers [MAF layer, coupling layer], it holds {values.size}"
    expected = _free_counts()
    if values[0] == expected[1] and values[1] == expected[0]:
        return "you swapped the two counts: give [MAF layer, coupling layer]"
    problems = []
    for value, right, name in zip(values, expected, ("MAF-layer", "coupling-layer")):
        if value == right:
            continue
        if value == right + FREE_D:
            problems.append(f"your {name} count includes the diagonal: count only the entries below it")
        elif value == right + FREE_A * (FREE_A - 1) // 2 and name == "coupling-layer":
            problems.append(f"your {name} count lets z_A depend on x_A, but z_A = x_A")
        else:
            problems.append(numbers_close(value, right, rtol=0, atol=0, what=f"your {name} count"))
    return "; ".join(problems) or None


def _noisy_mafs():
    """One-layer 2-D MAFs (no Standardize) with every weight and bias perturbed, so mu_1, alpha_1 != 0."""
    from autograd.misc import flatten

    import maf_numpy as mf
    rng = np.random.default_rng(707)
    mafs = []
    for hidden, activation in (((16, 16), "relu"), ((8,), "tanh")):
        maf = mf.MAF(2, num_layers=1, hidden=hidden, activation=activation, standardize=False, rng=rng)
        flat, unflatten = flatten(maf.params)
        maf.params = unflatten(flat + 0.5 * rng.standard_normal(flat.shape))
        mafs.append(maf)
    return mafs, rng.normal(0.0, 2.0, size=(300, 2))


@exercise("07.2", "a one-layer 2-D MAF rebuilt as C o A (a coupling layer after a constant elementwise affine map)",
          "C is a mf.transforms.MADECoupling with the MAF's hidden widths and activation that takes the MAF "
          "layer's own params; A is a mf.transforms.Standardize layer whose state you set (forward: x = z * scale "
          "+ shift). In mf.Flow(2, layers), layers[0] sits next to the data: x = layers[0](layers[1](z)).")
def _(answer):
    import maf_numpy as mf
    if not callable(answer):
        return f"your answer should be a function of a one-layer MAF, got {type(answer).__name__}"
    mafs, x = _noisy_mafs()
    for maf in mafs:
        expected = maf.log_prob(x)
        flow = answer(maf)
        if not isinstance(flow, mf.Flow):
            return f"your function should return an mf.Flow, got {type(flow).__name__}"
        if any(isinstance(layer, (mf.transforms.MAFLayer, mf.transforms.IAFLayer)) for layer in flow.layers):
            return "your flow still holds an autoregressive (MAF or IAF) layer: build it from a coupling layer"
        if not any(isinstance(layer, (mf.transforms.MADECoupling, mf.transforms.AffineCoupling))
                   for layer in flow.layers):
            return "your flow should contain a coupling layer (mf.transforms.MADECoupling)"
        if not np.allclose(maf.log_prob(x), expected, rtol=0, atol=1e-12):
            return "your function changed the MAF it was given: leave its params as they are"
        given = flow.log_prob(x)
        if np.allclose(given, expected, rtol=1e-9, atol=1e-9):
            continue
        gap = float(np.max(np.abs(given - expected)))
        hidden = maf.config["hidden"]
        return (f"for a MAF with hidden widths {hidden} and {maf.config['activation']} units your flow's log-density "
                f"differs from the MAF's by up to {gap:.3g} nats: check the order of the layers, and that A's "
                f"shift and scale are the MAF's constant (mu_1, alpha_1) in the generative direction")
    return None
