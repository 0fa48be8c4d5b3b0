"""The published evaluation figures (ccmap notes section 3), one PNG each.

Uses matplotlib's object API (Figure + Agg canvas), so importing this module never changes the
global backend and it works headless. Every number comes from `combomap.evaluation.metrics`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.stats import gaussian_kde

from combomap.data.dataset import ComboDataset
from combomap.evaluation.metrics import (
    per_combo_error_rate,
    per_combo_spearman,
    sign_accuracy,
    sign_accuracy_by_effect,
)

MAX_HEXBIN_POINTS = 300_000
# Models often coincide (average and additive share every sign): vary the dash so none hides another.
LINE_STYLES = ("-", "--", ":", "-.")


def _figure(width: float = 6.0, height: float = 4.5) -> Figure:
    figure = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, format="png")
    return path


def plot_accuracy_by_effect(truth: np.ndarray, predictions: Mapping[str, np.ndarray], path: Path) -> Path:
    """Sign accuracy against |combination effect| (0.1-wide bins, last one open-ended), one line per model."""
    figure = _figure()
    axes = figure.add_subplot()
    for number, (model, prediction) in enumerate(predictions.items()):
        bins = sign_accuracy_by_effect(truth, prediction)
        filled = bins["n"] > 0
        centre = (bins["effect_lo"] + bins["effect_hi"])[filled] / 2
        style = LINE_STYLES[number % len(LINE_STYLES)]
        axes.plot(centre, bins["sign_acc"][filled], label=model, lw=1.5, ls=style)
    axes.axhline(0.5, color="grey", lw=0.8, ls=":")
    axes.set(xlabel="|combination effect| (bin centre; last bin open-ended)", ylabel="sign accuracy", ylim=(0, 1.02))
    axes.set_title("Sign accuracy by |combination effect|", fontsize=10)
    axes.legend(fontsize=8)
    return _save(figure, path)


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


def plot_density(
    per_model: Mapping[str, np.ndarray], path: Path, xlabel: str, limits: tuple[float, float], title: str = ""
) -> Path:
    """A Gaussian KDE of per-combination values, one curve per model (constant values: a dashed line)."""
    figure = _figure()
    axes = figure.add_subplot()
    grid = np.linspace(*limits, 400)
    for number, (model, values) in enumerate(per_model.items()):
        style = LINE_STYLES[number % len(LINE_STYLES)]
        _plot_density(axes, np.asarray(values, dtype=np.float64), model, grid, style)
    axes.set(xlabel=xlabel, ylabel="density", xlim=limits)
    axes.set_title(title or f"Distribution of the {xlabel}", fontsize=10)
    axes.legend(fontsize=8)
    return _save(figure, path)


def _sample(truth: np.ndarray, prediction: np.ndarray, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    keep = np.flatnonzero(~np.isnan(truth) & ~np.isnan(prediction))
    if keep.size > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(keep, size=max_points, replace=False))
    return truth.ravel()[keep].astype(np.float64), prediction.ravel()[keep].astype(np.float64)


def _colour_bar(figure: Figure, axes, cells) -> None:
    figure.colorbar(cells, ax=axes, label="entries per hexagon (log scale)")


def plot_predicted_vs_actual(
    truth: np.ndarray, prediction: np.ndarray, model: str, path: Path, max_points: int, seed: int, note: str = ""
) -> Path:
    """Hexbin of predicted vs actual with the identity line and the least-squares line of predicted on actual."""
    actual, predicted = _sample(truth, prediction, max_points, seed)
    figure = _figure(6.2, 5.0)
    axes = figure.add_subplot()
    if actual.size:
        _colour_bar(figure, axes, axes.hexbin(actual, predicted, gridsize=60, bins="log", mincnt=1, cmap="viridis"))
    low, high = np.percentile(np.concatenate([actual, predicted]), [0.1, 99.9]) if actual.size else (-1.0, 1.0)
    line = np.array([low, high])
    axes.plot(line, line, color="black", lw=1, ls="--", label="identity")
    if actual.size >= 2 and np.ptp(actual) > 0:
        slope, intercept = np.polyfit(actual, predicted, 1)
        axes.plot(line, slope * line + intercept, color="red", lw=1.2, label=f"fit: {slope:.2f} x + {intercept:.2f}")
    axes.set(xlabel="actual combination effect", ylabel=f"predicted ({model})", xlim=(low, high), ylim=(low, high))
    axes.set_title(f"Predicted vs actual: {model}{note} ({actual.size} entries)", fontsize=9)
    axes.legend(fontsize=8, loc="upper left")
    return _save(figure, path)


def plot_residuals(
    truth: np.ndarray, prediction: np.ndarray, model: str, path: Path, max_points: int, seed: int, note: str = ""
) -> Path:
    """Hexbin of the residual (actual - predicted) against the prediction."""
    actual, predicted = _sample(truth, prediction, max_points, seed)
    figure = _figure(6.2, 4.5)
    axes = figure.add_subplot()
    if actual.size:
        _colour_bar(figure, axes, axes.hexbin(predicted, actual - predicted, gridsize=60, bins="log", mincnt=1, cmap="viridis"))
    axes.axhline(0.0, color="black", lw=1, ls="--")
    axes.set(xlabel=f"predicted ({model})", ylabel="actual - predicted")
    axes.set_title(f"Residuals: {model}{note}", fontsize=9)
    return _save(figure, path)


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
    scatter_path = out_dir / f"pred_vs_actual_{hexbin_model}.png"
    residual_path = out_dir / f"residuals_{hexbin_model}.png"
    return [
        plot_accuracy_by_effect(truth, predictions, out_dir / "accuracy_by_effect.png"),
        plot_density(error_rates, out_dir / "combo_error_density.png", "per-combination error rate", (0.0, 1.0)),
        plot_density(spearman, out_dir / "combo_spearman_density.png", "per-combination Spearman", (-1.0, 1.0)),
        plot_predicted_vs_actual(truth, best, hexbin_model, scatter_path, max_points, seed, note),
        plot_residuals(truth, best, hexbin_model, residual_path, max_points, seed, note),
    ]
