"""What you read is what runs: with fast=False the functions the README's equation index names are the ones called.

A profiler (``sys.setprofile``) records every function of the package that runs while flows built with
``fast=False`` evaluate densities, sample, differentiate and fit (MAF, IAF, RealNVP, MADE, and the rest of the
paper: MoG, batch norm, conditional, order-agnostic, clamp, variational inference, the digits tools). Every
function the README's equation index names must be among them, and no function defined in ``maf_numpy/fast/``
may be. With ``fast=True`` the same calls give the same numbers.
"""

import inspect
import os
import re
import sys
import warnings

import autograd.numpy as anp
import numpy as onp
import pytest
from autograd import grad

import maf_numpy as mf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "maf_numpy") + os.sep
FAST = os.path.join(PACKAGE, "fast") + os.sep


def equation_index_names():
    """The code names in the second column of the README's equation index, e.g. ``transforms.affine_inverse``."""
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as file:
        readme = file.read()
    section = readme.split("## Equation index", 1)[1].split("\n## ", 1)[0]
    names = []
    for row in section.splitlines():
        cells = row.split(" | ")
        if row.startswith("|") and len(cells) >= 2 and not set(cells[1]) <= set("-| "):
            names += re.findall(r"`([A-Za-z_][\w.]*)(?:\([^`]*\))?`", cells[-1])
    return sorted(set(names))


def resolve(name):
    """``"transforms.affine_inverse"`` -> the object maf_numpy.transforms.affine_inverse."""
    obj = mf
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def code_objects(obj):
    """The code objects that count as "obj ran": a function's own; any method of a class."""
    if inspect.isclass(obj):
        return {member.__code__ for _, member in inspect.getmembers(obj, inspect.isfunction)
                if member.__module__.startswith("maf_numpy")}
    return {inspect.unwrap(getattr(obj, "fun", obj)).__code__}


def scenarios(fast):
    """Everything a course does with the library, with flows built with the given ``fast``. Returns the numbers
    computed, to compare the two paths."""
    rng = onp.random.default_rng(0)
    x = mf.datasets.toy("moons", 200, rng=0)
    out = {}
    for name, make in [("MAF", lambda: mf.MAF(2, num_layers=2, hidden=(8,), rng=0, fast=fast)),
                       ("IAF", lambda: mf.IAF(2, num_layers=2, hidden=(8,), rng=0, fast=fast)),
                       ("RealNVP", lambda: mf.RealNVP(2, num_layers=2, hidden=(8,), rng=0, fast=fast)),
                       ("MADE", lambda: mf.MADE(2, hidden=(8,), rng=0, fast=fast))]:
        flow = make()
        history = flow.fit(x, steps=4, batch_size=50, val_every=2, progress=False, rng=0)
        out[name + " fit"] = onp.array(history["val_nll"])
        out[name + " log_prob"] = flow.log_prob(x[:20])
        out[name + " sample"] = flow.sample(10, rng=1)
        out[name + " grad"] = grad(lambda p, flow=flow: -anp.sum(flow.log_prob(x[:20], params=p)) / 20)(
            flow.params)[-1]["W_mu"]
        out[name + " trace"] = flow.trace_inverse(x[:5])["values"][-1]
    iaf = mf.IAF(3, num_layers=2, hidden=(8,), rng=1, fast=fast)
    out["IAF sample_and_log_prob"] = iaf.sample_and_log_prob(5, rng=2)[1]
    out["MADE conditionals"] = mf.MADE(3, hidden=(8,), rng=2, fast=fast).conditionals(rng.standard_normal((4, 3)))[1]
    out["clamped MAF"] = mf.MAF(2, num_layers=2, hidden=(8,), alpha_clamp=1.0, rng=3, fast=fast).log_prob(x[:10])
    bn = mf.MAF(2, num_layers=2, hidden=(8,), batch_norm=True, rng=4, fast=fast)
    out["batch norm fit"] = onp.array(bn.fit(x, steps=2, batch_size=50, val_every=1, progress=False,
                                             rng=0)["val_nll"])
    for cls in (mf.MADEMoG, mf.MAFMoG):
        flow = cls(2, hidden=(8,), components=3, rng=5, fast=fast)
        out[cls.__name__] = flow.log_prob(x[:10]), flow.sample(5, rng=6)
    labels = onp.eye(2)[rng.integers(2, size=len(x))]
    conditional = mf.ConditionalMAF(2, 2, num_layers=2, hidden=(8,), rng=7, fast=fast)
    conditional.fit(x, labels, steps=2, batch_size=50, progress=False, rng=0)
    out["ConditionalMAF"] = conditional.class_log_posterior(x[:10]), conditional.sample(4, labels[0], rng=8)
    cmog = mf.ConditionalMAFMoG(2, 2, num_layers=1, hidden=(8,), components=2, rng=9, fast=fast)
    out["ConditionalMAFMoG"] = cmog.log_prob(x[:10], labels[:10])
    agnostic = mf.OrderAgnosticMADE(2, hidden=(8,), num_masks=2, rng=10, fast=fast)
    agnostic.fit(x, steps=2, batch_size=50, progress=False, rng=0)
    out["OrderAgnosticMADE"] = agnostic.log_prob(x[:10]), agnostic.sample(4, rng=11)
    T = mf.transforms
    glow = mf.Flow(2, [T.ActNorm(2), T.LinearLU(2, rng=1), T.AffineCoupling(2, (8,)), T.Permutation(2, [1, 0]),
                       T.ActNorm(2), T.LinearLU(2, rng=2), T.AffineCoupling(2, (8,), flip=True)], rng=13, fast=fast)
    history = glow.fit(x, steps=3, batch_size=50, val_every=3, progress=False, rng=0, weight_decay=1e-3)
    out["Glow-style"] = onp.array(history["val_nll"]), glow.sample(4, rng=1)
    nice = mf.Flow(2, [T.AffineCoupling(2, (8,), scale=False), T.Reverse(2), T.AffineCoupling(2, (8,), scale=False)],
                   base=mf.Logistic(2), rng=14, fast=fast)
    optimizer = mf.Adam(nice.params, lr=1e-2, fast=fast)
    nice.params = optimizer.step(grad(lambda p: -anp.sum(nice.log_density(p, x[:50])) / 50)(nice.params))
    out["NICE"] = nice.log_prob(x[:10]), nice.sample(4, rng=2)
    coupling = mf.transforms.MADECoupling(4, (6,))
    params = coupling.init_params(rng)
    out["MADECoupling"] = coupling.inverse(params, rng.standard_normal((3, 4)))[0]
    out["masks"] = mf.masks.connectivity(mf.MADE(3, hidden=(5,), fast=fast).masks)
    vi_flow = mf.IAF(2, num_layers=2, hidden=(8,), rng=12, fast=fast)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf.vi.fit_vi(vi_flow, mf.vi.funnel_log_density, steps=3, n_samples=16, rng=0, progress=False)
    out["vi"] = mf.vi.elbo(vi_flow, mf.vi.funnel_log_density, 20, rng=1)[0]
    counts = rng.integers(0, 17, size=(5, 4))
    y = mf.datasets.dequantize(counts, rng=1)
    z, log_det_logit = mf.datasets.logit_transform(y)
    out["digits tools"] = (mf.datasets.logit_log_det(y), mf.datasets.bits_per_dim(-log_det_logit, 4),
                           mf.datasets.report_continuous(-0.5 * onp.sum(z**2, axis=1), log_det_logit, D=4).bpd, z)
    return out


def profiled(fast):
    """(the package functions called, as code objects; the scenarios' results)."""
    called = set()

    def record(frame, event, arg):
        if event == "call" and frame.f_code.co_filename.startswith(PACKAGE):
            called.add(frame.f_code)

    sys.setprofile(record)
    try:
        results = scenarios(fast)
    finally:
        sys.setprofile(None)
    return called, results


@pytest.fixture(scope="module")
def reference_run():
    return profiled(fast=False)


def test_the_equation_index_names_functions_that_exist():
    names = equation_index_names()
    assert len(names) > 30, names
    for name in names:
        assert callable(resolve(name)), f"README equation index: {name} is not a function or class of maf_numpy"


def test_every_function_the_equation_index_names_runs_with_fast_false(reference_run):
    called, _ = reference_run
    missing = [name for name in equation_index_names() if not code_objects(resolve(name)) & called]
    assert not missing, f"the README's equation index names functions that did not run with fast=False: {missing}"


def test_no_function_of_the_fast_package_runs_with_fast_false(reference_run):
    called, _ = reference_run
    fast_calls = sorted(f"{code.co_filename[len(PACKAGE):]}:{code.co_qualname}" for code in called
                        if code.co_filename.startswith(FAST))
    assert not fast_calls, f"with fast=False these kernels ran: {fast_calls}"


def test_the_fast_path_runs_kernels_and_gives_the_same_results(reference_run):
    _, reference = reference_run
    called, ours = profiled(fast=True)
    assert any(code.co_filename.startswith(FAST) for code in called)
    assert ours.keys() == reference.keys()
    for key in reference:
        for a, b in zip(onp.atleast_1d(onp.asarray(ours[key], dtype=object)),
                        onp.atleast_1d(onp.asarray(reference[key], dtype=object))):
            a, b = onp.asarray(a, dtype=float), onp.asarray(b, dtype=float)
            assert onp.allclose(a, b, rtol=1e-8, atol=1e-9), f"{key}: fast and reference differ by " \
                                                             f"{onp.max(onp.abs(a - b)):.3g}"
