"""Refactors must not move a number: run every job on tiny data and fingerprint every output.

    python benchmarks/golden.py OUT                 # -> OUT/manifest.json (about 2 minutes on 2 cores)
    python benchmarks/golden.py --compare A/manifest.json B/manifest.json

Runs combomap-data, -stack (three variants), -train (three), -evaluate, -predict (two), -query (five) and the
ablation driver + report on the tiny compendium, in OUT (COMBOMAP_ROOT=OUT), with the combomap-* commands on PATH
(PYTHONPATH=<tree>/src REPO=<tree> to check another checkout). Fingerprints: npy / safetensors contents, JSON without
volatile keys (run ids, seconds, paths, timestamps), other files byte for byte, and every MLflow metric but time/*
and train/fit_seconds. The compare prints each difference and their count; checkpoints/run.json holds a hash of the
resolved config, so it differs whenever the config layout does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from mlflow.tracking import MlflowClient
from safetensors.numpy import load_file

COMMANDS = [
    "combomap-data data.preset=tiny out=data format=npy",
    "combomap-data export=library export.format=npy data.preset=tiny library.n_drugs=40 out=library",
    "combomap-data data.preset=tiny out=tidy format=csv.gz",
    "combomap-stack experiment=tiny_stack data=npy data.dir=data library=npy library.dir=library stacking.save_predictions=true hydra.run.dir=stack",
    "combomap-stack experiment=tiny_stack data=npy data.dir=data library=npy library.dir=library stacker=lightgbm stacking.inference=mean_net augment=swap_flip stacking.final=both hydra.run.dir=stack_lgb",
    "combomap-stack experiment=tiny_stack data.preset=tiny '~library' stacking.holdout_fraction=0.3 stacking.cv.by=study stacker=xgboost_original hydra.run.dir=stack_hold",
    "combomap-train experiment=quick_mlp data.preset=tiny trainer.max_epochs=3 model.hidden_sizes=[16] hydra.run.dir=train",
    "combomap-train experiment=quick_mlp data=tidy data.path=tidy/dataset.csv.gz trainer.max_epochs=2 model.hidden_sizes=[16] hydra.run.dir=train_tidy",
    "combomap-train experiment=quick_mlp data.preset=tiny trainer.max_epochs=3 model=latent_mlp schedule=cosine augment=swap hydra.run.dir=train_latent",
    "combomap-evaluate data=npy data.dir=data +predictions.stack=stack/predictions/stack_latent.npy +predictions.nets=stack/predictions/nets_oof.npy hydra.run.dir=evaluate",
    "combomap-predict model_dir=stack/model library=npy library.dir=library 'pairs=[drug0001+drug0002,drug0003+drug0004]' hydra.run.dir=predict",
    "combomap-predict model_dir=stack_lgb/model library=npy library.dir=library 'pairs=[drug0001+drug0002,drug0003+drug0004]' hydra.run.dir=predict_lgb",
    "combomap-data export=signature export.of=disease export.seed=3 data.preset=tiny library.n_drugs=40 out=query",
    "combomap-query signature=query/signature.tsv direction=reverse library=npy library.dir=library pairs.model=stacked pairs.stacked_model_dir=stack/model hydra.run.dir=ranked",
    "combomap-query signature=query/signature.tsv direction=reverse library=npy library.dir=library pairs.model=stacked pairs.stacked_model_dir=stack_lgb/model hydra.run.dir=ranked_lgb",
    "combomap-query signature=query/signature.tsv library=npy library.dir=library hydra.run.dir=ranked_avg",
    "combomap-query signature=query/signature.tsv library=npy library.dir=library score=wtcs hydra.run.dir=ranked_wtcs",
    "combomap-query signature=query/signature.tsv library=npy library.dir=library score=xsum hydra.run.dir=ranked_xsum",
    "python {repo}/experiments/ablation.py --augment none flip --seeds 0 --study gold -- experiment=tiny_stack data.preset=tiny '~library'",
]
SKIP_METRICS = ("time/", "system/", "train/fit_seconds")  # wall-clock figures: never the same twice
VOLATILE_KEYS = ("run_id", "seconds", "created", "_dir", "path", "host", "pid", "time", "date")
SKIP_SUFFIXES = (".log", ".png", ".db", ".yaml")  # logs, images (matplotlib metadata), stores, resolved configs


def stable(value: Any) -> Any:
    """A JSON value without what differs between identical runs: volatile keys and absolute paths."""
    if isinstance(value, dict):
        return {key: stable(item) for key, item in value.items() if not any(word in key for word in VOLATILE_KEYS)}
    if isinstance(value, list):
        return [stable(item) for item in value]
    if isinstance(value, str) and os.path.isabs(value):
        return "<path>"
    return value


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def fingerprint(path: Path) -> str:
    """The numbers a file holds (arrays by content), or its bytes."""
    if path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
        return f"npy {array.shape} {array.dtype} {digest(np.ascontiguousarray(array).tobytes())}"
    if path.suffix == ".safetensors":
        tensors = load_file(str(path))
        return "st " + digest(b"".join(name.encode() + np.ascontiguousarray(tensors[name]).tobytes() for name in sorted(tensors)))
    if path.suffix == ".json":
        return "json " + digest(json.dumps(stable(json.loads(path.read_text())), sort_keys=True).encode())
    return digest(path.read_bytes())


def output_key(relative: Path) -> str:
    """The path with a multirun's timestamp folder replaced, so two runs' files pair up."""
    parts = list(relative.parts)
    if "multiruns" in parts:
        parts[parts.index("multiruns") + 1] = "X"
    return "/".join(parts)


def output_files(out: Path) -> dict[str, str]:
    files = {}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out)
        if not path.is_file() or relative.parts[0] in ("mlruns", "log.txt", "manifest.json") or ".hydra" in relative.parts:
            continue
        if path.suffix not in SKIP_SUFFIXES and "mlflow" not in str(relative):
            files[output_key(relative)] = fingerprint(path)
    return files


def run_metrics(store: Path) -> dict[str, dict[str, float]]:
    """experiment|run name|n-th run of that name (by start time) -> its metrics."""
    client = MlflowClient(tracking_uri=f"sqlite:///{store / 'mlflow.db'}")
    metrics: dict[str, dict[str, float]] = {}
    for experiment in client.search_experiments():
        seen: dict[str, int] = {}
        runs = client.search_runs([experiment.experiment_id], max_results=10000)
        for run in sorted(runs, key=lambda run: (run.info.start_time, run.info.run_name)):
            name = f"{experiment.name}|{run.info.run_name}"
            seen[name] = seen.get(name, 0) + 1
            metrics[f"{name}|{seen[name]}"] = {key: value for key, value in run.data.metrics.items()
                                               if not key.startswith(SKIP_METRICS)}
    return metrics


def run_jobs(out: Path, repo: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, COMBOMAP_ROOT=str(out), HYDRA_FULL_ERROR="1")
    with open(out / "log.txt", "w") as log:
        for command in COMMANDS:
            command = command.format(repo=repo)
            print(">>", command, flush=True)
            if subprocess.run(command, shell=True, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT).returncode:
                sys.exit(f"failed: {command} (see {out / 'log.txt'})")
    manifest = {"files": output_files(out), "metrics": run_metrics(out / "mlruns")}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True))
    print(f"{len(manifest['files'])} files, {sum(map(len, manifest['metrics'].values()))} metrics -> {out / 'manifest.json'}")


def _same(a: Any, b: Any) -> bool:
    return a == b or (isinstance(a, float) and isinstance(b, float) and a != a and b != b)  # NaN == NaN here


def compare(first: Path, second: Path) -> int:
    """Print every difference; their count."""
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    differences = 0
    for name in sorted(set(a["files"]) | set(b["files"])):
        if a["files"].get(name) != b["files"].get(name):
            print("FILE", name, a["files"].get(name), b["files"].get(name))
            differences += 1
    for run in sorted(set(a["metrics"]) | set(b["metrics"])):
        left, right = a["metrics"].get(run, {}), b["metrics"].get(run, {})
        for key in sorted(set(left) | set(right)):
            if not _same(left.get(key), right.get(key)):
                print("METRIC", run, key, left.get(key), right.get(key))
                differences += 1
    print("differences:", differences)
    return differences


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", nargs="?", type=Path, help="folder to run the jobs in (-> OUT/manifest.json)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"), help="two manifest.json files")
    args = parser.parse_args()
    if args.compare:
        sys.exit(1 if compare(*args.compare) else 0)
    if args.out is None:
        parser.error("give OUT or --compare A B")
    run_jobs(args.out.resolve(), Path(os.environ.get("REPO", Path(__file__).resolve().parents[1])).resolve())


if __name__ == "__main__":
    main()
