"""Degenerate data, command by command: a library with no informative drug, a drug of constant or missing
signature, a constant data set, an empty or self-paired pairs file, a pair list past output.max_entries. Each is
one stderr line and exit 2 with earlier outputs untouched (the table of tests/cli/test_bad_inputs.py), or, where
docs/reliability.md says so, a warning and an output that says what was left out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

from combomap.data.library import DrugLibrary
from combomap.data.library_io import read_library_npy, write_library_npy
from tests.cli.test_bad_inputs import SIGNATURE, Case, _signature, _write_npy_library, models, run_command
from tests.cli.test_bad_inputs import test_bad_input_ends_in_one_line as ends_in_one_line
from tests.conftest import random_dataset

__all__ = ["models"]  # the saved-model fixture, shared with the bad-input table

Setup = Callable[[dict[str, Path], Path], None]
QUERY_GENES = [f"G{g:05d}" for g in range(300)]


def _query_library(fill: Callable[[np.ndarray], None]) -> Setup:
    """The query's signature and an npy library at {tmp}/library on its genes, six drugs, edited by fill(effects)."""
    def setup(models: dict[str, Path], tmp: Path) -> None:
        _signature(SIGNATURE)(models, tmp)
        effects = np.random.default_rng(3).normal(size=(6, len(QUERY_GENES))).astype(np.float32)
        fill(effects)
        write_library_npy(DrugLibrary(effects=effects, genes=QUERY_GENES, drugs=[f"drug{i}" for i in range(6)]),
                          tmp / "library")
    return setup


def _all_zero(effects: np.ndarray) -> None:
    effects[:] = 0


def _constant_per_drug(effects: np.ndarray) -> None:
    effects[:] = np.arange(1, 7, dtype=np.float32)[:, None]


def _all_nan(effects: np.ndarray) -> None:
    effects[:] = np.nan


def _two_blank_drugs(effects: np.ndarray) -> None:
    effects[2] = 0
    effects[4] = np.nan


def _model_library(blank: dict[int, float]) -> Setup:
    """The saved models' npy library at {tmp}/library (drugs D<i>a), drug rows in `blank` set to one value."""
    def setup(models: dict[str, Path], tmp: Path) -> None:
        _write_npy_library(tmp / "base")
        library = read_library_npy(tmp / "base" / "library")
        for row, value in blank.items():
            library.effects[row] = value
        write_library_npy(library, tmp / "library")
    return setup


def _pairs_file(text: str | bytes) -> Setup:
    def setup(models: dict[str, Path], tmp: Path) -> None:
        _write_npy_library(tmp)
        path = tmp / "pairs.csv"
        path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return setup


def _tidy_y(value: float) -> Setup:
    def setup(models: dict[str, Path], tmp: Path) -> None:
        rng = np.random.default_rng(0)
        rows = [(f"c{c}", f"s{c // 2}", f"a{c}", f"b{c}", f"g{g}") for c in range(8) for g in range(6)]
        table = pd.DataFrame(rows, columns=["combo", "study", "drug1", "drug2", "gene"])
        table["d1"], table["d2"] = rng.normal(size=len(table)), rng.normal(size=len(table))
        table["y"] = value
        table.to_parquet(tmp / "data.parquet")
    return setup


QUERY = ["signature={tmp}/query.csv", "library=npy", "library.dir={tmp}/library"]
PREDICT = ["model_dir={models[xgboost]}", "library=npy", "library.dir={tmp}/library"]
TIDY = ["data=tidy", "data.path={tmp}/data.parquet"]
ALL_BLANK = "no drug has an informative signature"

CASES = [
    # libraries: no informative drug at all, or a pair / include naming a drug without one
    Case("query-library-all-zero", "query", QUERY, ["{tmp}/library", ALL_BLANK, "'drug0'"],
         setup=_query_library(_all_zero)),
    Case("query-library-constant-per-drug", "query", QUERY, ["{tmp}/library", ALL_BLANK, "all 6 drugs"],
         setup=_query_library(_constant_per_drug)),
    Case("query-library-all-nan", "query", QUERY, ["{tmp}/library", ALL_BLANK], setup=_query_library(_all_nan)),
    Case("query-include-blank-drug", "query", [*QUERY, "pairs.include=[drug1,drug4]"],
         ["pairs.include", "'drug4'", "{tmp}/library"], setup=_query_library(_two_blank_drugs)),
    Case("predict-library-all-zero", "predict", [*PREDICT, "pairs=[D0a+D1a]"],
         ["{tmp}/library", "'D0a', 'D1a'", "every drug of the library"],
         setup=_model_library(dict.fromkeys(range(12), 0.0))),
    Case("predict-pair-zero-drug", "predict", [*PREDICT, "pairs=[D0a+D1a,D2a+D3a,D1a+D4a]"],
         ["{tmp}/library", "'D1a'", "the 2 pair(s)", "remove them from pairs"], setup=_model_library({1: 0.0})),
    Case("predict-pair-nan-drug", "predict", [*PREDICT, "pairs=[D0a+D3a]"], ["{tmp}/library", "'D3a'", "missing"],
         setup=_model_library({3: np.nan})),
    Case("predict-pair-constant-drug", "predict", [*PREDICT, "pairs=[D5a+D0a]"], ["'D5a'", "constant"],
         setup=_model_library({5: 2.5})),
    # signatures
    Case("query-signature-all-zero", "query", QUERY, ["query.csv", "constant on the 200 genes"],
         setup=lambda m, t: (_query_library(lambda e: None)(m, t),
                             _signature("gene,value\n" + "".join(f"{g},0\n" for g in QUERY_GENES))(m, t))),
    Case("query-signature-all-zero-cosine", "query", [*QUERY, "score=cosine"], ["query.csv", "is 0 on all"],
         setup=lambda m, t: (_query_library(lambda e: None)(m, t),
                             _signature("gene,value\n" + "".join(f"{g},0\n" for g in QUERY_GENES))(m, t))),
    # pairs files
    Case("predict-pairs-file-empty", "predict", [*PREDICT, "pairs={tmp}/pairs.csv"], ["{tmp}/pairs.csv", "is empty"],
         setup=_pairs_file("")),
    Case("predict-pairs-file-header-only", "predict", [*PREDICT, "pairs={tmp}/pairs.csv"],
         ["{tmp}/pairs.csv", "header but no pairs"], setup=_pairs_file("drug1,drug2\n")),
    Case("predict-pairs-file-one-column", "predict", [*PREDICT, "pairs={tmp}/pairs.csv"],
         ["{tmp}/pairs.csv", "drug1, drug2"], setup=_pairs_file("drug1\nD0a\n")),
    Case("predict-pairs-file-binary", "predict", [*PREDICT, "pairs={tmp}/pairs.csv"], ["{tmp}/pairs.csv"],
         setup=_pairs_file(bytes(range(256)) * 4)),
    Case("predict-pairs-file-blank-drug", "predict", [*PREDICT, "pairs={tmp}/pairs.csv"],
         ["{tmp}/pairs.csv", "line 3", "empty drug name"], setup=_pairs_file("drug1,drug2\nD0a,D1a\nD2a,\n")),
    # a drug paired with itself
    Case("predict-self-pair", "predict", [*PREDICT, "pairs=[D0a+D1a,D2a+D2a]"], ["'D2a+D2a'", "itself"],
         setup=lambda m, t: _write_npy_library(t)),
    Case("predict-self-pair-list", "predict", [*PREDICT, "pairs=[[D3a,D3a]]"], ["D3a", "itself"],
         setup=lambda m, t: _write_npy_library(t)),
    Case("predict-self-pair-file", "predict", [*PREDICT, "pairs={tmp}/pairs.csv"],
         ["{tmp}/pairs.csv", "line 3", "'D1a' with itself", "2 such line(s)"],
         setup=_pairs_file("drug1\tdrug2\nD0a\tD1a\nD1a\tD1a\nD2a\tD2a\n")),
    Case("export-self-pair", "data", ["out={tmp}/sig.csv", "export=signature", "export.of=pair", "export.pair=D0a+D0a",
                                      "export.model_dir={models[xgboost]}", "library=npy", "library.dir={tmp}/library"],
         ["'D0a+D0a'", "itself"], setup=lambda m, t: _write_npy_library(t)),
    # pair lists past the output limit
    Case("predict-past-max-entries", "predict", [*PREDICT, "pairs={tmp}/pairs.csv", "output.max_entries=100"],
         ["7 pairs x 16 genes = 112 predicted values", "448 bytes", "output.max_entries=100",
          "output.max_entries=112"],
         setup=_pairs_file("drug1,drug2\n" + "".join(f"D{i}a,D{i + 1}a\n" for i in range(7)))),
    Case("predict-max-entries-zero", "predict", [*PREDICT, "pairs=[D0a+D1a]", "output.max_entries=0"],
         ["output.max_entries", "0"]),
    # data sets whose combination effects are all one value or all missing
    *[Case(f"{command}-y-all-zero", command, TIDY, ["data.parquet", "every measured combination effect is 0"],
           setup=_tidy_y(0.0)) for command in ("stack", "train", "evaluate")],
    *[Case(f"{command}-y-all-nan", command, TIDY, ["data.parquet", "no combination effect is measured"],
           setup=_tidy_y(np.nan)) for command in ("stack", "train", "evaluate")],
    Case("data-y-constant", "data", [*TIDY, "out={tmp}/converted"],
         ["data.parquet", "every measured combination effect is 1.5"], setup=_tidy_y(1.5)),
]
COUNTS: dict[str, int] = {}  # per category (the id's stem), for docs/reliability.md


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_degenerate_input_ends_in_one_line(case: Case, models: dict[str, Path], tmp_path: Path, mlflow_store: Path,
                                           monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    ends_in_one_line(case, models, tmp_path, mlflow_store, monkeypatch, capsys)


def test_query_skips_blank_drugs_and_reports_them(models: dict[str, Path], tmp_path: Path, mlflow_store: Path,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A drug of constant or missing signature is left out of drugs.csv and pairs.csv, named in a warning and in
    query_report.json; the other drugs score as without it."""
    _query_library(_two_blank_drugs)(models, tmp_path)
    args = [a.format(tmp=tmp_path) for a in QUERY] + [f"hydra.run.dir={tmp_path / 'run'}"]
    status, err = run_command("query", args, monkeypatch, capsys)
    assert status == 0, err
    run = tmp_path / "run"
    drugs, pairs = pd.read_csv(run / "drugs.csv"), pd.read_csv(run / "pairs.csv")
    assert sorted(drugs["drug"]) == ["drug0", "drug1", "drug3", "drug5"]
    assert not {"drug2", "drug4"} & (set(pairs["drug1"]) | set(pairs["drug2"]))
    assert len(pairs) == 6 and drugs["score"].notna().all() and pairs["score"].notna().all()
    report = json.loads((run / "query_report.json").read_text())
    assert report["skipped_drugs"] == ["drug2", "drug4"] and report["n_skipped_drugs"] == 2 and report["n_drugs"] == 4
    assert "skipped 2 drug(s) whose values are constant (e.g. all 0) or missing: 'drug2', 'drug4'" in \
        (run / "query.log").read_text()

    library = read_library_npy(tmp_path / "library")
    write_library_npy(library.without(["drug2", "drug4"]), tmp_path / "kept")
    args = [a.format(tmp=tmp_path) for a in QUERY[:2]] + [f"library.dir={tmp_path / 'kept'}",
                                                           f"hydra.run.dir={tmp_path / 'run2'}"]
    assert run_command("query", args, monkeypatch, capsys)[0] == 0
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run2" / "drugs.csv"), drugs)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "run2" / "pairs.csv"), pairs)


def test_predict_logs_size_and_progress(models: dict[str, Path], tmp_path: Path, mlflow_store: Path,
                                        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Before predicting: the pair count and the output's size; while predicting: progress by model chunks."""
    _pairs_file("drug1,drug2\n" + "".join(f"D{i}a,D{j}a\n" for i in range(12) for j in range(i + 1, 12)))({}, tmp_path)
    monkeypatch.setattr("combomap.stacking.predict.MAX_ROWS_PER_CHUNK", 16 * 10)  # 10 pairs per chunk
    args = [a.format(tmp=tmp_path, models=models) for a in PREDICT] + [
        f"pairs={tmp_path / 'pairs.csv'}", f"hydra.run.dir={tmp_path / 'run'}", f"output.path={tmp_path / 'out'}"]
    status, err = run_command("predict", args, monkeypatch, capsys)
    assert status == 0, err
    log = (tmp_path / "run" / "predict.log").read_text()
    assert "predicting 66 pair(s) x 16 genes = 1,056 values: about 4.2 kB as float32" in log
    assert "predicting pairs 66/66 pairs" in log
    assert np.load(tmp_path / "out" / "predictions.npy").shape == (66, 16)


def test_combo_h5ad_with_obs_index_named_combo_converts(tmp_path: Path, mlflow_store: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    dataset = random_dataset(n_combos=6, n_genes=5, seed=1)
    obs = dataset.combos.copy()
    obs.index = obs["combo"]
    layers = {"d1": dataset.drug1_effect, "d2": dataset.drug2_effect, "y": dataset.combo_effect}
    anndata.AnnData(obs=obs, var=pd.DataFrame(index=dataset.genes), layers=layers).write_h5ad(tmp_path / "set.h5ad")
    args = ["data=h5ad", f"data.path={tmp_path / 'set.h5ad'}", f"out={tmp_path / 'converted'}", "format=csv",
            f"hydra.run.dir={tmp_path / 'run'}"]
    status, err = run_command("data", args, monkeypatch, capsys)
    assert status == 0, err
    assert any((tmp_path / "converted").iterdir())
