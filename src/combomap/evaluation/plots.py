"""Every figure of the project: the published evaluation figures (ccmap notes section 3, one PNG each via
`make_plots`) and the reports' ablation and sweep figures (`combomap.reports`, the notebook).

Each `*_figure` function draws one figure from tables or arrays and returns it; callers save or display it.
Uses matplotlib's object API (Figure + Agg canvas), so importing this module never changes the
global backend and it works headless. Every number comes from `combomap.evaluation.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy.stats import gaussian_kde

from combomap.data.dataset import ComboDataset
from combomap.evaluation.metrics import per_combo_error_rate, per_combo_spearman, sign_accuracy
from combomap.evaluation.report import accuracy_by_effect_table

MAX_HEXBIN_POINTS = 300_000
# Models often coincide (average and additive share every sign): vary the dash so none hides another.
LINE_STYLES = ("-", "--", ":", "-.")


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    figure.savefig(path, format="png")
    return path


def accuracy_by_effect_figure(by_effect: pd.DataFrame) -> Figure:
    """Sign accuracy against |combination effect| (bins of `accuracy_by_effect_table`, last one open-ended),
    one line per model; empty bins are left out."""
    figure = _figure()
    axes = figure.add_subplot()
    for number, (model, bins) in enumerate(by_effect.groupby("model", sort=False)):
        bins = bins[bins["n"] > 0]
        style = LINE_STYLES[number % len(LINE_STYLES)]
        axes.plot((bins["effect_lo"] + bins["effect_hi"]) / 2, bins["sign_acc"], label=model, lw=1.5, ls=style)
    axes.axhline(0.5, color="grey", lw=0.8, ls=":")
    axes.set(xlabel="|combination effect| (bin centre; last bin open-ended)", ylabel="sign accuracy", ylim=(0, 1.02))
    axes.set_title("Sign accuracy by |combination effect|", fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _plot_density(axes, values: np.ndarray, label: str, grid: np.ndarray, style: str) -> None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        axes.plot([], [], label=f"{label} (undefined)")
        return
    if values.size < 2 or np.ptp(values) == 0:
        axes.axvline(values[0], label=f"{label} (all {values[0]:.2f})", ls="--", lw=1.2)
        return
    try:
        axes.plot(grid, gaussian_kde(values)(grid), label=label, lw=1.5, ls=style)
    except np.linalg.LinAlgError:
        axes.hist(values, bins=30, density=True, histtype="step", label=label)


def density_figure(
    per_model: Mapping[str, np.ndarray], xlabel: str, limits: tuple[float, float], title: str = ""
) -> Figure:
    """A Gaussian KDE of per-combination values, one curve per model (constant values: a dashed line; no finite
    value: an empty legend entry marked "undefined")."""
    figure = _figure()
    axes = figure.add_subplot()
    grid = np.linspace(*limits, 400)
    for number, (model, values) in enumerate(per_model.items()):
        style = LINE_STYLES[number % len(LINE_STYLES)]
        _plot_density(axes, np.asarray(values, dtype=np.float64), model, grid, style)
    axes.set(xlabel=xlabel, ylabel="density", xlim=limits)
    axes.set_title(title or f"Distribution of the {xlabel}", fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    return figure


def _sample(truth: np.ndarray, prediction: np.ndarray, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    keep = np.flatnonzero(~np.isnan(truth) & ~np.isnan(prediction))
    if keep.size > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(keep, size=max_points, replace=False))
    return truth.ravel()[keep].astype(np.float64), prediction.ravel()[keep].astype(np.float64)


def _hexbin(figure: Figure, axes, x: np.ndarray, y: np.ndarray) -> None:
    """Log-scaled hexagon counts with their colour bar; nothing for no entries."""
    if x.size:
        cells = axes.hexbin(x, y, gridsize=60, bins="log", mincnt=1, cmap="viridis")
        figure.colorbar(cells, ax=axes, label="entries per hexagon (log scale)")


def predicted_vs_actual_figure(
    truth: np.ndarray, prediction: np.ndarray, model: str, max_points: int, seed: int, note: str = ""
) -> Figure:
    """Hexbin of predicted vs actual with the identity line and the least-squares line of predicted on actual."""
    actual, predicted = _sample(truth, prediction, max_points, seed)
    figure = _figure(6.2, 5.0)
    axes = figure.add_subplot()
    _hexbin(figure, axes, actual, predicted)
    low, high = np.percentile(np.concatenate([actual, predicted]), [0.1, 99.9]) if actual.size else (-1.0, 1.0)
    line = np.array([low, high])
    axes.plot(line, line, color="black", lw=1, ls="--", label="identity")
    if actual.size >= 2 and np.ptp(actual) > 0:
        slope, intercept = np.polyfit(actual, predicted, 1)
        axes.plot(line, slope * line + intercept, color="red", lw=1.2, label=f"fit: {slope:.2f} x + {intercept:.2f}")
    axes.set(xlabel="actual combination effect", ylabel=f"predicted ({model})", xlim=(low, high), ylim=(low, high))
    axes.set_title(f"Predicted vs actual: {model}{note} ({actual.size} entries)", fontsize=9)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    return figure


def residuals_figure(
    truth: np.ndarray, prediction: np.ndarray, model: str, max_points: int, seed: int, note: str = ""
) -> Figure:
    """Hexbin of the residual (actual - predicted) against the prediction."""
    actual, predicted = _sample(truth, prediction, max_points, seed)
    figure = _figure(6.2, 4.5)
    axes = figure.add_subplot()
    _hexbin(figure, axes, predicted, actual - predicted)
    axes.axhline(0.0, color="black", lw=1, ls="--")
    axes.set(xlabel=f"predicted ({model})", ylabel="actual - predicted")
    axes.set_title(f"Residuals: {model}{note}", fontsize=9)
    figure.tight_layout()
    return figure


def make_plots(
    truth: ComboDataset | np.ndarray,
    predictions: Mapping[str, np.ndarray],
    out_dir: Path | str,
    hexbin_model: str | None = None,
    max_points: int = MAX_HEXBIN_POINTS,
    seed: int = 0,
    hexbin_note: str | None = None,
) -> list[Path]:
    """Write the five figures into out_dir; hexbins for `hexbin_model` (default: best sign accuracy, which the
    titles say; `hexbin_note` replaces that remark, e.g. "the saved final model").

    Hexbins use a seeded subsample of at most `max_points` measured entries, so they stay quick.
    """
    truth = truth.combo_effect if isinstance(truth, ComboDataset) else np.asarray(truth)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    note = f", {hexbin_note}" if hexbin_note else ""
    if hexbin_model is None:
        hexbin_model = max(predictions, key=lambda name: np.nan_to_num(sign_accuracy(truth, predictions[name]), nan=-1))
        note = note or ", the best sign accuracy here"
    if hexbin_model not in predictions:
        raise ValueError(f"hexbin model {hexbin_model!r} is not among the predictions {list(predictions)}")
    error_rates = {model: per_combo_error_rate(truth, prediction) for model, prediction in predictions.items()}
    spearman = {model: per_combo_spearman(truth, prediction) for model, prediction in predictions.items()}
    best = np.asarray(predictions[hexbin_model])
    figures = {
        "accuracy_by_effect.png": accuracy_by_effect_figure(accuracy_by_effect_table(truth, predictions)),
        "combo_error_density.png": density_figure(error_rates, "per-combination error rate", (0.0, 1.0)),
        "combo_spearman_density.png": density_figure(spearman, "per-combination Spearman", (-1.0, 1.0)),
        f"pred_vs_actual_{hexbin_model}.png": predicted_vs_actual_figure(truth, best, hexbin_model, max_points, seed, note),
        f"residuals_{hexbin_model}.png": residuals_figure(truth, best, hexbin_model, max_points, seed, note),
    }
    return [_save(figure, out_dir / name) for name, figure in figures.items()]


def ablation_figure(summary: pd.DataFrame, metric: str = "sign accuracy", scale: float = 100.0) -> Figure:
    """Mean ± sd over seeds (`combomap.reports.ablation.ablation_summary`): one column per model / feature set,
    one marker per augmentation (dodged). Points, not bars: the differences are small, and a bar's length would
    mislead on a cut axis."""
    figure = _figure(7.0, 4.5)
    axes = figure.add_subplot()
    sets = list(dict.fromkeys(summary["feature_set"]))
    augments = list(dict.fromkeys(summary["augment"]))
    width = 0.7 / max(len(augments), 1)
    markers = ("o", "s", "^", "D", "v", "P")
    for number, augment in enumerate(augments):
        rows = summary[summary["augment"] == augment].set_index("feature_set").reindex(sets)
        x = np.arange(len(sets)) + (number - (len(augments) - 1) / 2) * width
        axes.errorbar(x, scale * rows["mean"], yerr=scale * rows["sd"].fillna(0.0), fmt=markers[number % 6],
                      ms=5, capsize=3, lw=1.2, label=augment)  # fmt: skip
    axes.set_xticks(np.arange(len(sets)), sets)
    axes.grid(axis="y", lw=0.5, alpha=0.5)
    unit = " (%)" if scale == 100 else ""
    axes.set(ylabel=f"{metric}{unit}, mean ± sd over seeds", xlabel="model / stacking feature set")
    axes.legend(title="augmentation", fontsize=8)
    figure.tight_layout()
    return figure


def sweep_figure(trials: pd.DataFrame, objective: str, maximize: bool = True) -> Figure:
    """Objective per trial (dots) and the best so far (line), one colour per study (`combomap.reports.sweeps`)."""
    figure = _figure(7.0, 4.0)
    axes = figure.add_subplot()
    for study, rows in trials.groupby("study", sort=True):
        rows = rows.sort_values("trial")
        best = rows["objective"].cummax() if maximize else rows["objective"].cummin()
        points = axes.plot(rows["trial"], rows["objective"], "o", ms=4, alpha=0.6, label=f"{study}")
        axes.step(rows["trial"], best, where="post", color=points[0].get_color(), lw=1.2)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(xlabel="trial", ylabel=objective)
    axes.legend(fontsize=8, title="study (line: best so far)")
    figure.tight_layout()
    return figure
