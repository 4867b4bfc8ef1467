"""MADE degrees and masks as pure matrices (no network, no autodiff): nflows' mask-product idea."""

import numpy as onp
import pytest

from maf_numpy import masks

ORDERS = ["sequential", "reversed", "random"]


@pytest.mark.parametrize("order", ORDERS)
def test_input_degrees_are_a_permutation_of_1_to_D(order):
    m0 = masks.input_degrees(masks.make_order(7, order, rng=3))
    assert sorted(m0.tolist()) == list(range(1, 8))


def test_order_lists_the_variables_in_generation_order():
    order = masks.make_order(4, [2, 0, 3, 1])
    m0 = masks.input_degrees(order)
    assert m0.tolist() == [2, 4, 1, 3]  # x_2 first (degree 1), then x_0, x_3, x_1
    assert masks.make_order(3, "reversed").tolist() == [2, 1, 0]


@pytest.mark.parametrize("hidden_mode", ["sequential", "random"])
@pytest.mark.parametrize("hidden", [(), (10,), (3,), (8, 8), (12, 4, 12)], ids=str)
@pytest.mark.parametrize("order", ORDERS)
def test_mask_product_is_strictly_lower_triangular_in_the_ordering(order, hidden, hidden_mode):
    degrees = masks.made_degrees(6, hidden, order, hidden_mode, rng=11)
    C = masks.connectivity(masks.made_masks(degrees))
    m0 = degrees[0]
    assert C.shape == (6, 6)
    allowed = m0[None, :] < m0[:, None]  # C[i, j]: paths from input j to output i
    assert onp.all(C[~allowed] == 0)
    sorted_C = C[onp.ix_(onp.argsort(m0), onp.argsort(m0))]
    assert onp.all(onp.triu(sorted_C) == 0), "sorted by degree, the connectivity is strictly lower triangular"


@pytest.mark.parametrize("hidden", [(5,), (5, 5), (9, 20)], ids=str)
def test_sequential_hidden_degrees_at_least_D_minus_1_wide_connect_every_allowed_pair(hidden):
    degrees = masks.made_degrees(6, hidden, "random", "sequential", rng=2)
    C = masks.connectivity(masks.made_masks(degrees))
    m0 = degrees[0]
    assert onp.all(C[m0[None, :] < m0[:, None]] > 0)


@pytest.mark.parametrize("hidden", [(2,), (3, 3), (1,), (2, 4)], ids=str)
def test_narrow_hidden_layers_still_connect_every_input(hidden):
    """Even with fewer than D-1 hidden units, every input but the last in the ordering reaches some
    output, and every output but the first depends on some input."""
    D = 8
    degrees = masks.made_degrees(D, hidden, "random", "sequential", rng=5)
    C = masks.connectivity(masks.made_masks(degrees))
    m0 = degrees[0]
    reaches_an_output = C.sum(axis=0) > 0
    sees_an_input = C.sum(axis=1) > 0
    assert onp.all(reaches_an_output[m0 < D])
    if min(hidden) >= 2:
        assert onp.all(sees_an_input[m0 > 1])


def test_random_degrees_in_a_narrow_layer_can_disconnect_inputs():
    """The failure the sequential assignment avoids (lesson 2): some seed leaves an input unused."""
    D, disconnected = 8, 0
    for seed in range(20):
        degrees = masks.made_degrees(D, (3,), "sequential", "random", rng=seed)
        C = masks.connectivity(masks.made_masks(degrees))
        disconnected += int(onp.any(C.sum(axis=0)[degrees[0] < D] == 0))
    assert disconnected > 0


@pytest.mark.parametrize("mode", ["sequential", "random"])
def test_hidden_degrees_lie_between_1_and_D_minus_1(mode):
    degrees = masks.made_degrees(9, (50, 50, 50), "random", mode, rng=0)
    for m in degrees[1:]:
        assert m.min() >= 1 and m.max() <= 8


def test_random_hidden_degrees_never_fall_below_the_previous_layers_minimum():
    degrees = masks.made_degrees(9, (6, 6, 6), "sequential", "random", rng=4)
    for m_prev, m in zip(degrees[1:-1], degrees[2:]):
        assert m.min() >= m_prev.min()


def test_made_paper_figure_1_path_counts():
    """MADE (Germain et al. 2015) Figure 1: inputs of degrees (3, 1, 2), hidden (2, 1, 2, 2) and
    (1, 2, 2, 1). x_1 (degree 3) depends on x_2 and x_3, x_2 (degree 1) on nothing, x_3 on x_2 only."""
    degrees = [onp.array([3, 1, 2]), onp.array([2, 1, 2, 2]), onp.array([1, 2, 2, 1])]
    C = masks.connectivity(masks.made_masks(degrees))
    assert C.tolist() == [[0, 10, 6], [0, 0, 0], [0, 2, 0]]


def test_a_hidden_unit_of_degree_D_connects_to_no_output():
    """Why hidden degrees stop at D-1 (lesson 2, exercise 2): the output mask needs d > m."""
    D = 4
    degrees = [onp.arange(1, D + 1), onp.array([1, 2, 3, 4])]
    M_out = masks.made_masks(degrees)[-1]
    assert onp.all(M_out[degrees[1] == D] == 0)


def test_hidden_masks_allow_equal_degrees_and_the_output_mask_does_not():
    degrees = [onp.array([1, 2]), onp.array([1, 1])]
    M_hidden, M_out = masks.made_masks(degrees)
    assert M_hidden.tolist() == [[1, 1], [0, 0]]  # input of degree 1 feeds hidden units of degree 1
    assert M_out.tolist() == [[0, 1], [0, 1]]  # hidden degree 1 feeds only the output of degree 2


def test_one_dimensional_made_has_constant_output():
    degrees = masks.made_degrees(1, (4,), "sequential")
    assert degrees[1].tolist() == [0, 0, 0, 0]
    assert masks.connectivity(masks.made_masks(degrees)).tolist() == [[0]]


def test_same_seed_gives_the_same_random_degrees():
    a = masks.made_degrees(6, (10, 10), "random", "random", rng=7)
    b = masks.made_degrees(6, (10, 10), "random", "random", rng=7)
    assert all(onp.array_equal(u, v) for u, v in zip(a, b))


@pytest.mark.parametrize("bad, error", [("diagonal", ValueError), ([0, 0, 1], ValueError), ([0, 1], ValueError),
                                        ([0.0, 1.0, 2.0], ValueError), (object(), ValueError)])
def test_bad_order_raises_naming_order(bad, error):
    with pytest.raises(error, match="order"):
        masks.make_order(3, bad)


def test_unknown_hidden_degree_mode_raises_naming_mode():
    with pytest.raises(ValueError, match="mode"):
        masks.hidden_degrees(4, 5, "clever")
