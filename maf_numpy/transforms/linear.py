"""Linear layers that mix the coordinates: a fixed permutation, and Glow's invertible 1x1 "convolution".

    Permutation:  z = x[:, order],                 log|det dz/dx| = 0
    LinearLU:     z = W x,  W = P L (U + diag(s)),  log|det dz/dx| = sum_i log|s_i|     (Glow §3.2)

A coupling layer (:mod:`~maf_numpy.transforms.coupling`) leaves half of the coordinates unchanged, and a MAF
layer conditions each coordinate on those before it in one fixed ordering, so a flow needs something between
those layers that changes which coordinates talk to which. RealNVP alternates the halves (``flip``), MAF
reverses the ordering between layers; a :class:`Permutation` (or :class:`Reverse`) does it as a layer of its
own, and :class:`LinearLU` learns the mixing: a dense invertible D x D matrix (Glow's 1x1 convolution, which
for vectors, without spatial dimensions, is just a matrix), parametrised by its LU decomposition so that its
log-determinant costs O(D) instead of the O(D^3) of ``slogdet``.

Neither has a triangular Jacobian in any ordering (a permutation moves coordinates, W is dense), so neither
has ``input_degrees`` (it is None): the autoregressive zero pattern does not apply to them.

References
----------
D. P. Kingma, P. Dhariwal. Glow: Generative Flow with Invertible 1x1 Convolutions. NeurIPS 2018, §3.2.
L. Dinh, D. Krueger, Y. Bengio. NICE: Non-linear Independent Components Estimation. ICLR 2015 workshop, §3.2
(exchanging the roles of the two halves between coupling layers). G. H. Golub, C. F. Van Loan. Matrix
Computations, 4th ed., §3.4 (LU with partial pivoting).
"""

import autograd.numpy as np
import numpy as onp

from ..validation import as_generator, check_dtype, check_positive_int

__all__ = ["Permutation", "Reverse", "LinearLU", "random_rotation", "lu_decompose"]


class Permutation:
    """A fixed permutation of the coordinates: a volume-preserving layer with no parameters.

        z = x[:, order],    x = z[:, argsort(order)],    log|det dz/dx| = log|det dx/dz| = 0

    Coordinate i of z is coordinate ``order[i]`` of x. The Jacobian is a permutation matrix, whose
    determinant is +1 or -1, so both log-dets are 0 (shape (n,), in the input's dtype). Placed between coupling
    or autoregressive layers it changes which coordinates condition which (NICE §3.2; Glow §3.2 compares a
    fixed random shuffle, the reversal and the learned :class:`LinearLU`).

    Direction: ``inverse`` normalises (x -> z, applies ``order``), ``forward`` generates (z -> x, applies its
    inverse permutation). Cost: one column gather, O(n D), no network pass (``calls`` stays 0).

    Parameters
    ----------
    D : int
        Dimension.
    order : sequence of int or None
        A permutation of ``range(D)``; None draws a random one from ``rng``.
    rng : int, numpy.random.Generator or None
        Draws ``order`` when it is None.

    Attributes
    ----------
    order : ndarray of int, shape (D,)
        State (saved with the layer; also in ``config``, so the layer can be rebuilt from it alone).
    input_degrees : None
        No ordering makes a permutation's Jacobian triangular.

    The layer has no ``dtype``: it has no numbers, and its output keeps its input's type.
    """

    def __init__(self, D, order=None, rng=None):
        self.D = check_positive_int(D, "D")
        if order is None:
            order = as_generator(rng).permutation(self.D)
        self.order = _check_permutation(order, self.D)
        self.input_degrees = None
        self.calls = 0

    def init_params(self, rng):
        """``{}``: nothing to train."""
        return {}

    def inverse(self, params, x):
        """Normalise, x -> z: z = x[:, order]. Returns (z, log|det dz/dx|) = (z, zeros (n,))."""
        return x[:, self.order], np.zeros(x.shape[0], dtype=x.dtype)

    def forward(self, params, z):
        """Generate, z -> x: x = z[:, argsort(order)]. Returns (x, log|det dx/dz|) = (x, zeros (n,))."""
        return z[:, onp.argsort(self.order)], np.zeros(z.shape[0], dtype=z.dtype)

    def get_state(self):
        return {"order": self.order}

    def set_state(self, state):
        self.order = _check_permutation(state["order"], self.D)

    def config(self):
        """The constructor's keyword arguments: ``D`` and ``order`` (a JSON list)."""
        return {"D": self.D, "order": self.order.tolist()}

    def __repr__(self):
        return f"{type(self).__name__}(D={self.D}, order={self.order.tolist()})"


class Reverse(Permutation):
    """The permutation that reverses the coordinates: z = x[:, ::-1] (its own inverse), log-det 0.

    The fixed mixing of the MAF paper's code (the ordering reversed between MADE layers) and nflib's
    ``ReverseFlow``; Glow §3.2 uses it as a baseline. A :class:`Permutation` with ``order = [D-1, ..., 0]``.

    Parameters
    ----------
    D : int
        Dimension.
    """

    def __init__(self, D):
        super().__init__(D, order=onp.arange(check_positive_int(D, "D"))[::-1])

    def config(self):
        """The constructor's keyword arguments: ``D``."""
        return {"D": self.D}

    def __repr__(self):
        return f"Reverse(D={self.D})"


def _check_permutation(order, D):
    """``order`` as an int array, after checking that it is a permutation of range(D)."""
    array = onp.asarray(order)
    if array.shape != (D,) or array.dtype.kind not in "iu" or not onp.array_equal(onp.sort(array), onp.arange(D)):
        raise ValueError(f"order must be a permutation of range({D}), got {order!r}")
    return array.astype(int)


def random_rotation(D, rng):
    """A random orthogonal D x D matrix, uniform (Haar) on the orthogonal group: Q of the QR decomposition of a
    standard Gaussian matrix, with its columns' signs fixed by diag(R) (Mezzadri 2007). Drawn in float64."""
    Q, R = onp.linalg.qr(rng.standard_normal((D, D)))
    return Q * onp.sign(onp.diag(R))


def lu_decompose(A):
    """LU decomposition with partial pivoting, A = P L U (Golub & Van Loan, Algorithm 3.4.1).

    At step k the row with the largest |entry| in column k (on or below the diagonal) is swapped into row k,
    then multiples of it are subtracted from the rows below. Plain NumPy, O(D^3); used once, at construction.

    Parameters
    ----------
    A : ndarray of shape (D, D)
        Invertible.

    Returns
    -------
    perm : ndarray of int, shape (D,)
        P = I[perm] (row i of P is e_{perm[i]}, so ``P @ v == v[perm]``).
    L : ndarray of shape (D, D)
        Unit lower triangular.
    U : ndarray of shape (D, D)
        Upper triangular.
    """
    U = onp.array(A, dtype=onp.float64)
    D = U.shape[0]
    L = onp.eye(D)
    rows = onp.arange(D)  # the rows of A that U's rows came from: A[rows] = L U at the end
    for k in range(D - 1):
        p = k + int(onp.argmax(onp.abs(U[k:, k])))
        U[[k, p]], rows[[k, p]], L[[k, p], :k] = U[[p, k]], rows[[p, k]], L[[p, k], :k]  # the pivot row up
        L[k + 1:, k] = U[k + 1:, k] / U[k, k]
        U[k + 1:] -= L[k + 1:, k, None] * U[k]
    return onp.argsort(rows), L, onp.triu(U)


class LinearLU:
    """An invertible dense linear map with an LU-parametrised log-det: Glow's 1x1 convolution (Kingma &
    Dhariwal 2018, §3.2), for vectors.

        z = W x,    W = P L (U + diag(s)),    s = sign * exp(log_s),    log|det dz/dx| = sum_i log_s_i

    P is a fixed permutation matrix, L unit lower triangular, U strictly upper triangular, and the diagonal
    s of the upper factor is kept as fixed signs times exp(log_s), so s never crosses zero and W stays
    invertible. det W = det P * det L * prod_i s_i = +-prod_i s_i, so log|det W| = sum_i log_s_i: O(D), no
    ``slogdet``. Trained: the strict lower part of ``L``, the strict upper part of ``U`` and ``log_s``; fixed:
    P and the signs (state).

    Direction: ``inverse`` normalises, z = W x per point, written ``z = x @ W.T`` for a batch x (n, D)
    (nflib writes ``z = x @ W``: its W is our W^T). ``forward`` generates, x = W^{-1} z, by solving
    W x = z (``np.linalg.solve``, differentiable by autograd), with log|det dx/dz| = -sum_i log_s_i.

    Cost: assembling W is O(D^3) once per call (two D x D products); ``inverse`` then costs O(n D^2),
    ``forward`` one LU solve, O(D^3 + n D^2). No network pass (``calls`` stays 0).

    Initialisation (Glow §3.2): W starts as a random rotation, an orthogonal matrix Q drawn from ``rng`` at
    construction (:func:`random_rotation`), decomposed as Q = P L (U + diag(s)) by :func:`lu_decompose`. P and
    sign(s) become the fixed state and :meth:`init_params` returns the factors L, U, log|s| of Q, whatever
    generator it is given (the rotation and its P are drawn together). A layer whose state is replaced by
    :meth:`set_state` (a loaded one) starts instead from L = I, U = 0, log_s = 0: W = P diag(sign), a signed
    permutation, also orthogonal.

    Parameters
    ----------
    D : int
        Dimension.
    rng : int, numpy.random.Generator or None
        Draws the initial rotation, hence P and the signs.
    dtype : {"float64", "float32"}
        Type of the parameters and of the fixed arrays.

    Attributes
    ----------
    perm : ndarray of int, shape (D,)
        P = I[perm] (state).
    sign : ndarray of shape (D,)
        The signs of s, +1 or -1 (state).
    input_degrees : None
        W is dense: no ordering makes its Jacobian triangular.

    Params: ``{"L": (D, D), "U": (D, D), "log_s": (D,)}``; only the strict lower part of ``L`` and the strict
    upper part of ``U`` are used (the rest is masked out and gets zero gradient).
    """

    def __init__(self, D, rng=None, dtype="float64"):
        self.D = check_positive_int(D, "D")
        self.dtype = onp.dtype(check_dtype(dtype))
        Q = random_rotation(self.D, as_generator(rng))
        perm, L, U = lu_decompose(Q)  # Q = P L U
        s = onp.diag(U)
        self._set_structure(perm, onp.sign(s))
        self.initial = {"L": onp.tril(L, -1), "U": onp.triu(U, 1), "log_s": onp.log(onp.abs(s))}
        self.input_degrees = None
        self.calls = 0

    def _set_structure(self, perm, sign):
        self.perm = _check_permutation(perm, self.D)
        self.sign = onp.asarray(sign, dtype=self.dtype)
        if self.sign.shape != (self.D,) or not onp.all(onp.abs(self.sign) == 1):
            raise ValueError(f"sign must hold {self.D} entries, each +1 or -1, got {sign!r}")
        self.P = onp.eye(self.D, dtype=self.dtype)[self.perm]
        self.lower = onp.tril(onp.ones((self.D, self.D), dtype=self.dtype), -1)  # masks of the strict parts
        self.upper = self.lower.T

    def init_params(self, rng):
        """The LU factors of the initial rotation (see the class docstring): ``{"L", "U", "log_s"}``."""
        return {key: onp.array(value, dtype=self.dtype) for key, value in self.initial.items()}

    def weight(self, params):
        """W = P L (U + diag(s)), s = sign * exp(log_s), shape (D, D), from the masked parameters."""
        L = self.lower * params["L"] + np.eye(self.D, dtype=self.dtype)  # unit lower triangular
        U = self.upper * params["U"]  # strictly upper triangular
        s = self.sign * np.exp(params["log_s"])
        return self.P @ L @ (U + np.diag(s))

    def inverse(self, params, x):
        """Normalise, x -> z: z = W x per point (``x @ W.T``). Returns (z, log|det dz/dx|), the log-det
        sum_i log_s_i, the same for every point, shape (n,)."""
        W = self.weight(params)
        return x @ W.T, np.sum(params["log_s"]) * np.ones(x.shape[0], dtype=x.dtype)

    def forward(self, params, z):
        """Generate, z -> x: solve W x = z per point (x = W^{-1} z). Returns (x, log|det dx/dz|) with
        log|det dx/dz| = -sum_i log_s_i, shape (n,)."""
        W = self.weight(params)
        x = np.linalg.solve(W, z.T).T  # (D, D) against (D, n): all points at once
        return x, -np.sum(params["log_s"]) * np.ones(z.shape[0], dtype=z.dtype)

    def get_state(self):
        return {"perm": self.perm, "sign": self.sign}

    def set_state(self, state):
        perm, sign = onp.asarray(state["perm"]), onp.asarray(state["sign"])
        if not (onp.array_equal(perm, self.perm) and onp.array_equal(sign, self.sign)):
            # another P: the rotation's factors no longer fit it; start from W = P diag(sign), orthogonal too
            self.initial = {"L": onp.zeros((self.D, self.D)), "U": onp.zeros((self.D, self.D)),
                            "log_s": onp.zeros(self.D)}
        self._set_structure(perm, sign)

    def config(self):
        """The constructor's keyword arguments: ``D`` and ``dtype``; P and the signs are state."""
        return {"D": self.D, "dtype": self.dtype.name}

    def __repr__(self):
        return f"LinearLU(D={self.D}, perm={self.perm.tolist()})"
