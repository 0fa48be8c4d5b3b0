"""The final stacked model as an MLflow pyfunc model: loaded from runs:/<id>/model and served by
`mlflow models serve`, it predicts what combomap-predict predicts; every artifact is stored once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from hydra.core.global_hydra import GlobalHydra

from combomap.data.library_io import SimulatedLibrary, library_from_dict, write_library_npy
from combomap.data.simulate import simulate_library
from combomap.jobs import predict
from combomap.jobs import stack as stack_job
from combomap.stacking.serving import INPUT_COLUMNS, MODEL_NAME
from combomap.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, artifact_table
from tests import servers
from tests.conftest import compose_config
from tests.mlflow_template import new_store
from tests.stacking.test_pipeline import TINY

LIBRARY = ["library.preset=tiny", "library.n_drugs=12"]
REGISTERED = "combomap-tiny"
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory: pytest.TempPathFactory):
    """One tiny combomap-stack run whose final model uses fold nets and the basis: (run id, run dir, store uri)."""
    tmp = tmp_path_factory.mktemp("serving")
    uri = f"sqlite:///{new_store(tmp / 'mlruns') / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", uri)
        cfg = compose_config("stack", [*TINY, *LIBRARY, "stacking.plots=false", "stacking.final=latent_both",
                                       f"register={REGISTERED}"], tmp / "run")
        stack_job.run(cfg)
        GlobalHydra.instance().clear()
        runs = mlflow.search_runs(search_all_experiments=True, filter_string="tags.job = 'stack'")
    yield runs["run_id"].iloc[0], tmp / "run", uri


def _pairs() -> list[tuple[str, str]]:
    drugs = simulate_library(n_drugs=12, preset="tiny", seed=0).drugs
    return [(drugs[0], drugs[1]), (drugs[1], drugs[0]), (drugs[3], drugs[7])]


def _combomap_predict(run_dir: Path, tmp_path: Path, pairs: list[tuple[str, str]]) -> np.ndarray:
    spec = "[" + ",".join(f"{a}+{b}" for a, b in pairs) + "]"
    cfg = compose_config("predict", [f"model_dir={run_dir / 'model'}", "library=simulated", *LIBRARY, f"pairs={spec}",
                                     f"output.path={tmp_path}/predictions"], tmp_path / "predict")
    GlobalHydra.instance().clear()
    return np.load(predict.run(cfg)[0], allow_pickle=False)


def test_pyfunc_model_predicts_like_combomap_predict(stack_run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run_id, run_dir, uri = stack_run
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    mlflow.set_tracking_uri(uri)
    pairs = _pairs()
    expected = _combomap_predict(run_dir, tmp_path, pairs)

    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/{MODEL_NAME}")
    assert model.metadata.get_input_schema().input_names() == list(INPUT_COLUMNS)
    assert model.metadata.saved_input_example_info is not None
    assert [p.name for p in model.metadata.get_params_schema().params] == ["inference"]
    genes = (run_dir / "model" / "genes.txt").read_text().split()
    predicted = model.predict(pd.DataFrame(pairs, columns=list(INPUT_COLUMNS)))
    assert list(predicted.columns) == genes
    np.testing.assert_array_equal(predicted.to_numpy(dtype=np.float32), expected)
    with pytest.raises(ValueError, match="unknown inference mode 'bogus'"):  # the param reaches the model
        model.predict(pd.DataFrame(pairs, columns=list(INPUT_COLUMNS)), params={"inference": "bogus"})
    with pytest.raises(Exception, match="drug1"):
        model.predict(pd.DataFrame({"first": ["a"], "second": ["b"]}))
    logged = model.model_config["library"]  # the run's typed library source, as a plain dict
    assert library_from_dict(logged) == SimulatedLibrary(n_drugs=12, preset="tiny") and logged["source"] == "simulated"
    write_library_npy(simulate_library(n_drugs=12, preset="tiny", seed=0), tmp_path / "library")
    other = mlflow.pyfunc.load_model(f"runs:/{run_id}/{MODEL_NAME}", model_config={"library": {
        "source": "npy", "dir": str(tmp_path / "library")}})  # the same signatures, from another source
    np.testing.assert_array_equal(other.predict(pd.DataFrame(pairs, columns=list(INPUT_COLUMNS))).to_numpy(dtype=np.float32),
                                  expected)

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND
    table = artifact_table(run_id, "ablation.csv", mlflow.get_tracking_uri())  # the table's one artifact, read back exactly
    ablation = pd.read_csv(run_dir / "ablation.csv", float_precision="round_trip")
    assert list(table["model"]) == list(ablation["model"])
    np.testing.assert_array_equal(table["sign_acc"].to_numpy(float), ablation["sign_acc"].to_numpy(float))
    assert run.data.metrics["ablation/average/sign_acc"] == table.set_index("model").loc["average", "sign_acc"]


def test_every_fold_net_is_stored_once_in_the_run_dir_and_once_in_mlflow(stack_run) -> None:
    _, run_dir, uri = stack_run
    store = Path(uri.removeprefix("sqlite:///")).parent
    nets = sorted(p.name for p in (run_dir / "model" / "nets").iterdir() if p.suffix == ".safetensors")
    assert nets == ["fold0.safetensors", "fold1.safetensors"]
    for name in nets:
        copies = [p for root in (run_dir, store) for p in root.rglob(name)]
        assert len(copies) == 2, copies  # model/nets/ and the pyfunc model's artifacts
    assert not list(run_dir.glob("fold*")) and not list(store.rglob("mlp.safetensors"))


def test_mlflow_models_serve_answers_invocations(stack_run, tmp_path: Path) -> None:
    run_id, run_dir, uri = stack_run
    port = servers.free_port()
    if port is None:
        pytest.skip("cannot bind a port on 127.0.0.1")
    pairs = _pairs()
    expected = _combomap_predict(run_dir, tmp_path, pairs)
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"runs:/{run_id}/{MODEL_NAME}",
               "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port), "-w", "1"]
    # mlflow execs `uvicorn` by name: the interpreter's own bin/ first, whether or not the venv is activated
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": path}
    server = servers.start(command, cwd=tmp_path, env=env)
    try:
        base = f"http://127.0.0.1:{port}"
        servers.wait_ready(f"{base}/ping", server)
        body = {"dataframe_records": [{"drug1": a, "drug2": b} for a, b in pairs]}
        request = urllib.request.Request(f"{base}/invocations", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read())["predictions"]
        genes = (run_dir / "model" / "genes.txt").read_text().split()
        served = np.array([[row[gene] for gene in genes] for row in answer], dtype=np.float32)
        np.testing.assert_array_equal(served, expected)
    finally:
        servers.stop(server)


def test_the_final_model_is_registered_with_its_headline_as_tags(stack_run) -> None:
    run_id, _, uri = stack_run
    client = mlflow.MlflowClient(uri)
    (version,) = client.search_model_versions(f"name = '{REGISTERED}'")
    run = client.get_run(run_id)
    assert version.run_id == run_id and int(version.version) == 1
    assert {key: float(version.tags[key]) for key in ("final_sign_acc", "average_sign_acc", "gain_pts")} == pytest.approx(
        {key: run.data.metrics[key] for key in ("final_sign_acc", "average_sign_acc", "gain_pts")}, abs=1e-5)
    assert version.tags["final.model"] == run.data.tags["final.model"] == "stack_latent_both"
    assert version.tags["run_name"] == run.info.run_name == "stack-tiny-xgboost-mlp-s0"
    inputs = {entry.dataset.name: entry.dataset.digest for entry in run.inputs.dataset_inputs}
    assert version.tags["data.digest"] == inputs["simulated-tiny"] and "simulated-library-tiny" in inputs  # the basis


def test_the_served_environment_pins_only_published_packages(stack_run, tmp_path: Path) -> None:
    run_id, _, uri = stack_run
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run_id}/{MODEL_NAME}", dst_path=str(tmp_path), tracking_uri=uri))
    pins = dict(line.split("==") for line in (local / "requirements.txt").read_text().split())
    assert "combomap" not in pins and not any("+" in version for version in pins.values())
    assert pins["mlflow"] == mlflow.__version__ and pins["numpy"] == np.__version__ and "pytest" not in pins
    code = local / "code" / "combomap"
    assert (code / "stacking" / "serving.py").read_bytes() == (SRC / "combomap" / "stacking" / "serving.py").read_bytes()
    assert not list(code.rglob("__pycache__"))


def test_the_model_runs_its_own_code_where_combomap_is_not_installed(stack_run, tmp_path: Path) -> None:
    run_id, run_dir, uri = stack_run
    pairs = _pairs()
    expected = _combomap_predict(run_dir, tmp_path, pairs)
    script = (
        "import json, sys; from pathlib import Path\n"
        f"sys.path = [p for p in sys.path if Path(p or '.').resolve() != Path({str(SRC)!r})]\n"
        "import importlib.util; assert importlib.util.find_spec('combomap') is None\n"
        "import mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({f'runs:/{run_id}/{MODEL_NAME}'!r})\n"
        "import combomap\n"
        f"out = model.predict(pd.DataFrame({pairs!r}, columns=['drug1', 'drug2']))\n"
        "print(json.dumps({'code': combomap.__file__, 'values': out.to_numpy().tolist()}))\n"
    )
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert "code" in Path(answer["code"]).parts and SRC not in Path(answer["code"]).parents
    np.testing.assert_array_equal(np.array(answer["values"], dtype=np.float32), expected)
