"""The final stacked model as an MLflow pyfunc model: load it, or serve it over HTTP, and predict drug pairs.

    model = mlflow.pyfunc.load_model("runs:/<run id>/model")
    model.predict(pd.DataFrame({"drug1": ["drug0001"], "drug2": ["drug0002"]}))     # one row per pair
    mlflow models serve -m runs:/<run id>/model --env-manager local -h 127.0.0.1 -p 5001
    curl -X POST 127.0.0.1:5001/invocations -H 'Content-Type: application/json' \
        -d '{"dataframe_records": [{"drug1": "drug0001", "drug2": "drug0002"}]}'

Input: a DataFrame with string columns drug1, drug2, one row per pair, drugs named as in the library.
Output: a DataFrame with one row per pair and one float column per model gene, in the model's gene order
(genes.txt of the model directory): the same numbers as `combomap-predict` writes to predictions.npy.
Param: inference = per_net | mean_net (default: the model's own, see combomap.stacking.final_model).

The single-drug signatures come from a drug library, referenced (not copied): the typed library source of the
combomap-stack run (combomap.data.library_io), with file paths made absolute, as a plain dict in the model's
model_config. Load another library with
`mlflow.pyfunc.load_model(uri, model_config={"library": {"source": "npy", "dir": "/path/to/library"}})`.

Artifacts: the run's model directory once (manifest.json, genes.txt, the stacker in its GBM library's own
format, the fold nets as safetensors + JSON, the basis), read with StackedModel.load; nothing is unpickled.
The pyfunc class is logged as code (MLflow's models-from-code, serving_model_code.py), not cloudpickled, and the
combomap package's sources travel with the model (code_paths): its requirements.txt pins only published packages
(combomap's dependencies at the versions that trained it), so `--env-manager virtualenv|uv` can build its
environment from PyPI; `--env-manager local` serves from the current environment.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd

import combomap
from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.data.library_io import LibrarySource, library_from_dict
from combomap.stacking.final_model import StackedModel, align_genes
from combomap.stacking.predict import predict_pairs

log = logging.getLogger(__name__)

MODEL_NAME = "model"  # runs:/<run id>/model
NOT_SERVED = {"pytest"}  # a dependency of the test command, not of a served model
MODEL_DIR_ARTIFACT = "model_dir"
INPUT_COLUMNS = ("drug1", "drug2")
MODEL_CODE = Path(__file__).with_name("serving_model_code.py")
PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"

_LIBRARIES: dict[str, DrugLibrary] = {}  # one load per library source and process (a simulated library takes seconds)


def _library_key(source: LibrarySource) -> str:
    return json.dumps(source.to_dict(), sort_keys=True, default=str)


def cached_library(source: LibrarySource) -> DrugLibrary:
    """The library of `source`, loaded once per process."""
    key = _library_key(source)
    if key not in _LIBRARIES:
        _LIBRARIES[key] = source.load()
    return _LIBRARIES[key]


def pairs_of(model_input: pd.DataFrame) -> list[tuple[str, str]]:
    """[(drug1, drug2), ...] from the input frame; a clear error when a column is missing."""
    if not isinstance(model_input, pd.DataFrame):
        model_input = pd.DataFrame(model_input)
    missing = [column for column in INPUT_COLUMNS if column not in model_input.columns]
    if missing:
        raise DataError(f"model input needs columns {list(INPUT_COLUMNS)} (one row per drug pair); missing {missing}")
    return list(zip(model_input["drug1"].astype(str).str.strip(), model_input["drug2"].astype(str).str.strip()))


class StackedPairsModel(mlflow.pyfunc.PythonModel):
    """Drug pairs in, predicted combination signatures out (see the module docstring for the schema)."""

    def load_context(self, context: Any) -> None:
        self.model = StackedModel.load(context.artifacts[MODEL_DIR_ARTIFACT])
        self.library = cached_library(library_from_dict((context.model_config or {})["library"]))

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        inference = (params or {}).get("inference") or None
        prediction = predict_pairs(self.model, self.library, pairs_of(model_input), inference=inference)
        return pd.DataFrame(prediction, columns=self.model.genes)


def log_pyfunc_model(model: StackedModel, model_dir: Path, source: LibrarySource,
                     library: DrugLibrary | None = None) -> Any:
    """Log the model directory as the pyfunc model `model` of the active run (its only copy in MLflow), serving
    pairs from the library of `source` (`library`: that library, already loaded).

    Returns the ModelInfo, or None when the library cannot serve the model (it is not there, lacks model genes
    or has under two drugs): the directory is then logged as plain artifacts `model/`."""
    from mlflow.models import infer_signature

    source = source.with_absolute_paths()
    try:
        library = library if library is not None else cached_library(source)
        align_genes(model.genes, library.genes, library.source)
        if len(library.drugs) < 2:
            raise DataError(f"{library.source} holds {len(library.drugs)} drug(s); a pair needs two")
    except (DataError, OSError) as error:
        log.warning("the model is logged as plain artifacts, not as an MLflow pyfunc model: %s", error)
        mlflow.log_artifacts(str(model_dir), artifact_path=MODEL_NAME)
        return None
    _LIBRARIES[_library_key(source)] = library  # MLflow's check of the input example loads it in this process
    example = pd.DataFrame({"drug1": [library.drugs[0]], "drug2": [library.drugs[1]]})
    output = pd.DataFrame(predict_pairs(model, library, pairs_of(example)), columns=model.genes)
    signature = infer_signature(example, output, params={"inference": model.inference})
    # MLflow's check of the example "downloads" the model: 9 bars per run log
    with _no_download_progress_bars(), tempfile.TemporaryDirectory(prefix="combomap-code-") as folder:
        return mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=str(MODEL_CODE),
            artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
            model_config={"library": source.to_dict()},
            signature=signature,
            input_example=example,
            pip_requirements=serving_requirements(),
            code_paths=[str(package_code(Path(folder)))],
        )


def serving_requirements() -> list[str]:
    """The model environment's requirements: combomap's own dependencies pinned to the versions installed here,
    all resolvable from PyPI. combomap itself is not published, so no `combomap==<version>` pin (which no index
    could resolve): its code travels with the model instead (package_code)."""
    pinned = []
    for spec in importlib.metadata.requires("combomap") or []:
        name = re.split(r"[\s<>=!~;\[(]", spec, maxsplit=1)[0]
        if "extra ==" in spec or name.lower() in NOT_SERVED:
            continue
        # a local label (torch's +cpu) names a build of another index: the public release of the same version
        pinned.append(f"{name}=={importlib.metadata.version(name).split('+')[0]}")
    return pinned


def package_code(folder: Path) -> Path:
    """A copy of the installed combomap package (sources only) in `folder`, logged as the model's code_paths: MLflow
    puts it first on sys.path when it loads the model, so the model runs the code that trained it."""
    copy = folder / "combomap"
    shutil.copytree(Path(combomap.__file__).parent, copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return copy


@contextlib.contextmanager
def _no_download_progress_bars() -> Iterator[None]:
    previous = os.environ.get(PROGRESS_BAR_ENV)
    os.environ[PROGRESS_BAR_ENV] = "false"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(PROGRESS_BAR_ENV, None)
        else:
            os.environ[PROGRESS_BAR_ENV] = previous
