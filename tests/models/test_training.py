"""Training through the real composed config: one MLflow run with the promised metrics and artifacts."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import mlflow
import numpy as np
import pytest
import torch

from combomap.config.run import run_config
from combomap.config.data import data_source
from combomap.config.training import net_recipe
from combomap.jobs.train import fit_mlp, run
from combomap.data.loading import load_dataset
from combomap.data.pairs import PairBatch
from combomap.models.portable import PortableMLP
from combomap.models.builders import build_module
from combomap.models.training import _QuietLightning
from combomap.tracking import mlflow_run

TINY = [
    "data.preset=tiny",
    "model.hidden_sizes=[16]",
    "trainer.max_epochs=1",
    "datamodule.batch_size=4",
]
PER_EPOCH = ["train/loss", "train/lr", "train/momentum", "val/loss", "val/sign_acc", "val/spearman", "val/sign_acc_best", "val/loss_best", "val/spearman_best"]


def _runs(experiment: str = "combomap-train") -> list:
    return mlflow.search_runs(experiment_names=[experiment], output_format="list")


def test_one_epoch_run_logs_config_metrics_weights_and_plots(compose_cfg) -> None:
    cfg = compose_cfg("train", TINY + ["datamodule.test_fraction=0.2"])
    metrics = run(cfg)
    (record,) = _runs()
    assert record.info.run_name == "train-tiny-mlp-flip-linear-s0"
    assert record.info.status == "FINISHED" and mlflow.active_run() is None
    assert record.data.params["model.hidden_sizes"] == "[16]" and record.data.params["augment.name"] == "flip"
    logged = record.data.metrics
    for key in PER_EPOCH + ["val/spearman_median", "test/sign_acc", "test/spearman_median", "val_average/sign_acc"]:
        assert key in logged, key
        assert math.isfinite(logged[key]), key
    assert 0.0 <= logged["val/sign_acc"] <= 1.0
    # the default run is experiment=quick_mlp: AdamW, lr 1e-3 at epoch 0, beta1 held at 0.9
    assert logged["train/lr"] == pytest.approx(1e-3) and logged["train/momentum"] == pytest.approx(0.9)
    assert record.data.params["optimizer._target_"] == "torch.optim.AdamW"
    assert metrics["val/sign_acc"] == pytest.approx(logged["val/sign_acc"])
    client = mlflow.MlflowClient()
    artifacts = {a.path for a in client.list_artifacts(record.info.run_id)}
    artifacts |= {a.path for a in client.list_artifacts(record.info.run_id, "model")}
    artifacts |= {a.path for a in client.list_artifacts(record.info.run_id, "plots")}
    assert {"config.yaml", "metrics.json", "plots/accuracy_by_effect.png"} <= artifacts
    assert not any(path.startswith("model/") for path in artifacts)  # the weights are kept once, in the run dir
    assert record.data.tags["weights_file"] == str(Path(cfg.paths.output_dir, "mlp.safetensors").resolve())
    predictor = PortableMLP.load(cfg.paths.output_dir + "/mlp.safetensors")
    assert predictor.layer_sizes == [600, 16, 300]


def test_per_epoch_curves_and_schedule_over_epochs(compose_cfg) -> None:
    # ~experiment: no experiment, the group defaults, i.e. the original's SGD with Nesterov momentum and its lr/momentum values
    overrides = ["~experiment", "trainer.max_epochs=3", "schedule=cosine", "augment=swap_flip", "plots=false"]
    cfg = compose_cfg("train", TINY + overrides)
    assert cfg.optimizer._target_ == "torch.optim.SGD" and cfg.optimizer.nesterov is True
    result = fit_mlp(cfg, load_dataset(data_source(cfg.data)))
    client = mlflow.MlflowClient()
    for key in ("train/loss", "val/loss", "val/sign_acc", "val/spearman"):
        assert [m.step for m in client.get_metric_history(result.run_id, key)] == [0, 1, 2], key
    lr = [m.value for m in client.get_metric_history(result.run_id, "train/lr")]
    momentum = [m.value for m in client.get_metric_history(result.run_id, "train/momentum")]
    assert lr == pytest.approx([0.01, (0.01 + 1e-5) / 2, 1e-5])
    assert momentum == pytest.approx([0.9, (0.9 + 0.999) / 2, 0.999])
    assert result.run_name == "train-tiny-mlp-swap_flip-cosine-s0"
    best = [m.value for m in client.get_metric_history(result.run_id, "val/sign_acc_best")]
    assert best == sorted(best)


@pytest.mark.parametrize("experiment,hidden,optimizer", [
    ("quick_mlp", [512], torch.optim.AdamW), ("blog_mlp", [2500], torch.optim.SGD), ("~", [2500], torch.optim.SGD),
])
def test_experiment_configs_build_the_module_they_name(compose_cfg, experiment: str, hidden: list[int],
                                                       optimizer: type) -> None:
    """Each preset instantiates (model -> the net injected into MLPModule, optimizer, schedule): the net's layers
    (2 x genes in, genes out), the optimizer class with the schedule's first learning rate and momentum."""
    cfg = compose_cfg("train", ["~experiment"] if experiment == "~" else [f"experiment={experiment}"])
    module = build_module(net_recipe(cfg), n_genes=7, var_fill=1.0)
    linear = [layer for layer in module.net.modules() if isinstance(layer, torch.nn.Linear)]
    assert [(layer.in_features, layer.out_features) for layer in linear] == list(zip([14, *hidden], [*hidden, 7]))
    built = module.optimizer_factory(module.parameters())
    assert type(built) is optimizer
    group = built.param_groups[0]
    assert group["lr"] == module.schedule.lr_start
    assert (group["momentum"] if "momentum" in group else group["betas"][0]) == module.schedule.momentum_start
    if experiment == "blog_mlp":  # the original's published settings (shared/reference/ccmap-notes.md), exactly
        assert (cfg.model.input_dropout, cfg.model.hidden_dropout, cfg.model.activation) == (0.85, 0.5, "very_leaky_relu")
        assert (module.schedule.shape, module.schedule.interval, module.schedule.lr_start, module.schedule.lr_end) == (
            "linear", "epoch", 0.01, 1e-5)
        assert (module.schedule.momentum_start, module.schedule.momentum_end) == (0.9, 0.999)
        assert group["nesterov"] is True and cfg.trainer.max_epochs == 5000
        augment = net_recipe(cfg).augment
        assert augment.flip and augment.orient_rows and cfg.datamodule.split_by == "row"


def test_same_seed_gives_identical_metrics_and_weights(compose_cfg) -> None:
    cfg = compose_cfg("train", TINY + ["trainer.max_epochs=2", "plots=false", "model.uses_variances=true", "model.uses_mask=true"])
    dataset = load_dataset(data_source(cfg.data))
    first, second = fit_mlp(cfg, dataset), fit_mlp(cfg, dataset)
    drop = ("train/fit_seconds",)
    assert {k: v for k, v in first.metrics.items() if k not in drop} == {k: v for k, v in second.metrics.items() if k not in drop}
    for w1, w2 in zip(first.predictor.weights, second.predictor.weights):
        np.testing.assert_array_equal(w1, w2)
    # The returned predictor is the trained module in eval mode.
    first.module.eval()
    effects = torch.from_numpy(np.stack([dataset.drug1_effect, dataset.drug2_effect], axis=1))
    variances = torch.from_numpy(np.stack([dataset.drug1_var, dataset.drug2_var], axis=1))
    with torch.no_grad():
        expected = first.module(effects, variances).numpy()
    got = first.predictor.predict(PairBatch.from_dataset(dataset))
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_nested_child_run_with_explicit_validation_and_no_validation(compose_cfg) -> None:
    sweep = "+sweep={study_name: abl, trial: 3}"  # as a sweep driver sets it: tags the trial (the parent) only
    cfg = compose_cfg("train", TINY + ["trainer.max_epochs=2", "plots=false", "datamodule.val_fraction=0", sweep])
    dataset = load_dataset(data_source(cfg.data))
    half1, half2 = dataset.subset(np.arange(6)), dataset.subset(np.arange(6, 12))
    with mlflow_run(run_config(cfg), run_name="stack-parent") as parent:
        child = fit_mlp(cfg, half1, val=half2, run_name="net1", nested=True)
        lone = fit_mlp(cfg, half2, run_name="net2", nested=True)
        assert mlflow.active_run().info.run_id == parent.info.run_id
    assert mlflow.active_run() is None
    client = mlflow.MlflowClient()
    assert client.get_run(parent.info.run_id).data.tags["sweep_study"] == "abl"
    for result in (child, lone):
        record = client.get_run(result.run_id)
        assert record.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert record.info.experiment_id == parent.info.experiment_id  # not MLflow's "Default" experiment
        assert "sweep_study" not in record.data.tags
        assert record.info.status == "FINISHED"
        assert [m.step for m in client.get_metric_history(result.run_id, "train/loss")] == [0, 1]
    assert "val/sign_acc" in child.metrics and "val/sign_acc" not in lone.metrics
    assert child.output_dir.name == "net1" and (child.output_dir / "mlp.safetensors").is_file()
    assert child.datamodule.val_set is half2


@pytest.mark.parametrize("cause", ["learning_rate", "huge_inputs"])
def test_divergence_fails_the_run_and_saves_no_weights(compose_cfg, cause: str) -> None:
    from combomap.models.training import TrainingDiverged

    cfg = compose_cfg("train", TINY + ["trainer.max_epochs=4", "plots=false"]
                      + (["schedule.lr_start=1e12", "schedule.lr_end=1e12"] if cause == "learning_rate" else []))
    data = load_dataset(data_source(cfg.data))
    if cause == "huge_inputs":  # finite but huge: the loss overflows at epoch 0
        data.drug1_effect[:] = 1e30
        data.drug2_effect[:] = 1e30
    with pytest.raises(TrainingDiverged, match="non-finite at epoch 0"):
        fit_mlp(cfg, data)
    (record,) = _runs()
    assert record.info.status == "FAILED" and record.data.tags["diverged_epoch"] == "0"
    out = Path(cfg.paths.output_dir)
    assert not (out / "mlp.safetensors").exists() and not (out / "metrics.json").exists()


def test_per_step_schedule_and_a_worker_process(compose_cfg) -> None:
    overrides = ["~experiment", "trainer.max_epochs=2", "schedule.interval=step", "plots=false", "datamodule.num_workers=1"]
    cfg = compose_cfg("train", TINY + overrides)
    result = fit_mlp(cfg, load_dataset(data_source(cfg.data)))
    steps_per_epoch = -(-result.datamodule.train_set.n_combos // 4)
    total = 2 * steps_per_epoch
    lr = [m.value for m in mlflow.MlflowClient().get_metric_history(result.run_id, "train/lr")]
    # logged at each epoch start: step 0, then step steps_per_epoch of `total` steps
    assert lr == pytest.approx([0.01, 0.01 + (1e-5 - 0.01) * steps_per_epoch / (total - 1)])
    optimizer_group = result.module.trainer.optimizers[0].param_groups[0]
    assert optimizer_group["momentum"] == pytest.approx(0.999)  # the last step reached the end value


def test_lightning_advertisement_is_filtered_but_other_lightning_info_is_kept(caplog) -> None:
    lightning = logging.getLogger("pytorch_lightning.utilities.rank_zero")  # the filter is installed on import
    with caplog.at_level(logging.INFO, logger="pytorch_lightning.utilities.rank_zero"):
        lightning.info("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger](...)")
        lightning.info("`Trainer.fit` stopped: `max_epochs=1` reached.")
        lightning.info("Restoring states from the checkpoint path at last.ckpt")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["Restoring states from the checkpoint path at last.ckpt"]


def test_lightning_chatter_is_said_once_per_process_not_once_per_net() -> None:
    quiet = _QuietLightning()

    def shown(message: str) -> bool:
        return quiet.filter(logging.LogRecord("pytorch_lightning", logging.INFO, __file__, 1, message, None, None))

    assert shown("GPU available: False, used: False") and not shown("GPU available: False, used: False")
    assert shown("TPU available: False, using: 0 TPU cores") and not shown("TPU available: False, using: 0 TPU cores")
    assert not shown("`Trainer.fit` stopped: `max_epochs=3` reached.") and not shown("Tip: install litlogger")
    assert shown("Restoring states from the checkpoint path at last.ckpt") and shown("GPU available: True (cuda), used: True")
