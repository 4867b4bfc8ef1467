"""The shared figures: each plotting function draws what its docstring says, with labelled axes, and the
density grid evaluates the density it is given."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as onp  # noqa: E402
import pytest  # noqa: E402

import maf_numpy as mf  # noqa: E402
from maf_numpy import plotting  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def labelled(ax):
    return bool(ax.get_xlabel()) and bool(ax.get_ylabel())


def test_density_grid_evaluates_the_given_log_density_at_the_grid_points():
    X, Y, log_p = plotting.density_grid(lambda v: -onp.sum(v**2, axis=1), (-1, 1), (-2, 2), resolution=5)
    assert X.shape == Y.shape == log_p.shape == (5, 5)
    onp.testing.assert_allclose(log_p, -(X**2 + Y**2))
    assert X[0, -1] == 1 and Y[-1, 0] == 2


def test_density_heat_map_has_labelled_axes_and_a_labelled_colour_bar():
    fig, ax = plt.subplots()
    flow = mf.MAF(2, num_layers=1, hidden=(8,), rng=0)
    plotting.plot_density(ax, flow, xlim=(-3, 3), ylim=(-3, 3), resolution=20, title="MAF")
    colour_bars = [a for a in fig.axes if a is not ax]
    assert labelled(ax) and ax.get_title() == "MAF"
    assert len(colour_bars) == 1 and colour_bars[0].get_ylabel() == "p(x)"


def test_log_scale_density_labels_its_colour_bar_log_p():
    fig, ax = plt.subplots()
    plotting.plot_density(ax, plotting.density_grid(lambda v: -onp.sum(v**2, axis=1), (-1, 1), (-1, 1), 10),
                          log_scale=True)
    assert fig.axes[1].get_ylabel() == "log p(x)"


def test_samples_scatter_shows_every_point_with_labelled_axes():
    fig, ax = plt.subplots()
    x = mf.datasets.toy("moons", 300, rng=0)
    plotting.plot_samples(ax, x, title="moons")
    assert labelled(ax) and len(ax.collections[0].get_offsets()) == 300


def test_mask_figure_has_one_panel_per_mask():
    degrees = mf.masks.made_degrees(4, (6, 5), "random", rng=0)
    fig = plotting.plot_masks(mf.masks.made_masks(degrees), degrees)
    images = [ax for ax in fig.axes if ax.images]
    assert len(images) == 3 and all(labelled(ax) for ax in images)


def test_jacobian_figure_reorders_rows_and_columns_by_the_ordering():
    J = onp.tril(onp.ones((3, 3)))
    order = onp.array([2, 0, 1])
    fig = plotting.plot_jacobian(J[onp.ix_(onp.argsort(order), onp.argsort(order))], order=order)
    shown = fig.axes[0].images[0].get_array()
    onp.testing.assert_array_equal(onp.abs(shown), J)


def test_layer_figure_has_a_panel_per_stage_of_the_trace():
    flow = mf.MAF(2, num_layers=3, hidden=(8,), rng=0)
    trace = flow.trace_inverse(mf.datasets.toy("fig1", 200, rng=0))
    fig = plotting.plot_layers(trace)
    panels = [ax for ax in fig.axes if ax.collections]
    assert len(panels) == len(trace["values"])


def test_history_figure_draws_a_dashed_entropy_line():
    flow = mf.MAF(2, num_layers=1, hidden=(8,), rng=0)
    history = flow.fit(mf.datasets.toy("fig1", 400, rng=0), steps=20, progress=False, rng=0)
    fig = plotting.plot_history({"MAF": history}, entropy=3.531)
    ax = fig.axes[0]
    assert labelled(ax) and any(line.get_linestyle() == "--" for line in ax.lines)


def test_save_figure_writes_to_the_folder_named_by_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MAF_FIGURES_DIR", str(tmp_path / "out"))
    fig, _ = plt.subplots()
    path = plotting.save_figure(fig, "00_test.png")
    assert path == tmp_path / "out" / "00_test.png" and path.stat().st_size > 0
