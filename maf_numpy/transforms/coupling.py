"""Affine coupling (RealNVP): MAF paper §3.3; Dinh, Sohl-Dickstein & Bengio (2017); additive coupling (NICE).

    x_A = z_A,    x_B = z_B * exp(alpha(z_A)) + mu(z_A)       (NICE, Dinh, Krueger & Bengio 2015: alpha = 0)

The coordinates in A pass through unchanged and condition the shift and log-scale of the rest, B, so both
directions take one network pass. It is an autoregressive layer whose inputs have only two degrees (A: 1,
B: 2), which is why its Jacobian is block triangular rather than triangular: :class:`AffineCoupling` builds
it with a plain MLP on x_A, :class:`MADECoupling` as a MADE with two input degrees (lesson 07 checks that
the two are the same map).

References
----------
L. Dinh, J. Sohl-Dickstein, S. Bengio. Density estimation using Real NVP. ICLR 2017. L. Dinh, D. Krueger,
Y. Bengio. NICE: Non-linear Independent Components Estimation. ICLR 2015 workshop. G. Papamakarios,
T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017, arXiv:1705.07057.
"""

import autograd.numpy as np
import numpy as onp

from ..made import init_made_params, made_apply, made_hidden, masked_dense
from ..masks import two_group_degrees
from ..validation import check_bool, check_positive_float
from .affine import additive_forward, additive_inverse, affine_forward, affine_inverse, soft_clamp
from .autoregressive import AffineAutoregressive

__all__ = ["AffineCoupling", "MADECoupling"]


class AffineCoupling:
    """RealNVP affine coupling (MAF §3.3, Dinh et al. 2017), or NICE's additive coupling with ``scale=False``.

        x_A = z_A,    x_B = z_B * exp(alpha(z_A)) + mu(z_A)        (scale=True: RealNVP, MAF §3.3)
        x_A = z_A,    x_B = z_B + mu(z_A)                          (scale=False: NICE, Dinh et al. 2015, §3.2)

    The coordinates in A pass through unchanged and condition the shift (and log-scale) of the rest, B, so
    both directions take one network pass. It is an autoregressive layer whose inputs have only two
    degrees (A: 1, B: 2), which is why its Jacobian is block triangular rather than triangular. Its
    diagonal is 1 on A and exp(alpha) on B, so log|det dx/dz| = sum_B alpha; NICE's additive layer has
    alpha = 0: it preserves volume (log-det 0), and a NICE flow gets its scaling elsewhere (NICE §3.3 ends
    with a diagonal scaling layer; :class:`~maf_numpy.transforms.ActNorm` is one).

    Direction: ``forward`` generates (z -> x), ``inverse`` normalises (x -> z), each returning its own
    log-det; nflib's ``AffineHalfFlow.forward`` is our ``inverse``. Cost: one conditioner pass on (n, |A|)
    in either direction, plus O(n D) for the map.

    Parameters
    ----------
    D : int
        Dimension, at least 2.
    hidden : tuple of int
        Hidden widths of the conditioner MLP (|A| inputs, |B| outputs per head).
    flip : bool
        False: A is the first ``D // 2`` coordinates. True: A is the last ``D - D // 2`` coordinates.
        Alternating ``flip`` between layers lets every coordinate be transformed.
    activation : {"relu", "tanh"}
    dtype : {"float64", "float32"}
        Type of fresh parameters.
    scale : bool
        True (the default): the affine coupling of RealNVP, params ``{"W", "b", "W_mu", "b_mu", "W_alpha",
        "b_alpha"}``. False: the additive coupling of NICE, whose network has the mu head only (no
        ``W_alpha``, ``b_alpha``).
    alpha_clamp : float or None
        None (the default): the unconstrained scale exp(alpha). A number c > 0: alpha is replaced by
        :func:`~maf_numpy.transforms.soft_clamp` ``(alpha, c)``, as in :class:`MAFLayer`. Needs ``scale=True``.

    Attributes
    ----------
    A, B : ndarray of int
        The conditioning and the transformed coordinates.
    input_degrees : ndarray of int, shape (D,)
        1 on A, 2 on B.
    calls : int
        Conditioner passes so far (the flows reset and read it).
    """

    def __init__(self, D, hidden=(64, 64), flip=False, activation="relu", dtype="float64", scale=True,
                 alpha_clamp=None):
        if D < 2:
            raise ValueError(f"dim must be at least 2 for an affine coupling layer (RealNVP), got {D}")
        self.scale = check_bool(scale, "scale")
        self.alpha_clamp = None if alpha_clamp is None else check_positive_float(alpha_clamp, "alpha_clamp")
        if not self.scale and self.alpha_clamp is not None:
            raise ValueError("alpha_clamp needs scale=True: an additive coupling (scale=False) has no log-scale "
                             "alpha to clamp")
        d = D // 2
        self.D = D
        self.hidden = tuple(hidden)
        self.flip = bool(flip)
        self.activation = activation
        self.dtype = onp.dtype(dtype)
        index = onp.arange(D)
        self.A, self.B = (index[d:], index[:d]) if flip else (index[:d], index[d:])
        self.unpermute = onp.argsort(onp.concatenate([self.A, self.B]))  # [A, B] columns -> 0..D-1
        self.input_degrees = onp.where(onp.isin(index, self.A), 1, 2)
        self.calls = 0

    def init_params(self, rng):
        """An MLP from |A| inputs with the heads ``mu`` and ``alpha`` (``mu`` alone when ``scale=False``),
        each of |B| outputs (:func:`~maf_numpy.made.init_made_params`)."""
        heads = ("mu", "alpha") if self.scale else ("mu",)
        return init_made_params(len(self.A), self.hidden, len(self.B), rng, dtype=self.dtype, heads=heads)

    def conditioner(self, params, v_A):
        """(mu, alpha) of the B coordinates from the A coordinates, each (n, |B|): one pass.

        alpha is soft-clamped when ``alpha_clamp`` is set, and None for the additive coupling (``scale=False``),
        whose network computes the mu head only."""
        self.calls += 1
        if not self.scale:
            h_L = made_hidden(params, v_A, None, self.activation)
            return masked_dense(h_L, params["W_mu"], params["b_mu"], 1.0), None
        mu, alpha = made_apply(params, v_A, None, self.activation)
        if self.alpha_clamp is not None:
            alpha = soft_clamp(alpha, self.alpha_clamp)
        return mu, alpha

    @property
    def masks(self):
        """The conditioner's masks: none (1.0 for each of its products), a plain MLP."""
        return [1.0] * (len(self.hidden) + 1)

    def forward(self, params, z):
        """Generate, z -> x, in one pass (MAF §3.3; NICE §3.2). Returns (x, log|det dx/dz|).

            x_A = z_A,    x_B = z_B * exp(alpha(z_A)) + mu(z_A),    log|det dx/dz| = sum_B alpha
            (additive:    x_B = z_B + mu(z_A),                      log|det dx/dz| = 0)
        """
        mu, alpha = self.conditioner(params, z[:, self.A])
        if alpha is None:
            x_B, log_det = additive_forward(z[:, self.B], mu)
        else:
            x_B, log_det = affine_forward(z[:, self.B], mu, alpha)
        x = np.concatenate([z[:, self.A], x_B], axis=1)[:, self.unpermute]  # back to the order 0..D-1
        return x, log_det

    def inverse(self, params, x):
        """Normalise, x -> z, in one pass (MAF §3.3; NICE §3.2). Returns (z, log|det dz/dx|).

            z_A = x_A,    z_B = (x_B - mu(x_A)) * exp(-alpha(x_A)),    log|det dz/dx| = -sum_B alpha
            (additive:    z_B = x_B - mu(x_A),                         log|det dz/dx| = 0)
        """
        mu, alpha = self.conditioner(params, x[:, self.A])
        if alpha is None:
            z_B, log_det = additive_inverse(x[:, self.B], mu)
        else:
            z_B, log_det = affine_inverse(x[:, self.B], mu, alpha)
        z = np.concatenate([x[:, self.A], z_B], axis=1)[:, self.unpermute]  # back to the order 0..D-1
        return z, log_det

    def get_state(self):
        return {}

    def set_state(self, state):
        pass

    def config(self):
        """The constructor's keyword arguments (``type(self)(**config())`` rebuilds the layer); ``scale`` and
        ``alpha_clamp`` only when they differ from their defaults, so older configurations read the same."""
        options = {} if self.scale else {"scale": False}
        if self.alpha_clamp is not None:
            options["alpha_clamp"] = self.alpha_clamp
        return {"D": self.D, "hidden": list(self.hidden), "flip": self.flip, "activation": self.activation,
                "dtype": self.dtype.name, **options}

    def __repr__(self):
        options = "" if self.scale else ", scale=False"
        if self.alpha_clamp is not None:
            options += f", alpha_clamp={self.alpha_clamp:g}"
        return (f"AffineCoupling(D={self.D}, hidden={self.hidden}, A={self.A.tolist()}, B={self.B.tolist()}"
                f"{options})")


class MADECoupling(AffineAutoregressive):
    """RealNVP's affine coupling layer built as a MADE whose inputs have only two degrees (MAF §3.3).

        x_A = z_A,    x_B = z_B * exp(alpha_B(z_A)) + mu_B(z_A)

    The same map as :class:`AffineCoupling`, written the MAF paper's way: a :class:`MAFLayer` whose MADE has
    input degree 1 on the conditioning group A, 2 on the rest B, and hidden degree 1 everywhere
    (:func:`maf_numpy.masks.two_group_degrees`). The masks then let every B output read all of A and
    nothing else, and leave every A output without inputs. Those A outputs would still carry their biases
    (a constant shift and scale of x_A, see lesson 07's exercise 2), so ``mu`` and ``alpha`` are multiplied
    by the 0/1 indicator b of group B: mu_A = alpha_A = 0 and x_A = z_A exactly (the masked form of Dinh et
    al. 2017, y = b*x + (1-b)*(x*exp(s(b*x)) + t(b*x)), with b marking A there).

    Both directions are **one** MADE pass: ``inverse`` like :meth:`MAFLayer.inverse`; ``forward`` too, because
    mu_B and alpha_B read only z_A = x_A, which the layer passes through unchanged (a MAFLayer would need D
    passes). Its Jacobian is block triangular, with |A| * |B| free entries below the diagonal instead of a
    MAF layer's D(D-1)/2.

    Parameters
    ----------
    D : int
        Dimension, at least 2.
    hidden : tuple of int
        Hidden widths of the MADE (all hidden units get degree 1).
    flip : bool
        As in :class:`AffineCoupling`: False makes A the first ``D // 2`` coordinates, True the last
        ``D - D // 2``.
    activation : {"relu", "tanh"}
    dtype : {"float64", "float32"}

    Attributes
    ----------
    A, B : ndarray of int
        Indices of the conditioning group and of the transformed group.
    b : ndarray of float, shape (D,)
        1 on B, 0 on A: the factor applied to mu and alpha.
    network : MADENetwork
        The two-group MADE (its ``degrees``, ``masks`` and ``calls``; ``layer.calls`` reads the latter).
    """

    def __init__(self, D, hidden=(64, 64), flip=False, activation="relu", dtype="float64"):
        if isinstance(D, (bool, onp.bool_)) or not isinstance(D, (int, onp.integer)) or D < 2:
            raise ValueError(f"dim must be an int of at least 2 for an affine coupling layer, got {D!r}")
        index = onp.arange(D)
        d = D // 2
        A = index[d:] if flip else index[:d]
        super().__init__(D, hidden, activation=activation, degrees=two_group_degrees(D, A, hidden), dtype=dtype)
        self.flip = bool(flip)
        self.A, self.B = A, onp.setdiff1d(index, A)
        self.b = (self.network.degrees[0] == 2).astype(self.dtype)

    def conditioner(self, params, v):
        """(mu, alpha) = b * MADE(v), each (n, D): zero on A, functions of v_A on B. One pass."""
        mu, alpha = self.network(params, v)
        return mu * self.b, alpha * self.b

    def inverse(self, params, x):
        """Normalise, x -> z, in one pass: z_B = (x_B - mu_B(x_A)) * exp(-alpha_B(x_A)), z_A = x_A.
        Returns (z, log|det dz/dx|) = (z, -sum_B alpha)."""
        mu, alpha = self.conditioner(params, x)
        return affine_inverse(x, mu, alpha)

    def forward(self, params, z):
        """Generate, z -> x, in one pass: x_B = z_B * exp(alpha_B(z_A)) + mu_B(z_A), x_A = z_A.

        One pass suffices because the conditioner reads only the A coordinates, and those are the same in
        z and x. Returns (x, log|det dx/dz|) = (x, sum_B alpha).
        """
        mu, alpha = self.conditioner(params, z)
        return affine_forward(z, mu, alpha)

    def config(self):
        """The constructor's keyword arguments (``type(self)(**config())`` rebuilds the layer)."""
        return {"D": self.D, "hidden": list(self.network.hidden), "flip": self.flip,
                "activation": self.network.activation, "dtype": self.dtype.name}

    def made_params_from_coupling(self, params):
        """Translate the parameters of an :class:`AffineCoupling` into this layer's MADE parameters.

        The coupling's MLP reads ``x[:, A]`` (|A| inputs) and writes |B| shifts and log-scales; the MADE
        reads all D inputs and writes D of each. The map embeds the first weight matrix in the A rows
        (``W_1 = P_A^T W_1^coupling`` with ``P_A`` the (|A|, D) rows of the identity picking A) and the output
        heads and their biases in the B columns (``W_mu = W_mu^coupling P_B``); every other entry is zero.
        Hidden layers are copied. The zeros sit exactly where the masks or the factor b remove an entry
        anyway, so any value there gives the same layer. Pure (no in-place writes), so autograd can
        differentiate through it.

        Parameters
        ----------
        params : dict
            Parameters of an ``AffineCoupling(D, hidden, flip, activation)`` with the same D, hidden and flip.

        Returns
        -------
        made_params : dict
            ``{"W": [...], "b": [...], "W_mu": (H_L, D), "b_mu": (D,), "W_alpha": (H_L, D), "b_alpha": (D,)}``
            for this layer: ``self.forward(made_params, z)`` equals ``coupling.forward(params, z)``.
        """
        P_A, P_B = onp.eye(self.D)[self.A], onp.eye(self.D)[self.B]  # (|A|, D), (|B|, D)
        W = list(params["W"])
        if W:  # the first matrix reads the inputs: put it in the A rows
            W = [P_A.T @ W[0]] + W[1:]
        heads = {}
        for head in ("mu", "alpha"):
            W_head = params["W_" + head]
            if not params["W"]:  # no hidden layer: the heads read the inputs directly
                W_head = P_A.T @ W_head
            heads["W_" + head] = W_head @ P_B
            heads["b_" + head] = params["b_" + head] @ P_B
        return {"W": W, "b": list(params["b"]), **heads}

    def __repr__(self):
        return (f"MADECoupling(D={self.D}, hidden={self.network.hidden}, A={self.A.tolist()}, "
                f"B={self.B.tolist()})")
