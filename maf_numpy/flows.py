"""The named flows: MADE, MAF, IAF and RealNVP (MAF paper §3), each a :class:`~maf_numpy.flow.Flow` whose
constructor only builds the layers; ``maf_numpy.flows.Flow`` is the same class as ``maf_numpy.flow.Flow``.

    MADE      one Gaussian MADE used as a density (a one-layer MAF)           log_prob 1 pass, sample D
    MAF       K MAF layers, orders reversed between layers (§3.1)             log_prob K passes, sample K*D
    IAF       K IAF layers (§3.2; Kingma et al. 2016)                         log_prob K*D passes, sample K
    RealNVP   K affine coupling layers on alternating halves (§3.3)           both K passes

Every class takes ``standardize`` (a Standardize layer next to the data, fitted by ``fit``), ``dtype``, ``rng``
and ``fast``; MAF, IAF and RealNVP also ``batch_norm`` (a BatchNorm layer between consecutive layers, MAF §4.1)
and ``alpha_clamp``. The conditional flows p(x | y) are in :mod:`maf_numpy.conditional`, the MoG flows in
:mod:`maf_numpy.mog`, the order-agnostic MADE in :mod:`maf_numpy.agnostic`.

References
----------
G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017,
arXiv:1705.07057.
"""

from .building import (
    check_alpha_clamp,
    check_common,
    layer_orders,
    optional_config,
    standardize_layers,
    with_batch_norm,
)
from .densities import LOG_2PI, logsumexp, standard_normal_log_prob  # noqa: F401 - re-exported
from .flow import Flow
from .masks import HIDDEN_DEGREE_MODES, make_order
from .npz import register_flow_classes
from .transforms import AffineCoupling, IAFLayer, MAFLayer
from .validation import as_generator, check_choice, check_positive_int

__all__ = ["standard_normal_log_prob", "logsumexp", "LOG_2PI", "layer_orders", "Flow", "AutoregressiveFlow",
           "MADE", "MAF", "IAF", "RealNVP"]


class AutoregressiveFlow(Flow):
    layer_class = None

    def __init__(self, dim, num_layers=5, hidden=(64, 64), orders="alternate", hidden_degrees="sequential",
                 activation="relu", standardize=True, rng=None, dtype="float64", batch_norm=False,
                 alpha_clamp=None, context_dim=0, fast=True):
        dim, num_layers, hidden, dtype = check_common(dim, num_layers, hidden, activation, dtype)
        check_choice(hidden_degrees, HIDDEN_DEGREE_MODES, "hidden_degrees")
        alpha_clamp = check_alpha_clamp(alpha_clamp)
        rng = as_generator(rng)
        order_list = layer_orders(dim, num_layers, orders, rng)
        layers = standardize_layers(dim, standardize, dtype) + with_batch_norm([
            self.layer_class(dim, hidden, order, hidden_degrees, activation, rng, dtype=dtype,
                             context_dim=context_dim, alpha_clamp=alpha_clamp) for order in order_list
        ], batch_norm, dim, dtype)
        config = {"dim": dim, "num_layers": num_layers, "hidden": hidden,
                  "orders": [order.tolist() for order in order_list], "hidden_degrees": hidden_degrees,
                  "activation": activation, "standardize": standardize, "dtype": dtype,
                  **optional_config(batch_norm, alpha_clamp, context_dim)}
        super().__init__(dim, layers, rng=rng, fast=fast, dtype=dtype, config=config)


class MAF(AutoregressiveFlow):
    """Masked Autoregressive Flow: K MAF layers (MAF paper §3.1), orderings reversed between layers.

    ``log_prob`` and ``inverse`` take one MADE pass per layer; ``sample`` and ``forward`` take D.

    Parameters
    ----------
    dim : int
        Data dimension D.
    num_layers : int
        Number of MADE layers K.
    hidden : tuple of int
        Hidden widths of every MADE.
    orders : {"alternate", "random", "sequential", "reversed"} or list of K permutations
        Orderings of the layers (see :func:`layer_orders`).
    hidden_degrees : {"sequential", "random"}
        How each MADE assigns hidden degrees (see :func:`maf_numpy.masks.hidden_degrees`).
    activation : {"relu", "tanh"}
    standardize : bool
        Put a :class:`~maf_numpy.transforms.Standardize` layer next to the data (fitted by ``fit``).
    rng : int, numpy.random.Generator or None
        Seeds the initial parameters and any random orderings or degrees.
    dtype : {"float64", "float32"}
        Floating-point type of the parameters and of every computation (see the module docstring).
    batch_norm : bool
        Put a :class:`~maf_numpy.transforms.BatchNorm` layer between consecutive MADE layers (MAF paper §4.1;
        see the module docstring for its two modes).
    alpha_clamp : float or None
        None (the default): the paper's unconstrained scale exp(alpha). A number c > 0: every layer uses
        ``c * tanh(alpha / c)`` instead (:func:`maf_numpy.transforms.soft_clamp`), so no layer scales a
        coordinate by more than exp(c): a stabiliser, not part of the paper.
    fast : bool
        True (the default): kernels of :mod:`maf_numpy.fast`, tested equal to the reference, may do the work;
        False: the readable reference code runs everywhere (see :attr:`Flow.fast`).
    """

    layer_class = MAFLayer


class IAF(AutoregressiveFlow):
    """Inverse Autoregressive Flow: K IAF layers (MAF paper §3.2; Kingma et al. 2016).

    ``sample`` and ``forward`` take one MADE pass per layer, and :meth:`sample_and_log_prob` also gives
    the density of its own samples for free; ``log_prob`` of an outside x takes D passes per layer.
    Same arguments as :class:`MAF`.
    """

    layer_class = IAFLayer

    def sample_and_log_prob(self, n, rng=None, params=None):
        """Draw n points and their log-density in one pass per layer (what IAF is good at).

            z ~ N(0, I),  (x, log|det dx/dz|) = forward(z),  log p(x) = log N(z; 0, I) - log|det dx/dz|

        Returns
        -------
        x : ndarray of shape (n, D)
        log_prob : ndarray of shape (n,)
        """
        n = check_positive_int(n, "n")
        rng = as_generator(rng)
        params = self._params(params)
        z = self._cast(self.base.sample(self._base_params(params), n, rng))
        with self._counting_passes():
            x, log_det = self.run("forward", params, z)
        return x, self.base.log_prob(self._base_params(params), z) - log_det


class RealNVP(Flow):
    """RealNVP: K affine coupling layers with alternating halves (MAF paper §3.3; Dinh et al. 2017).

    One network pass per layer in both directions. Same arguments as :class:`MAF` except that there are
    no orderings: layer k conditions on the first half when k is even and on the second when k is odd.
    Needs ``dim >= 2``. ``batch_norm=True`` puts a BatchNorm between consecutive coupling layers.
    ``alpha_clamp=c`` soft-clamps every layer's log-scale as in :class:`MAF` (None, the default, is the
    paper's form). ``orders`` and ``hidden_degrees`` are refused with a ValueError: they exist only to say
    so, since a coupling layer has no ordering to choose. (The additive coupling of NICE and Glow-style
    stacks are compositions: ``Flow(dim, [AffineCoupling(..., scale=False), ActNorm(dim), LinearLU(dim), ...])``.)
    """

    def __init__(self, dim, num_layers=5, hidden=(64, 64), activation="relu", standardize=True, rng=None,
                 dtype="float64", batch_norm=False, fast=True, alpha_clamp=None, orders=None, hidden_degrees=None):
        for name, value in (("orders", orders), ("hidden_degrees", hidden_degrees)):
            if value is not None:
                raise ValueError(f"RealNVP takes no {name} (got {value!r}): it has no orderings. Its coupling layers "
                                 f"split x into two halves, alternating between layers, and each half is "
                                 f"transformed given the other; MAF and IAF take orders and hidden_degrees")
        dim, num_layers, hidden, dtype = check_common(dim, num_layers, hidden, activation, dtype)
        if dim < 2:
            raise ValueError(f"dim must be at least 2 for RealNVP (a coupling layer splits x in two), got {dim}")
        alpha_clamp = check_alpha_clamp(alpha_clamp)
        rng = as_generator(rng)
        layers = standardize_layers(dim, standardize, dtype) + with_batch_norm([
            AffineCoupling(dim, hidden, flip=bool(k % 2), activation=activation, dtype=dtype, alpha_clamp=alpha_clamp)
            for k in range(num_layers)
        ], batch_norm, dim, dtype)
        config = {"dim": dim, "num_layers": num_layers, "hidden": hidden, "activation": activation,
                  "standardize": standardize, "dtype": dtype, **optional_config(batch_norm, alpha_clamp)}
        super().__init__(dim, layers, rng=rng, fast=fast, dtype=dtype, config=config)


class MADE(Flow):
    """A Gaussian MADE used as a density on its own: a one-layer MAF (MAF paper §3.1).

        log p(x) = sum_i log N(x_i | mu_i, exp(alpha_i)^2),   (mu_i, alpha_i) = MADE(x_{<i})

    Parameters
    ----------
    dim : int
    hidden : tuple of int
    order : {"sequential", "reversed", "random"} or a permutation of range(dim)
        ``order[0]`` is the variable generated first (see :func:`maf_numpy.masks.make_order`).
    hidden_degrees : {"sequential", "random"}
    activation : {"relu", "tanh"}
    standardize : bool
    rng : int, numpy.random.Generator or None
    dtype : {"float64", "float32"}
    alpha_clamp : float or None
        Optional soft clamp of the log-scales (see :class:`MAF`); None is the paper's form.
    fast : bool
        Whether kernels of :mod:`maf_numpy.fast` may run (see :attr:`Flow.fast`).

    Attributes
    ----------
    degrees, masks : lists of ndarray
        The MADE's degrees ``[m^0, ..., m^L]`` and masks (see :mod:`maf_numpy.masks`).
    """

    def __init__(self, dim, hidden=(64, 64), order="sequential", hidden_degrees="sequential",
                 activation="relu", standardize=True, rng=None, dtype="float64", alpha_clamp=None, context_dim=0,
                 fast=True):
        dim, _, hidden, dtype = check_common(dim, 1, hidden, activation, dtype)
        check_choice(hidden_degrees, HIDDEN_DEGREE_MODES, "hidden_degrees")
        alpha_clamp = check_alpha_clamp(alpha_clamp)
        rng = as_generator(rng)
        made_order = make_order(dim, order, rng)
        layers = standardize_layers(dim, standardize, dtype) + [
            MAFLayer(dim, hidden, made_order, hidden_degrees, activation, rng, dtype=dtype, context_dim=context_dim,
                     alpha_clamp=alpha_clamp)
        ]
        config = {"dim": dim, "hidden": hidden, "order": made_order.tolist(), "hidden_degrees": hidden_degrees,
                  "activation": activation, "standardize": standardize, "dtype": dtype,
                  **optional_config(alpha_clamp=alpha_clamp, context_dim=context_dim)}
        super().__init__(dim, layers, rng=rng, fast=fast, dtype=dtype, config=config)

    @property
    def made_layer(self):
        """The MAFLayer holding the MADE network."""
        return self.layers[-1]

    @property
    def degrees(self):
        return self.made_layer.degrees

    @property
    def masks(self):
        return self.made_layer.masks

    def conditionals(self, x, params=None):
        """(mu, alpha) of the Gaussian conditionals at x, each (n, D), in the MADE's own coordinates
        (after standardisation when there is a Standardize layer): MAF §3.1, one pass."""
        return self._conditionals(x, None, params)

    def _conditionals(self, x, y, params):
        return self._outputs_after(len(self.layers) - 1, x, y, params, self.made_layer.conditioner)


register_flow_classes(MADE, MAF, IAF, RealNVP)
