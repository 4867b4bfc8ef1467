"""Adam for training loops of your own: the update ``fit`` runs, on a parameter pytree, at ``fit``'s speed."""

import numpy as onp

from .fast import adam_step as chunked_adam_step
from .optim import adam_step, flat_vector, plain_unflatten
from .validation import check_bool, check_positive_float

__all__ = ["Adam"]


class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1) on a parameter pytree, for training loops of your own.

    The update ``fit`` runs, at ``fit``'s speed: the parameters live in one flat vector
    (:func:`maf_numpy.optim.flat_vector`), each :meth:`step` updates it with :func:`maf_numpy.optim.adam_step`
    (``fast=False``) or its chunked twin :func:`maf_numpy.fast.adam_step` (``fast=True``, bit for bit the same)
    and hands back the pytree (:func:`maf_numpy.optim.plain_unflatten`: views, no copies)::

        optimizer = mf.Adam(flow.params, lr=1e-3)
        loss_and_grad = autograd.value_and_grad(lambda p, x: -np.sum(flow.log_density(p, x)) / len(x))
        for step in range(1000):
            loss, g = loss_and_grad(flow.params, sample_batch(step))
            flow.params = optimizer.step(g)

    Parameters
    ----------
    params : pytree
        The starting parameters (``flow.params``); their dtype is kept.
    lr, b1, b2, eps : float
        Step size and Adam's constants.
    weight_decay : float
        Decoupled weight decay (AdamW): ``theta <- theta - lr * weight_decay * theta_before`` after each step.
    fast : bool
        The chunked update (True) or the five-line formula (False); the same numbers.
    """

    def __init__(self, params, lr=1e-3, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0, fast=True):
        self.lr = check_positive_float(lr, "lr")
        self.b1, self.b2, self.eps = float(b1), float(b2), check_positive_float(eps, "eps")
        self.weight_decay = 0.0 if weight_decay == 0 else check_positive_float(weight_decay, "weight_decay")
        self.unflatten, size = plain_unflatten(params)
        leaves = [onp.asarray(leaf) for leaf in _leaves_of(params)]
        self.theta = flat_vector(params, leaves[0].dtype if leaves else onp.float64)
        self.m, self.v, self.t = onp.zeros_like(self.theta), onp.zeros_like(self.theta), 0
        self.update = chunked_adam_step if check_bool(fast, "fast") else adam_step

    def step(self, grads, lr=None):
        """Apply one update with the gradient pytree ``grads`` (shaped like the parameters); returns the new
        parameters as a pytree. ``lr`` overrides the step size for this step (a schedule)."""
        lr = self.lr if lr is None else check_positive_float(lr, "lr")
        g = flat_vector(grads, self.theta.dtype)
        if g.shape != self.theta.shape:
            raise ValueError(f"grads must have the structure of the parameters ({self.theta.size} numbers), got "
                             f"{g.size} numbers")
        self.t += 1
        theta = self.theta
        self.theta, self.m, self.v = self.update(theta, g, self.m, self.v, self.t, lr, self.b1, self.b2, self.eps)
        if self.weight_decay:
            self.theta = self.theta - (lr * self.weight_decay) * theta
        return self.unflatten(self.theta)

    @property
    def params(self):
        """The current parameters as a pytree."""
        return self.unflatten(self.theta)


def _leaves_of(tree):
    if isinstance(tree, dict):
        return [leaf for key in sorted(tree) for leaf in _leaves_of(tree[key])]
    if isinstance(tree, (list, tuple)):
        return [leaf for value in tree for leaf in _leaves_of(value)]
    return [tree]
