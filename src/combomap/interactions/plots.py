"""The figures of an interaction map (matplotlib's object API with the Agg canvas, as combomap.evaluation.plots):

heatmap.png        z of the combinations with the most calls (rows) x the genes called most often among them
                   (columns); a dot marks a call
scatter.png        observed vs expected for the combinations with the most calls, one panel each, calls coloured
map.png            every combination by its summaries: magnitude vs model fit, dominance vs equality of
                   contribution, coloured by class, sized by the number of calls
p_values.png       the histogram of the p-values (flat where nothing interacts; a spike at 0 where things do)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from combomap.interactions.calls import BUFFERING, SYNERGY, EntryTests
from combomap.interactions.pipeline import InteractionResult
from combomap.interactions.settings import PlotSettings
from combomap.interactions.summaries import CLASSES

Z_LIMIT = 8.0
CALL_COLOURS = {SYNERGY: "tab:red", BUFFERING: "tab:blue"}
CLASS_COLOURS = dict(zip(CLASSES, ("tab:grey", "tab:purple", "tab:green", "tab:red", "tab:blue")))
LABEL_CHARS = 28


def _figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _short(name: str) -> str:
    return name if len(name) <= LABEL_CHARS else name[: LABEL_CHARS - 1] + "…"


def ranked_combinations(tests: EntryTests, count: int) -> np.ndarray:
    """Rows of the combinations with the most calls (then the largest |z|), at most `count`."""
    calls = (tests.call != 0).sum(axis=1)
    strongest = np.nan_to_num(np.nanmax(np.where(tests.tested, np.abs(tests.z), -np.inf), axis=1), neginf=0.0)
    order = np.lexsort((-strongest, -calls))
    return order[:count]


def heatmap_figure(result: InteractionResult, n_combos: int, n_genes: int) -> Figure:
    tests, dataset = result.tests, result.dataset
    rows = ranked_combinations(tests, n_combos)
    called = (tests.call[rows] != 0).sum(axis=0)
    strength = np.nansum(np.abs(np.where(tests.tested[rows], tests.z[rows], 0.0)), axis=0)
    columns = np.lexsort((-strength, -called))[:n_genes]
    values = np.clip(tests.z[np.ix_(rows, columns)], -Z_LIMIT, Z_LIMIT)
    figure = _figure(max(6.0, 0.22 * columns.size + 3.0), max(4.0, 0.22 * rows.size + 2.0))
    axes = figure.add_subplot()
    image = axes.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-Z_LIMIT, vmax=Z_LIMIT, aspect="auto",
                        interpolation="nearest")
    axes.set_facecolor("0.85")
    marked = np.argwhere(tests.call[np.ix_(rows, columns)] != 0)
    if marked.size:
        axes.scatter(marked[:, 1], marked[:, 0], s=4, color="black")
    axes.set_xticks(range(columns.size), [_short(dataset.genes[c]) for c in columns], rotation=90, fontsize=6)
    axes.set_yticks(range(rows.size), [_short(str(dataset.combos["combo"].iloc[r])) for r in rows], fontsize=6)
    figure.colorbar(image, ax=axes, label=f"z (clipped at ±{Z_LIMIT:g}; grey: untested)")
    axes.set_title(f"Interactions vs {result.expectation.name}: top combinations x top genes (dot: called at "
                   f"FDR {tests.fdr:g})", fontsize=9)
    figure.tight_layout()
    return figure


def scatter_figure(result: InteractionResult, n_combos: int) -> Figure:
    tests, dataset = result.tests, result.dataset
    rows = ranked_combinations(tests, n_combos)
    n_columns = min(3, rows.size)
    n_rows = int(np.ceil(rows.size / n_columns))
    figure = _figure(3.4 * n_columns, 3.2 * n_rows)
    for panel, row in enumerate(rows):
        axes = figure.add_subplot(n_rows, n_columns, panel + 1)
        genes = tests.tested[row]
        expected, observed, call = tests.expected[row, genes], tests.observed[row, genes], tests.call[row, genes]
        axes.scatter(expected[call == 0], observed[call == 0], s=3, color="0.6", label="none", rasterized=True)
        for code, colour in CALL_COLOURS.items():
            chosen = call == code
            name = "synergy" if code == SYNERGY else "buffering"
            axes.scatter(expected[chosen], observed[chosen], s=6, color=colour, label=f"{name} ({int(chosen.sum())})")
        low, high = float(np.min([expected.min(), observed.min()])), float(np.max([expected.max(), observed.max()]))
        axes.plot([low, high], [low, high], color="black", lw=0.8, ls="--")
        axes.set_title(_short(str(dataset.combos["combo"].iloc[row])), fontsize=8)
        axes.set_xlabel(f"expected ({result.expectation.name})", fontsize=7)
        axes.set_ylabel("observed", fontsize=7)
        axes.tick_params(labelsize=6)
        axes.legend(fontsize=6, loc="upper left", markerscale=2)
    figure.tight_layout()
    return figure


def map_figure(combinations: pd.DataFrame) -> Figure:
    figure = _figure(11.0, 4.6)
    sizes = 12 + 60 * np.sqrt(combinations["n_called"].to_numpy() / max(int(combinations["n_called"].max()), 1))
    for panel, (x, y) in enumerate((("magnitude", "model_fit"), ("dominance", "equality_of_contribution"))):
        axes = figure.add_subplot(1, 2, panel + 1)
        for name in CLASSES:
            chosen = (combinations["class"] == name).to_numpy()
            if chosen.any():
                axes.scatter(combinations[x][chosen], combinations[y][chosen], s=sizes[chosen], alpha=0.7,
                             color=CLASS_COLOURS[name], label=f"{name} ({int(chosen.sum())})")
        axes.set(xlabel=x.replace("_", " "), ylabel=y.replace("_", " "))
        if panel == 0:
            axes.axvline(np.sqrt(2.0), color="black", lw=0.8, ls=":")
            axes.legend(fontsize=7)
    figure.suptitle("Combinations by their Norman et al. 2019 summaries (size: number of calls; dotted: additive "
                    "magnitude sqrt 2)", fontsize=9)
    figure.tight_layout()
    return figure


def p_value_figure(tests: EntryTests) -> Figure:
    figure = _figure(5.5, 3.8)
    axes = figure.add_subplot()
    p_values = tests.p[tests.tested]
    axes.hist(p_values, bins=50, range=(0.0, 1.0), color="tab:grey")
    axes.axhline(p_values.size / 50, color="black", lw=0.8, ls="--", label="uniform (no interaction anywhere)")
    axes.set(xlabel="p-value", ylabel="entries")
    axes.legend(fontsize=7)
    axes.set_title(f"p-values of {p_values.size} tested entries", fontsize=9)
    figure.tight_layout()
    return figure


def make_figures(result: InteractionResult, out_dir: Path, settings: PlotSettings) -> list[Path]:
    """The four figures into out_dir/plots/; their paths."""
    folder = out_dir / "plots"
    folder.mkdir(parents=True, exist_ok=True)
    figures = {
        "heatmap.png": heatmap_figure(result, settings.heatmap_combos, settings.heatmap_genes),
        "scatter.png": scatter_figure(result, settings.scatter_combos),
        "map.png": map_figure(result.combinations),
        "p_values.png": p_value_figure(result.tests),
    }
    paths = []
    for name, figure in figures.items():
        figure.savefig(folder / name, format="png")
        paths.append(folder / name)
    return paths
