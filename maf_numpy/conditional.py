"""Conditional flows p(x | y): every MADE also reads a context y (MAF paper §3.4).

    log p(x | y) = log N(z; 0, I) + log|det dz/dx|,    (z, log|det dz/dx|) = inverse(x; y)

The context y enters each MADE as C extra inputs of degree 0, and hidden degrees start at 0
(:func:`maf_numpy.masks.hidden_degrees`), so even the first variable's density depends on y.

References
----------
G. Papamakarios, T. Pavlakou, I. Murray. Masked Autoregressive Flow for Density Estimation. NeurIPS 2017, §3.4.
"""

import autograd.numpy as np

from .building import check_context_dim
from .densities import logsumexp
from .flows import MADE, MAF
from .npz import register_flow_classes
from .train import fit
from .validation import check_data

__all__ = ["ConditionalMixin", "ConditionalMADE", "ConditionalMAF"]


class ConditionalMixin:
    """The public methods of a conditional flow p(x | y): every one takes the context y (MAF paper §3.4).

    Each MADE reads ``[x, y]``: the C context inputs have degree 0, so every hidden unit may read them, and
    hidden units start at degree 0 (units that read only y). Output 1 sees exactly those units, so even the
    first variable's density depends on y; with hidden degrees from 1, as in a plain MADE, p(x_1 | y) would
    silently ignore y (``tests/test_conditional.py`` guards against that). The base stays N(0, I).

    ``y`` is a float array of shape (n, C), one context per point, or (C,) for the same context on every
    point; a one-hot label gives a class-conditional model, and :meth:`class_log_posterior` turns it into a
    Bayes-rule classifier.
    """

    def log_prob(self, x, y, params=None):
        """log p(x | y) = log N(z; 0, I) + log|det dz/dx|, z = inverse(x; y) (MAF §3.4); shape (n,)."""
        return self._public_log_prob(x, y, params)

    def inverse(self, x, y, params=None):
        """Normalise, x -> z, given y. Returns (z, log|det dz/dx|) of shapes (n, D) and (n,)."""
        return self._public_inverse(x, y, params)

    def forward(self, z, y, params=None):
        """Generate, z -> x, given y. Returns (x, log|det dx/dz|) of shapes (n, D) and (n,)."""
        return self._public_forward(z, y, params)

    def sample(self, n, y, rng=None, params=None):
        """Draw n points from p(x | y): z ~ N(0, I), x = forward(z; y); y of shape (n, C) or (C,)."""
        return self._public_sample(n, y, rng, params)

    def trace_inverse(self, x, y, params=None):
        """Like :meth:`Flow.trace_inverse`, given the context y."""
        x = self._cast(check_data(x, self.dim, "x"))
        return self._trace(x, self._params(params), "inverse", self._context(y, x.shape[0]))

    def trace_forward(self, z, y, params=None):
        """Like :meth:`Flow.trace_forward`, given the context y."""
        z = self._cast(check_data(z, self.dim, "z"))
        return self._trace(z, self._params(params), "forward", self._context(y, z.shape[0]))

    def fit(self, x_train, y_train, x_val=None, y_val=None, **options):
        """Fit p(x | y) by maximum likelihood: :func:`maf_numpy.train.fit` with ``y_train``/``y_val``."""
        return fit(self, x_train, x_val, y_train=y_train, y_val=y_val, **options)

    def class_log_posterior(self, x, log_prior=None, params=None):
        """Bayes' rule for a class-conditional model whose context is a one-hot label of C classes.

            log p(c | x) = log p(x | e_c) + log p(c) - logsumexp_c' (log p(x | e_c') + log p(c'))

        Parameters
        ----------
        x : ndarray of shape (n, D)
        log_prior : ndarray of shape (C,) or None
            log p(c); None for equal priors.
        params : pytree or None

        Returns
        -------
        ndarray of shape (n, C): each row a normalised log-posterior over the C classes (C log p(x | y)
        evaluations, one per class).
        """
        C = self.context_dim
        if log_prior is None:
            log_prior = np.full(C, -np.log(C))
        else:
            log_prior = np.asarray(log_prior, dtype=float)
            if log_prior.shape != (C,) or not np.all(np.isfinite(log_prior)):
                raise ValueError(f"log_prior must be a finite array of shape ({C},), got {log_prior!r}")
        x = self._cast(check_data(x, self.dim, "x"))
        eye = np.eye(C, dtype=self.dtype)
        scores = np.stack([self.log_prob(x, eye[c], params) for c in range(C)], axis=1) + log_prior
        return scores - logsumexp(scores, axis=1, keepdims=True)

    def predict(self, x, log_prior=None, params=None):
        """The most probable class under :meth:`class_log_posterior`; int array of shape (n,)."""
        return np.argmax(self.class_log_posterior(x, log_prior, params), axis=1)




class ConditionalMADE(ConditionalMixin, MADE):
    """A Gaussian MADE of p(x | y): ``MADE`` whose network also reads a context y of C numbers (MAF §3.4).

    ``ConditionalMADE(dim, context_dim, hidden=(64, 64), ...)``; the other arguments are :class:`MADE`'s.
    ``conditionals(x, y)`` gives (mu, alpha) of the Gaussian conditionals. See :class:`ConditionalMixin` for
    how the context enters and the methods.
    """

    def __init__(self, dim, context_dim, hidden=(64, 64), order="sequential", hidden_degrees="sequential",
                 activation="relu", standardize=True, rng=None, dtype="float64", alpha_clamp=None, fast=True):
        super().__init__(dim, hidden, order, hidden_degrees, activation, standardize, rng, dtype, alpha_clamp,
                         check_context_dim(context_dim), fast)

    def conditionals(self, x, y, params=None):
        """(mu, alpha) of the Gaussian conditionals of p(x | y) at x, each (n, D) (MAF §3.1, §3.4)."""
        return self._conditionals(x, y, params)


class ConditionalMAF(ConditionalMixin, MAF):
    """A MAF of p(x | y): every MADE also reads the context y of C numbers (MAF paper §3.4).

    ``ConditionalMAF(dim, context_dim, num_layers=5, hidden=(64, 64), ...)``; the other arguments are
    :class:`MAF`'s. One pass per layer for ``log_prob(x, y)``, D for ``sample(n, y)``, as for a MAF.
    See :class:`ConditionalMixin` for how the context enters and the methods.
    """

    def __init__(self, dim, context_dim, num_layers=5, hidden=(64, 64), orders="alternate",
                 hidden_degrees="sequential", activation="relu", standardize=True, rng=None, dtype="float64",
                 batch_norm=False, alpha_clamp=None, fast=True):
        super().__init__(dim, num_layers, hidden, orders, hidden_degrees, activation, standardize, rng, dtype,
                         batch_norm=batch_norm, alpha_clamp=alpha_clamp, context_dim=check_context_dim(context_dim),
                         fast=fast)


register_flow_classes(ConditionalMADE, ConditionalMAF)
