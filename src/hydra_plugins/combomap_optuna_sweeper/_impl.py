"""Optuna ask/tell loop behind `hydra/sweeper=combomap_optuna` (Optuna >= 4 public API only).

The study lives in an RDB storage (SQLite by default), so the same command resumes an interrupted sweep and
several processes or machines can fill one study: `n_trials` is the size the STUDY should reach. Each trial records
its MLflow run id (user attr mlflow_run_id; the run has tags sweep_study / sweep_trial), and finished trials keep
their weight files only as `keep_weights` says (best: the study's best trial alone), so a sweep fits on a laptop.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import logging
import math
import shutil
import signal
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import mlflow
import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep, Transformer
from omegaconf import OmegaConf
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import TrialState

from combomap import progress, runs, store, tracking
from combomap.store import StoreError, absolute_sqlite_uri, check_sqlite_file

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"
STORAGE_KEY = "hydra.sweeper.storage"
OPTUNA_TABLES = ("studies", "trials")  # a database holding neither is another program's
CONFIG_HASH_ATTR = "fixed_config_hash"  # study user attr: the hash of the fixed config its trials share
OWNER_ATTR = "owner"  # trial user attr: host, pid and start time of the sweep process that asked it
RUN_ID_ATTR = "mlflow_run_id"  # trial user attr: the trial's MLflow run (found by its sweep_study/sweep_trial tags)
OUTPUT_DIR_ATTR = "output_dir"  # trial user attr: the trial's Hydra output dir (absolute)
WEIGHTS_TAG = "weights_file"  # MLflow run tag naming a job's weights (combomap.models.training); removed with them
# Trials that used up the budget. An interrupted trial is FAIL with user attr interrupted=True and is re-queued.
_SPENT_STATES = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)


@dataclass
class SearchParam:
    """One swept override: its key as written (with +/++ prefix) and its Optuna distribution."""

    key: str
    distribution: BaseDistribution
    # Categorical choice value -> text to put back on the command line (lists and dicts are encoded).
    choice_text: Dict[Any, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.key.lstrip("+~")

    def override(self, value: Any) -> str:
        text = self.choice_text.get(value) if self.choice_text else None
        return f"{self.key}={text if text is not None else Transformer.str(value)}"


def _choice_param(override: Override, values: Sequence[Any]) -> SearchParam:
    choices: List[Any] = []
    texts: Dict[Any, str] = {}
    for value in values:
        encoded = Transformer.encode(value)  # primitives stay as they are, lists/dicts become their text
        choices.append(encoded)
        texts[encoded] = Transformer.str(value)
    return SearchParam(override.get_key_element(), CategoricalDistribution(choices), texts)


def distribution_from_override(override: Override) -> SearchParam:
    """choice(...) -> categorical; range(a, b, s) -> int/float with step (b exclusive, as in Hydra);
    interval(a, b) -> float, int(interval(a, b)) -> int; tag(log, ...) -> log scale."""
    value = override.value()
    if override.is_choice_sweep():
        assert isinstance(value, ChoiceSweep)
        return _choice_param(override, list(override.sweep_iterator(transformer=Transformer.identity)))
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        values = list(override.sweep_iterator(transformer=Transformer.identity))
        if not values:
            raise ValueError(f"Empty range in sweep override '{override.input_line}'")
        if value.shuffle:
            return _choice_param(override, values)
        if all(isinstance(v, int) for v in (value.start, value.stop, value.step)):
            return SearchParam(
                override.get_key_element(), IntDistribution(int(values[0]), int(values[-1]), step=int(value.step))
            )
        low, step = float(value.start), float(value.step)
        high = low + step * (len(values) - 1)
        return SearchParam(override.get_key_element(), FloatDistribution(low, high, step=step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log_scale = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            distribution: BaseDistribution = IntDistribution(value.start, value.end, log=log_scale)
        else:
            distribution = FloatDistribution(float(value.start), float(value.end), log=log_scale)
        return SearchParam(override.get_key_element(), distribution)
    raise NotImplementedError(f"Sweep override '{override.input_line}' is not supported by the Optuna sweeper")


def parse_search_space(arguments: Sequence[str]) -> Tuple[Dict[str, SearchParam], Dict[str, str]]:
    """Split overrides into the search space and fixed overrides; a later override of a key wins.

    Fixed overrides keep their text as written (so `~key`, `+key=...` and group choices pass through)."""
    space: Dict[str, SearchParam] = {}
    fixed: Dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        identity = override.get_key_element().lstrip("+~")
        space.pop(identity, None)
        fixed.pop(identity, None)
        if override.is_sweep_override():
            space[identity] = distribution_from_override(override)
        else:
            fixed[identity] = override.input_line or f"{override.get_key_element()}={override.get_value_element_as_str()}"
    return space, fixed


def check_storage(url: str) -> None:
    """hydra.sweeper.storage must be a database URL SQLAlchemy can open and, for SQLite, a database holding an
    Optuna study storage or nothing: a damaged file is refused before Optuna writes into it (StoreError)."""
    from sqlalchemy.engine import make_url

    name = f"{STORAGE_KEY}={redact(url)}"
    try:
        parsed = make_url(url)
        parsed.get_dialect()
    except Exception as error:  # ArgumentError: not a URL; NoSuchModuleError: an unknown scheme
        raise StoreError(f"{name} is not a database URL SQLAlchemy knows ({type(error).__name__}: {error}): give "
                         "sqlite:///PATH/optuna.db, postgresql://HOST/DB or mysql://HOST/DB") from None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        check_sqlite_file(Path(parsed.database).expanduser(), name=name, setting=STORAGE_KEY,
                          kind="an Optuna study storage", tables=OPTUNA_TABLES, write=True, make_folder=True)


def open_storage(url: Optional[str]) -> Optional[optuna.storages.BaseStorage]:
    """RDB storage for `url` (None: in memory, nothing persists). SQLite waits for locks held by other workers."""
    if url is None:
        log.warning("hydra.sweeper.storage is null: the study lives in memory and cannot be resumed")
        return None
    check_storage(url)
    engine_kwargs: Dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {}
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
    except Exception as error:  # SQLAlchemy / Optuna: a server that refuses, a schema of another Optuna version
        detail = next((line.strip() for line in str(error).splitlines() if line.strip()), "")[:300]
        raise StoreError(f"{STORAGE_KEY}={redact(url)} cannot be opened ({type(error).__name__}: {detail}): repair "
                         "it (`optuna storage upgrade --storage URL` for an old schema) or give another "
                         f"{STORAGE_KEY}") from None


def _check_jobs_store(config: Any) -> None:
    """The trials' MLflow store (the primary config's logger), checked once before any trial: a store that is not
    one stops the sweep in one line instead of failing every trial. A missing store is left for the jobs to make."""
    logger = OmegaConf.select(config, "logger") if config is not None else None
    if logger is not None:
        store.checked(OmegaConf.select(logger, "tracking_uri"), OmegaConf.select(logger, "store_dir"), create=False)


def redact(url: Optional[str]) -> Optional[str]:
    """Storage URL without its password (results files and logs are shared)."""
    return None if url is None else store.redact(url)


def _sampler(factory: Any, n_existing: int) -> optuna.samplers.BaseSampler:
    """Seed + trials already in the study: a resumed sweep or a second worker does not replay the same points."""
    if isinstance(factory, functools.partial):
        seed = factory.keywords.get("seed")
        return factory(seed=None if seed is None else int(seed) + n_existing)
    return factory


def _spent(study: optuna.Study) -> int:
    return sum(
        1
        for trial in study.get_trials(deepcopy=False, states=_SPENT_STATES)
        if not (trial.state == TrialState.FAIL and trial.user_attrs.get("interrupted"))
    )


def _owner_attrs() -> Dict[str, str]:
    """The sweep process that asked a trial (host, pid, start time): a later sweep can tell it is gone."""
    return {OWNER_ATTR: runs.process_tags()}


def _owner_gone(trial: optuna.trial.FrozenTrial) -> bool:
    owner = trial.user_attrs.get(OWNER_ATTR) or {}
    return runs.process_state(owner.get(runs.HOST_TAG), owner.get(runs.PID_TAG), owner.get(runs.START_TAG)) == "stale"


def _fail_stale_trials(study: optuna.Study, storage: Any, stale_after_s: Optional[float]) -> List[int]:
    """RUNNING trials of a sweep process that is gone (SIGKILL, a crash; same host), or older than stale_after_s:
    marked FAIL (interrupted) and re-queued, so they no longer count toward n_trials. Returns their numbers."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    now = datetime.datetime.now()
    reclaimed, kept = [], []
    for trial in running:
        aged = stale_after_s is not None and trial.datetime_start and (now - trial.datetime_start).total_seconds() > stale_after_s
        if not (_owner_gone(trial) or aged):
            kept.append(trial.number)
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), trial.number)
        storage.set_trial_user_attr(trial_id, "interrupted", True)
        storage.set_trial_state_values(trial_id, TrialState.FAIL)
        study.enqueue_trial(trial.params)
        reclaimed.append(trial.number)
        log.warning("Trial %d was left RUNNING (since %s) by a sweep that is gone: marked FAIL and re-queued",
                    trial.number, trial.datetime_start)
    if kept:
        log.warning(
            "%d trial(s) of study '%s' are RUNNING (another worker, or a killed sweep on another host); they count "
            "towards n_trials. Set hydra.sweeper.stale_after_s to reclaim them.", len(kept), study.study_name,
        )
    return reclaimed


def _close_stale_mlflow_runs(config: Any) -> None:
    """The MLflow runs of reclaimed trials were left RUNNING too: close the stale ones of the jobs' store."""
    if not _jobs_mlflow(config):
        return
    try:
        runs.close_stale_runs()
    except Exception as error:  # the sweep goes on; the next job's start tries again
        log.warning("Could not close stale MLflow runs: %s: %s", type(error).__name__, error)


def _jobs_mlflow(config: Any) -> bool:
    """Point MLflow at the trials' store (the primary config's logger); False when there is none to read."""
    logger = OmegaConf.select(config, "logger") if config is not None else None
    if logger is None:
        return False
    try:
        tracking.configure(OmegaConf.select(logger, "tracking_uri"), OmegaConf.select(logger, "store_dir"))
    except Exception as error:  # the sweep goes on without run ids
        log.warning("Could not open the trials' MLflow store: %s: %s", type(error).__name__, error)
        return False
    return True


def trial_run_id(study_name: str, number: int) -> Optional[str]:
    """The MLflow run a trial's job logged (tags sweep_study and sweep_trial, set from ++sweep.* by tag_trials):
    the newest one, or None."""
    if "'" in study_name:
        return None
    try:
        found = mlflow.search_runs(
            search_all_experiments=True, output_format="list", max_results=1, order_by=["attributes.start_time DESC"],
            filter_string=f"tags.sweep_study = '{study_name}' and tags.sweep_trial = '{number}'",
        )  # fmt: skip
    except Exception as error:  # MLflow unreachable: the trial keeps no run id
        log.warning("Could not look up the MLflow run of trial %d: %s: %s", number, type(error).__name__, error)
        return None
    return found[0].info.run_id if found else None


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def weight_paths(trial: optuna.trial.FrozenTrial, patterns: Sequence[str]) -> List[Path]:
    """The files and folders of the trial's output dir that `patterns` (hydra.sweeper.weight_files) name."""
    folder = trial.user_attrs.get(OUTPUT_DIR_ATTR)
    if not folder or not patterns:
        return []
    return sorted({path for pattern in patterns for path in Path(folder).glob(pattern)})


def prune_weights(study: optuna.Study, keep: str, patterns: Sequence[str], untag: bool = False) -> List[Path]:
    """Delete the weight files of the finished trials that `keep` does not keep (best: every trial but the study's
    best so far; none: every trial), and, with `untag`, their runs' weights_file tag. Returns what was deleted.

    Running trials are left alone (another worker may be writing them); "all" deletes nothing."""
    if keep == "all" or not patterns:
        return []
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    best = study.best_trial.number if keep == "best" and any(t.state == TrialState.COMPLETE for t in finished) else None
    removed: List[Path] = []
    for trial in finished:
        if trial.number == best:
            continue
        paths = weight_paths(trial, patterns)
        for path in paths:
            try:
                _remove(path)
            except OSError as error:  # e.g. a read-only output dir: the files stay, the sweep goes on
                log.warning("Could not delete %s of trial %d: %s", path, trial.number, error)
            else:
                removed.append(path)
        run_id = trial.user_attrs.get(RUN_ID_ATTR)
        if paths and untag and run_id:
            try:
                mlflow.MlflowClient().delete_tag(run_id, WEIGHTS_TAG)
            except Exception:  # no such tag (a job that names no weights), or the store is busy
                pass
    if removed:
        log.info("Deleted the weights of %d trial(s) (hydra.sweeper.keep_weights=%s)",
                 len({path.parent for path in removed}), keep)
    return removed


def fixed_config_hash(config: Any, space: Dict[str, SearchParam], fixed: Dict[str, str]) -> str:
    """Short hash of what every trial shares: the composed config without hydra/paths and the searched keys,
    plus the fixed overrides (hydra.* ones aside). Two sweeps on different data get different hashes."""
    container: Dict[str, Any] = {}
    if config is not None:
        container = OmegaConf.to_container(config, resolve=False)  # unresolved: no ${hydra:...} needed
        for key in ("hydra", "paths", "sweep"):
            container.pop(key, None)
        for name in space:
            *parents, last = name.split(".")
            node = container
            for part in parents:
                node = node.get(part) if isinstance(node, dict) else None
            if isinstance(node, dict):
                node.pop(last, None)
    overrides = sorted(text for key, text in fixed.items() if not key.startswith("hydra.") and key not in space)
    text = json.dumps({"config": container, "overrides": overrides}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _study_name(sweeper: Any, config_hash: str) -> str:
    """hydra.sweeper.study_name, or <task>-<hash of the fixed config>: a sweep on other data is another study."""
    if sweeper.study_name:
        return str(sweeper.study_name)
    config = sweeper.config
    task = (OmegaConf.select(config, "task_name") or OmegaConf.select(config, "hydra.job.name")) if config is not None else None
    return f"{task or 'sweep'}-{config_hash}"


def _check_fixed_config(study: optuna.Study, config_hash: str) -> None:
    """A study holds trials of one fixed config: refuse (one line, exit 2) to add trials of another."""
    stored = study.user_attrs.get(CONFIG_HASH_ATTR)
    if stored is None:
        study.set_user_attr(CONFIG_HASH_ATTR, config_hash)
    elif stored != config_hash:
        print(
            f"combomap-optuna: error: study '{study.study_name}' was run with another fixed config (hash {stored}, "
            f"now {config_hash}); use another hydra.sweeper.study_name, or leave it unset (the default name follows "
            "the config)", file=sys.stderr,
        )
        sys.exit(2)


def objective_value(return_value: Any, objective: Optional[str]) -> float:
    """The task's return value as a finite float (a mapping is indexed by `objective`)."""
    if isinstance(return_value, Mapping) or OmegaConf.is_dict(return_value):
        if objective is None:
            raise ValueError("The task returned a mapping: set hydra.sweeper.objective to the key to optimize")
        return_value = return_value[objective]
    try:
        value = float(return_value)
    except (TypeError, ValueError) as error:
        raise ValueError(f"The task must return a number to optimize, got {return_value!r}") from error
    if not math.isfinite(value):
        raise ValueError(f"The objective is not finite: {value}")
    return value


class _SignalAsInterrupt:
    """SIGTERM (scheduler time limit, kill) raises KeyboardInterrupt so the running batch is marked and re-queued."""

    def __enter__(self) -> "_SignalAsInterrupt":
        self.previous = None
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc: Any) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)


def _trial_overrides(sweeper: Any, study: optuna.Study, trial: optuna.trial.Trial, space: Dict[str, SearchParam], fixed: Dict[str, str]) -> List[str]:
    overrides = list(fixed.values())
    overrides += [param.override(trial.params[param.name]) for param in space.values()]
    if sweeper.tag_trials:
        overrides += [f"++sweep.study_name={Transformer.str(study.study_name)}", f"++sweep.trial={trial.number}"]
    return overrides


def write_results(study: optuna.Study, path: Path, storage_url: Optional[str],
                  weight_files: Sequence[str] = ()) -> Dict[str, Any]:
    """optimization_results.yaml: the best trial's value, params, full override list, MLflow run, output dir and the
    weight files it kept, and trial counts. The storage URL is written absolute (without its password)."""
    trials = study.get_trials(deepcopy=False)
    counts = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    results: Dict[str, Any] = {
        "name": "combomap_optuna",
        "study_name": study.study_name,
        "storage": redact(absolute_sqlite_uri(storage_url)),
        "direction": study.direction.name.lower(),
        "trials": {k: v for k, v in counts.items() if v},
    }
    if counts["complete"]:
        best = study.best_trial
        results.update(
            best_trial=best.number,
            best_value=best.value,
            best_params=dict(best.params),
            best_overrides=list(best.user_attrs.get("overrides", [])),
            best_mlflow_run_id=best.user_attrs.get(RUN_ID_ATTR),
            best_output_dir=best.user_attrs.get(OUTPUT_DIR_ATTR),
            best_weights=[str(path) for path in weight_paths(best, weight_files)],
        )
        log.info("Best trial %d of study '%s': value %s, params %s", best.number, study.study_name, best.value, best.params)
    path.parent.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(results), path)
    return results


def run_sweep(sweeper: Any, arguments: List[str]) -> Dict[str, Any]:
    """Fill the study up to n_trials in batches of n_jobs launched together; failed trials are told FAIL."""
    space, fixed = parse_search_space([f"{key}={value}" for key, value in sweeper.params.items()] + list(arguments))
    _check_jobs_store(getattr(sweeper, "config", None))
    storage_url = absolute_sqlite_uri(sweeper.storage)
    keep_weights = getattr(sweeper, "keep_weights", "all")
    weight_files = list(getattr(sweeper, "weight_files", None) or [])
    storage = open_storage(storage_url)
    config_hash = fixed_config_hash(getattr(sweeper, "config", None), space, fixed)
    study = optuna.create_study(
        study_name=_study_name(sweeper, config_hash), storage=storage, direction=sweeper.direction, load_if_exists=True
    )
    _check_fixed_config(study, config_hash)
    if study.direction.name.lower() != sweeper.direction:
        raise ValueError(
            f"Study '{study.study_name}' in the storage was created to {study.direction.name.lower()}, "
            f"the config says {sweeper.direction}: use another study_name"
        )
    if _fail_stale_trials(study, storage, sweeper.stale_after_s):
        _close_stale_mlflow_runs(getattr(sweeper, "config", None))
    study.sampler = _sampler(sweeper.sampler, len(study.get_trials(deepcopy=False)))
    distributions = {param.name: param.distribution for param in space.values()}
    log.info(
        "Study '%s' in %s: %d of %d trials spent, %s, batches of %d through %s",
        study.study_name, redact(storage_url), _spent(study), sweeper.n_trials, sweeper.direction,
        sweeper.n_jobs, type(sweeper.launcher).__name__,
    )
    log.info("Search space: %s", {name: str(dist) for name, dist in distributions.items()})
    if weight_files:
        log.info("Weights (%s): %s (hydra.sweeper.keep_weights=%s)", ", ".join(weight_files),
                 {"best": "the best trial's only", "none": "none kept", "all": "every trial's"}[keep_weights], keep_weights)
    has_runs = False  # whether the trials' MLflow store is open (after a first batch made it)

    job_idx, launched = 0, 0
    failures: List[str] = []
    progress.configure(sweeper.config)  # the primary config's `progress` key, as in every job
    trials_done = progress.Progress(sweeper.n_trials, f"sweep '{study.study_name}' trials", unit="trial",
                                    initial=_spent(study))
    with _SignalAsInterrupt(), trials_done:
        while (remaining := sweeper.n_trials - _spent(study)) > 0:
            trials = [study.ask(fixed_distributions=distributions) for _ in range(min(sweeper.n_jobs, remaining))]
            batch = []
            for trial in trials:
                overrides = _trial_overrides(sweeper, study, trial, space, fixed)
                trial.set_user_attr("overrides", overrides)
                for key, value in _owner_attrs().items():
                    trial.set_user_attr(key, value)
                batch.append(tuple(overrides))
            try:
                returns = sweeper.launcher.launch(batch, initial_job_idx=job_idx)
            except Exception as error:  # the launcher itself broke (a worker killed for memory, a failed sbatch)
                for trial in trials:
                    trial.set_user_attr("error", f"launcher: {type(error).__name__}: {error}"[:2000])
                    study.tell(trial, state=TrialState.FAIL)
                failures += [f"trial {t.number}: launcher: {type(error).__name__}: {error}" for t in trials]
                log.warning("Launching trials %s failed: %s: %s", [t.number for t in trials], type(error).__name__, error)
                job_idx += len(trials)
                launched += len(trials)
                returns = []
            except BaseException:  # Ctrl-C, SIGTERM: re-queue the batch for the next run of the command
                for trial in trials:
                    trial.set_user_attr("interrupted", True)
                    study.tell(trial, state=TrialState.FAIL)
                    study.enqueue_trial(trial.params)
                log.warning("Sweep interrupted: trials %s marked FAIL and re-queued for the next run", [t.number for t in trials])
                raise
            job_idx += len(returns)
            launched += len(returns)
            has_runs = has_runs or (bool(returns) and sweeper.tag_trials and _jobs_mlflow(getattr(sweeper, "config", None)))
            for trial, job in zip(trials, returns):
                if job.hydra_cfg is not None:
                    trial.set_user_attr(OUTPUT_DIR_ATTR, str(Path(str(job.hydra_cfg.hydra.runtime.output_dir)).resolve()))
                run_id = trial_run_id(study.study_name, trial.number) if has_runs else None
                if run_id:
                    trial.set_user_attr(RUN_ID_ATTR, run_id)
                try:
                    value = objective_value(job.return_value, sweeper.objective)
                except Exception as error:  # the job's own exception, re-raised by JobReturn
                    trial.set_user_attr("error", f"{type(error).__name__}: {error}"[:2000])
                    study.tell(trial, state=TrialState.FAIL)
                    failures.append(f"trial {trial.number}: {type(error).__name__}: {error}")
                    log.warning("Trial %d failed: %s: %s", trial.number, type(error).__name__, error)
                else:
                    study.tell(trial, value)
                    log.info("Trial %d: %s = %s", trial.number, sweeper.objective or "value", value)
            prune_weights(study, keep_weights, weight_files, untag=has_runs)
            trials_done.update(len(trials), f"{len(failures)} failed" if failures else "")
            if failures and len(failures) / launched > sweeper.max_failure_rate:
                raise RuntimeError(
                    f"{len(failures)} of {launched} trials failed (max_failure_rate={sweeper.max_failure_rate}); "
                    f"first: {failures[0]}"
                )

    prune_weights(study, keep_weights, weight_files, untag=has_runs)  # trials told by another worker meanwhile
    results = write_results(study, Path(str(sweeper.config.hydra.sweep.dir)) / RESULTS_FILE, storage_url, weight_files)
    if "best_trial" not in results:
        raise RuntimeError(f"No trial of study '{study.study_name}' completed; first failure: {failures[:1]}")
    return results
