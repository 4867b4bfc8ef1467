"""The MADE network: the masks are plumbed into the layers correctly (the Jacobian's zero pattern is the
masks' connectivity), and the Gaussian MADE density is the product of its conditionals (MAF §3.1)."""

import autograd.numpy as np
import numpy as onp
import pytest
from autograd import grad, jacobian
from helpers import perturb

import maf_numpy as mf
from maf_numpy import masks
from maf_numpy.made import MADENetwork, made_apply


@pytest.mark.parametrize("hidden_mode", ["sequential", "random"])
@pytest.mark.parametrize("hidden", [(), (3,), (10, 10), (7, 3, 9)], ids=str)
@pytest.mark.parametrize("order", ["sequential", "reversed", "random"])
def test_made_output_i_depends_exactly_on_the_inputs_its_connectivity_allows(order, hidden, hidden_mode):
    rng = onp.random.default_rng(0)
    net = MADENetwork(6, hidden, order, hidden_mode, activation="tanh", rng=rng)
    params = perturb(net.init_params(rng), rng)
    x = rng.standard_normal(6)
    C = masks.connectivity(net.masks)
    for head in (0, 1):  # mu, alpha
        J = jacobian(lambda v, head=head: made_apply(params, v[None, :], net.masks, "tanh")[head][0])(x)
        assert onp.array_equal(J != 0, C > 0), "the network's dependence pattern differs from the masks'"


def test_made_output_i_depends_only_on_inputs_of_lower_degree():
    rng = onp.random.default_rng(1)
    net = MADENetwork(8, (32, 32), "random", activation="relu", rng=rng)
    params = perturb(net.init_params(rng), rng)
    m0 = net.degrees[0]
    for x in rng.standard_normal((5, 8)):
        J = jacobian(lambda v: made_apply(params, v[None, :], net.masks, "relu")[0][0])(x)
        assert onp.all(J[~(m0[None, :] < m0[:, None])] == 0)


def test_masks_are_built_once_and_reused_by_every_call():
    net = MADENetwork(4, (8,), rng=0)
    masks_before = net.masks
    params = net.init_params(onp.random.default_rng(0))
    net(params, onp.zeros((3, 4)))
    net(params, onp.ones((2, 4)))
    assert net.masks is masks_before and net.calls == 2


def test_single_made_log_prob_equals_sum_of_gaussian_conditionals():
    """MAF §3.1: log p(x) = sum_i log N(x_i | mu_i, exp(alpha_i)^2) with (mu, alpha) = MADE(x)."""
    rng = onp.random.default_rng(2)
    made = mf.MADE(4, hidden=(16,), order="random", standardize=False, rng=3)
    made.params = perturb(made.params, rng)
    x = rng.standard_normal((9, 4))
    mu, alpha = made.conditionals(x)
    sigma = onp.exp(alpha)
    expected = onp.sum(-0.5 * ((x - mu) / sigma) ** 2 - onp.log(sigma) - 0.5 * onp.log(2 * onp.pi), axis=1)
    onp.testing.assert_allclose(made.log_prob(x), expected, rtol=0, atol=1e-12)


def test_a_one_layer_maf_is_a_gaussian_made():
    """Lesson 4, exercise 2: a MAF with one layer and a MADE with the same weights give the same density."""
    rng = onp.random.default_rng(4)
    made = mf.MADE(3, hidden=(12, 12), order="sequential", rng=0)
    maf = mf.MAF(3, num_layers=1, hidden=(12, 12), orders="sequential", rng=1)
    made.params = perturb(made.params, rng)
    maf.params = made.params
    x = rng.standard_normal((10, 3))
    assert onp.array_equal(made.log_prob(x), maf.log_prob(x))


def test_made_exposes_degrees_and_masks_of_its_network():
    made = mf.MADE(5, hidden=(8, 8), order="reversed", rng=0)
    assert made.degrees[0].tolist() == [5, 4, 3, 2, 1]
    assert len(made.masks) == 3 and made.masks[-1].shape == (8, 5)


def test_relu_is_written_as_h_times_h_positive_and_has_the_usual_gradient():
    from maf_numpy.made import ACTIVATIONS

    relu = ACTIVATIONS["relu"]
    a = onp.array([-2.0, -0.5, 0.5, 3.0])
    assert onp.array_equal(relu(a), onp.maximum(a, 0))
    assert onp.array_equal(grad(lambda v: np.sum(relu(v)))(a), (a > 0).astype(float))
