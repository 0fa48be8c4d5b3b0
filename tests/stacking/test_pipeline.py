"""combomap-stack end to end on the tiny compendium (real fold nets, 1 epoch), then combomap-predict on its model."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest

from combomap.data.simulate import simulate_library
from combomap.stacking import pipeline, predict
from combomap.stacking.final_model import StackedModel

TINY = [
    "data.preset=tiny",
    "model.hidden_sizes=[8]",
    "trainer.max_epochs=1",
    "stacker.max_depth=4",
    "stacker.n_threads=1",
    "stacking.cv.n_folds=3",
]
MODELS = ["average", "additive", "no_change", "nets_oof", "stack_avg", "stack_vars", "stack_nets", "stack_both"]


@pytest.mark.parametrize("backend", ["xgboost", "lightgbm"])
def test_stack_writes_ablation_model_and_mlflow_run(compose_cfg, backend: str) -> None:
    cfg = compose_cfg("stack", [*TINY, f"stacker={backend}", "stacking.holdout_fraction=0.3"])
    headline = pipeline.run(cfg)
    out = cfg.paths.output_dir
    table = pd.read_csv(f"{out}/ablation.csv")
    assert list(table["model"]) == MODELS
    assert {"sign_acc_pct", "wrong_genes", "delta_wrong_vs_average", "combo_error_median", "spearman_median",
            "n_scored"} <= set(table.columns)
    assert headline == pytest.approx(table.set_index("model").loc["stack_both", "sign_acc"])
    markdown = open(f"{out}/ablation.md").read()
    assert all(f"| {model} |" in markdown for model in MODELS)
    holdout = pd.read_csv(f"{out}/holdout.csv")
    assert list(holdout["model"]) == ["average", "nets_mean", "stack_both_per_net", "stack_both_mean_net"]

    runs = mlflow.search_runs(search_all_experiments=True)
    parent = runs[runs["tags.mlflow.runName"] == f"stack-{backend}"].iloc[0]
    children = runs[runs["tags.mlflow.parentRunId"] == parent["run_id"]]
    assert sorted(children["tags.mlflow.runName"]) == ["fold0", "fold1"]
    assert parent["metrics.cv/sign_acc"] == pytest.approx(headline)
    assert parent["metrics.ablation/stack_both/sign_acc"] == pytest.approx(headline)
    assert "metrics.holdout/stack_both_per_net/sign_acc" in parent
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(parent["run_id"])}
    assert {"ablation.csv", "ablation.md", "plots", "model"} <= artifacts

    # the saved model predicts new pairs from a library, in either drug order, and agrees with itself after loading
    model = StackedModel.load(f"{out}/model")
    assert model.stacker.name == backend and len(model.nets) == 2
    library = simulate_library(n_drugs=12, preset="tiny", seed=0)
    pairs = [(library.drugs[0], library.drugs[1]), (library.drugs[1], library.drugs[0]), (library.drugs[2], library.drugs[5])]
    predicted = predict.predict_pairs(model, library, pairs)
    assert predicted.shape == (3, len(model.genes)) and np.isfinite(predicted).all()
    np.testing.assert_array_equal(predicted[0], predicted[1])


def test_predict_cli_run_writes_npy_and_tidy(compose_cfg, tmp_path) -> None:
    stack_cfg = compose_cfg("stack", [*TINY, "stacking.plots=false", "stacking.feature_sets={avg:[d1,d2],nets:[net_pred,d1,d2]}",
                                      "stacking.final=nets"])
    pipeline.run(stack_cfg)
    model_dir = f"{stack_cfg.paths.output_dir}/model"
    library = ["library.source=simulated", "library.preset=tiny", "library.n_drugs=10"]
    pairs = simulate_library(n_drugs=10, preset="tiny", seed=0).drugs
    cfg = compose_cfg("predict", [f"model_dir={model_dir}", *library, f"pairs=[{pairs[0]}+{pairs[1]},{pairs[2]}+{pairs[3]}]",
                                  f"output.path={tmp_path}/npy/predictions"])
    files = predict.run(cfg)
    values = np.load(files[0], allow_pickle=False)
    assert values.shape == (2, 300)
    assert pd.read_csv(files[1]).values.tolist() == [[pairs[0], pairs[1]], [pairs[2], pairs[3]]]
    cfg = compose_cfg("predict", [f"model_dir={model_dir}", *library, f"pairs=[{pairs[1]}+{pairs[0]}]", "output.format=csv",
                                  f"output.path={tmp_path}/tidy/predictions", "inference=mean_net"])
    tidy = pd.read_csv(predict.run(cfg)[0])
    assert list(tidy.columns) == ["drug1", "drug2", "gene", "prediction"] and len(tidy) == 300
    cfg = compose_cfg("predict", [f"model_dir={model_dir}", *library, "pairs=[nodrug+other]"])
    with pytest.raises(ValueError, match="unknown drug"):
        predict.run(cfg)


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
    pipeline.run(cfg)
    table = pd.read_csv(f"{cfg.paths.output_dir}/ablation.csv")
    assert list(table["model"]) == MODELS
    assert table["n_scored"].iloc[0] == np.count_nonzero(~np.isnan(data.combo_effect))
