"""Disk use of the default Optuna sweep of the MLP (`combomap-train -m hparams_search=mlp_optuna`, 40 trials): the
run dirs (outputs/), the MLflow store (mlruns/ without the study) and the Optuna storage (mlruns/optuna.db), in total
and per trial; benchmarks/results/sweep_disk.json.

    python benchmarks/bench_sweep_disk.py                  # 40 trials, 1 epoch each, a few minutes on 2 cores
    python benchmarks/bench_sweep_disk.py --trials 4 --keep all

Weight size is what matters, and it follows the genes and the hidden sizes, not the rows or the epochs: the data are
the default compendium's 11525 genes with 40 combinations (10 studies), each trial trains one epoch, and the model
sizes are those the search space draws (hidden 512 to 1024: 70 to 141 MB of weights per trial). Disk use is
allocated bytes (as `du`). docs/benchmarks.md quotes the figures (markers <!-- fig:sweep_disk.* -->).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from results import record  # noqa: E402

MB = 1e6
DATA = "++data.overrides={n_combos: 40, n_studies: 10}"


def disk_bytes(path: Path, skip: tuple[Path, ...] = ()) -> int:
    """Allocated bytes of a file or a folder's files (as `du`), leaving out `skip`."""
    if path in skip or not path.exists():
        return 0
    if path.is_file():
        return path.stat().st_blocks * 512
    return sum(disk_bytes(child, skip) for child in path.iterdir())


def run_sweep(root: Path, trials: int, keep: str, epochs: int) -> float:
    """Wall seconds of the sweep run in `root` (its outputs/ and mlruns/ there), as a user runs it."""
    command = [sys.executable, "-m", "combomap.cli.train", "-m", "hparams_search=mlp_optuna", f"trainer.max_epochs={epochs}",
               DATA, "progress=false", f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.keep_weights={keep}"]
    env = {key: value for key, value in os.environ.items() if key not in ("MLFLOW_TRACKING_URI", "COMBOMAP_MLFLOW_URI")}
    env["COMBOMAP_ROOT"] = str(root)
    start = time.perf_counter()
    with open(root / "sweep.log", "w") as log:
        done = subprocess.run(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"the sweep failed; see {root / 'sweep.log'}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--keep", choices=("best", "none", "all"), default="best", help="hydra.sweeper.keep_weights")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=None, help="where to run (default: a temporary folder)")
    args = parser.parse_args()
    root = (args.workdir or Path(tempfile.mkdtemp(prefix="combomap-sweep-disk-"))).resolve()
    root.mkdir(parents=True, exist_ok=True)
    print(f"sweeping in {root}")
    seconds = run_sweep(root, args.trials, args.keep, args.epochs)

    (results_file,) = root.glob("outputs/train/multiruns/*/optimization_results.yaml")
    results = yaml.safe_load(results_file.read_text())
    optuna_db = root / "mlruns" / "optuna.db"
    outputs, mlflow, optuna = disk_bytes(root / "outputs"), disk_bytes(root / "mlruns", (optuna_db,)), disk_bytes(optuna_db)
    weights = sum(disk_bytes(Path(path)) for path in results.get("best_weights") or [])
    total = outputs + mlflow + optuna
    figures = {
        "trials": args.trials, "keep_weights": args.keep, "epochs": args.epochs, "wall_s": round(seconds, 1),
        "total_mb": round(total / MB, 1), "outputs_mb": round(outputs / MB, 1), "mlflow_mb": round(mlflow / MB, 1),
        "optuna_mb": round(optuna / MB, 2), "per_trial_mb": round(total / args.trials / MB, 2),
        "kept_weights_mb": round(weights / MB, 1),
        "per_trial_without_weights_mb": round((total - weights) / args.trials / MB, 2),
        "trials_complete": int((results.get("trials") or {}).get("complete", 0)),
    }  # fmt: skip
    print(figures)
    command = f"python benchmarks/bench_sweep_disk.py --trials {args.trials} --keep {args.keep} --epochs {args.epochs}"
    record("sweep_disk", figures, command,
           note="combomap-train -m hparams_search=mlp_optuna on the default compendium's 11525 genes, 40 combinations, "
                "1 epoch per trial; disk = allocated bytes of outputs/, mlruns/ (MLflow) and mlruns/optuna.db")


if __name__ == "__main__":
    main()
