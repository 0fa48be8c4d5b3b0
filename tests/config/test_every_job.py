"""Every setting of every job refuses a bad value before any data loads or any MLflow run opens: each leaf of each
composed top-level config (conf/<job>.yaml, with every group option that changes the set of keys) given a value of
the wrong type, NaN or inf where a float is allowed, a string outside its choices, a negative seed, and every mapping
an unknown key, must end in one line naming the key (exit 2).

The leaves are found by walking the composed configs. Each config is composed once per option; each bad value is
applied to a copy the way compose applies a command-line override (tests.config.walk.with_override), then the part of
combomap.config.check.check_config that types the key's group (its top-level settings for a top-level key) must
refuse it; a value that part accepts goes through the whole check. A fixed, evenly spaced sample, and the cases the
audits reported, run through the real console entry, with the job itself replaced by a failure: the command must end
in the same line, exit 2, and leave no MLflow run.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig

from combomap.config.base import typed
from combomap.config.check import JOBS, check_config
from combomap.console import USAGE_ERROR, describe
from tests.conftest import compose_config
from tests.config.walk import bad_values, leaves, mappings, with_override
from tests.mlflow_template import run_statuses

COMMANDS = {"train": "train", "stack": "stack", "evaluate": "evaluate", "query": "query", "predict": "predict",
            "data_tool": "data", "interactions": "interactions"}
REQUIRED = {"query": ["signature=q.csv"], "predict": ["model_dir=model", "pairs=[a+b]"],
            "data_tool": ["out=out"]}
DATA = [["data=npy", "data.dir=d"], ["data=tidy", "data.path=d.csv"], ["data=h5ad", "data.path=d.h5ad"]]
LIBRARY = [["library=npy", "library.dir=l"], ["library=tidy", "library.path=l.csv"],
           ["library=gctx", "library.path=l.gctx"], ["library=h5ad", "library.path=l.h5ad"]]
# The group options that change a job's set of keys (the default options come first).
OPTIONS: dict[str, list[list[str]]] = {
    "train": [[], *DATA, ["model=mlp"], ["model=latent_mlp"]],
    "stack": [[], *LIBRARY, *DATA, ["model=latent_mlp"], ["stacker=lightgbm"]],
    "evaluate": [[], *DATA],
    "query": [[], *LIBRARY, ["engine=dask"]],
    "predict": [["library.dir=lib"], *LIBRARY[1:], ["library=simulated"], ["engine=dask", "library.dir=lib"]],
    "data_tool": [[], ["export=library"], ["export=signature"], *DATA, *LIBRARY],
    "interactions": [[], ["interactions=planted"], *DATA],
}
CONSOLE_EVERY = 60  # every 60th case of each job also runs through its console entry (about 0.3 s each)
Case = tuple[str, tuple[str, ...], str, str]  # (job, the option's overrides, the bad override, the key to name)


@pytest.fixture(scope="module")
def composed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, tuple[str, ...]], DictConfig]]:
    out = tmp_path_factory.mktemp("out")
    yield {(job, tuple(option)): compose_config(job, [*REQUIRED.get(job, []), *option], out)
           for job, options in OPTIONS.items() for option in options}
    GlobalHydra.instance().clear()


def job_cases(job: str, option: tuple[str, ...], cfg: DictConfig) -> list[tuple[str, str]]:
    """(override, the key its line must name) for every leaf and every mapping of one composed config."""
    found = [("+nosuchkey=1", "nosuchkey"), ("nosuchkey=1", "nosuchkey")]
    for path, leaf in leaves(cfg):
        found += [(f"{path}={value}", path) for value in bad_values(leaf)]
        if path.rsplit(".", 1)[-1] == "seed":
            found.append((f"{path}=-1", path))
    for key in cfg.keys():
        node = cfg._get_node(key)
        if isinstance(node, DictConfig) and not node._is_none():
            for path in mappings(node, str(key)):
                found += [(f"+{path}.nosuchkey=1", f"{path}.nosuchkey"), (f"{path}.nosuchkey=1", f"{path}.nosuchkey")]
    return found


def all_cases(composed: dict[tuple[str, tuple[str, ...]], DictConfig]) -> dict[str, list[Case]]:
    """Each job's cases over its options, each override once (the first option that has the key)."""
    by_job: dict[str, list[Case]] = {job: [] for job in OPTIONS}
    for (job, option), cfg in composed.items():
        seen = {override for _, _, override, _ in by_job[job]}
        by_job[job] += [(job, option, override, key) for override, key in job_cases(job, option, cfg)
                        if override not in seen]
    return by_job


def line_of(error: BaseException) -> str:
    described = describe(error)
    assert described is not None, f"a bug, not a refusal: {error!r}"
    line, status = described
    assert status == USAGE_ERROR, line
    return line


def refusal(job: str, cfg: DictConfig, override: str) -> str | None:
    """The line the command ends with for this override; None: accepted."""
    try:
        changed = with_override(cfg, override)
        group = override.lstrip("+").split("=", 1)[0].split(".", 1)[0]
        settings = JOBS[job]
        if group in settings.groups and "." in override.split("=", 1)[0]:
            if changed.get(group) is not None:
                settings.groups[group](changed.get(group))
        else:
            typed({key: changed.get(key) for key in changed if key not in settings.groups}, settings.settings, "")
        check_config(job, changed)  # the whole check: what its group's part accepted
    except Exception as error:  # noqa: BLE001 - what the console makes of it is the assertion
        return line_of(error)
    return None


@pytest.mark.parametrize("job", list(OPTIONS))
def test_every_leaf_of_every_job_refuses_a_bad_value_naming_its_key(job: str, composed: dict) -> None:
    cases = all_cases(composed)[job]
    for option in OPTIONS[job]:
        check_config(job, composed[(job, tuple(option))])  # each composed config itself passes
    accepted, unnamed = [], []
    for _, option, override, key in cases:
        line = refusal(job, composed[(job, option)], override)
        if line is None:
            accepted.append(f"{' '.join(option)} {override}")
        elif key not in line or "\n" in line:
            unnamed.append(f"{' '.join(option)} {override}: {line}")
    assert accepted == [], f"accepted: {accepted}"
    assert unnamed == [], "\n".join(unnamed)
    assert len(cases) >= 40


def test_the_walk_reaches_every_group_of_every_job(composed: dict) -> None:
    """Each group a job's check types has leaves in the walk (a group lost from the configs would go unnoticed)."""
    by_job = all_cases(composed)
    for job, settings in JOBS.items():
        named = {key.split(".", 1)[0] for _, _, _, key in by_job[job]}
        assert set(settings.groups) <= named, job


def _sample() -> list[tuple[str, str, str]]:
    """(job, the arguments, the key) of the audits' cases and an evenly spaced sample of the walk's (listed by
    composing each config: cheap enough at collection)."""
    reported = [("data_tool", "out=out data.seed=-1", "data.seed"), ("stack", "latent.use_library=abc", "latent.use_library"),
                ("stack", "latent.ridges=[nan]", "latent.ridges"), ("train", "trainer.devices=abc", "trainer.devices"),
                ("train", "callbacks.checkpoint.monitor=abc", "callbacks.checkpoint.monitor"),
                ("train", "callbacks.best_checkpoint.every_n_epochs=abc", "callbacks.best_checkpoint.every_n_epochs"),
                ("query", "signature=q.csv engine=dask engine.n_workers=abc", "engine.n_workers"),
                ("predict", "model_dir=m pairs=[a+b] library.n_drugs=abc", "library.n_drugs"),
                ("stack", "library.seed=abc", "library.seed"), ("train", "optimizer.lr=nan", "optimizer.lr"),
                ("train", "trainer.log_every_n_steps=abc", "trainer.log_every_n_steps"),
                ("evaluate", "+predictions.mine=x.npy reference=nope", "reference")]
    return reported


@pytest.mark.parametrize(("job", "args", "key"), _sample(), ids=[f"{c[0]}:{c[1]}" for c in _sample()])
def test_reported_cases_end_at_the_console_before_the_job(job: str, args: str, key: str, tmp_path: Path,
                                                          mlflow_store: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    line = console_refusal(job, args.split(), tmp_path, monkeypatch, capsys)
    assert key in line
    assert run_statuses(mlflow_store) == []


def test_a_sample_of_the_walk_ends_at_the_console_in_the_same_line(composed: dict, tmp_path: Path, mlflow_store: Path,
                                                                  monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    sampled = 0
    for job, cases in all_cases(composed).items():
        for _, option, override, _ in cases[::CONSOLE_EVERY]:
            expected = refusal(job, composed[(job, option)], override)
            args = [*REQUIRED.get(job, []), *option, override]
            assert console_refusal(job, args, tmp_path, monkeypatch, capsys) == f"combomap-{COMMANDS[job]}: {expected}"
            sampled += 1
    assert sampled >= 20
    assert run_statuses(mlflow_store) == []


def console_refusal(job: str, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    capsys: pytest.CaptureFixture[str]) -> str:
    """The one stderr line of combomap-<job> run through its console entry, whose job must never start."""
    command = COMMANDS[job]
    module = importlib.import_module(f"combomap.cli.{command}")

    def job_started(*_: object, **__: object) -> None:
        raise AssertionError(f"combomap-{command} {' '.join(args)}: the job started")

    monkeypatch.setattr(importlib.import_module(f"combomap.jobs.{command}"), "run", job_started)
    monkeypatch.setattr(sys, "argv", [f"combomap-{command}", *args, f"hydra.run.dir={tmp_path / 'run'}"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        module.main()
    err = capsys.readouterr().err
    assert stop.value.code == USAGE_ERROR, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


def test_lists_of_values_are_walked_too(composed: dict) -> None:
    """The walk gives list leaves (latent.ranks, evaluate's top_k) their elements' wrong types."""
    cases = {override for _, _, override, _ in all_cases(composed)["stack"]}
    assert {"latent.ridges=[nan,0.5]", "latent.ranks=[2.5]", "stacker.learning_rates=[inf]"} <= cases
    assert isinstance(composed[("evaluate", ())]._get_node("top_k"), ListConfig)
