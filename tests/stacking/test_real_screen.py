"""combomap-stack on a real drug-pair screen (the Korkut 2015 panel, tests/data/fixtures/README.md) as a user runs
it: one study, no variances, no library, no grouping override. Then the saved model predicts pairs and serves a
query with the learned per-drug profiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from combomap.data.io import read_tidy
from combomap.data.library import DrugLibrary
from combomap.data.pairs import PairBatch
from combomap.jobs import stack as stack_job
from combomap.models.learned import LinearComboModel
from combomap.query.pair_scoring import iter_pair_blocks
from combomap.query.scores import prepare_query
from combomap.query.stacked import LearnedPairModel, StackedPairModel
from combomap.stacking.backends import StackerSettings, make_backend
from combomap.stacking.features import build_features
from combomap.stacking.final_model import StackedModel
from tests.conftest import compose_config
from tests.query.helpers import ranked

KORKUT = Path(__file__).parents[1] / "data" / "fixtures" / "korkut2015_skmel133_rppa.csv"
FAST = ["trainer.max_epochs=2", "stacker.n_threads=1", "stacking.feature_sets.vars=null",
        "stacking.feature_sets.both=null", "stacking.feature_sets.latent_both=null",
        "stacking.feature_sets.latent_learned=null", "plots=false", "stacking.plots=false"]


@pytest.fixture(scope="module")
def korkut_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("korkut") / "out"
    cfg = compose_config("stack", ["data=tidy", f"data.path={KORKUT}", "~library", *FAST], out)
    headline = stack_job.run(cfg)
    return cfg, headline, Path(cfg.paths.output_dir)


def test_one_screen_runs_as_is_with_regimes_learned_baselines_and_the_guard(korkut_run) -> None:
    cfg, headline, out = korkut_run
    table = pd.read_csv(out / "ablation.csv").fillna({"final": "", "guard": ""}).set_index("model")
    assert {"additive_shift", "interaction", "stack_learned"} <= set(table.index)
    assert {"pearson_delta_top20", "l2_top20", "guard"} <= set(table.columns)
    final = table.index[table["final"] == "*"].tolist()
    assert len(final) == 1 and final[0] in ("interaction", "stack_learned") and table.loc[final[0], "guard"].startswith("chosen")
    final = final[0]
    assert table.loc["stack_avg", "guard"].startswith("excluded: pearson_delta_top20")
    # the bar on this panel (both drugs seen, by combination): +5 points and top-20 Pearson delta >= 0.955
    assert table.loc["average", "sign_acc"] == pytest.approx(0.8435, abs=5e-5)
    for model in ("interaction", final):
        assert table.loc[model, "sign_acc"] >= table.loc["average", "sign_acc"] + 0.05
        assert table.loc[model, "pearson_delta_top20"] >= 0.955 > table.loc["additive", "pearson_delta_top20"]
    assert table.loc[final, "sign_acc"] >= table.loc["interaction", "sign_acc"]  # the residual stack keeps its base
    assert headline == pytest.approx(table.loc[final, "sign_acc"])
    regimes = pd.read_csv(out / "regimes.csv")
    assert set(regimes["regime"]) == {"both_seen", "one_seen", "none_seen"}
    page = (out / "ablation.md").read_text()
    assert "## Split regimes" in page and "| final_as_saved | none_seen |" in page and "| interaction |" in page
    none_seen = regimes[regimes["regime"] == "none_seen"].set_index("model")
    for metric, better in (("sign_acc", max), ("pearson_delta_top20", max), ("l2_top20", min)):
        floor = better(none_seen.loc["average", metric], none_seen.loc["additive", metric])
        value = none_seen.loc[final, metric]
        assert (value <= floor) if metric == "l2_top20" else (value >= floor)
    model = StackedModel.load(out / "model")
    assert model.learned is not None and model.info["cv"]["by"] == "combo" and model.info["net_folds"]["by"] == "combo"


def test_the_saved_linear_model_predicts_and_serves_queries_with_drug_profiles(korkut_run) -> None:
    _, _, out = korkut_run
    model = StackedModel.load(out / "model")
    dataset = read_tidy(KORKUT)
    prediction = model.predict(PairBatch.from_dataset(dataset))
    anonymous = model.predict(PairBatch(dataset.drug1_effect, dataset.drug2_effect))
    assert not np.allclose(prediction, anonymous)  # the names select the learned profiles
    # a library of the screen's own singles: the query's pair signatures are the model's predictions
    first = dataset.combos.drop_duplicates("drug1").set_index("drug1")
    drugs = sorted(set(dataset.combos["drug1"]) | set(dataset.combos["drug2"]))
    effects = []
    for drug in drugs:
        rows = np.flatnonzero(dataset.combos["drug1"].to_numpy() == drug)
        effects.append(dataset.drug1_effect[rows[0]] if rows.size else
                       dataset.drug2_effect[np.flatnonzero(dataset.combos["drug2"].to_numpy() == drug)[0]])
    library = DrugLibrary(effects=np.array(effects), genes=list(dataset.genes), drugs=drugs, source="korkut singles")
    assert len(first) <= len(drugs)
    signature = pd.Series(-dataset.combo_effect[0].astype(np.float64), index=dataset.genes)
    result = ranked(signature, library, stacked_model=model, top_n=40, score="pearson", direction="reverse",
                    pair_model="stacked", pairs_top_k=None)
    if model.kind == "linear":
        assert result.report["stacked_model_kind"] == "linear" and result.report["n_drugs_with_profiles"] == len(drugs)
    best = result.pairs.iloc[0]
    assert {best["drug1"], best["drug2"]} == {dataset.combos["drug1"][0], dataset.combos["drug2"][0]}


@pytest.mark.parametrize("unseen", ["model", "additive"])
@pytest.mark.parametrize("kind", ["interaction", "additive_shift", "stacked"])
def test_learned_pair_signatures_equal_the_saved_models_predict(kind: str, unseen: str, tmp_path) -> None:
    """A linear model and a residual stacker on lin_pred, with or without the guard's additive rule for pairs of
    unseen drugs: the query's pair signatures equal the model's predict."""
    dataset = read_tidy(KORKUT)
    if kind == "stacked":
        learned = LinearComboModel.fit(dataset, "interaction")
        names = ["d1", "d2", "lin_pred"]
        pairs = PairBatch.from_dataset(dataset)
        table = build_features(names, pairs, learned_pred=learned.predict(pairs))
        stacker = make_backend(StackerSettings.original(name="xgboost", max_depth=3, n_rounds=5, n_threads=1))
        stacker.fit(table, dataset.combo_effect.reshape(-1) - table[:, 2], feature_names=names)
        model = StackedModel(stacker=stacker, features=names, genes=list(dataset.genes), learned=learned)
    else:
        model = StackedModel.linear(LinearComboModel.fit(dataset, kind))
    model.unseen_pairs = unseen
    model.training_drugs = sorted(set(dataset.combos["drug1"]) | set(dataset.combos["drug2"]))
    model = StackedModel.load(model.save(tmp_path / "m"))
    assert model.unseen_pairs == unseen and len(model.training_drugs) == 12
    drugs = sorted(set(dataset.combos["drug1"]))[:6] + ["unseen"]
    rng = np.random.default_rng(0)
    effects = rng.normal(size=(len(drugs), dataset.n_genes)).astype(np.float32)
    effects[0, :5] = np.nan
    library = DrugLibrary(effects=effects, genes=list(dataset.genes), drugs=drugs)
    prepared = prepare_query(pd.Series(rng.normal(size=dataset.n_genes), index=dataset.genes), library, "pearson",
                             top_n=30, allowed_genes=model.genes)
    if kind == "stacked":
        pair_model = StackedPairModel(model, library, prepared)
        assert pair_model.stacker_predictor == "backend"  # the compiled kernel does not assemble lin_pred
    else:
        pair_model = LearnedPairModel(model, library, prepared)
        assert pair_model.n_seen == (6 if kind == "interaction" else 0)
    for block in iter_pair_blocks(library.n_drugs, None, 8):
        pairs = PairBatch.from_library(library, block.left, block.right)
        full = model.predict(pairs)
        np.testing.assert_allclose(pair_model.signatures(block), full[:, prepared.columns], atol=1e-5)
        both_unseen = (block.left == 6) & (block.right == 6)  # "unseen" is the last drug; pairs are left < right
        assert not both_unseen.any()
    # a pair of two drugs outside the training combinations: d1 + d2 under the additive rule, the model's otherwise
    strangers = PairBatch(effects[:2], effects[2:4], drug1_name=["x1", "x2"], drug2_name=["y1", "y2"])
    plain_sum = np.nan_to_num(effects[:2]) + np.nan_to_num(effects[2:4])
    if unseen == "additive":
        np.testing.assert_allclose(model.predict(strangers), plain_sum, atol=1e-6)
    else:
        assert not np.allclose(model.predict(strangers), plain_sum, atol=1e-3)
    mixed = PairBatch(effects[:1], effects[1:2], drug1_name=[drugs[0]], drug2_name=["y1"])
    assert not np.allclose(model.predict(mixed), np.nan_to_num(effects[:1]) + np.nan_to_num(effects[1:2]), atol=1e-3)
