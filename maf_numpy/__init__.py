"""maf_numpy: Masked Autoregressive Flow, MADE, IAF and RealNVP from scratch in NumPy + autograd.

A teaching implementation to read beside the papers. Direction convention: ``forward`` is generative
(z -> x), ``inverse`` is normalising (x -> z), and each returns the log-determinant of itself.

    import maf_numpy as mf
    flow = mf.MAF(dim=2, num_layers=5, hidden=(64, 64), rng=0)
    history = flow.fit(mf.datasets.toy("fig1", 10_000, rng=0), steps=2000)
    flow.log_prob(x); flow.sample(1000, rng=1); flow.save("maf.npz"); mf.load("maf.npz")

Modules, in dependency order (one way, no cycles): ``masks`` (MADE degrees and masks) -> ``made`` (the masked
network) -> ``transforms`` (MAF, IAF, coupling and normalisation layers) -> ``flow``, ``flows`` (log_prob, sample) ->
``train`` (fit, with ``optim``'s Adam) -> ``io`` (save, load). ``fast`` holds the speed kernels, tested equal
to the reference and used only when a flow has ``fast=True`` (the default); ``fast=False`` runs the readable
code everywhere. ``conditional``, ``mog``, ``agnostic``, ``vi`` (ELBO and reverse-KL fitting), ``timing``,
``datasets``, ``plotting`` and the command line (``python -m maf_numpy``) sit on top.
"""

from . import (
    agnostic,
    bases,
    conditional,
    datasets,
    fast,
    flow,
    flows,
    made,
    masks,
    mog,
    optim,
    testing,
    timing,
    train,
    transforms,
    vi,
)
from .adam import Adam
from .agnostic import OrderAgnosticMADE
from .bases import Logistic, StandardNormal
from .conditional import ConditionalMADE, ConditionalMAF
from .densities import standard_normal_log_prob
from .flows import IAF, MADE, MAF, Flow, RealNVP
from .io import load, save
from .mog import ConditionalMAFMoG, MADEMoG, MAFMoG
from .npz import register_base_classes as register_base
from .npz import register_flow_classes as register_flow
from .npz import register_layer_classes as register_layer

__all__ = [
    # flows
    "MADE", "MAF", "IAF", "RealNVP", "MADEMoG", "MAFMoG", "ConditionalMADE", "ConditionalMAF", "ConditionalMAFMoG",
    "OrderAgnosticMADE", "Flow",
    # composition, files, base densities, training loops of your own
    "register_layer", "register_base", "register_flow", "load", "save", "StandardNormal", "Logistic",
    "standard_normal_log_prob", "Adam",
    # modules
    "agnostic", "bases", "conditional", "datasets", "fast", "flow", "flows", "masks", "made", "mog", "optim",
    "testing", "timing", "train", "transforms", "vi",
]
__version__ = "0.1.0"


def __getattr__(name):
    """``maf_numpy.plotting`` on first use: it imports matplotlib, which the core does not need."""
    if name == "plotting":
        import importlib

        return importlib.import_module(".plotting", __name__)
    raise AttributeError(f"module 'maf_numpy' has no attribute {name!r}")
