"""The results table: every model scored the same way, next to a reference (the average baseline).

Generic on purpose: `combomap-evaluate` writes it as results.csv/.md, the stacking ablation as
ablation.csv/.md. The CSV is the table's one artifact in MLflow (full precision: reports read it back with
`combomap.tracking.artifact_table`); `table_metrics` turns it into the scalar metrics `<model>/<metric>`
(`ablation/<model>/<metric>` for the stack) that the MLflow UI compares across runs. Metric definitions live
in `combomap.evaluation.metrics`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from combomap.data.dataset import ComboDataset
from combomap.evaluation.metrics import TOP_K, prefixed, score, sign_accuracy_by_effect
from combomap.progress import track

GAP_CLOSED = "gap_closed"
FINAL = "final"
GUARD = "guard"  # why the stack's guard chose or excluded each model (combomap.stacking.guard)
REGIME = "regime"  # the split regime of a row of the regimes table (both_seen, one_seen, none_seen)
HEADLINE = ["model", REGIME, "n_combos", "sign_acc_pct", "wrong_genes", "delta_wrong", GAP_CLOSED, "combo_error_median",
            "spearman_median", "pearson_delta_top20", "l2_top20", "n_scored", FINAL, GUARD]
# Human headers for the printed table and results.md; {G} is the gene count, {ref} the reference model.
LABELS = {
    "model": "model",
    "sign_acc_pct": "sign accuracy %",
    "wrong_genes": "wrong genes per {G}",
    "delta_wrong": "delta wrong vs {ref}",
    "combo_error_median": "median combo error rate",
    "spearman_median": "median combo Spearman",
    "n_scored": "entries scored",
    GAP_CLOSED: "gap to oracle closed",
    FINAL: "final",
    GUARD: "guard",
    REGIME: "regime",
    "n_combos": "combos",
    "pearson_delta_top20": "top-20 Pearson delta",
    "l2_top20": "top-20 L2",
}
# Columns that are display helpers or derived from other columns: not logged as scalar metrics.
NOT_METRICS = ("model", "sign_acc_pct", "n_genes", GAP_CLOSED, FINAL, GUARD, REGIME)
PRINTED = ["model", REGIME, "n_combos", "sign_acc_pct", "wrong_genes", "delta_wrong", GAP_CLOSED, "spearman_median",
           "pearson_delta_top20", "l2_top20", FINAL, GUARD]


def delta_column(reference: str) -> str:
    return f"delta_wrong_vs_{reference}"


def _truth_array(dataset_truth: ComboDataset | np.ndarray) -> np.ndarray:
    return dataset_truth.combo_effect if isinstance(dataset_truth, ComboDataset) else np.asarray(dataset_truth)


def results_table(
    dataset_truth: ComboDataset | np.ndarray,
    predictions: Mapping[str, np.ndarray],
    reference: str | None = "average",
    top_k: Iterable[int] = TOP_K,
    ceiling: str | None = None,
    progress: str | None = None,
) -> pd.DataFrame:
    """One row per model (in the given order), all `score` metrics, plus sign_acc_pct and the
    difference in wrong genes per full gene set against `reference` (negative = fewer wrong genes
    than the reference). `reference=None` leaves that column out. With a `ceiling` model among the
    predictions (e.g. the simulator's oracle), `gap_closed` is each model's share of the
    reference-to-ceiling sign-accuracy gap (0 = the reference, 1 = the ceiling). `progress` names the task whose
    progress (one step per model) is reported: scoring many models on a full compendium takes tens of seconds.
    """
    truth = _truth_array(dataset_truth)
    if not predictions:
        raise ValueError("results_table needs at least one model's predictions")
    if reference is not None and reference not in predictions:
        raise ValueError(f"reference model {reference!r} is not among the predictions {list(predictions)}")
    top_k = tuple(int(k) for k in top_k)
    rows = []
    items = predictions.items() if progress is None else track(predictions.items(), progress, unit="model")
    for model, prediction in items:
        metrics = score(truth, prediction, top_k=top_k)
        rows.append({"model": str(model), "sign_acc_pct": 100.0 * metrics["sign_acc"], **metrics})
    table = pd.DataFrame(rows)
    delta = []
    if reference is not None:
        reference_wrong = table.loc[table["model"] == reference, "wrong_genes"].iloc[0]
        table[delta_column(reference)] = table["wrong_genes"] - reference_wrong
        delta = [delta_column(reference)]
    if reference is not None and ceiling is not None and ceiling in predictions:
        by_model = table.set_index("model")["sign_acc"]
        gap = by_model[ceiling] - by_model[reference]
        table[GAP_CLOSED] = (table["sign_acc"] - by_model[reference]) / gap if gap > 0 else np.nan
        delta.append(GAP_CLOSED)
    table["n_genes"] = truth.shape[1]
    headline = ["model", "sign_acc_pct", "wrong_genes", *delta, "combo_error_median", "spearman_median", "n_scored"]
    rest = [c for c in table.columns if c not in headline]
    return table[headline + rest]


def table_metrics(table: pd.DataFrame, prefix: str | None = None) -> dict[str, float]:
    """Every metric column of a results table as {"[<prefix>/]<model>/<metric>": value}: the MLflow scalar names."""
    metrics: dict[str, float] = {}
    for row in table.to_dict(orient="records"):
        values = {column: float(value) for column, value in row.items() if column not in NOT_METRICS}
        metrics.update(prefixed(values, f"{prefix}/{row['model']}" if prefix else str(row["model"])))
    return metrics


def accuracy_by_effect_table(truth: np.ndarray, predictions: Mapping[str, np.ndarray]) -> pd.DataFrame:
    """Sign accuracy per |combination effect| bin, one block of rows per model (accuracy_by_effect.csv)."""
    return pd.concat([sign_accuracy_by_effect(truth, p).assign(model=m) for m, p in predictions.items()])


def _format_value(column: str, value: object) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "n/a"
    number = float(value)
    if column == "sign_acc_pct":
        return f"{number:.2f}"
    if column in ("wrong_genes", "n_scored", "n_genes", "n_combos"):
        return f"{number:.0f}"
    if column.startswith("delta_wrong_vs_"):
        return f"{number:+.0f}"
    if column.startswith("l2_top") or column == GAP_CLOSED:
        return f"{number:.2f}"
    return f"{number:.3f}"


def _header(column: str, table: pd.DataFrame) -> str:
    n_genes = int(table["n_genes"].iloc[0]) if "n_genes" in table else "G"
    if column.startswith("delta_wrong_vs_"):
        return LABELS["delta_wrong"].format(ref=column.removeprefix("delta_wrong_vs_"))
    return LABELS.get(column, column).format(G=n_genes)


def formatted(table: pd.DataFrame, columns: Iterable[str] | None = None, human_headers: bool = True) -> pd.DataFrame:
    """The table as rounded strings (NaN -> 'n/a'), for printing and markdown."""
    columns = [c for c in (columns or table.columns) if c in table.columns]
    return pd.DataFrame(
        {(_header(c, table) if human_headers else c): [_format_value(c, v) for v in table[c]] for c in columns}
    )


def to_text(table: pd.DataFrame) -> str:
    """The headline columns, aligned, for the terminal."""
    columns = [c for c in table.columns if c in PRINTED or c.startswith("delta_wrong_vs_")]
    return formatted(table, columns).to_string(index=False)


def to_markdown(cells: pd.DataFrame, aligned: bool = True) -> str:
    """A GitHub markdown table of the cells as they print (no tabulate dependency); `aligned`: the model
    column left, the others (numbers) right."""
    header = "| " + " | ".join(map(str, cells.columns)) + " |"
    rules = [(":---" if c == "model" else "---:") if aligned else "---" for c in cells.columns]
    body = ["| " + " | ".join(map(str, row)) + " |" for row in cells.itertuples(index=False)]
    return "\n".join([header, "|" + "|".join(rules) + "|", *body])


def write_results(table: pd.DataFrame, out_dir: Path | str, stem: str = "results") -> list[Path]:
    """<stem>.csv (every column, full precision) and <stem>.md (headline table, then the rest, rounded)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"{stem}.csv"
    table.to_csv(csv_path, index=False)
    headline = [c for c in table.columns if c in HEADLINE or c.startswith("delta_wrong_vs_")]
    rest = ["model", *[c for c in table.columns if c not in headline and c != "n_genes"]]
    n_genes = int(table["n_genes"].iloc[0]) if "n_genes" in table else None
    lines = [f"# {stem}", ""]
    if n_genes is not None:
        lines += [f"wrong_genes: wrong signs per {n_genes} genes; delta_wrong_vs_*: negative = fewer wrong genes "
                  "than the reference. Definitions: combomap.evaluation.metrics.", ""]
    lines += [to_markdown(formatted(table, headline, human_headers=False)), ""]
    if len(rest) > 1:
        lines += [to_markdown(formatted(table, rest, human_headers=False)), ""]
    md_path = out_dir / f"{stem}.md"
    md_path.write_text("\n".join(lines))
    return [csv_path, md_path]
