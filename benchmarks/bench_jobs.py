"""Wall time and results of the default jobs, as a user runs them: `combomap-stack` (the main job) and
`combomap-train`, each in its own process on the default compendium, writing benchmarks/results/jobs.json.

    python benchmarks/bench_jobs.py                    # both jobs (a few minutes on 2 cores)
    python benchmarks/bench_jobs.py --only stack

README.md and docs quote these figures (markers <!-- fig:jobs.* -->); run on a quiet machine before updating them.
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

JOBS = ("stack", "train")


def run_job(job: str, out: Path) -> float:
    """Wall seconds of `combomap-<job>` with its defaults (its own process, as from the shell)."""
    command = [sys.executable, "-m", f"combomap.cli.{job}", f"hydra.run.dir={out}", "progress=false"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"combomap-{job} failed:\n{done.stderr[-3000:]}")
    return seconds


def stack_figures(out: Path, seconds: float) -> dict[str, float | str]:
    table = pd.read_csv(out / "ablation.csv").set_index("model")
    final = str(table.index[table["final"] == "*"][0]) if "final" in table else ""
    figures: dict[str, float | str] = {"stack_wall_s": round(seconds, 1), "stack_final_model": final}
    for model in table.index:
        figures[f"stack_{model}_sign_acc_pct"] = round(100 * float(table.loc[model, "sign_acc"]), 2)
    return figures


def train_figures(out: Path, seconds: float) -> dict[str, float]:
    metrics = json.loads((out / "metrics.json").read_text())
    return {"train_wall_s": round(seconds, 1), "train_fit_s": round(float(metrics["train/fit_seconds"]), 1),
            "train_val_sign_acc": round(float(metrics["val/sign_acc"]), 4),
            "train_val_average_sign_acc": round(float(metrics["val_average/sign_acc"]), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=JOBS, default=None)
    args = parser.parse_args()
    figures: dict[str, float | str] = {}
    with tempfile.TemporaryDirectory(prefix="combomap-bench-jobs-") as tmp:
        for job in [args.only] if args.only else JOBS:
            out = Path(tmp) / job
            seconds = run_job(job, out)
            figures.update(stack_figures(out, seconds) if job == "stack" else train_figures(out, seconds))
            print(f"combomap-{job}: {seconds:.1f} s wall", flush=True)
    command = "python benchmarks/bench_jobs.py" + (f" --only {args.only}" if args.only else "")
    record("jobs", figures, command, note="each job in its own process with its defaults; MLflow store as configured")


if __name__ == "__main__":
    main()
