"""The affine coupling layer built as a MADE with two input degrees (MAF paper §3.3; Dinh et al. 2017):
``masks.two_group_degrees`` and ``transforms.MADECoupling``. The layer is in tests/helpers.py's LAYERS, so
test_transforms.py runs it through the same properties as every other layer (round trip, log-det against
slogdet of the autograd Jacobian, the Jacobian's zero pattern, gradients against central differences);
here: its block structure, its pass counts, and equality with the direct ``AffineCoupling`` (equivalent
weights give the same outputs and log-dets). Lesson: ``lessons/07_...``."""

import numpy as onp
import pytest
from helpers import perturb

from maf_numpy import masks, testing, transforms

D = 5
CASES = {  # id: (D, hidden, flip, activation)
    "two-group-made": (D, (16, 16), False, "tanh"),
    "two-group-made-flipped": (D, (16, 16), True, "tanh"),
    "two-group-made-no-hidden": (D, (), False, "tanh"),
    "two-group-made-relu-D2": (2, (8,), False, "relu"),
}


@pytest.fixture
def rng():
    return onp.random.default_rng(4321)


def build(name, rng, dim=None):
    D_, hidden, flip, activation = CASES[name]
    D_ = dim or D_
    layer = transforms.MADECoupling(D_, hidden, flip=flip, activation=activation)
    params = perturb(layer.init_params(rng), rng)
    return layer, params, rng.standard_normal((7, D_))


# --- the degrees and masks ---------------------------------------------------------------------------
def test_two_group_degrees_are_one_on_A_two_on_B_and_one_in_every_hidden_layer():
    degrees = masks.two_group_degrees(6, 3, (4, 5))
    assert degrees[0].tolist() == [1, 1, 1, 2, 2, 2]
    assert [m.tolist() for m in degrees[1:]] == [[1] * 4, [1] * 5]
    assert masks.two_group_degrees(6, [3, 4, 5], ())[0].tolist() == [2, 2, 2, 1, 1, 1]


def test_two_group_masks_let_B_outputs_see_all_of_A_and_A_outputs_see_nothing():
    C = masks.connectivity(masks.made_masks(masks.two_group_degrees(6, 3, (4, 5))))
    A, B = slice(0, 3), slice(3, 6)
    assert onp.all(C[B, A] == 4 * 5), "every B output must see every A input through every path"
    assert onp.all(C[A, :] == 0) and onp.all(C[:, B] == 0), "A outputs must see nothing, B inputs reach nothing"


@pytest.mark.parametrize("D_, A", [(1, 1), (4, 0), (4, 4), (4, [0, 0]), (4, [5]), (4, [[0]]), (4, [0.5])])
def test_two_group_degrees_rejects_bad_groups_naming_the_argument(D_, A):
    with pytest.raises(ValueError, match="D must|A "):
        masks.two_group_degrees(D_, A, (3,))


# --- structure (round trip, slogdet and gradients run in test_transforms.py's uniform suite) -----------
@pytest.mark.parametrize("direction", ["inverse", "forward"])
@pytest.mark.parametrize("name", CASES)
def test_jacobian_is_block_triangular_with_every_A_to_B_entry_free(name, direction, rng):
    layer, params, v = build(name, rng)
    J = testing.assert_autoregressive(layer, v, params=params, direction=direction)[direction]
    reached = onp.max(onp.abs(J), axis=0)
    assert onp.all(reached[onp.ix_(layer.B, layer.A)] > 0), "some B output does not depend on some A input"
    onp.testing.assert_array_equal(J[:, layer.A][:, :, layer.A], onp.broadcast_to(onp.eye(len(layer.A)),
                                   (len(v), len(layer.A), len(layer.A))), err_msg="x_A must pass through")


@pytest.mark.parametrize("name", CASES)
def test_one_network_pass_in_each_direction(name, rng):
    layer, params, v = build(name, rng)
    layer.calls = 0
    x, _ = layer.forward(params, v)
    assert layer.calls == 1, f"forward took {layer.calls} passes"
    layer.calls = 0
    layer.inverse(params, x)
    assert layer.calls == 1, f"inverse took {layer.calls} passes"


def test_A_outputs_have_zero_shift_and_log_scale_even_with_non_zero_biases(rng):
    layer, params, v = build("two-group-made", rng)
    assert onp.all(params["b_mu"][layer.A] != 0) and onp.all(params["b_alpha"][layer.A] != 0)
    mu, alpha = layer.conditioner(params, v)
    assert onp.all(mu[:, layer.A] == 0) and onp.all(alpha[:, layer.A] == 0)
    z, _ = layer.inverse(params, v)
    assert onp.array_equal(z[:, layer.A], v[:, layer.A])


# --- equal to the direct AffineCoupling ---------------------------------------------------------------
@pytest.mark.parametrize("direction", ["inverse", "forward"])
@pytest.mark.parametrize("name", CASES)
def test_made_coupling_equals_affine_coupling_given_equivalent_weights(name, direction, rng):
    D_, hidden, flip, activation = CASES[name]
    coupling = transforms.AffineCoupling(D_, hidden, flip=flip, activation=activation)
    made = transforms.MADECoupling(D_, hidden, flip=flip, activation=activation)
    assert onp.array_equal(made.A, coupling.A) and onp.array_equal(made.input_degrees, coupling.input_degrees)
    params = perturb(coupling.init_params(rng), rng)
    made_params = made.made_params_from_coupling(params)
    v = rng.standard_normal((9, D_))
    out, log_det = getattr(coupling, direction)(params, v)
    out_made, log_det_made = getattr(made, direction)(made_params, v)
    onp.testing.assert_allclose(out_made, out, rtol=0, atol=1e-12)
    onp.testing.assert_allclose(log_det_made, log_det, rtol=0, atol=1e-12)


def test_the_masked_out_entries_of_the_made_weights_do_not_matter(rng):
    """Fill every entry the mapping leaves at zero with noise: masks and the factor b remove them all."""
    coupling = transforms.AffineCoupling(D, (16, 16), activation="tanh")
    made = transforms.MADECoupling(D, (16, 16), activation="tanh")
    made_params = made.made_params_from_coupling(perturb(coupling.init_params(rng), rng))
    noisy = perturb(made_params, rng, scale=1.0)
    keep_W1 = onp.isin(onp.arange(D), made.A)[:, None] * 1.0  # A rows of the first matrix are real weights
    noisy["W"] = [onp.where(keep_W1, made_params["W"][0], noisy["W"][0])] + made_params["W"][1:]
    noisy["b"] = made_params["b"]
    for key in ("W_mu", "W_alpha", "b_mu", "b_alpha"):
        noisy[key] = onp.where(made.b == 1, made_params[key], noisy[key])  # B columns are real, A columns noise
    z = rng.standard_normal((6, D))
    onp.testing.assert_allclose(made.forward(noisy, z)[0], made.forward(made_params, z)[0], rtol=0, atol=1e-12)
    onp.testing.assert_allclose(made.inverse(noisy, z)[1], made.inverse(made_params, z)[1], rtol=0, atol=1e-12)


def test_made_coupling_rejects_a_one_dimensional_input():
    with pytest.raises(ValueError, match="dim"):
        transforms.MADECoupling(1, (4,))
