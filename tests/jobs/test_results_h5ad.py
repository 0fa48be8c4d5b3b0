"""Predictions (combomap-predict) and query rankings (combomap-query) as AnnData .h5ad: the same numbers as the
npy / csv outputs, read back by combomap's own h5ad reader and by anndata; a bad output.format is one line."""

from __future__ import annotations

from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest

import combomap.jobs.predict as predict_job
import combomap.jobs.query as query_job
from combomap.config.check import check_config
from combomap.data.h5ad import pair_names, read_frame, open_h5ad, read_library_h5ad, write_library_h5ad
from combomap.data.library import DrugLibrary
from combomap.data.pairs import PairBatch
from combomap.query.signature import read_signature
from combomap.settings import SettingsError
from combomap.stacking.backends import StackerSettings, make_backend
from combomap.stacking.features import build_features, measured_rows
from combomap.stacking.final_model import StackedModel
from combomap.stacking.oof import symmetric_net_prediction
from tests.conftest import random_dataset
from tests.query.helpers import small_library
from tests.stacking.helpers import random_portable

FEATURES = ["net_pred", "d1", "d2"]
PAIRS = [("D00", "D01"), ("D03", "D02"), ("D00", "D01")]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small saved stacked model (xgboost stacker, one random fold net) on 16 genes."""
    data = random_dataset(12, 16, seed=0)
    net = random_portable(data.genes, seed=1)
    pairs = PairBatch.from_dataset(data)
    rows = measured_rows(data.combo_effect)
    features = build_features(FEATURES, pairs, net_pred=symmetric_net_prediction(net, pairs), rows=rows)
    settings = StackerSettings.original(name="xgboost", max_depth=3, n_rounds=3, n_threads=1)
    stacker = make_backend(settings).fit(features, data.combo_effect.reshape(-1)[rows], feature_names=FEATURES)
    return StackedModel(stacker=stacker, features=FEATURES, genes=data.genes, nets=[net]).save(
        tmp_path_factory.mktemp("model") / "model")


def _library(genes: list[str]) -> DrugLibrary:
    rng = np.random.default_rng(5)
    effects = rng.normal(size=(5, len(genes))).astype(np.float32)
    variances = rng.uniform(0.1, 1.0, size=effects.shape).astype(np.float32)
    return DrugLibrary(effects=effects, genes=list(reversed(genes)), drugs=[f"D{i:02d}" for i in range(5)],
                       variances=variances, source="test")


def test_predictions_as_h5ad_are_the_npy_predictions(compose_cfg, model_dir: Path, tmp_path: Path) -> None:
    genes = StackedModel.load(model_dir).genes
    library_path = write_library_h5ad(_library(genes), tmp_path / "library.h5ad")
    spec = "[" + ",".join(f"{a}+{b}" for a, b in PAIRS) + "]"
    common = [f"model_dir={model_dir}", "library=h5ad", f"library.path={library_path}", f"pairs={spec}"]
    npy = predict_job.run(compose_cfg("predict", [*common, f"output.path={tmp_path}/npy/predictions"]))
    expected = np.load(npy[0], allow_pickle=False)
    h5ad = ["output.format=h5ad", f"output.path={tmp_path}/h5/predictions"]
    files = predict_job.run(compose_cfg("predict", [*common, *h5ad]))

    assert files == [tmp_path / "h5" / "predictions.h5ad"]
    back = read_library_h5ad(files[0])
    assert back.drugs == ["D00+D01", "D03+D02", "D00+D01-1"] and back.genes == list(genes)
    np.testing.assert_array_equal(back.effects, expected)
    adata = anndata.read_h5ad(files[0])
    assert adata.shape == (3, len(genes)) and adata.X.dtype == np.float32
    np.testing.assert_array_equal(adata.X, expected)
    assert adata.obs["drug1"].astype(str).tolist() == ["D00", "D03", "D00"]
    assert adata.obs["drug2"].astype(str).tolist() == ["D01", "D02", "D01"]
    assert adata.uns["combomap"]["format"] == "predictions"


def test_query_rankings_as_h5ad_hold_the_csv_tables(compose_cfg, tmp_path: Path) -> None:
    library = small_library(n_drugs=12, n_genes=30, seed=21)
    library_path = write_library_h5ad(library, tmp_path / "library.h5ad")
    values = dict(zip(library.genes, np.nan_to_num(library.effects[4]).tolist()))
    signature = tmp_path / "query.tsv"
    signature.write_text("gene\tvalue\n" + "".join(f"{g}\t{v!r}\n" for g, v in values.items()))
    common = ["library=h5ad", f"library.path={library_path}", f"signature={signature}", "top_n=20", "pairs.top_k=10"]
    csv_cfg = compose_cfg("query", common)
    query_job.run(csv_cfg)
    out = Path(csv_cfg.paths.output_dir)
    drugs_csv, pairs_csv = pd.read_csv(out / "drugs.csv"), pd.read_csv(out / "pairs.csv")
    (out / "drugs.csv").unlink()
    report = query_job.run(compose_cfg("query", [*common, "output.format=h5ad"]))

    assert not (out / "drugs.csv").exists() and (out / "query_report.json").is_file()
    drugs = anndata.read_h5ad(out / "drugs.h5ad")
    assert drugs.obs_names.tolist() == drugs_csv["drug"].tolist() and drugs.obs_names[0] == "D04"
    np.testing.assert_allclose(drugs.obs["score"].to_numpy(), drugs_csv["score"].to_numpy(), rtol=1e-7)
    assert drugs.obs["rank"].tolist() == list(range(1, 13)) and drugs.n_vars == report["n_used"] == 20
    columns = [library.genes.index(g) for g in drugs.var_names]
    given = read_signature(signature, None, None)
    np.testing.assert_array_equal(drugs.var["query_value"].to_numpy(), given.loc[drugs.var_names].to_numpy())
    np.testing.assert_array_equal(drugs.X, library.effects[np.ix_(library.index_of(drugs.obs_names.tolist()), columns)])
    own = read_library_h5ad(out / "drugs.h5ad")
    assert own.drugs == drugs.obs_names.tolist() and own.genes == drugs.var_names.tolist()
    np.testing.assert_array_equal(own.effects, drugs.X)

    with open_h5ad(out / "pairs.h5ad") as handle:
        pairs = read_frame(handle, "obs", out / "pairs.h5ad")
    assert pairs.index.tolist() == pair_names(pairs_csv["drug1"], pairs_csv["drug2"]) and len(pairs) == 10
    for column in ("rank", "score", "drug1_score", "drug2_score"):
        np.testing.assert_allclose(pairs[column].to_numpy(), pairs_csv[column].to_numpy(), rtol=1e-7)
    assert anndata.read_h5ad(out / "pairs.h5ad").uns["combomap"]["format"] == "query_pairs"


@pytest.mark.parametrize(("job", "required"), [
    ("query", ["signature=q.csv"]), ("predict", ["model_dir=m", "pairs=[a+b]", "library.dir=l"])])
def test_a_bad_output_format_is_one_line_naming_the_key(compose_cfg, job: str, required: list[str]) -> None:
    cfg = compose_cfg(job, [*required, "output.format=xlsx"])
    with pytest.raises(SettingsError, match=r"^output.format must be one of .*'h5ad'.*got 'xlsx'$"):
        check_config(job, cfg)
    with pytest.raises(SettingsError, match="^output.format must be one of"):
        (query_job if job == "query" else predict_job).run(cfg)
