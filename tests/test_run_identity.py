"""Runs a user can tell apart in the MLflow UI: names from what differs, headline metrics as top-level columns, the
data set as a run input, the launch (overrides, multirun, git commit) as tags, one tag key per job, and params that
differ only where a choice differs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mlflow
import numpy as np
import pytest
from hydra.core.global_hydra import GlobalHydra
from mlflow.tracking import MlflowClient

from combomap.config.run import run_name
from combomap.config.training import net_recipe
from combomap.data.simulate import simulate_compendium
from combomap.evaluation.metrics import headline_metrics
from combomap.jobs.stack import build_pipeline
from combomap.tracking import GIT_COMMIT_TAG, git_tags
from tests.cli.test_bad_inputs import run_command
from tests.conftest import compose_config, random_dataset

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(("job", "overrides", "name"), [
    ("stack", [], "stack-default-xgboost-mlp-s0"),
    ("stack", ["data.preset=tiny", "stacker=lightgbm", "seed=3"], "stack-tiny-lightgbm-mlp-s3"),
    ("stack", ["data.preset=tiny", "data.seed=2"], "stack-tiny.d2-xgboost-mlp-s0"),
    ("stack", ["data=tidy", "data.path=/x/korkut2015_rppa.csv.gz"], "stack-korkut2015_rppa-xgboost-mlp-s0"),
    ("train", ["data.preset=tiny", "augment=none", "schedule=cosine"], "train-tiny-mlp-none-cosine-s0"),
    ("train", ["model=latent_mlp"], "train-default-latent-flip-linear-s0"),
    ("stack", ["logger.run_name=mine"], "mine"),
    ("train", ["data.preset=tiny", "++sweep.trial=7"], "train-tiny-mlp-flip-linear-s0-t7"),
])
def test_run_names_say_what_differs(job: str, overrides: list[str], name: str, tmp_path: Path) -> None:
    cfg = compose_config(job, overrides, tmp_path)
    recipe = net_recipe(cfg)
    stacker = build_pipeline(cfg, fit_net=lambda *args, **kwargs: None).stacker_name if job == "stack" else None
    choices = [stacker, recipe.kind] if job == "stack" else recipe.name_parts()
    GlobalHydra.instance().clear()
    assert run_name(cfg, *choices) == name


def test_headline_metrics_are_the_gain_in_points() -> None:
    assert headline_metrics(0.8125, 0.7900) == pytest.approx(
        {"final_sign_acc": 0.8125, "average_sign_acc": 0.79, "gain_pts": 2.25})
    assert headline_metrics(None, 0.79) == {"average_sign_acc": 0.79}
    assert headline_metrics(float("nan"), 0.79) == {"average_sign_acc": 0.79}


def test_digest_follows_the_values_not_the_object() -> None:
    first, again = random_dataset(seed=1), random_dataset(seed=1)
    assert first.digest() == again.digest() and len(first.digest()) == 10
    again.combo_effect[3, 4] += 1e-3
    assert again.digest() != first.digest()
    assert random_dataset(seed=1).subset([0, 1]).digest() != first.digest()


def test_a_multirun_is_told_apart_tagged_and_compared_on_its_choices(
        tmp_path: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMBOMAP_ROOT", str(tmp_path))
    git_tags.cache_clear()  # HEAD read now, not when an earlier test of this process first asked
    status, err = run_command("evaluate", ["-m", "data.preset=tiny", "seed=0,1", "plots=false"], monkeypatch, capsys)
    assert status == 0, err
    client = MlflowClient()
    (experiment,) = [e for e in client.search_experiments() if e.name == "combomap-evaluate"]
    runs = sorted(client.search_runs([experiment.experiment_id]), key=lambda run: run.info.run_name)
    assert [run.info.run_name for run in runs] == ["evaluate-tiny-s0-j0", "evaluate-tiny-s1-j1"]
    first, second = (run.data.tags for run in runs)
    assert first["job"] == second["job"] == "evaluate"
    assert first["multirun"] == second["multirun"] and Path(first["multirun"]).is_dir()
    assert (first["multirun.job"], second["multirun.job"]) == ("0", "1")
    assert (first["overrides"], second["overrides"]) == ("data.preset=tiny seed=0 plots=False",
                                                          "data.preset=tiny seed=1 plots=False")
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    if head:
        assert first[GIT_COMMIT_TAG] == head
    # paths are tags, not params: the two runs' params differ only in what the command line chose
    params = [run.data.params for run in runs]
    assert {key for key in params[0] if params[0][key] != params[1].get(key)} == {"seed"}
    assert not any(key.startswith("paths.") for key in params[0])
    assert Path(first["paths.output_dir"]).is_dir() and first["paths.output_dir"] != second["paths.output_dir"]
    # the headline is top-level, the data set is the run's input, with the digest of what was scored
    dataset = simulate_compendium(preset="tiny", seed=0)
    for run in runs:
        assert run.data.metrics["average_sign_acc"] == run.data.metrics["average/sign_acc"]
        (entry,) = run.inputs.dataset_inputs
        assert (entry.dataset.name, entry.dataset.digest) == ("simulated-tiny", dataset.digest())
        assert {tag.key: tag.value for tag in entry.tags}["mlflow.data.context"] == "evaluation"
        assert '"n_combos": %d' % dataset.n_combos in entry.dataset.profile
    assert np.isfinite(runs[0].data.metrics["average_sign_acc"])
    mlflow.set_tracking_uri(None)


@pytest.mark.parametrize(("args", "message"), [
    (["register=a/b"], "register must be a model name without '/'"),
    (["register=final", "~library"], "register=final registers the pyfunc model, which serves pairs from a drug library"),
])
def test_register_refuses_what_it_cannot_register_before_any_work(
        args: list[str], message: str, tmp_path: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COMBOMAP_ROOT", str(tmp_path))
    status, err = run_command("stack", ["data.preset=tiny", *args], monkeypatch, capsys)
    assert status == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not MlflowClient().search_experiments(filter_string="name = 'combomap-stack'")
