"""The combomap_optuna Hydra sweeper on a tiny app of its own (no torch): search space, resume, failures, tags."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import hydra
import optuna
import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from combomap.config.run import run_config
from combomap.tracking import log_metrics, mlflow_run, search_runs
from hydra_plugins.combomap_optuna_sweeper._impl import objective_value, parse_search_space

APP_CONFIG = """
defaults:
  - override hydra/sweeper: combomap_optuna
  - override hydra/job_logging: none
  - override hydra/hydra_logging: none
  - _self_
x: 0.0
width: 1
kind: a
fail_trial: -1
interrupt_trial: -1
logger:
  experiment_name: tiny-app
hydra:
  sweeper:
    study_name: tiny
    direction: minimize
    n_trials: 2
    n_jobs: 2
    sampler:
      seed: 0
    params:
      x: interval(-2, 2)
      width: range(1, 5)
      kind: choice(a, b, 'c d')
"""

APP_MAIN = """
import hydra
from omegaconf import DictConfig

@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def main(cfg: DictConfig) -> float:
    return (cfg.x - 1.0) ** 2 + cfg.width

if __name__ == "__main__":
    main()
"""


def task(cfg: DictConfig) -> float:
    """The tiny objective; one MLflow run per trial (through combomap.tracking, as the real jobs)."""
    trial = cfg.get("sweep", {}).get("trial")
    if trial == cfg.interrupt_trial:
        raise KeyboardInterrupt("simulated Ctrl-C")
    value = (cfg.x - 1.0) ** 2 + cfg.width + (cfg.kind == "b")
    with mlflow_run(run_config(cfg), run_name=f"trial-{trial}"):
        if trial == cfg.fail_trial:
            raise RuntimeError("this trial fails")
        log_metrics({"objective": value})
    return value


@pytest.fixture()
def app_dir(tmp_path: Path) -> Path:
    conf = tmp_path / "app" / "conf"
    conf.mkdir(parents=True)
    (conf / "app.yaml").write_text(textwrap.dedent(APP_CONFIG))
    (tmp_path / "app" / "app.py").write_text(textwrap.dedent(APP_MAIN))
    return tmp_path / "app"


def run_app(app_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *overrides: str, sweep: str = "s1") -> None:
    """`python app.py -m ...` in-process: the same Hydra code path as the CLI, without a python start-up."""
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    argv = ["app.py", "-m", f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={tmp_path / sweep}", *overrides]
    monkeypatch.setattr(sys, "argv", argv)
    GlobalHydra.instance().clear()
    try:
        hydra.main(version_base="1.3", config_path=str(app_dir / "conf"), config_name="app")(task)()
    finally:
        GlobalHydra.instance().clear()


def load(tmp_path: Path, name: str = "tiny") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'optuna.db'}")


def test_search_space_uses_hydra_sweep_syntax() -> None:
    space, fixed = parse_search_space(
        [
            "lr=tag(log, interval(1e-4, 1e-1))",
            "dropout=interval(0, 0.5)",
            "units=int(interval(8, 64))",
            "layers=range(1, 6, 2)",
            "step=range(0.1, 0.5, 0.1)",
            "sizes=choice([256],[512,512])",
            "augment=choice(none, swap_flip)",
            "+extra=choice(1, 2)",
            "data.preset=tiny",
            "model=mlp",
            "dropout=0.25",  # a later fixed value replaces the swept one
        ]
    )
    assert fixed == {"data.preset": "data.preset=tiny", "model": "model=mlp", "dropout": "dropout=0.25"}
    assert space["lr"].distribution == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["units"].distribution == IntDistribution(8, 64)
    assert space["layers"].distribution == IntDistribution(1, 5, step=2)  # Hydra's range excludes 6
    assert space["step"].distribution.low == pytest.approx(0.1) and space["step"].distribution.high == pytest.approx(0.4)
    assert space["sizes"].distribution == CategoricalDistribution(["[256]", "[512,512]"])
    assert space["sizes"].override("[512,512]") == "sizes=[512,512]"
    assert space["augment"].override("swap_flip") == "augment=swap_flip"
    assert space["extra"].override(2) == "+extra=2"
    assert objective_value({"val/sign_acc": 0.7}, "val/sign_acc") == 0.7
    with pytest.raises(ValueError, match="not finite"):
        objective_value(float("nan"), None)


def test_sweep_tags_runs_resumes_and_survives_a_failing_trial(
    app_dir: Path, tmp_path: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_app(app_dir, tmp_path, monkeypatch, "fail_trial=1", sweep="s1")
    study = load(tmp_path)
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL]
    assert "this trial fails" in study.trials[1].user_attrs["error"]
    results = OmegaConf.load(tmp_path / "s1" / "optimization_results.yaml")
    assert results.best_trial == 0 and results.best_value == pytest.approx(study.trials[0].value)
    assert set(results.best_params) == {"x", "width", "kind"}
    assert "++sweep.trial=0" in results.best_overrides

    # Same command, a bigger study: resumes from the storage and runs only the missing trial.
    run_app(app_dir, tmp_path, monkeypatch, "fail_trial=1", "hydra.sweeper.n_trials=3", sweep="s2")
    study = load(tmp_path)
    assert len(study.trials) == 3 and study.trials[2].state == TrialState.COMPLETE
    assert study.trials[2].params != study.trials[0].params  # the resumed sampler does not replay trial 0
    assert (tmp_path / "s2" / "2").exists() is False and (tmp_path / "s2" / "0").exists()  # one job in s2

    runs = search_runs("tiny-app", "tags.sweep_study = 'tiny'")
    assert sorted(runs["tags.sweep_trial"].astype(int)) == [0, 1, 2]
    assert dict(zip(runs["tags.sweep_trial"], runs["status"])) == {"0": "FINISHED", "1": "FAILED", "2": "FINISHED"}
    finished = runs[runs["status"] == "FINISHED"].set_index("tags.sweep_trial")
    assert finished.loc["2", "metrics.objective"] == pytest.approx(study.trials[2].value)


def test_interrupted_trials_are_requeued(app_dir: Path, tmp_path: Path, mlflow_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(KeyboardInterrupt):
        run_app(app_dir, tmp_path, monkeypatch, "interrupt_trial=0", "hydra.sweeper.n_jobs=1", sweep="s1")
    study = load(tmp_path)
    assert study.trials[0].state == TrialState.FAIL and study.trials[0].user_attrs["interrupted"] is True
    run_app(app_dir, tmp_path, monkeypatch, "interrupt_trial=0", "hydra.sweeper.n_jobs=1", sweep="s2")  # same fixed config
    study = load(tmp_path)
    # The interrupted trial does not count: 2 complete trials, the first with the interrupted one's params.
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert study.trials[1].params == study.trials[0].params


def test_joblib_launcher_runs_a_batch_in_parallel_processes(app_dir: Path, tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    command = [sys.executable, "app.py", "-m", "hydra/launcher=joblib", f"hydra.sweeper.storage={storage}",
               f"hydra.sweep.dir={tmp_path / 'sweep'}", "hydra.sweeper.study_name=parallel"]  # fmt: skip
    done = subprocess.run(command, cwd=app_dir, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    study = load(tmp_path, "parallel")
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE]
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.is_dir()) == ["0", "1"]
    results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    assert results.trials.complete == 2


def test_sweep_tags_come_from_the_config(mlflow_store: Path) -> None:
    from combomap.tracking import sweep_tags

    assert sweep_tags({"sweep": {"study_name": "mlp_optuna", "trial": 7}}) == {
        "sweep_study": "mlp_optuna",
        "sweep_trial": "7",
    }
    assert sweep_tags({"seed": 0}) == {}
    assert search_runs("no-such-experiment").empty


def test_a_broken_launcher_fails_the_batch_not_the_sweep(tmp_path: Path) -> None:
    """A worker killed for memory (joblib) or a failed submission raises from launch(): FAIL, and go on."""
    from types import SimpleNamespace

    from hydra.core.utils import JobReturn, JobStatus

    from hydra_plugins.combomap_optuna_sweeper._impl import run_sweep

    class FlakyLauncher:
        calls = 0

        def launch(self, job_overrides, initial_job_idx):
            FlakyLauncher.calls += 1
            if FlakyLauncher.calls == 1:
                raise MemoryError("worker killed")
            return [JobReturn(overrides=list(o), status=JobStatus.COMPLETED, _return_value=1.0) for o in job_overrides]

    sweeper = SimpleNamespace(
        params={"x": "interval(0, 1)"}, storage=f"sqlite:///{tmp_path / 'optuna.db'}", study_name="flaky",
        direction="minimize", stale_after_s=None, sampler=optuna.samplers.RandomSampler(seed=0), n_trials=3,
        n_jobs=2, launcher=FlakyLauncher(), tag_trials=True, objective=None, max_failure_rate=1.0,
        config=OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}}),
    )  # fmt: skip
    results = run_sweep(sweeper, [])
    states = [t.state for t in load(tmp_path, "flaky").trials]
    assert states == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert results["trials"] == {"complete": 1, "fail": 2} and results["best_trial"] == 2
