"""The figures the demo and the lessons share: densities, samples, MADE masks, Jacobians, layers, curves.

Every function draws one kind of figure and returns what it drew on (a ``matplotlib.figure.Figure``, or
the image for the functions that draw into a given ``ax``). Nothing here calls ``plt.show``: a notebook
shows the returned figure by itself, a script saves it with ``fig.savefig``. Nothing in the core library
imports this module, so the core runs without matplotlib.

Conventions (STYLE §4.11): sequential colour maps (``viridis``) for densities and magnitudes, every
axis labelled, titles that say what is shown. Densities are plotted as p(x) by default, because log p
makes a bad model's mass in the wrong place look small; ``log_scale=True`` shows log p(x).
"""

import os
import re
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

__all__ = ["figures_dir", "save_figure",
           "density_grid", "plot_density", "colorbar_extend", "plot_samples", "plot_masks", "plot_jacobian",
           "plot_layers", "plot_history", "plot_made_network", "plot_connectivity", "plot_grid_warp",
           "plot_z_samples", "plot_loglog_series", "plot_conditioner_diagram", "plot_target_and_samples"]

DENSITY_CMAP = "viridis"


def figures_dir():
    """The folder figures are written to: ``$MAF_FIGURES_DIR`` if set, else ``figures/`` at the repository
    root (the tests point the variable at a temporary folder, so running them never rewrites the
    committed figures)."""
    folder = Path(os.environ.get("MAF_FIGURES_DIR", Path(__file__).resolve().parents[1] / "figures"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(fig, name, dpi=110):
    """Save ``fig`` as ``figures_dir() / name`` (a stable name such as ``"02_path_counts.png"``); return
    the path."""
    path = figures_dir() / name
    fig.savefig(path, dpi=dpi, bbox_inches="tight")
    return path


# ---------------------------------------------------------------------------------------------------
# Densities and samples
# ---------------------------------------------------------------------------------------------------
def density_grid(flow_or_logpdf, xlim, ylim, resolution=200, chunk=10_000):
    """Evaluate a 2D log-density on a regular grid.

    Parameters
    ----------
    flow_or_logpdf : Flow or callable
        A flow (its ``log_prob`` is used) or a function mapping points of shape (m, 2) to log p, (m,).
    xlim, ylim : (float, float)
        Range of x_1 (horizontal) and x_2 (vertical).
    resolution : int
        Grid points per axis.
    chunk : int
        Points per call, to bound the memory of one call.

    Returns
    -------
    X, Y : ndarray of shape (resolution, resolution)
        Grid coordinates as from ``np.meshgrid`` (``X[i, j]`` is x_1 of column j, ``Y[i, j]`` x_2 of row i).
    log_p : ndarray of shape (resolution, resolution)
        log p at every grid point, in nats. Far from its training data a flow's ``exp(-alpha)`` can
        overflow; such points come out as -inf or NaN (drawn blank), without a warning.
    """
    log_prob = getattr(flow_or_logpdf, "log_prob", flow_or_logpdf)
    X, Y = np.meshgrid(np.linspace(*xlim, resolution), np.linspace(*ylim, resolution))
    points = np.column_stack([X.ravel(), Y.ravel()])
    with warnings.catch_warnings(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # far from the data only; NaN is drawn blank
        log_p = np.concatenate([np.asarray(log_prob(points[start:start + chunk]), dtype=float)
                                for start in range(0, len(points), chunk)])
    return X, Y, log_p.reshape(X.shape)


def plot_density(ax, density, xlim=None, ylim=None, title=None, log_scale=False, resolution=200, vmin=None,
                 vmax=None, colorbar=True, cmap=DENSITY_CMAP):
    """Draw a 2D density as a heat map on ``ax``, with a colour bar labelled "p(x)" or "log p(x)".

    Parameters
    ----------
    ax : matplotlib Axes
    density : (X, Y, log_p) tuple, Flow or callable
        The output of :func:`density_grid`, or anything it accepts (then ``xlim`` and ``ylim`` are needed).
    xlim, ylim : (float, float) or None
        Grid range, when ``density`` is not already a grid.
    title : str or None
    log_scale : bool
        Show log p(x) instead of p(x). Values more than 15 nats below the maximum are clipped (unless
        ``vmin`` is given), so that a density that is zero somewhere does not flatten the map.
    resolution : int
        Grid points per axis, when ``density`` is not already a grid.
    vmin, vmax : float or None
        Colour limits, e.g. shared between panels so that they compare.
    colorbar : bool
        Add a colour bar to ``ax``.
    cmap : str

    Returns
    -------
    image : matplotlib QuadMesh
        Pass it to ``fig.colorbar`` to draw one colour bar for several panels.
    """
    if isinstance(density, tuple):
        X, Y, log_p = density
    else:
        if xlim is None or ylim is None:
            raise ValueError("xlim and ylim are needed to plot a flow or a function: give a grid or both limits")
        X, Y, log_p = density_grid(density, xlim, ylim, resolution)
    if log_scale:
        values, label = log_p, "log p(x)"
        if vmin is None:
            vmin = max(np.max(log_p) - 15.0, np.min(log_p[np.isfinite(log_p)]))
    else:
        values, label = np.exp(log_p), "p(x)"
    image = ax.pcolormesh(X, Y, values, cmap=cmap, vmin=vmin, vmax=vmax, shading="auto", rasterized=True)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label=label, extend=colorbar_extend(values, vmin, vmax))
    return image


def colorbar_extend(values, vmin, vmax):
    """The colour bar's ``extend`` argument: arrows at the ends where values are clipped."""
    finite = values[np.isfinite(values)]
    low = vmin is not None and finite.size and finite.min() < vmin
    high = vmax is not None and finite.size and finite.max() > vmax
    return {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[
        (bool(low), bool(high))]


def plot_samples(ax, x, title=None, xlim=None, ylim=None, equal=False, s=2.0, alpha=0.3, color="C0",
                 max_points=None, rng=0):
    """Scatter plot of 2D points with small, transparent markers.

    Parameters
    ----------
    ax : matplotlib Axes
    x : ndarray of shape (n, 2)
        Points; column 0 is x_1 (horizontal), column 1 is x_2 (vertical).
    title : str or None
    xlim, ylim : (float, float) or None
        Axis limits (e.g. the same as a density panel beside it).
    equal : bool
        Equal scales on both axes.
    s, alpha, color
        Marker size, transparency and colour.
    max_points : int or None
        Plot a random subset of at most this many points (chosen with ``rng``).
    rng : int or numpy.random.Generator

    Returns
    -------
    collection : matplotlib PathCollection
    """
    x = np.asarray(x)
    if max_points is not None and len(x) > max_points:
        x = x[np.random.default_rng(rng).choice(len(x), max_points, replace=False)]
    collection = ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, color=color, linewidths=0, rasterized=True)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if xlim is not None:
        ax.set_xlim(xlim)
    if ylim is not None:
        ax.set_ylim(ylim)
    if equal:
        ax.set_aspect("equal", adjustable="box")
    if title:
        ax.set_title(title)
    return collection


# ---------------------------------------------------------------------------------------------------
# MADE masks and Jacobians
# ---------------------------------------------------------------------------------------------------
def _unit_ticks(degrees, units, variables, max_labels=16):
    """Tick positions and labels for a layer's units shown in the order ``units``.

    Each label is the unit's degree, preceded by the variable name for the input and output layers
    (``variables=True``). A long layer gets one tick per run of equal degrees if there are few runs (a
    layer sorted by degree), else every k-th unit.
    """
    shown = np.asarray(degrees)[units]
    labels = [f"$x_{{{u + 1}}}$: {d}" if variables else str(d) for u, d in zip(units, shown)]
    if len(shown) <= max_labels:
        return np.arange(len(shown)), labels
    starts = np.flatnonzero(np.r_[True, shown[1:] != shown[:-1]])
    if len(starts) <= max_labels:
        ends = np.r_[starts[1:], len(shown)]
        return (starts + ends - 1) / 2, [str(shown[k]) for k in starts]
    positions = np.arange(0, len(shown), int(np.ceil(len(shown) / max_labels)))
    return positions, [labels[k] for k in positions]


def plot_masks(masks, degrees, sort_by_degree=False):
    """Show the MADE masks as black (connection) and white (no connection) images, degrees on the ticks.

    Parameters
    ----------
    masks : list of ndarray
        ``L + 1`` masks as from :func:`maf_numpy.masks.made_masks`: ``masks[l]`` has shape
        (H_l, H_{l+1}) with H_0 = D, and ``masks[-1]`` (H_L, D) is the output mask (shared by the mu and
        alpha heads). Entry [k, k'] is 1 when unit k of one layer feeds unit k' of the next.
    degrees : list of ndarray of int
        ``[m^0, ..., m^L]``: input degrees (D,) then hidden degrees (H_l,).
    sort_by_degree : bool
        Sort the units of every layer by degree, so that the masks become staircases.

    Returns
    -------
    fig : matplotlib Figure
        One panel per mask: rows are the units a connection comes from, columns the units it goes to.
        Ticks show each unit's degree (and, for inputs and outputs, which variable it is).
    """
    L = len(masks) - 1
    layer_degrees = list(degrees) + [degrees[0]]  # the outputs carry the input degrees
    orders = [np.argsort(m, kind="stable") if sort_by_degree else np.arange(len(m)) for m in layer_degrees]
    names = ["input $x$"] + [f"hidden $h^{{{l}}}$" for l in range(1, L + 1)] + ["output $\\mu, \\alpha$"]
    fig, axes = plt.subplots(1, L + 1, figsize=(4.2 * (L + 1), 4.4), layout="constrained", squeeze=False)
    for l, ax in enumerate(axes[0]):
        rows, cols = orders[l], orders[l + 1]
        ax.imshow(masks[l][np.ix_(rows, cols)], cmap="gray_r", vmin=0, vmax=1, aspect="auto",
                  interpolation="nearest")
        ax.set_yticks(*_unit_ticks(layer_degrees[l], rows, variables=l == 0))
        ax.set_xticks(*_unit_ticks(layer_degrees[l + 1], cols, variables=l == L))
        ax.set_ylabel(f"from: {names[l]} (tick: degree)")
        ax.set_xlabel(f"to: {names[l + 1]} (tick: degree)")
        rule = "$m^{L}(k) < m^{0}(d)$" if l == L else f"$m^{{{l}}}(k) \\leq m^{{{l + 1}}}(k')$"
        kind = "output mask $M^V$" if l == L else f"mask $M^{{{l + 1}}}$"
        ax.set_title(f"{kind}: black where {rule}")
    fig.suptitle("MADE masks (black = connection kept" + (", units sorted by degree)" if sort_by_degree else ")"))
    return fig


def plot_jacobian(J, order=None, title="Jacobian $|\\partial z_i / \\partial x_j|$", ax=None):
    """Show |J| as an image, rows and columns optionally put in the autoregressive order.

    Parameters
    ----------
    J : ndarray of shape (D, D) or (n, D, D)
        A Jacobian ``J[i, j] = dz_i / dx_j`` (e.g. from ``autograd.jacobian``); a stack of n Jacobians is
        averaged in absolute value.
    order : ndarray of int, shape (D,), or None
        A permutation of range(D) (``order[0]`` generated first). Rows and columns are permuted by it, so
        that an autoregressive Jacobian shows as a lower triangle.
    title : str
    ax : matplotlib Axes or None
        Draw here, else on a new figure.

    Returns
    -------
    fig : matplotlib Figure
        Entries that are exactly zero are white, so that structural zeros stand out from small values.
    """
    J = np.abs(np.asarray(J, dtype=float))
    if J.ndim == 3:
        J = J.mean(axis=0)
    D = J.shape[0]
    note = "" if order is None else " (in generation order)"
    order = np.arange(D) if order is None else np.asarray(order)
    J = J[np.ix_(order, order)]
    if ax is None:
        fig, ax = plt.subplots(figsize=(4.8, 4), layout="constrained")
    cmap = plt.get_cmap(DENSITY_CMAP).with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_equal(J, 0.0), cmap=cmap, vmin=0, interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="$|\\partial z_i / \\partial x_j|$ (white: exactly 0)")
    if D <= 20:
        ax.set_xticks(range(D), [f"$x_{{{j + 1}}}$" for j in order])
        ax.set_yticks(range(D), [f"$z_{{{i + 1}}}$" for i in order])
    ax.set_xlabel("input $x_j$" + note)
    ax.set_ylabel("output $z_i$" + note)
    ax.set_title(title)
    return ax.figure


# ---------------------------------------------------------------------------------------------------
# A flow layer by layer, and training curves
# ---------------------------------------------------------------------------------------------------
def _short_layer_name(text):
    """'MAFLayer(D=2, hidden=(64, 64), order=[1, 0])' -> 'MAFLayer, order [1, 0]'."""
    name = text.split("(", 1)[0]
    match = re.search(r"order=(\[[^\]]*\])", text) or re.search(r"A=(\[[^\]]*\])", text)
    if match:
        what = "order" if "order=" in match.group(0) else "passes x"
        return f"{name}, {what} {match.group(1)}"
    return name


def plot_layers(trace, direction="inverse", max_points=2000, ncols=5):
    """One scatter panel per stage of a flow, from ``flow.trace_inverse(x)`` (or ``trace_forward(z)``).

    Points are coloured by the rank of their first coordinate in the first panel, so that one can follow
    them from panel to panel.

    Parameters
    ----------
    trace : dict
        With ``values`` (K + 1 arrays of shape (n, D), first two coordinates plotted) and ``layers``
        (K layer descriptions), as returned by ``Flow.trace_inverse`` / ``Flow.trace_forward``.
    direction : {"inverse", "forward"}
        Which trace it is: inverse goes from x (data) to z (base), forward from z to x.
    max_points : int
        Plot at most this many points (the first ones).
    ncols : int
        Panels per row.

    Returns
    -------
    fig : matplotlib Figure
    """
    values = [np.asarray(v)[:max_points] for v in trace["values"]]
    start, end = ("x", "z") if direction == "inverse" else ("z", "x")
    colour = np.argsort(np.argsort(values[0][:, 0])) / len(values[0])  # rank in [0, 1)
    nrows = int(np.ceil(len(values) / ncols))
    ncols = min(ncols, len(values))
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.4 * nrows), layout="constrained",
                             squeeze=False)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(values):
            ax.set_axis_off()
            continue
        ax.scatter(values[k][:, 0], values[k][:, 1], c=colour, s=3, alpha=0.5, linewidths=0, cmap="viridis",
                   rasterized=True)
        if k == 0:
            ax.set_title(f"{start} ({'data' if start == 'x' else 'base'})")
            symbol = start
        else:
            symbol = end if k == len(values) - 1 else "v"
            ax.set_title(f"after {k}: {_short_layer_name(trace['layers'][k - 1])}", fontsize=9)
        ax.set_xlabel(f"${symbol}_1$")
        ax.set_ylabel(f"${symbol}_2$")
    fig.suptitle(f"{direction}: {start} -> {end}, layer by layer (colour: rank of ${start}_1$ in the first panel)")
    return fig


def plot_history(histories, entropy=None, show_train=True, ax=None, title="Training curves", ylim=None):
    """Training and validation NLL against step for one or more runs.

    Parameters
    ----------
    histories : dict of name -> history
        Histories as returned by ``flow.fit`` (``step``, ``train_nll``, ``val_nll``).
    entropy : float or None
        The true entropy H[p] in nats, drawn as a dashed line: no model's expected NLL can go below it.
    show_train : bool
        Also draw the training NLL (thin, faint); the validation NLL is the thick line with markers.
    ax : matplotlib Axes or None
        Draw here, else on a new figure.
    title : str
    ylim : (float, float) or None
        NLL range shown. By default the top is cut so that the end of training is readable (the first
        validations may be off the top).

    Returns
    -------
    fig : matplotlib Figure
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(7, 4.5), layout="constrained")
    plotted = []
    for k, (name, history) in enumerate(histories.items()):
        colour, marker = f"C{k % 10}", "os^Dvp<>"[k % 8]
        ax.plot(history["step"], history["val_nll"], color=colour, lw=1.8, marker=marker, markersize=3.5,
                label=f"{name} (validation)")
        plotted.extend(history["val_nll"])
        if show_train:
            ax.plot(history["step"], history["train_nll"], color=colour, lw=1, alpha=0.4,
                    label=f"{name} (train)")
            plotted.extend(history["train_nll"])
    if entropy is not None:
        ax.axhline(entropy, color="black", ls="--", lw=1.2, label=f"true entropy H[p] = {entropy:.3f}")
    plotted = np.asarray(plotted, dtype=float)
    plotted = plotted[np.isfinite(plotted)]
    if ylim is None and plotted.size:
        low = min(plotted.min(), entropy if entropy is not None else np.inf)
        high = np.percentile(plotted, 90)
        span = max(high - low, 1e-3)
        ylim = (low - 0.1 * span, high + 0.3 * span)
    if ylim is not None:
        ax.set_ylim(ylim)
    ax.set_xlabel("step")
    ax.set_ylabel("NLL (nats)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return ax.figure


# ---------------------------------------------------------------------------------------------------
# MADE as a graph, and its path-count (connectivity) matrix (lesson 02)
# ---------------------------------------------------------------------------------------------------
def plot_made_network(degrees, masks=None, ax=None, title="MADE network (node: degree; edge: mask entry 1)",
                      cmap="viridis", colorbar=True):
    """Draw a MADE as a layered graph: inputs at the bottom, outputs at the top (as in MADE Figure 1).

    Every node shows its degree; output d sits above input d and carries the same degree. An edge is
    drawn wherever a mask holds a 1.

    Parameters
    ----------
    degrees : list of ndarray of int
        ``[m^0, m^1, ..., m^L]``: input degrees (D,) then hidden degrees (H_l,).
    masks : list of ndarray or None
        ``L + 1`` masks as from :func:`maf_numpy.masks.made_masks` (``masks[l]`` of shape
        (H_l, H_{l+1}) with H_0 = D, output mask (H_L, D)); built from ``degrees`` when None.
    ax : matplotlib Axes or None
        Draw here, else on a new figure.
    title : str
    cmap : str
        Node colour = degree, on a scale from 0 to D.
    colorbar : bool
        Add a colour bar labelled "degree m(k)".

    Returns
    -------
    fig : matplotlib Figure
        The y axis names the layers; the x axis carries no meaning and is hidden.
    """
    if masks is None:
        from .masks import made_masks
        masks = made_masks(degrees)
    layers = [np.asarray(m) for m in degrees] + [np.asarray(degrees[0])]  # outputs carry the input degrees
    D, L = len(layers[0]), len(layers) - 2
    width = max(len(m) for m in layers)
    if ax is None:
        _, ax = plt.subplots(figsize=(max(4.0, 0.55 * width + 2.0), 1.3 * (L + 2) + 0.8), layout="constrained")
    xs = [np.arange(len(m)) - (len(m) - 1) / 2 for m in layers]
    for l, M in enumerate(masks):
        for k, k2 in zip(*np.nonzero(np.asarray(M))):
            ax.plot([xs[l][k], xs[l + 1][k2]], [l, l + 1], color="0.45", lw=0.8, alpha=0.7, zorder=1)
    colours, norm = plt.get_cmap(cmap, D + 1), plt.Normalize(-0.5, D + 0.5)  # one colour per degree 0..D
    size = 420 if width <= 10 else max(60, 4200 / width)
    image = None
    for l, m in enumerate(layers):
        image = ax.scatter(xs[l], np.full(len(m), l), c=m, cmap=colours, norm=norm, s=size,
                           edgecolors="black", linewidths=0.8, zorder=2)
        for x, d in zip(xs[l], m):
            r, g, b, _ = colours(norm(d))
            ink = "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"
            ax.text(x, l, str(d), ha="center", va="center", color=ink, fontsize=9 if width <= 10 else 7,
                    zorder=3)
    for k in range(D):
        ax.text(xs[0][k], -0.32, f"$x_{{{k + 1}}}$", ha="center", va="top")
        ax.text(xs[-1][k], L + 1.32, f"$\\hat{{x}}_{{{k + 1}}}$", ha="center", va="bottom")
    ax.set_yticks(range(L + 2), ["input $x$"] + [f"hidden $h^{{{l}}}$" for l in range(1, L + 1)]
                  + ["output $\\hat{x}$"])
    ax.set_ylim(-0.75, L + 1.75)
    ax.set_xlim(-width / 2 - 0.1, width / 2 + 0.1)
    ax.set_xticks([])
    for side in ("top", "right", "bottom"):
        ax.spines[side].set_visible(False)
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="degree $m(k)$", shrink=0.8, ticks=range(D + 1))
    return ax.figure


def plot_connectivity(C, input_degrees=None, sort_by_degree=False, annotate=None, ax=None,
                      title="Paths from input $x_j$ to output $\\hat{x}_i$", vmax=None, colorbar=True):
    """Show a MADE's path-count matrix as a heat map, zeros white, counts written in the cells.

    Parameters
    ----------
    C : ndarray of shape (D, D)
        As from :func:`maf_numpy.masks.connectivity`: ``C[i, j]`` is the number of paths from input
        x_j to output x̂_i (outputs x inputs, laid out like a Jacobian).
    input_degrees : ndarray of int, shape (D,), or None
        Degrees m^0 of the inputs, shown on the ticks (output i carries the degree of input i).
    sort_by_degree : bool
        Put rows and columns in degree order (needs ``input_degrees``): a correct MADE then shows a
        strictly lower triangle.
    annotate : bool or None
        Write the counts in the cells (default: when D <= 12).
    ax : matplotlib Axes or None
        Draw here, else on a new figure.
    title : str
    vmax : float or None
        Top of the colour scale, e.g. shared by several panels.
    colorbar : bool
        Add a colour bar labelled "number of paths".

    Returns
    -------
    fig : matplotlib Figure
    """
    C = np.asarray(C, dtype=float)
    D = C.shape[0]
    if sort_by_degree and input_degrees is None:
        raise ValueError("sort_by_degree needs input_degrees")
    order = np.argsort(input_degrees, kind="stable") if sort_by_degree else np.arange(D)
    C = C[np.ix_(order, order)]
    if ax is None:
        _, ax = plt.subplots(figsize=(4.8, 4), layout="constrained")
    vmax = max(C.max(), 1.0) if vmax is None else vmax
    cmap = plt.get_cmap(DENSITY_CMAP).with_extremes(bad="white")
    image = ax.imshow(np.ma.masked_equal(C, 0.0), cmap=cmap, vmin=0, vmax=vmax, interpolation="nearest")
    ax.set_xticks(np.arange(D) - 0.5, minor=True)
    ax.set_yticks(np.arange(D) - 0.5, minor=True)
    ax.grid(which="minor", color="0.85", lw=0.5)
    ax.tick_params(which="minor", length=0)
    if annotate is None:
        annotate = D <= 12
    if annotate:
        for i in range(D):
            for j in range(D):
                ink = "white" if 0 < C[i, j] < 0.6 * vmax else "black"
                ax.text(j, i, f"{C[i, j]:g}", ha="center", va="center", color=ink, fontsize=9 if D <= 8 else 7)
    if D <= 20:
        deg = (lambda k: f" ({input_degrees[k]})") if input_degrees is not None else (lambda k: "")
        ax.set_xticks(range(D), [f"$x_{{{k + 1}}}${deg(k)}" for k in order], rotation=90 if D > 8 else 0)
        ax.set_yticks(range(D), [f"$\\hat{{x}}_{{{k + 1}}}${deg(k)}" for k in order])
    note = " (degree)" if input_degrees is not None else ""
    ax.set_xlabel(f"input $x_j${note}" + (", sorted by degree" if sort_by_degree else ""))
    ax.set_ylabel(f"output $\\hat{{x}}_i${note}" + (", sorted by degree" if sort_by_degree else ""))
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label="number of paths (white: 0)", shrink=0.8)
    return ax.figure


def plot_grid_warp(forward, z, lim=3.0, num_lines=13, out_lim=None, axes=None,
                   titles=("before: base samples $z$ and a square grid", "after: $x = f(z)$, the warped grid")):
    """How a 2D map bends space: a square grid and points coloured by quadrant, before and after the map.

    Parameters
    ----------
    forward : callable
        A batched map from points of shape (m, 2) to points of shape (m, 2), e.g. a hand-written
        bijection or ``lambda z: flow.forward(z)[0]``.
    z : ndarray of shape (n, 2)
        Points of the input space (e.g. base samples). Each is coloured by the quadrant it starts in
        (signs of z_1 and z_2), so one can follow each quarter of the mass through the map.
    lim : float
        The grid spans [-lim, lim] x [-lim, lim] of the input space, and so does the left panel.
    num_lines : int
        Grid lines per direction.
    out_lim : ((float, float), (float, float)) or None
        (xlim, ylim) of the right panel; by default the range of the warped grid.
    axes : pair of matplotlib Axes or None
        Draw on these (left: before, right: after), else on a new figure.
    titles : (str, str)

    Returns
    -------
    fig : matplotlib Figure
        Left panel axes are z_1, z_2; right panel axes are x_1, x_2.
    """
    z = np.asarray(z, dtype=float)
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 4.6), layout="constrained")
    before, after = axes
    t = np.linspace(-lim, lim, 201)
    levels = np.linspace(-lim, lim, num_lines)
    lines = [np.column_stack([t, np.full_like(t, c)]) for c in levels]    # horizontal lines, (201, 2)
    lines += [np.column_stack([np.full_like(t, c), t]) for c in levels]   # vertical lines
    x = np.asarray(forward(z))
    warped = [np.asarray(forward(line)) for line in lines]
    quadrant = (z[:, 0] < 0).astype(int) + 2 * (z[:, 1] < 0).astype(int)
    names = ["$z_1>0, z_2>0$", "$z_1<0, z_2>0$", "$z_1>0, z_2<0$", "$z_1<0, z_2<0$"]
    for ax, grid, points in ((before, lines, z), (after, warped, x)):
        for line in grid:
            ax.plot(line[:, 0], line[:, 1], color="0.5", lw=0.6, zorder=1)
        for q in range(4):
            chosen = quadrant == q
            ax.scatter(points[chosen, 0], points[chosen, 1], s=4, alpha=0.6, color=f"C{q}", linewidths=0,
                       label=names[q], zorder=2, rasterized=True)
    before.set_xlim(-lim, lim)
    before.set_ylim(-lim, lim)
    before.set_aspect("equal", adjustable="box")
    before.set_xlabel("$z_1$")
    before.set_ylabel("$z_2$")
    before.set_title(titles[0])
    before.legend(title="colour: quadrant of $z$", fontsize=8, markerscale=3, ncol=2, loc="upper center",
                  bbox_to_anchor=(0.5, -0.13))
    if out_lim is None:
        corners = np.concatenate(warped)
        out_lim = tuple((low - 0.05 * (high - low), high + 0.05 * (high - low))
                        for low, high in zip(corners.min(axis=0), corners.max(axis=0)))
    after.set_xlim(out_lim[0])
    after.set_ylim(out_lim[1])
    after.set_xlabel("$x_1$")
    after.set_ylabel("$x_2$")
    after.set_title(titles[1])
    return before.figure


# ---------------------------------------------------------------------------------------------------
# The base space: is z = f^{-1}(x) standard normal? (lesson 05)
# ---------------------------------------------------------------------------------------------------
def plot_z_samples(ax, z, title=None, lim=4.0, radii=(1.0, 2.0, 3.0), s=2.0, alpha=0.3, color="C0",
                   max_points=None, rng=0):
    """Scatter the base-space points z = f^{-1}(x) of data x over the circles of N(0, I) (2D).

    If the model is right, z ~ N(0, I), and in two dimensions a circle of radius r holds the mass
    P(|z| <= r) = 1 - exp(-r^2 / 2): 39.3 %, 86.5 % and 98.9 % for r = 1, 2, 3. Each circle is labelled
    with that expected mass and the fraction of the points actually inside it, so a z that "should be
    N(0, I) but isn't" shows in numbers as well as by eye.

    Parameters
    ----------
    ax : matplotlib Axes
    z : ndarray of shape (n, 2)
        Base-space points, e.g. ``flow.inverse(x)[0]``; column 0 is z_1 (horizontal).
    title : str or None
    lim : float
        Both axes show [-lim, lim], with equal scales; the number of points outside is given in the
        legend's title.
    radii : tuple of float
        Radii of the N(0, I) circles drawn.
    s, alpha, color
        Marker size, transparency and colour.
    max_points : int or None
        Plot a random subset of at most this many points (the fractions use all of them).
    rng : int or numpy.random.Generator
        Chooses the subset.

    Returns
    -------
    inside : ndarray of shape (len(radii),)
        Fraction of the points of z within each radius (the expected values are 1 - exp(-r^2 / 2)).
    """
    z = np.asarray(z, dtype=float)
    radius = np.sqrt(np.sum(z**2, axis=1))
    inside = np.array([np.mean(radius <= r) for r in radii])
    shown = z
    if max_points is not None and len(z) > max_points:
        shown = z[np.random.default_rng(rng).choice(len(z), max_points, replace=False)]
    ax.scatter(shown[:, 0], shown[:, 1], s=s, alpha=alpha, color=color, linewidths=0, rasterized=True)
    angle = np.linspace(0.0, 2 * np.pi, 200)
    for k, (r, frac) in enumerate(zip(radii, inside)):
        ax.plot(r * np.cos(angle), r * np.sin(angle), color="black", lw=1.2, ls=("-", "--", ":")[k % 3],
                label=f"r = {r:g}: N(0, I) {1 - np.exp(-r**2 / 2):.1%}, z {frac:.1%}")
    outside = int(np.sum(np.any(np.abs(z) > lim, axis=1)))
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), fontsize=8, frameon=False,
              title=f"mass inside each circle ({outside} of {len(z)} points off the plot)", title_fontsize=8)
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("$z_1$")
    ax.set_ylabel("$z_2$")
    if title:
        ax.set_title(title)
    return inside


# ---------------------------------------------------------------------------------------------------
# Timings (lesson 08)
# ---------------------------------------------------------------------------------------------------
def plot_loglog_series(ax, x, series, styles=None, slopes=None, references=None, xlabel="dimension D",
                       ylabel="seconds per call", title=None):
    """Draw measured values against x on log-log axes (base 2), one line per series, slopes in the legend.

    Parameters
    ----------
    ax : matplotlib Axes
    x : sequence of float, length m
        The horizontal values (e.g. the dimensions D), one tick each.
    series : dict of str -> sequence of float of length m
        One line per entry, labelled by its key.
    styles : dict of str -> dict, optional
        Keyword arguments for ``ax.plot`` per label (colour, marker, linestyle, ...).
    slopes : dict of str -> float, optional
        Fitted log-log slopes (e.g. from :func:`maf_numpy.timing.loglog_slope`), appended to the legend
        label as "slope 1.95".
    references : dict of str -> sequence of float of length m, optional
        Guide lines (e.g. y = D) drawn thin, grey and dotted, labelled by their key.
    xlabel, ylabel, title : str

    Returns
    -------
    list of matplotlib Line2D
        The lines of ``series``, in order.
    """
    x = np.asarray(x, dtype=float)
    styles, slopes = styles or {}, slopes or {}
    for k, (label, y) in enumerate((references or {}).items()):
        ax.plot(x, y, color="0.55", lw=1.0, ls=(":", "-.", "--")[k % 3], label=label, zorder=1)
    lines = []
    for label, y in series.items():
        text = label if label not in slopes else f"{label}: slope {slopes[label]:.2f}"
        style = {"marker": "o", "markersize": 4, **styles.get(label, {})}
        lines.extend(ax.plot(x, np.asarray(y, dtype=float), label=text, **style))
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{value:g}" for value in x])
    ax.minorticks_off()
    ax.grid(alpha=0.3, which="major")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    return lines


# ---------------------------------------------------------------------------------------------------
# Variational inference: MAF vs IAF diagram, target contours with samples (lesson 06)
# ---------------------------------------------------------------------------------------------------
def plot_conditioner_diagram(D=4, i=3):
    """Two-panel diagram of which variables feed the conditioner of coordinate i in a MAF and an IAF layer.

    Both layers compute x_i = z_i * exp(alpha_i) + mu_i. In a MAF layer (MAF paper §3.1) the MADE reads
    x_{<i}; in an IAF layer (MAF paper §3.2; Kingma et al. 2016) it reads z_{<i}. Each panel is annotated
    with the number of MADE passes each direction takes.

    Parameters
    ----------
    D : int
        Number of variables drawn (at least 2).
    i : int
        The coordinate (1-based, 2 <= i <= D) whose conditioner is drawn.

    Returns
    -------
    fig : matplotlib Figure
    """
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.0), layout="constrained")
    box_x, box_y, box_w, box_h = (i - 2) / 2.0, 1.0, 1.2, 0.5
    panels = [
        ("MAF layer: the MADE reads $x_{<i}$", "x", "C0",
         ["density $p(x)$: 1 pass (every $x_{<i}$ is known)",
          "sampling $x = f(z)$: $D$ passes ($x_{<i}$ must be made first)"]),
        ("IAF layer: the MADE reads $z_{<i}$", "z", "C1",
         ["sampling $x = f(z)$ and $\\log q$ of that sample: 1 pass",
          "density $q(x)$ of an outside $x$: $D$ passes ($z_{<i}$ must be solved for)"]),
    ]
    for ax, (title, reads, color, notes) in zip(axes, panels):
        row_y = {"z": 0.0, "x": 2.0}
        for name, y in row_y.items():
            for j in range(1, D + 1):
                feeds = name == reads and j < i
                face = color if feeds else ("0.85" if j == i else "white")
                ax.add_patch(Circle((j - 1, y), 0.28, facecolor=face, edgecolor="black", lw=1.2, zorder=3,
                                    alpha=0.85 if feeds else 1.0))
                ax.text(j - 1, y, f"${name}_{j}$", ha="center", va="center", fontsize=13, zorder=4)
        ax.add_patch(FancyBboxPatch((box_x - box_w / 2, box_y - box_h / 2), box_w, box_h,
                                    boxstyle="round,pad=0.05", facecolor="0.95", edgecolor=color, lw=2, zorder=2))
        ax.text(box_x, box_y, "MADE", ha="center", va="center", fontsize=12, weight="bold", zorder=4)
        source_y = row_y[reads]
        to_box_y = box_y + box_h / 2 + 0.05 if reads == "x" else box_y - box_h / 2 - 0.05
        for j in range(1, i):
            ax.add_patch(FancyArrowPatch((j - 1, source_y + (-0.3 if reads == "x" else 0.3)), (box_x, to_box_y),
                                         arrowstyle="-|>", mutation_scale=14, color=color, lw=1.6, zorder=1))
        ax.add_patch(FancyArrowPatch((box_x + box_w / 2 + 0.05, box_y), (i - 1 - 0.22, 2.0 - 0.22),
                                     arrowstyle="-|>", mutation_scale=14, color="black", lw=1.6, zorder=1,
                                     connectionstyle="arc3,rad=0.2"))
        ax.text(box_x + box_w / 2 + 0.12, box_y - 0.08, f"$\\mu_{i}, \\alpha_{i}$", fontsize=12, ha="left", va="top")
        ax.add_patch(FancyArrowPatch((i - 1, 0.3), (i - 1, 1.7), arrowstyle="-|>", mutation_scale=14,
                                     color="black", lw=1.6, zorder=1))
        ax.text(i - 1 + 0.12, 0.72, f"$x_{i} = z_{i}\\, e^{{\\alpha_{i}}} + \\mu_{i}$", fontsize=12, ha="left")
        ax.text(-0.6, 2.0, "data", ha="right", va="center", fontsize=11, color="0.3")
        ax.text(-0.6, 0.0, "base", ha="right", va="center", fontsize=11, color="0.3")
        ax.text((D - 1) / 2, -0.75, "\n".join(notes), ha="center", va="top", fontsize=11,
                bbox=dict(boxstyle="round", facecolor="white", edgecolor=color))
        ax.set_xlim(-1.3, D - 0.4)
        ax.set_ylim(-1.45, 2.45)
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(f"{title}\n(coordinate $i = {i}$ of $D = {D}$; filled circles: the MADE's inputs)",
                     fontsize=12)
    return fig


def plot_target_and_samples(ax, log_target, x, xlim, ylim, title=None, log_scale=True, resolution=200, depth=12.0,
                            s=3.0, alpha=0.4, color="C1", label=None, colorbar=True):
    """Filled contours of a (possibly unnormalised) 2D target density with samples on top (lesson 06).

    Parameters
    ----------
    ax : matplotlib Axes
    log_target : callable
        Points of shape (m, 2) -> log p~, shape (m,); need not be normalised (it is shown relative to its
        maximum on the grid).
    x : ndarray of shape (n, 2) or None
        Samples to scatter (e.g. from a variational q); None draws the contours only.
    xlim, ylim : (float, float)
    title : str or None
    log_scale : bool
        True: contours of log p~(x) minus its maximum, from ``-depth`` to 0 nats (for peaked targets such
        as the funnel). False: contours of p~(x) / max p~ from 0 to 1.
    resolution : int
        Grid points per axis.
    depth : float
        With ``log_scale``, how many nats below the maximum the contours reach.
    s, alpha, color, label
        Marker size, transparency, colour and legend label of the samples.
    colorbar : bool

    Returns
    -------
    outside : int
        Number of samples that fall outside the plotted window.
    """
    X, Y, log_p = density_grid(log_target, xlim, ylim, resolution)
    relative = log_p - np.nanmax(log_p)
    if log_scale:
        values, levels = np.clip(relative, -depth, 0.0), np.linspace(-depth, 0.0, 13)
        bar_label = "log target $-$ its maximum (nats)"
    else:
        values, levels, bar_label = np.exp(relative), np.linspace(0.0, 1.0, 11), "target / its maximum"
    image = ax.contourf(X, Y, values, levels=levels, cmap="Greys", zorder=0)
    outside = 0
    if x is not None:
        x = np.asarray(x, dtype=float)
        inside = (x[:, 0] >= xlim[0]) & (x[:, 0] <= xlim[1]) & (x[:, 1] >= ylim[0]) & (x[:, 1] <= ylim[1])
        outside = int(np.sum(~inside))
        ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, color=color, linewidths=0, rasterized=True, zorder=2,
                   label=label)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label=bar_label)
    return outside


def plot_image_grid(ax, images, nrows, ncols, image_shape=(8, 8), title=None, row_labels=None, vmin=0.0, vmax=1.0,
                    cmap="gray_r", gap=1):
    """Tile small grey-level images (digits, samples) into one mosaic on ``ax`` (lesson 09).

    Parameters
    ----------
    ax : matplotlib Axes
    images : ndarray of shape (n, H * W) or (n, H, W)
        Row-major images, filled into the grid row by row; n <= nrows * ncols (empty cells stay blank).
    nrows, ncols : int
        Grid size in images.
    image_shape : (int, int)
        (H, W) of one image.
    title : str or None
    row_labels : sequence of str or None
        One label per grid row, written as y tick labels (e.g. the class of a class-conditional row).
    vmin, vmax : float
        Grey-level range (values outside are clipped by the colour map).
    cmap : str
        "gray_r": 0 is white, ``vmax`` black (ink on paper, as the digits are stored).
    gap : int
        Blank pixels between neighbouring images.

    Returns
    -------
    image : matplotlib AxesImage
        The mosaic, shape (nrows (H + gap) - gap, ncols (W + gap) - gap) pixels; pass it to
        ``fig.colorbar`` to label the grey levels.
    """
    H, W = image_shape
    images = np.asarray(images, dtype=float).reshape(-1, H, W)
    if images.shape[0] > nrows * ncols:
        raise ValueError(f"images holds {images.shape[0]} images, more than nrows * ncols = {nrows * ncols}")
    mosaic = np.full((nrows * (H + gap) - gap, ncols * (W + gap) - gap), np.nan)
    for k, image in enumerate(images):
        r, c = divmod(k, ncols)
        mosaic[r * (H + gap):r * (H + gap) + H, c * (W + gap):c * (W + gap) + W] = image
    colour_map = plt.get_cmap(cmap).copy()
    colour_map.set_bad("white")
    shown = ax.imshow(np.ma.masked_invalid(mosaic), cmap=colour_map, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([c * (W + gap) + (W - 1) / 2 for c in range(ncols)], [str(c + 1) for c in range(ncols)])
    ax.set_xlabel("image (column)")
    if row_labels is not None:
        ax.set_yticks([r * (H + gap) + (H - 1) / 2 for r in range(nrows)], list(row_labels))
    else:
        ax.set_yticks([r * (H + gap) + (H - 1) / 2 for r in range(nrows)], [str(r + 1) for r in range(nrows)])
    ax.set_ylabel("row")
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    if title:
        ax.set_title(title)
    return shown
