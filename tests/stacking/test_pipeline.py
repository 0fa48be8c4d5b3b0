"""combomap-stack end to end on the tiny compendium (real fold nets, 1 epoch), then combomap-predict on its model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hydra.utils import instantiate

from combomap.config.base import typed
from combomap.config.data import data_source
from combomap.data.loading import load_dataset_with_truth
from combomap.data.simulate import simulate_library
from combomap.jobs import predict as predict_job
from combomap.jobs import stack as stack_job
from combomap.stacking import pipeline, predict
from combomap.stacking.final_model import StackedModel
from combomap.stacking.settings import StackingSettings

TINY = [
    "data.preset=tiny",
    "model.hidden_sizes=[8]",
    "trainer.max_epochs=1",
    "stacker.max_depth=4",
    "stacker.n_threads=1",
    "stacking.cv.n_folds=3",
]
STACKED = ["stack_avg", "stack_vars", "stack_nets", "stack_both", "stack_latent", "stack_latent_both", "stack_learned",
           "stack_latent_learned"]
LEARNED = ["additive_shift", "interaction"]
MODELS = ["average", "additive", "no_change", "oracle", "nets_oof", *LEARNED, *STACKED]  # simulated: with the oracle
MEASURED_MODELS = [m for m in MODELS if m != "oracle"]


@pytest.mark.parametrize("backend,final,fold_dirs", [("xgboost", "latent_both", False), ("lightgbm", "auto", True)])
def test_stack_writes_ablation_model_and_mlflow_run(compose_cfg, backend: str, final: str, fold_dirs: bool) -> None:
    cfg = compose_cfg("stack", [*TINY, f"stacker={backend}", "stacking.holdout_fraction=0.3", f"stacking.final={final}",
                                f"stacking.save_fold_dirs={fold_dirs}"])
    headline = stack_job.run(cfg)
    out = cfg.paths.output_dir
    assert len(list(Path(out).glob("fold*/mlp.safetensors"))) == (2 if fold_dirs else 0)  # copies only on request
    table = pd.read_csv(f"{out}/ablation.csv", keep_default_na=False)
    assert list(table["model"]) == MODELS
    assert {"sign_acc_pct", "wrong_genes", "delta_wrong_vs_average", "gap_closed", "combo_error_median",
            "spearman_median", "n_scored", "final"} <= set(table.columns)
    by_model = table.set_index("model")
    chosen = by_model.index[by_model["final"] == "*"].tolist()
    assert len(chosen) == 1
    final_model = chosen[0]
    if final == "auto":  # the guard: the best sign accuracy among the candidates that pass its top-k floors
        eligible = by_model.index[by_model["guard"].str.startswith(("eligible", "chosen: best"))].tolist()
        assert by_model.loc[final_model, "guard"].startswith("chosen")
        if eligible:
            assert by_model.loc[final_model, "sign_acc"] == by_model.loc[eligible, "sign_acc"].max()
        else:
            assert final_model == "average"
        excluded = by_model.index[by_model["guard"].str.startswith("excluded")].tolist()
        assert set(excluded) | set(eligible) | {final_model} == {"average", "additive", *LEARNED, *STACKED}
    else:
        assert final_model == f"stack_{final}"
    assert headline == pytest.approx(by_model.loc[final_model, "sign_acc"])
    assert float(by_model.loc["oracle", "gap_closed"]) == 1.0 and float(by_model.loc["average", "gap_closed"]) == 0.0
    markdown = open(f"{out}/ablation.md").read()
    assert all(f"| {model} |" in markdown for model in MODELS)
    holdout = pd.read_csv(f"{out}/holdout.csv")
    model = StackedModel.load(f"{out}/model")
    simple = ["average", "additive", *[kind for kind in LEARNED if kind != final_model], "nets_mean"]
    if model.uses_nets:
        assert list(holdout["model"]) == [*simple, f"{final_model}_per_net", f"{final_model}_mean_net"]
    else:
        assert list(holdout["model"]) == simple + ([final_model] if final_model not in ("average", "additive") else [])
    basis = pd.read_csv(f"{out}/basis_selection.csv")
    assert set(basis["source"]) == {"compendium", "library"}

    runs = mlflow.search_runs(search_all_experiments=True)
    (parent,) = [row for _, row in runs.iterrows() if row["tags.job"] == "stack"]
    assert parent["tags.mlflow.runName"] == f"stack-tiny-{backend}-mlp-s0"
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert sorted(children["tags.mlflow.runName"]) == ["fold0", "fold1"]
    for child in children["run_id"]:
        weights = {a.path for a in mlflow.MlflowClient().list_artifacts(child, "model")}
        assert weights == ({"model/mlp.json", "model/mlp.safetensors"} if fold_dirs else set())
    assert parent["metrics.cv/sign_acc"] == pytest.approx(headline) == parent["metrics.final/cv_sign_acc"]
    assert parent["metrics.final/average_cv_sign_acc"] == pytest.approx(by_model.loc["average", "sign_acc"])
    assert parent["metrics.final_sign_acc"] == parent["metrics.cv/sign_acc"]
    assert parent["metrics.gain_pts"] == pytest.approx(100 * (headline - parent["metrics.average_sign_acc"]))
    assert parent["tags.final.model"] == final_model
    assert parent["metrics.latent/rank"] >= 1 and parent["tags.latent.source"]
    assert parent[f"metrics.ablation/{final_model}/sign_acc"] == pytest.approx(headline)
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent["run_id"])}
    assert {"ablation.csv", "ablation.md", "plots", "basis_selection.csv"} <= artifacts
    assert not {a for a in artifacts if a.startswith("ablation") and a.endswith(".json")}  # the table is logged once
    logged = mlflow.models.get_model_info(f"runs:/{parent['run_id']}/model")  # the final model, as a pyfunc model
    assert logged.flavors["python_function"] and logged.signature.inputs.input_names() == ["drug1", "drug2"]

    # the saved model predicts new pairs from a library, in either drug order, and agrees with itself after loading
    if final_model in ("average", "additive"):
        return
    if model.kind == "linear":
        assert final_model in LEARNED and model.learned.kind == final_model and model.stacker is None
    else:
        assert model.stacker.name == backend and len(model.nets) == (2 if model.uses_nets else 0)
    if final == "latent_both":
        assert model.basis is not None and model.basis.genes == model.genes
    library = simulate_library(n_drugs=12, preset="tiny", seed=0)
    pairs = [(library.drugs[0], library.drugs[1]), (library.drugs[1], library.drugs[0]), (library.drugs[2], library.drugs[5])]
    predicted = predict.predict_pairs(model, library, pairs)
    assert predicted.shape == (3, len(model.genes)) and np.isfinite(predicted).all()
    np.testing.assert_array_equal(predicted[0], predicted[1])


def test_predict_cli_run_writes_npy_and_tidy(compose_cfg, tmp_path) -> None:
    stack_cfg = compose_cfg("stack", [*TINY, "stacking.plots=false", "stacking.feature_sets={avg:[d1,d2],nets:[net_pred,d1,d2]}",
                                      "stacking.final=nets"])
    stack_job.run(stack_cfg)
    model_dir = f"{stack_cfg.paths.output_dir}/model"
    library = ["library=simulated", "library.preset=tiny", "library.n_drugs=10"]
    pairs = simulate_library(n_drugs=10, preset="tiny", seed=0).drugs
    cfg = compose_cfg("predict", [f"model_dir={model_dir}", *library, f"pairs=[{pairs[0]}+{pairs[1]},{pairs[2]}+{pairs[3]}]",
                                  f"output.path={tmp_path}/npy/predictions"])
    files = predict_job.run(cfg)
    values = np.load(files[0], allow_pickle=False)
    assert values.shape == (2, 300)
    assert pd.read_csv(files[1]).values.tolist() == [[pairs[0], pairs[1]], [pairs[2], pairs[3]]]
    cfg = compose_cfg("predict", [f"model_dir={model_dir}", *library, f"pairs=[{pairs[1]}+{pairs[0]}]", "output.format=csv",
                                  f"output.path={tmp_path}/tidy/predictions", "inference=mean_net"])
    tidy = pd.read_csv(predict_job.run(cfg)[0])
    assert list(tidy.columns) == ["drug1", "drug2", "gene", "prediction"] and len(tidy) == 300
    cfg = compose_cfg("predict", [f"model_dir={model_dir}", *library, "pairs=[nodrug+other]"])
    with pytest.raises(ValueError, match="unknown drug"):
        predict_job.run(cfg)


def test_stack_cli_smoke(tmp_path, mlflow_store) -> None:
    command = [sys.executable, "-m", "combomap.cli.stack", *TINY, "stacking.plots=false", "stacking.save_model=false",
               f"hydra.run.dir={tmp_path}/run"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "run" / "ablation.md").is_file()


@pytest.mark.parametrize("source", ["npy", "tidy"])
def test_stack_runs_on_npy_directory_and_tidy_table(compose_cfg, tmp_path, source: str) -> None:
    from combomap.data.io import write_npy_dir, write_tidy
    from combomap.data.simulate import simulate_compendium

    data = simulate_compendium("tiny", seed=1)
    if source == "npy":
        location = ["data=npy", f"data.dir={write_npy_dir(data, tmp_path / 'npy')}"]
    else:
        location = ["data=tidy", f"data.path={write_tidy(data, tmp_path / 'tidy.csv')}"]
    overrides = [o for o in TINY if not o.startswith("data.")]
    cfg = compose_cfg("stack", [*overrides, *location, "stacking.plots=false", "stacking.save_model=false"])
    stack_job.run(cfg)
    table = pd.read_csv(f"{cfg.paths.output_dir}/ablation.csv")
    assert list(table["model"]) == MEASURED_MODELS  # no truth, no oracle
    assert "gap_closed" not in table.columns
    assert table["n_scored"].iloc[0] == np.count_nonzero(~np.isnan(data.combo_effect))


def test_guard_saves_a_simple_model_when_nothing_beats_it_on_data_without_signal(compose_cfg) -> None:
    cfg = compose_cfg("stack", [*TINY, "+data.overrides.effect_scale=0", "stacking.plots=false"])
    result = stack_job.stack(cfg, *_tiny_inputs(cfg))
    table = result.table.set_index("model")
    simple = min(("average", "additive"), key=lambda m: table.loc[m, "l2_top20"])  # they tie on signs: the better L2
    assert result.final_feature_set == simple and result.final_model_name == simple
    assert result.headline == result.cv_sign_acc["average"] == result.cv_sign_acc["additive"]
    model = StackedModel.load(f"{cfg.paths.output_dir}/model")
    assert model.kind == simple and model.stacker is None
    library = simulate_library(n_drugs=6, preset="tiny", seed=0, effect_scale=0)
    predicted = predict.predict_pairs(model, library, [(library.drugs[0], library.drugs[1])])
    weight = 0.5 if simple == "average" else 1.0
    np.testing.assert_allclose(predicted[0], weight * (library.effects[0] + library.effects[1]), rtol=1e-6)


def test_latent_fold_nets_serve_the_stack_and_the_query(compose_cfg, tmp_path) -> None:
    from tests.query.helpers import ranked
    from combomap.query.stacked import load_stacked_model

    cfg = compose_cfg("stack", [*TINY, "model=latent_mlp", "trainer.max_epochs=5", "stacking.plots=false",
                                "stacking.final=latent_both", "latent.ranks=[4,8]", "stacking.regimes=false"])
    result = stack_job.stack(cfg, *_tiny_inputs(cfg))  # no regimes: the stacker serves every pair
    assert type(result.fold_nets.predictors[0]).__name__ == "PortableLatentNet"
    assert result.basis.rank in (4, 8)
    by_model = result.table.set_index("model")["sign_acc"]
    assert by_model["nets_oof"] > by_model["average"] - 0.1  # far above the original MLP's out-of-fold level
    model = load_stacked_model(f"{cfg.paths.output_dir}/model")
    library = simulate_library(n_drugs=9, preset="tiny", seed=0)
    query = pd.Series(library.effects[2], index=library.genes)
    report = ranked(query, library, model, pairs=True, pair_model="stacked", pairs_top_k=None,
                    stacker_predictor="compiled").report
    assert report["n_pairs"] == 36 and report["stacker_predictor"] == "compiled"
    model.unseen_pairs = "additive"  # the guard's rule where the model lost on unseen pairs: none of these 9 drugs is
    model.training_drugs = ["not-in-the-library"]  # a training drug, so every pair is d1 + d2 (the exact Gram path)
    additive = ranked(query, library, model, pairs=True, pair_model="stacked", pairs_top_k=None).report
    assert additive["stacked_model_kind"] == "additive (every pair unseen)" and "stacker_predictor" not in additive


def _tiny_inputs(cfg):
    """(data set, output dir, fit_net, library, truth) as the job (combomap.jobs.stack.run) would pass them."""
    dataset, truth = load_dataset_with_truth(data_source(cfg.data))
    return dataset, cfg.paths.output_dir, None, stack_job.basis_library(cfg, stack_job.build_pipeline(cfg), dataset), truth


def _feature_sets(cfg):
    return pipeline.feature_sets_of(typed(cfg.stacking, StackingSettings, "stacking"))


def test_original_stacker_experiment_restores_the_original_settings(compose_cfg) -> None:
    cfg = compose_cfg("stack", ["experiment=original_stacker"])
    assert _feature_sets(cfg) == {"avg": ["d1", "d2"], "vars": ["d1", "d2", "v1", "v2"],
                                                      "nets": ["net_pred", "d1", "d2"],
                                                      "both": ["net_pred", "d1", "d2", "v1", "v2"]}
    assert cfg.stacking.final == "both" and cfg.stacking.cv.val_fraction == 0.0
    settings = instantiate(cfg.stacker)().settings
    assert (settings.max_depth, settings.n_rounds, settings.schedule()[:3], settings.min_rows_per_leaf,
            settings.max_train_rows) == (15, 8, [0.5, 0.5, 0.15], None, None)
    assert cfg.model.hidden_sizes == [512]  # the quick fold nets stay
    default = compose_cfg("stack", [])
    assert default.stacking.final == "auto" and {"latent", "latent_both"} <= set(_feature_sets(default))


def test_stack_hexbins_show_the_saved_final_model_not_the_oracle(compose_cfg) -> None:
    from pathlib import Path

    cfg = compose_cfg("stack", [*TINY, "stacking.final=latent", "stacking.save_model=false"])
    stack_job.stack(cfg, *_tiny_inputs(cfg))
    plots = sorted(p.name for p in (Path(cfg.paths.output_dir) / "plots").iterdir())
    assert "pred_vs_actual_stack_latent.png" in plots and "residuals_stack_latent.png" in plots
    assert not any("oracle" in name for name in plots)


@pytest.mark.parametrize(
    "override,message",
    [
        ("latent.source=bogus", "latent.source must be one of ['auto', 'compendium', 'library']"),
        ("latent.ranks=[0]", "latent.ranks must list integers >= 1"),
        ("latent.ridges=[-1.0]", "latent.ridges must list finite numbers >= 0"),
        ("stacker.min_rows_per_leaf=0", "stacker.min_rows_per_leaf must be >= 1"),
        ("stacker.max_train_rows=0", "stacker.max_train_rows must be >= 1"),
        ("stacking.final=nosuchset", "stacking.final='nosuchset' is not auto, average, additive, additive_shift, interaction or one of"),
        ("stacking.feature_sets.latent=[d1,p3]", "unknown stacker feature(s) ['p3']"),
        ("model._target_=torch.nn.Linear", "model._target_ must name one of"),
    ],
)
def test_bad_settings_fail_before_any_data_or_mlflow_run(compose_cfg, override: str, message: str) -> None:
    cfg = compose_cfg("stack", [*TINY, override])
    runs_before = len(mlflow.search_runs(search_all_experiments=True))
    with pytest.raises(ValueError) as error:
        stack_job.run(cfg)
    assert message in str(error.value)
    assert len(mlflow.search_runs(search_all_experiments=True)) == runs_before  # no run was started


def test_bad_setting_is_one_line_and_exit_status_2(tmp_path, mlflow_store) -> None:
    command = [sys.executable, "-m", "combomap.cli.stack", *TINY, "latent.source=bogus", f"hydra.run.dir={tmp_path}/run"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines == ["combomap-stack: error: latent.source must be one of ['auto', 'compendium', 'library'], got 'bogus'"]


@pytest.mark.parametrize("regimes,by_drug", [("auto", False), ("true", True), ("false", None)])
def test_regimes_come_from_the_main_cv_on_a_compendium_unless_asked(compose_cfg, regimes: str, by_drug) -> None:
    sets = "stacking.feature_sets={avg:[d1,d2],learned:[d1,d2,lin_pred]}"
    cfg = compose_cfg("stack", [*TINY, sets, "stacking.plots=false", "stacking.save_model=false",
                                f"stacking.regimes={regimes}"])
    result = stack_job.stack(cfg, *_tiny_inputs(cfg))
    if by_drug is None:
        assert result.regimes is None
        return
    assert ("learned_by_drug" in result.timings) == by_drug
    table = result.regimes
    counts = table.drop_duplicates("regime").set_index("regime")["n_combos"]
    if not by_drug:  # one CV: each of the 12 combinations is in exactly one regime
        assert counts.sum() == 12
    else:  # by drug every combination is held out with at least one unseen drug
        assert counts.get("one_seen", 0) + counts.get("none_seen", 0) == 12
        assert "stack_learned" in set(table.loc[table["regime"] == "none_seen", "model"])
    assert set(table["model"]) >= {"average", "additive", "additive_shift", "interaction", "stack_avg"}
