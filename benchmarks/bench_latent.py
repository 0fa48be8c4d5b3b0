"""Gene-program (latent) stacking against the average, the original's stacker and the oracle, on many compendia.

    python benchmarks/bench_latent.py                       # the full grid (about 15 min on 2 cores)
    python benchmarks/bench_latent.py --only default        # the default compendium only (model seeds 0, 1, 2)
    python benchmarks/bench_latent.py --only shared         # one compendium basis for every CV fold (the optimism)
    python benchmarks/bench_latent.py --out experiments/reports/latent.md

Every cell is grouped 5-fold CV by combination, exactly as `combomap-stack` computes it (the pipeline is called
in-process with the real configs, no fold nets: their feature sets do not involve the basis), each side by side on
the same folds:
- average: (d1 + d2) / 2, the bar to beat;
- original: the stacker at the original's settings (depth 15, 8 rounds, eta 0.5 -> 0.15, every row) on [d1, d2];
- stack_avg: the regularized default stacker on [d1, d2];
- stack_latent: the regularized default stacker on [d1, d2, p1, p2] with the basis chosen by grouped CV
  (source auto: the simulated library where it covers the data's genes, else the compendium);
- final: what the guard saves (the best of the average and the stacked sets in CV) and its gain;
- oracle: on simulated data, the noise-aware ceiling truth.combo + c (noise1 + noise2); gap = share of the
  average-to-oracle gap closed by stack_latent.
Compendia: the default (data seed 0, model seeds 0-2, basis from the library and from the compendium alone),
other data seeds, the small and tiny presets, and "unseen" compendia in the original npy format (120 combinations
x 1000 genes, other sizes and parameters, read back through the npy loader, no library). Not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from combomap.config.data import data_source
from combomap.data.io import write_npy_dir
from combomap.data.loading import load_dataset_with_truth
from combomap.data.simulate import simulate_compendium
from combomap.paths import CONF_DIR
from combomap.jobs import stack as stack_job
from combomap.stacking import ablation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import record  # noqa: E402  (benchmarks/results.py: the figures the docs quote)

# feature sets merge with the config's: null drops a set (the fold nets are never trained here)
DROP_NET_SETS = [f"stacking.feature_sets.{name}=null" for name in ("vars", "nets", "both", "latent_both")]
LATENT_SETS = DROP_NET_SETS
ORIGINAL = ["experiment=original_stacker", *DROP_NET_SETS[:3], "stacking.final=avg"]
UNSEEN = {"n_combos": 120, "n_studies": 60, "n_genes": 1000, "n_core_genes": 300, "n_programs": 20}


def compose_stack(overrides: list[str], out_dir: Path) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="stack", overrides=[*overrides, f"paths.output_dir={out_dir}", "stacking.plots=false",
                                                       "stacking.save_model=false"])


def run_cell(data_overrides: list[str], model_seed: int, source: str, work: Path) -> dict:
    """One compendium x model seed x basis source: the latent run and the original's stacker on the same folds."""
    started = time.perf_counter()
    common = [*data_overrides, f"seed={model_seed}"]
    cfg = compose_stack([*common, *LATENT_SETS, f"latent.source={source}"], work / "latent")
    dataset, truth = load_dataset_with_truth(data_source(cfg.data))
    result = stack_job.stack(cfg, dataset, work / "latent", library=stack_job.basis_library(cfg, stack_job.build_pipeline(cfg), dataset), truth=truth)
    accuracy = result.table.set_index("model")["sign_acc"]
    original_cfg = compose_stack([*common, *ORIGINAL], work / "original")
    original = stack_job.stack(original_cfg, dataset, work / "original").table.set_index("model")["sign_acc"]
    row = {
        "n_combos": dataset.n_combos, "n_genes": dataset.n_genes, "model_seed": model_seed,
        "basis": result.basis.source.split("(")[0].strip() if result.basis is not None else "none",
        "rank": result.basis.rank if result.basis is not None else 0,
        "average": accuracy["average"], "original": original["stack_avg"], "stack_avg": accuracy["stack_avg"],
        "stack_latent": accuracy.get("stack_latent", np.nan), "final": result.final_model_name,
        "final_gain": accuracy[result.final_model_name] - accuracy["average"],
        "oracle": accuracy.get("oracle", np.nan), "seconds": time.perf_counter() - started,
    }
    row["gap_closed"] = (row["stack_latent"] - row["average"]) / (row["oracle"] - row["average"]) if truth is not None else np.nan
    return row


def singles_ceiling(data_seed: int = 0, model_seed: int = 0) -> dict:
    """How far any per-entry model of the singles can go: the default stacker (same settings and folds as
    stack_latent) given the singles' noise-free effects and their exact measurement noise, which no model has.
    The rest of the gap to the oracle is the combinations' own interactions."""
    from hydra.utils import instantiate

    from combomap.data.folds import assign_folds
    from combomap.data.pairs import PairBatch
    from combomap.stacking.cv import stacker_groups
    from combomap.stacking.features import build_features, measured_rows

    cfg = compose_stack([f"data.seed={data_seed}", f"seed={model_seed}"], Path(tempfile.mkdtemp()))
    dataset, truth = load_dataset_with_truth(data_source(cfg.data))
    noise = (dataset.drug1_effect - truth.drug1) + (dataset.drug2_effect - truth.drug2)
    rows = measured_rows(dataset.combo_effect)
    features = build_features(["d1", "d2", "net_pred"], PairBatch(truth.drug1, truth.drug2), net_pred=noise, rows=rows)
    label = dataset.combo_effect.reshape(-1)[rows]
    folds = assign_folds(stacker_groups(rows, dataset.n_genes, dataset.combos, "combo"), 5, model_seed)
    cv = ablation.stacker_cv(instantiate(cfg.stacker), features, label, folds, ["d1", "d2", "net_pred"], rows // dataset.n_genes,
                             float(cfg.stacking.cv.val_fraction), model_seed)
    hits = np.sign(cv.oof_prediction) == np.sign(label)
    return {"singles_ceiling": float(hits.mean())}


def unseen_npy(seed: int, work: Path, **overrides) -> list[str]:
    """A simulated compendium written in the original's npy format and read back as data=npy (no truth, no library)."""
    data = simulate_compendium("default", seed=seed, **{**UNSEEN, **overrides})
    directory = write_npy_dir(data, work / f"unseen_{seed}_{len(overrides)}")
    return ["data=npy", f"data.dir={directory}"]


def grid(only: str | None, work: Path) -> list[tuple[str, list[str], int, str]]:
    cells = []
    if only in (None, "default"):
        for source in ("auto", "compendium"):
            cells += [("default", [], seed, source) for seed in (0, 1, 2)]
    if only in (None, "shared"):  # the optimism of one compendium basis fit on every arm (latent.refit_per_fold=false)
        cells += [("default, one basis for every fold", ["latent.refit_per_fold=false"], seed, "compendium") for seed in (0, 1, 2)]
        cells += [("unseen npy 120x1000 no signal, one basis for every fold",
                   [*unseen_npy(5, work, effect_scale=0.0), "latent.refit_per_fold=false"], 0, "auto")]
    if only in (None, "robust"):
        cells += [(f"default data seed {s}", [f"data.seed={s}"], 0, "auto") for s in (1, 2)]
        cells += [(f"{preset} data seed {s}", [f"data.preset={preset}", f"data.seed={s}"], 0, "auto")
                  for preset in ("small", "tiny") for s in (0, 1, 2)]
        cells += [(f"unseen npy 120x1000 seed {s}", unseen_npy(s, work), 0, "auto") for s in (0, 1, 2)]
        cells += [("unseen npy 120x1000 weak effects", unseen_npy(3, work, effect_scale=0.6), 0, "auto"),
                  ("unseen npy 120x1000 40 programs", unseen_npy(4, work, n_programs=40), 0, "auto"),
                  ("unseen npy 120x1000 no signal", unseen_npy(5, work, effect_scale=0.0), 0, "auto")]
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["default", "shared", "robust"], default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the tables here (.md; a .csv beside it)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-latent-") as tmp:
        work = Path(tmp)
        for name, overrides, seed, source in grid(args.only, work):
            row = {"compendium": name, "source": source, **run_cell(overrides, seed, source, work / "run")}
            rows.append(row)
            print(f"{name:34s} seed {seed} source {source:10s} basis {row['basis']:26s} rank {row['rank']:2d}  average "
                  f"{row['average']:.4f}  original {row['original']:.4f}  stack_avg {row['stack_avg']:.4f}  stack_latent "
                  f"{row['stack_latent']:.4f}  final {row['final']} ({row['final_gain']:+.4f})  oracle {row['oracle']:.4f}  "
                  f"({row['seconds']:.0f} s)", flush=True)
    if args.only in (None, "default"):
        ceiling = singles_ceiling()
        print(f"ceiling of per-entry models of the singles (default compendium, seed 0; the stacker given the singles' "
              f"true effects and their exact noise): {100 * ceiling['singles_ceiling']:.2f} %", flush=True)
    table = pd.DataFrame(rows)
    percent = ["average", "original", "stack_avg", "stack_latent", "oracle"]
    summary = table.groupby(["compendium", "source"], sort=False).agg(
        **{f"{c}_mean": (c, "mean") for c in percent}, **{f"{c}_sd": (c, "std") for c in ["stack_latent"]},
        final_gain_min=("final_gain", "min"), gap_closed=("gap_closed", "mean"), runs=("final", "size"),
        finals=("final", lambda f: ",".join(sorted(set(f)))),
    ).reset_index()
    lines = ["| compendium | basis source | average | original stacker | stack_avg | stack_latent (sd) | oracle | gap closed | "
             "final (min gain vs average) | runs |", "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in summary.itertuples():
        sd = "" if np.isnan(r.stack_latent_sd) else f" ({100 * r.stack_latent_sd:.2f})"
        oracle = "n/a" if np.isnan(r.oracle_mean) else f"{100 * r.oracle_mean:.2f}"
        gap = "n/a" if np.isnan(r.gap_closed) else f"{r.gap_closed:.2f}"
        lines.append(f"| {r.compendium} | {r.source} | {100 * r.average_mean:.2f} | {100 * r.original_mean:.2f} | "
                     f"{100 * r.stack_avg_mean:.2f} | {100 * r.stack_latent_mean:.2f}{sd} | {oracle} | {gap} | "
                     f"{r.finals} ({100 * r.final_gain_min:+.2f}) | {r.runs} |")
    text = "\n".join(lines)
    print("\nSign accuracy % (grouped 5-fold CV by combination; mean over runs):\n" + text)
    figures = {}
    for r in summary.itertuples():
        key = f"{r.compendium}_{r.source}".replace(" ", "_")
        figures.update({f"{key}_average_pct": round(100 * r.average_mean, 2),
                        f"{key}_stack_latent_pct": round(100 * r.stack_latent_mean, 2),
                        f"{key}_final_gain_min_pct": round(100 * r.final_gain_min, 2)})
        if not np.isnan(r.stack_latent_sd):
            figures[f"{key}_stack_latent_sd_pct"] = round(100 * r.stack_latent_sd, 2)
    record("latent" + (f"_{args.only}" if args.only else ""), figures,
           "python benchmarks/bench_latent.py " + " ".join(sys.argv[1:]))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
        table.to_csv(args.out.with_suffix(".csv"), index=False)


if __name__ == "__main__":
    main()
