"""maf_numpy: Masked Autoregressive Flow, MADE, IAF and RealNVP from scratch in NumPy + autograd.

A teaching implementation to read beside the papers. Direction convention: ``forward`` is generative
(z -> x), ``inverse`` is normalising (x -> z), and each returns the log-determinant of itself.

    import maf_numpy as mf
    flow = mf.MAF(dim=2, num_layers=5, hidden=(64, 64), rng=0)
    history = flow.fit(mf.datasets.toy("fig1", 10_000, rng=0), steps=2000)
    flow.log_prob(x); flow.sample(1000, rng=1); flow.save("maf.npz"); mf.load("maf.npz")

Modules, in dependency order: ``masks`` (MADE degrees and masks) -> ``made`` (the masked network) ->
``transforms`` (MAF, IAF and coupling layers) -> ``flows`` (log_prob, sample) -> ``train`` (fit);
``vi`` (ELBO and reverse-KL fitting), ``timing`` (interleaved timings for the trade-off lesson),
``datasets``, ``io``, ``plotting`` and the command line (``python -m maf_numpy``) sit on top.
"""

from . import agnostic, datasets, made, masks, timing, train, transforms, vi
from .agnostic import OrderAgnosticMADE
from .flows import IAF, MADE, MAF, ConditionalMADE, ConditionalMAF, Flow, RealNVP, standard_normal_log_prob
from .io import load, save

__all__ = [
    # flows
    "MADE", "MAF", "IAF", "RealNVP", "ConditionalMADE", "ConditionalMAF", "OrderAgnosticMADE", "Flow",
    # files and the base density
    "load", "save", "standard_normal_log_prob",
    # modules
    "agnostic", "datasets", "masks", "made", "timing", "train", "transforms", "vi",
]
__version__ = "0.1.0"
