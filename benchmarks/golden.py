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
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
import numpy as np

CMDS = [
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
 "combomap-predict model_dir=stack/model library.source=npy library.dir=library 'pairs=[drug0001+drug0002,drug0003+drug0004]' hydra.run.dir=predict",
 "combomap-predict model_dir=stack_lgb/model library.source=npy library.dir=library 'pairs=[drug0001+drug0002,drug0003+drug0004]' hydra.run.dir=predict_lgb",
 "combomap-data export=signature export.of=disease export.seed=3 data.preset=tiny library.n_drugs=40 out=query",
 "combomap-query signature=query/signature.tsv direction=reverse library=npy library.dir=library pairs.model=stacked pairs.stacked_model_dir=stack/model hydra.run.dir=ranked",
 "combomap-query signature=query/signature.tsv direction=reverse library=npy library.dir=library pairs.model=stacked pairs.stacked_model_dir=stack_lgb/model hydra.run.dir=ranked_lgb",
 "combomap-query signature=query/signature.tsv library=npy library.dir=library hydra.run.dir=ranked_avg",
 "combomap-query signature=query/signature.tsv library=npy library.dir=library score=wtcs hydra.run.dir=ranked_wtcs",
 "combomap-query signature=query/signature.tsv library=npy library.dir=library score=xsum hydra.run.dir=ranked_xsum",
 "python {repo}/experiments/ablation.py --augment none flip --seeds 0 --study gold -- experiment=tiny_stack data.preset=tiny '~library'",
]
SKIP_METRIC_PREFIX = ("time/", "system/", "train/fit_seconds")

VOLATILE = ("run_id", "seconds", "created", "_dir", "path", "host", "pid", "time", "date")

def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items() if not any(t in k for t in VOLATILE)}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    if isinstance(obj, str) and "/work/" in obj:
        return "<path>"
    return obj

def fingerprint(path: Path):
    s = path.suffix
    if s == ".npy":
        a = np.load(path, allow_pickle=False)
        return f"npy {a.shape} {a.dtype} " + hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()[:16]
    if s == ".safetensors":
        from safetensors.numpy import load_file
        t = load_file(str(path))
        return "st " + hashlib.sha256(b"".join(k.encode() + np.ascontiguousarray(t[k]).tobytes() for k in sorted(t))).hexdigest()[:16]
    if s == ".json":
        return "json " + hashlib.sha256(json.dumps(_clean(json.loads(path.read_text())), sort_keys=True).encode()).hexdigest()[:16]
    data = path.read_bytes()
    return hashlib.sha256(data).hexdigest()[:16]

def run(out: Path, repo: Path):
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, COMBOMAP_ROOT=str(out), HYDRA_FULL_ERROR="1")
    log = open(out / "log.txt", "w")
    for cmd in CMDS:
        cmd = cmd.format(repo=repo)
        print(">>", cmd, flush=True)
        r = subprocess.run(cmd, shell=True, cwd=out, env=env, stdout=log, stderr=subprocess.STDOUT)
        if r.returncode != 0:
            print("FAILED", r.returncode, cmd); sys.exit(1)
    files = {}
    for p in sorted(out.rglob("*")):
        rel = str(p.relative_to(out))
        if "multiruns/" in rel:
            parts = rel.split("/"); i = parts.index("multiruns"); parts[i + 1] = "X"; relkey = "/".join(parts)
        else:
            relkey = rel
        if not p.is_file() or rel.startswith(("mlruns", "log.txt", "manifest")) or "/.hydra/" in "/" + rel:
            continue
        if p.suffix in (".log", ".png", ".db", ".yaml") or "mlflow" in rel:
            continue
        files[relkey] = fingerprint(p)
    import mlflow
    mlflow.set_tracking_uri(f"sqlite:///{out}/mlruns/mlflow.db")
    metrics = {}
    from mlflow.tracking import MlflowClient
    c = MlflowClient()
    for exp in c.search_experiments():
        seen = {}
        for r in sorted(c.search_runs([exp.experiment_id], max_results=10000), key=lambda r: (r.info.start_time, r.info.run_name)):
            base = f"{exp.name}|{r.info.run_name}"
            seen[base] = seen.get(base, 0) + 1
            key = f"{base}|{seen[base]}"
            for k, v in r.data.metrics.items():
                if not k.startswith(SKIP_METRIC_PREFIX):
                    metrics.setdefault(key, {})[k] = v
    json.dump({"files": files, "metrics": metrics}, open(out / "manifest.json", "w"), indent=1, sort_keys=True)
    print("files", len(files), "run groups", len(metrics))

def compare(a, b):
    A = json.load(open(a)); B = json.load(open(b)); bad = 0
    for k in sorted(set(A["files"]) | set(B["files"])):
        if A["files"].get(k) != B["files"].get(k):
            print("FILE", k, A["files"].get(k), B["files"].get(k)); bad += 1
    for g in sorted(set(A["metrics"]) | set(B["metrics"])):
        ma, mb = A["metrics"].get(g, {}), B["metrics"].get(g, {})
        for k in sorted(set(ma) | set(mb)):
            if ma.get(k) != mb.get(k) and not (ma.get(k) != ma.get(k) and mb.get(k) != mb.get(k)):
                print("METRIC", g, k, ma.get(k), mb.get(k)); bad += 1
    print("differences:", bad)

if __name__ == "__main__":
    if sys.argv[1] == "--compare":
        compare(sys.argv[2], sys.argv[3])
    else:
        run(Path(sys.argv[1]).resolve(), Path(os.environ.get("REPO", Path(__file__).resolve().parents[1])).resolve())
