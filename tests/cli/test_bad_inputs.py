"""Bad inputs to every console command: one stderr line naming the problem, exit 2, no traceback, earlier
outputs untouched, no MLflow run left RUNNING (and, where validation comes first, none created at all).

The commands run in-process (their console entry with a patched sys.argv); a few run as real console scripts.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from combomap.data.pairs import PairBatch
from combomap.stacking.backends import StackerSettings, make_backend
from combomap.stacking.features import build_features, measured_rows
from combomap.stacking.final_model import StackedModel
from combomap.stacking.oof import symmetric_net_prediction
from tests.conftest import random_dataset
from tests.stacking.helpers import random_portable
from tests.mlflow_template import run_statuses

FEATURES = ["net_pred", "d1", "d2", "v1", "v2"]
TINY = "data.preset=tiny"
SIM_LIBRARY = ["library=simulated", "library.preset=tiny", "library.n_drugs=6"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two small saved stacked models (xgboost and lightgbm stackers, two random fold nets each)."""
    data = random_dataset(12, 16, seed=0)
    nets = [random_portable(data.genes, seed=s) for s in (1, 2)]
    pairs = PairBatch.from_dataset(data)
    net_pred = symmetric_net_prediction(nets[0], pairs)
    rows = measured_rows(data.combo_effect)
    features = build_features(FEATURES, pairs, net_pred=net_pred, rows=rows)
    root = tmp_path_factory.mktemp("models")
    saved = {}
    for backend in ("xgboost", "lightgbm"):
        settings = StackerSettings.original(name=backend, max_depth=3, n_rounds=3, n_threads=1)
        stacker = make_backend(settings).fit(features, data.combo_effect.reshape(-1)[rows], feature_names=FEATURES)
        saved[backend] = StackedModel(stacker=stacker, features=FEATURES, genes=data.genes, nets=nets).save(root / backend)
    return saved


# --- damaged copies of a saved model -------------------------------------------------------------------------


def _copy_model(models: dict[str, Path], tmp: Path, backend: str = "xgboost") -> Path:
    target = tmp / "bad_model"
    shutil.copytree(models[backend], target)
    return target


def _edit_manifest(edit: Callable[[dict], object]) -> Callable[[dict[str, Path], Path], None]:
    """edit(manifest) changes it in place."""
    def setup(models: dict[str, Path], tmp: Path) -> None:
        path = _copy_model(models, tmp) / "manifest.json"
        manifest = json.loads(path.read_text())
        edit(manifest)
        path.write_text(json.dumps(manifest))
    return setup


def _manifest_is(value: object) -> Callable[[dict[str, Path], Path], None]:
    def setup(models: dict[str, Path], tmp: Path) -> None:
        (_copy_model(models, tmp) / "manifest.json").write_text(json.dumps(value))
    return setup


def _truncate(relative: str, keep: int, backend: str = "xgboost") -> Callable[[dict[str, Path], Path], None]:
    def setup(models: dict[str, Path], tmp: Path) -> None:
        path = _copy_model(models, tmp, backend) / relative
        path.write_bytes(path.read_bytes()[:keep])
    return setup


def _random_bytes(relative: str, backend: str = "xgboost") -> Callable[[dict[str, Path], Path], None]:
    def setup(models: dict[str, Path], tmp: Path) -> None:
        (_copy_model(models, tmp, backend) / relative).write_bytes(np.random.default_rng(7).bytes(4000))
    return setup


def _edit_net(edit: Callable[[dict[str, np.ndarray]], None]) -> Callable[[dict[str, Path], Path], None]:
    def setup(models: dict[str, Path], tmp: Path) -> None:
        from safetensors import safe_open
        from safetensors.numpy import load_file, save_file

        path = _copy_model(models, tmp) / "nets" / "fold0.safetensors"
        with safe_open(str(path), framework="np") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(path))
        edit(tensors)
        save_file(tensors, str(path), metadata=metadata)
    return setup


def _nan_weight(tensors: dict[str, np.ndarray]) -> None:
    tensors["weight_1"][3, 2] = np.nan


def _narrow_weight(tensors: dict[str, np.ndarray]) -> None:
    tensors["weight_0"] = np.ascontiguousarray(tensors["weight_0"][:, :5])


def _stacker_outside(models: dict[str, Path], tmp: Path) -> None:
    model = _copy_model(models, tmp)
    outside = tmp / "elsewhere.ubj"
    shutil.move(model / "stacker.ubj", outside)
    (model / "stacker.ubj").symlink_to(outside)


def _no_genes(models: dict[str, Path], tmp: Path) -> None:
    (_copy_model(models, tmp) / "genes.txt").unlink()


# --- bad data files ---------------------------------------------------------------------------------------------


def _tidy_with_y(values: object) -> Callable[[dict[str, Path], Path], None]:
    def setup(models: dict[str, Path], tmp: Path) -> None:
        rng = np.random.default_rng(0)
        rows = [(f"c{c}", f"s{c // 2}", f"a{c}", f"b{c}", f"g{g}") for c in range(8) for g in range(6)]
        table = pd.DataFrame(rows, columns=["combo", "study", "drug1", "drug2", "gene"])
        table["d1"], table["d2"] = rng.normal(size=len(table)), rng.normal(size=len(table))
        table["y"] = values if not callable(values) else values(len(table))
        table.to_parquet(tmp / "data.parquet")
    return setup


def _library_with_bool_effect(models: dict[str, Path], tmp: Path) -> None:
    pd.DataFrame({"drug": ["a", "a", "b", "b"], "gene": ["g1", "g2", "g1", "g2"],
                  "effect": [True, False, True, True]}).to_parquet(tmp / "library.parquet")


def _signature(text: str) -> Callable[[dict[str, Path], Path], None]:
    def setup(models: dict[str, Path], tmp: Path) -> None:
        (tmp / "query.csv").write_text(text)
    return setup


def _a_file(models: dict[str, Path], tmp: Path) -> None:
    (tmp / "a_file").write_text("not a directory\n")


def _read_only_dir(models: dict[str, Path], tmp: Path) -> None:
    (tmp / "read_only").mkdir()
    (tmp / "read_only").chmod(0o555)


# --- the table ------------------------------------------------------------------------------------------------


@dataclass
class Case:
    id: str
    command: str
    args: list[str]
    names: list[str]  # substrings the error line must contain (the key, the value, the file)
    setup: Callable[[dict[str, Path], Path], None] | None = None
    run_dir: bool = True  # False: the case sets hydra.run.dir itself
    may_start_run: bool = False  # the failure comes after the MLflow run started: it must end FAILED
    skip_as_root: bool = False
    patches: dict[str, Callable[..., object]] = field(default_factory=dict)


def _no_space(*args: object, **kwargs: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


PREDICT = ["pairs=[a+b]", *SIM_LIBRARY]
BAD_MODEL = ["model_dir={tmp}/bad_model", *PREDICT]
QUERY_STACKED = ["signature={tmp}/query.csv", "library=simulated", "library.preset=tiny", "library.n_drugs=6",
                 "pairs.model=stacked", "pairs.stacked_model_dir={tmp}/bad_model"]
SIGNATURE = "gene,value\n" + "".join(f"G{g:05d},{(g % 7) - 3}.5\n" for g in range(300))

CASES = [
    # Hydra config errors, raised before the task runs
    *[Case(f"unknown-key-{cmd}", cmd, ["nosuchkey=1"], ["nosuchkey"]) for cmd in
      ("data", "evaluate", "train", "stack", "predict", "query")],
    Case("misspelled-nested-key", "train", ["trainer.max_epoch=3"], ["trainer.max_epoch"]),
    Case("group-not-in-defaults", "train", ["stacker=nonexistent"], ["stacker"]),
    Case("unknown-group-option", "stack", ["stacker=nonexistent"], ["stacker/nonexistent", "lightgbm, xgboost"]),
    Case("unknown-model-option", "stack", ["model=nope"], ["model/nope"]),
    Case("unknown-data-option", "evaluate", ["data=nope"], ["data/nope"]),
    Case("override-grammar", "train", ["datamodule.batch_size=[1"], ["[1"]),
    Case("null-config-group", "stack", ["library=null"], ["~library"]),  # Hydra's own ValueError, not a HydraException
    Case("missing-model-dir", "predict", ["pairs=[a+b]"], ["model_dir"]),
    Case("missing-out", "data", [], ["out"]),
    Case("missing-signature", "query", [], ["signature"]),
    Case("multirun-bad-trial", "train", ["-m", "trainer.max_epochs=abc", "hydra.sweep.dir={tmp}/sweep"],
         ["trainer.max_epochs", "'abc'"]),
    # settings, checked before the data loads
    Case("max-epochs-text", "train", ["trainer.max_epochs=abc"], ["trainer.max_epochs", "'abc'"]),
    Case("max-epochs-negative", "train", ["trainer.max_epochs=-5"], ["trainer.max_epochs", "-5"]),
    Case("max-epochs-fraction", "train", ["trainer.max_epochs=2.5"], ["trainer.max_epochs", "2.5"]),
    Case("seed-text-train", "train", ["seed=abc"], ["seed", "'abc'"]),
    Case("seed-text-stack", "stack", ["seed=abc"], ["seed", "'abc'"]),
    Case("seed-text-evaluate", "evaluate", ["seed=abc"], ["seed", "'abc'"]),
    Case("val-fraction", "train", ["datamodule.val_fraction=1.5"], ["datamodule.val_fraction", "1.5"]),
    Case("fractions-sum", "train", ["datamodule.val_fraction=0.6", "datamodule.test_fraction=0.5"],
         ["datamodule.val_fraction + datamodule.test_fraction"]),
    Case("batch-size-zero", "train", ["datamodule.batch_size=0"], ["datamodule.batch_size", "0"]),
    Case("split-by", "train", ["datamodule.split_by=nope"], ["datamodule.split_by", "'nope'"]),
    Case("hidden-size", "train", ["model.hidden_sizes=[0]"], ["model.hidden_sizes[0]"]),
    Case("dropout", "train", ["model.input_dropout=1.5"], ["model.input_dropout", "1.5"]),
    Case("model-target", "train", ["model._target_=nope"], ["model._target_", "'nope'"]),
    Case("stack-max-epochs", "stack", ["trainer.max_epochs=-5"], ["trainer.max_epochs", "-5"]),
    Case("stack-batch-size", "stack", ["datamodule.batch_size=0"], ["datamodule.batch_size"]),
    Case("net-folds-negative", "stack", ["stacking.net_folds.n_folds=-3"], ["stacking.net_folds.n_folds", "-3"]),
    Case("cv-folds-one", "stack", ["stacking.cv.n_folds=1"], ["stacking.cv.n_folds", "1"]),
    Case("cv-by", "stack", ["stacking.cv.by=nope"], ["stacking.cv.by", "'nope'"]),
    Case("holdout-fraction", "stack", ["stacking.holdout_fraction=1.5"], ["stacking.holdout_fraction", "1.5"]),
    Case("stacker-max-depth", "stack", ["stacker.max_depth=0"], ["stacker.max_depth", "0"]),
    Case("stacker-rounds", "stack", ["stacker.n_rounds=0"], ["stacker.n_rounds", "0"]),
    Case("stacker-depth-text", "stack", ["stacker.max_depth=abc"], ["stacker.max_depth", "'abc'"]),
    Case("stacker-rates-text", "stack", ["stacker.learning_rates=abc"], ["stacker.learning_rates=abc", "not a ListConfig, list"]),
    Case("stacker-rates-zero", "stack", ["stacker.learning_rates=[0.1,0]"], ["stacker.learning_rates", "positive rates"]),
    Case("stacker-unknown-key", "stack", ["+stacker.colsample=0.5"], ["colsample", "stacker.params"]),
    Case("data-seed-text", "data", ["out={tmp}/out", "data.seed=abc"], ["data.seed=abc"]),
    Case("data-preset", "data", ["out={tmp}/out", "data.preset=huge"], ["data.preset", "'huge'"]),
    Case("simulator-value-type", "data", ["out={tmp}/out", TINY, "+data.overrides.n_combos=abc"],
         ["overrides.n_combos must be an integer", "'abc'"]),
    Case("library-missing-dir", "query", ["signature={tmp}/query.csv", "library=npy"], ["library.dir"]),
    Case("export-format", "data", ["out={tmp}/out", "export=library", "export.format=xls"], ["export.format", "'xls'"]),
    Case("export-genes-fraction", "data", ["out={tmp}/out", "export=signature", "export.genes_fraction=0"],
         ["export.genes_fraction", "(0, 1]"]),
    Case("latent-ranks-text", "stack", ["latent.ranks=[abc]"], ["latent.ranks", "abc"]),
    Case("stacking-final", "stack", ["stacking.final=nope"], ["stacking.final", "'nope'"]),
    Case("latent-ranks", "stack", ["latent.ranks=[0]"], ["latent.ranks"]),
    Case("reference", "evaluate", ["reference=nosuchmodel"], ["reference", "'nosuchmodel'"]),
    Case("top-k", "evaluate", ["top_k=[0]"], ["top_k[0]", "0"]),
    Case("plot-model", "evaluate", ["plot_model=nope"], ["plot_model", "'nope'"]),
    Case("predictions-file", "evaluate", ["+predictions.mine={tmp}/none.npy", TINY], ["mine", "none.npy"]),
    Case("top-n-negative", "query", ["signature={tmp}/query.csv", "top_n=-5"], ["top_n", "-5"]),
    Case("top-n-zero", "query", ["signature={tmp}/query.csv", "top_n=0"], ["top_n", "0"]),
    Case("score", "query", ["signature={tmp}/query.csv", "score=nope"], ["score", "'nope'"]),
    Case("direction", "query", ["signature={tmp}/query.csv", "direction=sideways"], ["direction", "'sideways'"]),
    Case("pairs-top-k", "query", ["signature={tmp}/query.csv", "pairs.top_k=0"], ["pairs.top_k", "0"]),
    Case("query-inference", "query", ["signature={tmp}/query.csv", "pairs.inference=bogus"],
         ["pairs.inference", "'bogus'"]),
    Case("predict-inference", "predict", ["model_dir={tmp}/none", "inference=bogus", *PREDICT],
         ["inference", "'bogus'"]),
    Case("predict-format", "predict", ["model_dir={tmp}/none", "output.format=xls", *PREDICT],
         ["output.format", "'xls'"]),
    Case("data-format", "data", ["out={tmp}/out", "format=xls", TINY], ["format", "'xls'"]),
    Case("simulator-value-out-of-range", "stack", [TINY, "+data.overrides.screen_drugs=-3"],
         ["simulator preset 'tiny'", "screen_drugs=-3 must be >= 0"]),
    Case("simulator-combos-out-of-range", "evaluate", [TINY, "+data.overrides.n_combos=-3"],
         ["n_combos=-3 cannot be spread"]),
    # fold counts, checked right after the data loads (before any fold net trains)
    Case("cv-folds-vs-combos", "stack", [TINY, "stacking.cv.n_folds=1000"], ["stacking.cv.n_folds=1000", "12 group"]),
    Case("net-folds-vs-studies", "stack", [TINY, "stacking.net_folds.by=study", "stacking.net_folds.n_folds=1000"],
         ["stacking.net_folds.n_folds=1000", "6 group", "set stacking.net_folds.by=combo"]),
    Case("net-folds-auto-vs-combos", "stack", [TINY, "stacking.net_folds.n_folds=1000"],
         ["stacking.net_folds.n_folds=1000 (by combo)", "12 group", "set fewer stacking.net_folds.n_folds"]),
    Case("cv-folds-by-drug", "stack", [TINY, "stacking.cv.by=drug", "stacking.cv.n_folds=1000"],
         ["stacking.cv.n_folds=1000 (by drug)", "drug(s) cannot fill 1000 folds"]),
    # data files whose values are not numbers
    Case("parquet-y-bool-train", "train", ["data=tidy", "data.path={tmp}/data.parquet"], ["data.parquet", "'y'", "bool"],
         setup=_tidy_with_y(lambda n: np.arange(n) % 2 == 0)),
    Case("parquet-y-timestamp", "evaluate", ["data=tidy", "data.path={tmp}/data.parquet"],
         ["data.parquet", "'y'", "timestamp"], setup=_tidy_with_y(lambda n: pd.date_range("2020-01-01", periods=n))),
    Case("parquet-y-bool-data", "data", ["data=tidy", "data.path={tmp}/data.parquet", "out={tmp}/converted"],
         ["data.parquet", "bool"], setup=_tidy_with_y(lambda n: np.arange(n) % 3 == 0)),
    Case("library-effect-bool", "query", ["signature={tmp}/query.csv", "library=tidy", "library.path={tmp}/library.parquet"],
         ["library.parquet", "'effect'", "bool"],
         setup=lambda m, t: (_signature(SIGNATURE)(m, t), _library_with_bool_effect(m, t))),
    Case("signature-not-csv", "query", ["signature={tmp}/query.csv"], ["query.csv"], setup=_signature("just one\n")),
    Case("signature-inf", "query", ["signature={tmp}/query.csv"], ["query.csv", "'inf'"],
         setup=_signature("gene,value\nG00001,1\nG00002,inf\n")),
    # damaged model directories
    Case("xgboost-truncated", "predict", BAD_MODEL, ["stacker.ubj", "xgboost"], setup=_truncate("stacker.ubj", 100)),
    Case("xgboost-random-bytes", "predict", BAD_MODEL, ["stacker.ubj", "xgboost"], setup=_random_bytes("stacker.ubj")),
    Case("lightgbm-truncated", "predict", BAD_MODEL, ["stacker.txt", "lightgbm"],
         setup=_truncate("stacker.txt", 300, "lightgbm")),
    Case("lightgbm-random-bytes", "predict", BAD_MODEL, ["stacker.txt", "lightgbm"],
         setup=_random_bytes("stacker.txt", "lightgbm")),
    Case("stacker-tree-count", "predict", BAD_MODEL, ["stacker.ubj", "has 3 trees", "says 7"],
         setup=_edit_manifest(lambda m: m["stacker"].update(n_trees=7))),
    Case("net-truncated", "predict", BAD_MODEL, ["fold0.safetensors"], setup=_truncate("nets/fold0.safetensors", 500)),
    Case("net-random-bytes", "predict", BAD_MODEL, ["fold1.safetensors"], setup=_random_bytes("nets/fold1.safetensors")),
    Case("net-wrong-shape", "predict", BAD_MODEL, ["fold0.safetensors", "5 inputs"], setup=_edit_net(_narrow_weight)),
    Case("net-nan-weights", "predict", BAD_MODEL, ["fold0.safetensors", "weight_1", "non-finite"],
         setup=_edit_net(_nan_weight)),
    Case("net-nan-weights-query", "query", QUERY_STACKED, ["fold0.safetensors", "non-finite"],
         setup=lambda m, t: (_signature(SIGNATURE)(m, t), _edit_net(_nan_weight)(m, t))),
    Case("manifest-list", "predict", BAD_MODEL, ["manifest.json", "JSON object"], setup=_manifest_is([1, 2])),
    Case("manifest-list-query", "query", QUERY_STACKED, ["manifest.json", "JSON object"],
         setup=lambda m, t: (_signature(SIGNATURE)(m, t), _manifest_is([])(m, t))),
    Case("manifest-not-json", "predict", BAD_MODEL, ["manifest.json", "unreadable"],
         setup=_truncate("manifest.json", 40)),
    Case("manifest-lacks-nets", "predict", BAD_MODEL, ["manifest.json", "nets"],
         setup=_edit_manifest(lambda m: m.pop("nets"))),
    Case("no-genes-file", "predict", BAD_MODEL, ["genes.txt", "missing"], setup=_no_genes),
    Case("genes-file-escapes", "predict", BAD_MODEL, ["genes_file", "../../../../etc/passwd", "outside"],
         setup=_edit_manifest(lambda m: m.update(genes_file="../../../../etc/passwd"))),
    Case("net-absolute-path", "predict", BAD_MODEL, ["net file", "/etc/passwd", "outside"],
         setup=_edit_manifest(lambda m: m.update(nets=["/etc/passwd"]))),
    Case("stacker-file-escapes", "predict", BAD_MODEL, ["stacker file", "outside"],
         setup=_edit_manifest(lambda m: m["stacker"].update(file="../../../../../etc/hostname"))),
    Case("stacker-symlink-outside", "predict", BAD_MODEL, ["stacker.ubj", "outside"], setup=_stacker_outside),
    Case("n-genes-text", "predict", BAD_MODEL, ["n_genes", "'many'"], setup=_edit_manifest(lambda m: m.update(n_genes="many"))),
    # outputs that cannot be written
    Case("run-dir-under-file", "evaluate", [TINY, "hydra.run.dir={tmp}/a_file/run"], ["a_file/run", "a_file is a file"],
         setup=_a_file, run_dir=False),
    Case("run-dir-under-proc", "train", [TINY, "hydra.run.dir=/proc/combomap-nope/run"], ["/proc/combomap-nope"],
         run_dir=False),
    Case("run-dir-under-sys", "query", ["signature={tmp}/query.csv", "hydra.run.dir=/sys/combomap-nope/run"],
         ["/sys/combomap-nope"], run_dir=False),
    Case("data-out-under-file", "data", [TINY, "out={tmp}/a_file/data", "format=csv"], ["a_file"], setup=_a_file),
    Case("predict-output-under-file", "predict", ["model_dir={models[xgboost]}", "pairs=[D0a+D1a]", "library=npy", "library.dir={tmp}/library", "output.path={tmp}/a_file/p"],
         ["a_file"], setup=lambda m, t: (_a_file(m, t), _write_npy_library(t))),
    Case("run-dir-read-only", "evaluate", [TINY, "hydra.run.dir={tmp}/read_only/run"], ["read_only"],
         setup=_read_only_dir, run_dir=False, skip_as_root=True),
    Case("disk-full", "evaluate", [TINY, "plots=false"], ["No space left on device", "{tmp}/run"], may_start_run=True,
         patches={"combomap.jobs.evaluate.write_results": _no_space}),
]


def _write_npy_library(tmp: Path) -> None:
    """A library on the saved models' genes (G0..G15), drugs D<i>a."""
    from combomap.data.library import DrugLibrary
    from combomap.data.library_io import write_library_npy

    data = random_dataset(12, 16, seed=0)
    write_library_npy(DrugLibrary(effects=np.nan_to_num(data.drug1_effect), genes=data.genes,
                                  drugs=list(data.combos["drug1"]), variances=data.drug1_var), tmp / "library")


def _files(root: Path) -> dict[str, bytes]:
    """Every file under root but the MLflow store and what Hydra writes into a run dir on each run."""
    found = {}
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and "mlruns" not in path.parts and ".hydra" not in path.parts \
                and path.suffix != ".log":
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


def run_command(command: str, args: list[str], monkeypatch: pytest.MonkeyPatch,
                capsys: pytest.CaptureFixture[str]) -> tuple[object, str]:
    """(exit status, stderr) of combomap-<command> run in this process through its console entry."""
    module = importlib.import_module(f"combomap.cli.{command}")
    monkeypatch.setattr(sys, "argv", [f"combomap-{command}", *args])
    capsys.readouterr()
    try:
        module.main()
        status: object = 0
    except SystemExit as stop:
        status = stop.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_ends_in_one_line(case: Case, models: dict[str, Path], tmp_path: Path, mlflow_store: Path,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    if case.skip_as_root and os.geteuid() == 0:
        pytest.skip("root writes into read-only directories")
    if case.setup is not None:
        case.setup(models, tmp_path)
    for target, replacement in case.patches.items():
        monkeypatch.setattr(target, replacement)
    (tmp_path / "run").mkdir(exist_ok=True)
    (tmp_path / "run" / "drugs.csv").write_text("rank,drug,score\n1,earlier,0.5\n")  # an earlier run's output
    (tmp_path / "out").mkdir(exist_ok=True)
    (tmp_path / "out" / "dataset.csv").write_text("earlier output\n")
    before = _files(tmp_path)
    args = [arg.format(tmp=tmp_path, models=models) for arg in case.args]
    if case.run_dir and "-m" not in args:
        args.append(f"hydra.run.dir={tmp_path / 'run'}")

    status, err = run_command(case.command, args, monkeypatch, capsys)

    lines = err.strip().splitlines()
    assert status == 2, err
    assert "Traceback" not in err
    assert lines and lines[-1].startswith(f"combomap-{case.command}: error: "), err
    assert [line for line in lines if line.startswith("combomap-")] == [lines[-1]], err
    if "-m" not in args:  # a multirun also prints Hydra's "Error executing job" for the failed job
        assert len(lines) == 1, err
    for name in case.names:
        assert name.format(tmp=tmp_path) in lines[-1]
    after = _files(tmp_path)
    assert {path: after.get(path) for path in before} == before
    statuses = run_statuses(mlflow_store)
    assert "RUNNING" not in statuses
    if not case.may_start_run:
        assert statuses == []
    else:
        assert statuses == ["FAILED"]


def test_huge_query_values_rank_like_ordinary_ones() -> None:
    """A query near 1e300 used to overflow to all-zero Pearson / cosine scores; every score is scale-free."""
    import warnings

    from combomap.data.simulate import simulate_library
    from tests.query.helpers import ranked

    library = simulate_library(n_drugs=8, preset="tiny", seed=0)
    query = pd.Series(np.random.default_rng(1).normal(size=library.n_genes), index=library.genes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        for score in ("pearson", "cosine", "spearman", "xsum", "wtcs"):
            plain = ranked(query, library, score=score, pairs=False).drugs
            huge = ranked(query * 1e300, library, score=score, pairs=False).drugs
            tiny = ranked(query * 1e-300, library, score=score, pairs=False).drugs
            assert (plain["score"].abs() > 0).any()
            for other in (huge, tiny):
                assert other["drug"].tolist() == plain["drug"].tolist()
                np.testing.assert_allclose(other["score"], plain["score"], rtol=1e-12)


def test_help_and_cfg_still_work(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    status, _ = run_command("train", ["--cfg", "job", "trainer.max_epochs=3"], monkeypatch, capsys)
    assert status == 0
    status, _ = run_command("query", ["--help"], monkeypatch, capsys)
    assert status == 0


SCRIPT_CASES = [
    ("combomap-data", ["out={tmp}/out", "format=xls"], "format"),
    ("combomap-stack", ["stacker=nonexistent"], "stacker/nonexistent"),
    ("combomap-predict", ["model_dir={tmp}/bad_model", "pairs=[a+b]", "library.dir={tmp}/library"], "manifest.json"),
]


@pytest.mark.parametrize("script, args, name", SCRIPT_CASES, ids=[c[0] for c in SCRIPT_CASES])
def test_console_script(script: str, args: list[str], name: str, models: dict[str, Path], tmp_path: Path) -> None:
    _manifest_is([1])(models, tmp_path)
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}
    command = [str(Path(sys.executable).parent / script), *[a.format(tmp=tmp_path) for a in args],
               f"hydra.run.dir={tmp_path / 'run'}"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith(f"{script}: error: ") and name in done.stderr
