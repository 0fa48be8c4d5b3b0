"""What a stacking run writes into its run dir: ablation.csv/.md with the final and guard columns,
accuracy_by_effect.csv, the plots, predictions/, regimes.csv (also appended to ablation.md) and the holdout table."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from combomap.data.dataset import ComboDataset
from combomap.data.pairs import PairBatch
from combomap.evaluation.baselines import AVERAGE, additive, average
from combomap.evaluation.plots import make_plots
from combomap.evaluation.report import (
    FINAL,
    accuracy_by_effect_table,
    formatted,
    results_table,
    to_markdown,
    to_text,
    write_results,
)
from combomap.models.learned import KINDS as LEARNED_KINDS
from combomap.models.learned import LinearComboModel
from combomap.stacking.final_model import StackedModel
from combomap.stacking.oof import FoldNets, mean_net_prediction

log = logging.getLogger(__name__)

GUARD = "guard"
ADDITIVE = "additive"


def write_reports(dataset: ComboDataset, predictions: dict[str, np.ndarray], table: pd.DataFrame, out_dir: Path,
                  timings: dict[str, float], final_model: str, reasons: Mapping[str, str] | None = None, *,
                  plots: bool = True, save_predictions: bool = False) -> tuple[pd.DataFrame, list[Path]]:
    """ablation.csv/.md (the scored `table` with the final and guard columns), accuracy_by_effect.csv, plots/ (one
    line per model but no_change), predictions/ (optional)."""
    table = table.copy()
    table[FINAL] = np.where(table["model"] == final_model, "*", "")
    table[GUARD] = [(reasons or {}).get(model, "") for model in table["model"]]
    files = write_results(table, out_dir, stem="ablation")
    files.append(out_dir / "accuracy_by_effect.csv")
    accuracy_by_effect_table(dataset.combo_effect, predictions).to_csv(files[-1], index=False)
    log.info("ablation on %s (%d combos x %d genes; final model: %s):\n%s", dataset.source, dataset.n_combos,
             dataset.n_genes, final_model, to_text(table))
    if plots:
        start = time.perf_counter()
        files += make_plots(dataset, {k: v for k, v in predictions.items() if k != "no_change"}, out_dir / "plots",
                            hexbin_model=final_model, hexbin_note="the saved final model")
        timings["plots"] = time.perf_counter() - start
    if save_predictions:
        (out_dir / "predictions").mkdir(exist_ok=True)
        for model, prediction in predictions.items():
            np.save(out_dir / "predictions" / f"{model}.npy", prediction)
    return table, files


def write_regimes(regimes: pd.DataFrame, out_dir: Path) -> list[Path]:
    """regimes.csv/.md, and the table appended to ablation.md (the ablation's one page also shows the regimes)."""
    files = write_results(regimes, out_dir, stem="regimes")
    with open(out_dir / "ablation.md", "a") as markdown:
        columns = ["model", "regime", "n_combos", "sign_acc_pct", "pearson_delta_top20", "l2_top20", "n_scored"]
        markdown.write("\n## Split regimes (regimes.csv)\n\nboth_seen: the stacker CV's combinations whose two drugs "
                       "are in training combinations; one_seen / none_seen: a CV whose folds hold out drugs "
                       "(combomap.stacking.cv.drug_folds). final_as_saved: the saved model.\n\n"
                       + to_markdown(formatted(regimes, columns, human_headers=False)) + "\n")
    log.info("split regimes (both_seen: stacking.cv folds; one_seen, none_seen: folds by drug):\n%s", to_text(regimes))
    return files


def score_holdout(model: StackedModel, holdout: ComboDataset, fold_nets: FoldNets | None, final_model: str,
                   out_dir: Path, kept: ComboDataset | None = None, seed: int = 0) -> tuple[pd.DataFrame, list[Path]]:
    """The final model on studies it never saw, with both inference modes (the train/inference mismatch), beside
    the average, the additive model and the learned baselines fit on the kept combinations."""
    held = {AVERAGE: average(holdout.drug1_effect, holdout.drug2_effect)}
    pairs = PairBatch.from_dataset(holdout)
    held["additive"] = additive(holdout.drug1_effect, holdout.drug2_effect)
    if kept is not None:
        held.update({kind: LinearComboModel.fit(kept, kind, seed=seed).predict(pairs)
                     for kind in LEARNED_KINDS if kind != final_model})
    if fold_nets is not None:
        held["nets_mean"] = mean_net_prediction(fold_nets.predictors, pairs)
    if model.uses_nets:
        held[f"{final_model}_per_net"] = model.predict(pairs, inference="per_net")
        held[f"{final_model}_mean_net"] = model.predict(pairs, inference="mean_net")
    elif final_model not in (AVERAGE, ADDITIVE):
        held[final_model] = model.predict(pairs)
    table = results_table(holdout, held, reference=AVERAGE)
    log.info("holdout (%d combos, final model trained without them):\n%s", holdout.n_combos, to_text(table))
    return table, write_results(table, out_dir, stem="holdout")
