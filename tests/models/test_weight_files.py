"""Weights are written once (in the run dir, not again in MLflow), with the mode of every other output (0644 under
umask 022), and the Optuna config's weight_files name exactly what a trial's run dir holds of its network."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hydra.core.hydra_config import HydraConfig

from combomap.jobs.train import run
from combomap.models.latent import GeneProgramBasis
from combomap.models.portable import PortableMLP
from combomap.models.portable_latent import PortableLatentNet
from tests.conftest import compose_config

TINY = ["data.preset=tiny", "model.hidden_sizes=[16]", "trainer.max_epochs=1", "datamodule.batch_size=4"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def umask_022() -> Iterator[None]:
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_net_files_are_written_with_the_umask_mode_in_one_rename(tmp_path: Path, umask_022: None) -> None:
    rng = np.random.default_rng(0)
    genes = [f"G{i}" for i in range(6)]
    mlp = PortableMLP(weights=[rng.normal(size=(4, 12)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)],
                      biases=[np.zeros(4, np.float32), np.zeros(6, np.float32)], activation="very_leaky_relu", genes=genes)
    basis = GeneProgramBasis(genes, rng.normal(size=(6, 2)), np.ones(2), 0.1)
    latent = PortableLatentNet(
        phi=[(rng.normal(size=(3, 2)).astype(np.float32), np.zeros(3, np.float32)),
             (rng.normal(size=(3, 3)).astype(np.float32), np.zeros(3, np.float32))],
        rho=(rng.normal(size=(2, 3)).astype(np.float32), np.zeros(2, np.float32)),
        slope=np.full(2, 0.5, np.float32), activation="very_leaky_relu", basis=basis,
    )  # fmt: skip
    written = [mlp.save(tmp_path / "mlp.safetensors"), latent.save(tmp_path / "latent.safetensors")]
    assert {path.name: oct(_mode(path)) for path in tmp_path.iterdir()} == {
        "mlp.safetensors": "0o644", "mlp.json": "0o644", "latent.safetensors": "0o644", "latent.json": "0o644",
    }  # fmt: skip  (and no staging file left behind)
    loaded = PortableMLP.load(written[0])
    for got, expected in zip(loaded.weights + loaded.biases, mlp.weights + mlp.biases):
        np.testing.assert_array_equal(got, expected)

    os.umask(0o077)  # the mode follows the umask, as for any other file
    assert oct(_mode(mlp.save(tmp_path / "private.safetensors"))) == "0o600"


def test_a_training_keeps_its_weights_once_readable_and_named_by_the_sweep_config(
    compose_cfg, mlflow_store: Path, tmp_path: Path, umask_022: None
) -> None:
    cfg = compose_cfg("train", [*TINY, "callbacks.checkpoint.every_n_epochs=1"])  # the default callbacks: checkpoints
    run(cfg)
    out = Path(cfg.paths.output_dir)
    weights = (out / "mlp.safetensors").read_bytes()
    files = [path for root in (out, mlflow_store) for path in root.rglob("*") if path.is_file()]
    copies = [path for path in files if path.stat().st_size == len(weights) and path.read_bytes() == weights]
    assert copies == [out / "mlp.safetensors"]  # not also an MLflow artifact
    assert {str(path.relative_to(out)): oct(_mode(path)) for path in files if _mode(path) != 0o644
            and out in path.parents} == {}
    assert oct(_mode(out / "checkpoints" / "last.ckpt")) == "0o644"

    compose_config("train", ["hparams_search=mlp_optuna"], tmp_path / "sweep")
    sweep = HydraConfig.get().sweeper
    assert sweep.keep_weights == "best" and sweep.n_trials == 40
    named = {path for pattern in sweep.weight_files for path in out.glob(pattern)}
    assert {path.name for path in named} == {"mlp.safetensors", "mlp.json", "checkpoints"}
    kept = [path for path in files if out in path.parents and not any(p == path or p in path.parents for p in named)]
    assert {"metrics.json", "accuracy_by_effect.png"} <= {path.name for path in kept}
    assert not [path for path in kept if path.suffix in (".safetensors", ".ckpt")]
