"""Ablation report: augmentation x stacking feature set, mean ± sd over seeds, read back from MLflow.

    python experiments/ablation_report.py                          # study "ablation" in the project store
    python experiments/ablation_report.py --metric spearman_median
    python experiments/ablation_report.py --tracking-uri sqlite:////abs/path/mlflow.db --out /tmp/reports

Reads the FINISHED runs of experiment combomap-stack tagged sweep_study=<study> (the newest run per
augment x seed cell) and each run's table (artifact ablation.csv, column <metric>); writes into experiments/reports/:
  ablation_<study>_<metric>.md   the table (percent for sign_acc), one row per augmentation, cells mean ± sd
  ablation_<study>_<metric>.csv  augment, model, feature_set, mean, sd, n (full precision)
  ablation_<study>_<metric>_runs.csv  every (run, model) value the table is made of
  ablation_<study>_<metric>.png  mean ± sd per model, one marker per augmentation
and logs the same files, the cell means/sds as metrics and the source run ids as its own MLflow run
(experiment combomap-reports, tag report_of=<study>).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import mlflow

from combomap.errors import UserError
from combomap.evaluation.plots import ablation_figure
from combomap.reports.ablation import ablation_long, ablation_summary, report_metrics, summary_markdown, summary_table
from combomap.tracking import STORE_ENV, configure, ensure_experiment, load_runs, log_metrics, store_uri

REPORTS_DIR = Path(__file__).resolve().parent / "reports"  # experiments/reports of this checkout
REPORT_EXPERIMENT = "combomap-reports"
PERCENT_METRICS = ("sign_acc", "direction_top20", "direction_top200", "direction_top1000")


def build_report(
    study: str = "ablation",
    metric: str = "sign_acc",
    experiment: str = "combomap-stack",
    tracking_uri: str | None = None,
    out_dir: Path | str = REPORTS_DIR,
    log_to_mlflow: bool = True,
) -> dict[str, Path]:
    """Read the study's runs, write the table/plot files, log them as a report run; returns the files."""
    uri = store_uri(tracking_uri)
    runs = load_runs(experiment, f"tags.sweep_study = '{study}'", tracking_uri=uri)
    if runs.empty:
        raise SystemExit(f"no finished runs tagged sweep_study={study!r} in experiment {experiment!r} of {uri}")
    long = ablation_long(runs, metric=metric, tracking_uri=uri)
    summary = ablation_summary(long)
    scale = 100.0 if metric in PERCENT_METRICS else 1.0
    table = summary_table(summary, scale=scale, digits=2 if scale == 100 else 4)

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"ablation_{study}_{metric}"
    files = {
        "markdown": out_dir / f"{stem}.md",
        "csv": out_dir / f"{stem}.csv",
        "runs": out_dir / f"{stem}_runs.csv",
        "plot": out_dir / f"{stem}.png",
    }
    unit = " (%)" if scale == 100 else ""
    header = (
        f"# Ablation `{study}`: {metric}{unit}, mean ± sd over seeds\n\n"
        f"{long['run_id'].nunique()} runs of experiment `{experiment}`, seeds {', '.join(sorted(long['seed'].unique()))}; "
        "columns: baselines (and the oracle ceiling on simulated data), out-of-fold nets (nets_oof), the stacker's "
        "feature sets (avg, +vars, +nets, +both, +latent, +latent_both by default).\n\n"
    )
    files["markdown"].write_text(header + summary_markdown(table))
    summary.to_csv(files["csv"], index=False)
    long.to_csv(files["runs"], index=False)
    ablation_figure(summary, metric=metric, scale=scale).savefig(files["plot"], format="png")
    print(header + summary_markdown(table))

    if log_to_mlflow:
        configure(uri)
        experiment_id = ensure_experiment(REPORT_EXPERIMENT)
        tags = {"report": "ablation", "report_of": study, "source_experiment": experiment}
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"ablation-report-{study}-{metric}", tags=tags):
            mlflow.log_params({"study": study, "metric": metric, "n_runs": long["run_id"].nunique(),
                               "n_seeds": long["seed"].nunique()})  # fmt: skip
            mlflow.log_text("\n".join(sorted(long["run_id"].unique())) + "\n", "source_run_ids.txt")
            log_metrics(report_metrics(summary))
            for path in files.values():
                mlflow.log_artifact(str(path))
    print(f"wrote {', '.join(str(p) for p in files.values())}")
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="ablation", help="tags.sweep_study of the ablation runs")
    parser.add_argument("--metric", default="sign_acc", help="column of the runs' ablation.csv (default sign_acc)")
    parser.add_argument("--experiment", default="combomap-stack")
    parser.add_argument("--tracking-uri", default=None, help=f"default: ${STORE_ENV}, $MLFLOW_TRACKING_URI, ./mlruns")
    parser.add_argument("--out", default=str(REPORTS_DIR), help="output folder (default experiments/reports)")
    parser.add_argument("--no-mlflow", action="store_true", help="do not log the report as an MLflow run")
    args = parser.parse_args(argv)
    try:
        build_report(args.study, args.metric, args.experiment, args.tracking_uri, args.out, not args.no_mlflow)
    except UserError as error:  # a bad store, no runs of the study: one line, exit 2, like the combomap-* commands
        print(f"ablation_report: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
