"""Wall time and results of the default jobs as a user runs them (`combomap-stack`, the main job; `combomap-train`;
`combomap-evaluate`), each in its own process on the default compendium; one results file per job:
benchmarks/results/job_<job>.json.

    python benchmarks/bench_jobs.py                    # all three (several minutes on 2 cores)
    python benchmarks/bench_jobs.py --only stack

README.md and docs quote these figures (markers <!-- fig:job_stack.* -->); measure on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import record  # noqa: E402

JOBS = ("stack", "train", "evaluate")


def run_job(job: str, out: Path) -> float:
    """Wall seconds of `combomap-<job>` with its defaults (its own process, as from the shell)."""
    command = [sys.executable, "-m", f"combomap.cli.{job}", f"hydra.run.dir={out}", "progress=false"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"combomap-{job} failed:\n{done.stderr[-3000:]}")
    return seconds


def table_figures(path: Path) -> dict[str, float | str]:
    """Sign accuracy %, top-20 Pearson delta and top-20 L2 of every model of an ablation / results table, and the
    final model where one is marked."""
    table = pd.read_csv(path).set_index("model")
    figures: dict[str, float | str] = {f"{model}_sign_acc_pct": round(100 * float(table.loc[model, "sign_acc"]), 2)
                                       for model in table.index}
    for metric, key in (("pearson_delta_top20", "pearson20"), ("l2_top20", "l2_20")):
        if metric in table:
            figures.update({f"{model}_{key}": round(float(value), 4) for model, value in table[metric].items()
                            if pd.notna(value)})
    if "final" in table:
        figures["final_model"] = str(table.index[table["final"] == "*"][0])
    return figures


def job_figures(job: str, out: Path) -> dict[str, float | str]:
    if job == "stack":
        return table_figures(out / "ablation.csv")
    if job == "evaluate":
        return table_figures(out / "results.csv")
    metrics = json.loads((out / "metrics.json").read_text())
    return {"fit_s": round(float(metrics["train/fit_seconds"]), 1), "val_sign_acc": round(float(metrics["val/sign_acc"]), 4),
            "val_average_sign_acc": round(float(metrics["val_average/sign_acc"]), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=JOBS, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="combomap-bench-jobs-") as tmp:
        for job in [args.only] if args.only else JOBS:
            out = Path(tmp) / job
            seconds = run_job(job, out)
            print(f"combomap-{job}: {seconds:.1f} s wall", flush=True)
            record(f"job_{job}", {"wall_s": round(seconds, 1), **job_figures(job, out)},
                   f"python benchmarks/bench_jobs.py --only {job}",
                   note=f"combomap-{job} with its defaults in its own process (imports and MLflow included)")


if __name__ == "__main__":
    main()
