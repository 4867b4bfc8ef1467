"""Affine autoregressive layers: MAF (MAF paper §3.1) and IAF (MAF paper §3.2; Kingma et al. 2016).

Both layers compute the same affine map, x_i = z_i * exp(alpha_i) + mu_i, with (mu, alpha) from one MADE
(:class:`maf_numpy.made.MADENetwork`). What the MADE reads is the whole difference:

| layer    | mu_i, alpha_i from | forward z -> x                  | inverse x -> z                  |
| -------- | ------------------ | ------------------------------- | ------------------------------- |
| MAFLayer | x_{<i}             | D passes (solve_autoregressive) | 1 pass (affine_inverse)         |
| IAFLayer | z_{<i}             | 1 pass (affine_forward)         | D passes (solve_autoregressive) |

Each layer holds its structure (sizes, degrees, masks); its numbers are passed in as ``params``, a dict of
arrays, so the methods are pure functions of ``(params, input)`` that autograd can differentiate. Every
public method's body is the math: the conditioner, then the affine map or the D-pass solver.

References
----------
G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017,
arXiv:1705.07057. D. P. Kingma, T. Salimans, R. Jozefowicz, X. Chen, I. Sutskever, M. Welling. Improved
Variational Inference with Inverse Autoregressive Flow. NeurIPS 2016.
"""

from ..made import MADENetwork
from .affine import affine_forward, affine_inverse, soft_clamp, solve_autoregressive

__all__ = ["MADELayerBase", "AffineAutoregressive", "MAFLayer", "IAFLayer"]


class MADELayerBase:
    """What a layer holding one MADE network (``self.network``) exposes of it: its degrees, masks, order, dtype,
    the number of passes (``calls``, read and reset by the flows) and fresh parameters. Shared by the MAF and
    IAF layers and by the MADE MoG base (:class:`maf_numpy.mog.MADEMoGBase`)."""

    @property
    def degrees(self):
        return self.network.degrees

    @property
    def masks(self):
        return self.network.masks

    @property
    def dtype(self):
        return self.network.dtype

    @property
    def order(self):
        return self.network.order

    @property
    def calls(self):
        """Number of network evaluations so far; the flows reset it to count passes."""
        return self.network.calls

    @calls.setter
    def calls(self, value):
        self.network.calls = value

    def init_params(self, rng):
        return self.network.init_params(rng)

    def get_state(self):
        return {f"degrees_{l}": m for l, m in enumerate(self.network.degrees)}

    def set_state(self, state):
        self.network.set_degrees([state[f"degrees_{l}"] for l in range(len(self.network.hidden) + 1)])


class AffineAutoregressive(MADELayerBase):
    """Shared structure of MAFLayer and IAFLayer: one MADE network (see :class:`maf_numpy.made.MADENetwork`).

    ``context_dim = C > 0`` makes the layer conditional (MAF paper §3.4): its MADE reads ``[v, y]`` and
    ``forward``/``inverse`` take the context ``y`` (n, C). ``alpha_clamp = c`` replaces alpha by
    :func:`~maf_numpy.transforms.affine.soft_clamp` ``(alpha, c)``; None (the default) is the paper's
    unconstrained form.
    """

    def __init__(self, D, hidden=(64, 64), order="sequential", hidden_degrees="sequential",
                 activation="relu", rng=None, degrees=None, dtype="float64", context_dim=0, alpha_clamp=None):
        self.D = D
        self.context_dim = context_dim
        self.alpha_clamp = alpha_clamp
        self.network = MADENetwork(D, hidden, order, hidden_degrees, activation, rng, degrees, dtype, context_dim)

    @property
    def input_degrees(self):
        """Degree of each coordinate, shape (D,): coordinate i of the output depends on coordinate j
        of the input only if ``input_degrees[j] < input_degrees[i]`` or ``i == j``."""
        return self.network.degrees[0]

    def conditioner(self, params, v, y=None):
        """(mu, alpha) = MADE(v) (or MADE([v, y]) when conditional), each (n, D): one network pass, counted
        in ``network.calls``; alpha soft-clamped when ``alpha_clamp`` is set."""
        mu, alpha = self.network(params, v, y)
        if self.alpha_clamp is not None:
            alpha = soft_clamp(alpha, self.alpha_clamp)
        return mu, alpha

    def config(self):
        """The constructor's keyword arguments, degrees included (JSON-able): ``type(self)(**config())`` rebuilds
        the same structure (``save``/``load`` of a composed flow)."""
        options = {"context_dim": self.context_dim} if self.context_dim else {}
        if self.alpha_clamp is not None:
            options["alpha_clamp"] = self.alpha_clamp
        return {"D": self.D, "hidden": list(self.network.hidden), "degrees": [m.tolist() for m in self.degrees],
                "activation": self.network.activation, "dtype": self.dtype.name, **options}

    def __repr__(self):
        return (f"{type(self).__name__}(D={self.D}, hidden={self.network.hidden}, "
                f"order={self.order.tolist()})")


class MAFLayer(AffineAutoregressive):
    """One MAF layer: x_i = z_i * exp(alpha_i) + mu_i with (mu_i, alpha_i) = MADE(x_{<i}) (MAF §3.1).

    ``inverse`` (density) is one MADE pass; ``forward`` (sampling) needs D sequential passes.
    """

    def inverse(self, params, x, y=None):
        """Normalise, x -> z, in one MADE pass (MAF §3.1). Returns (z, log|det dz/dx|).

            (mu, alpha) = MADE(x),    z = (x - mu) * exp(-alpha),    log|det dz/dx| = -sum_i alpha_i

        ``y`` (n, C): the context of a conditional layer (MAF §3.4), else None.
        """
        mu, alpha = self.conditioner(params, x, y)  # mu_i, alpha_i read x_{<i} only
        return affine_inverse(x, mu, alpha)

    def forward(self, params, z, y=None):
        """Generate, z -> x, in D MADE passes (MAF §3.1). Returns (x, log|det dx/dz|).

        x_i = z_i * exp(alpha_i) + mu_i needs (mu_i, alpha_i) of x_{<i}, which are not known yet. Pass k
        evaluates the MADE at the current x, whose coordinates of degree < k are already exact, so after D
        passes x is exact (:func:`~maf_numpy.transforms.affine.solve_autoregressive`).
        """
        def step(x):
            mu, alpha = self.conditioner(params, x, y)
            return affine_forward(z, mu, alpha)

        return solve_autoregressive(step, self.D, z.shape, self.input_degrees, z.dtype)


class IAFLayer(AffineAutoregressive):
    """One IAF layer: x_i = z_i * exp(alpha_i) + mu_i with (mu_i, alpha_i) = MADE(z_{<i}) (MAF §3.2).

    The same affine map as MAF, but the conditioner reads the *base* variable z, not x. So ``forward``
    (sampling) is one MADE pass and ``inverse`` (density of an outside x) needs D sequential passes: the
    mirror image of :class:`MAFLayer`. (Kingma et al. 2016 write the update with a gate; this is the
    paper's §3.2 form with the same expressive power.)
    """

    def forward(self, params, z, y=None):
        """Generate, z -> x, in one MADE pass (MAF §3.2). Returns (x, log|det dx/dz|).

            (mu, alpha) = MADE(z),    x = z * exp(alpha) + mu,    log|det dx/dz| = sum_i alpha_i

        ``y`` (n, C): the context of a conditional layer, else None.
        """
        mu, alpha = self.conditioner(params, z, y)  # mu_i, alpha_i read z_{<i} only
        return affine_forward(z, mu, alpha)

    def inverse(self, params, x, y=None):
        """Normalise, x -> z, in D MADE passes. Returns (z, log|det dz/dx|).

        z_i = (x_i - mu_i) * exp(-alpha_i) needs (mu_i, alpha_i) of z_{<i}, which are not known yet. Pass k
        evaluates the MADE at the current z, whose coordinates of degree < k are already exact, so after D
        passes z is exact (:func:`~maf_numpy.transforms.affine.solve_autoregressive`).
        """
        def step(z):
            mu, alpha = self.conditioner(params, z, y)
            return affine_inverse(x, mu, alpha)

        return solve_autoregressive(step, self.D, x.shape, self.input_degrees, x.dtype)
