"""The schema of conf/predict.yaml as a whole: combomap-predict's own settings typed and checked; the `library` and
`engine` groups are typed by their own schemas (combomap.config.data.library_source, the engine schema)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import MISSING

from combomap.settings import Checked, SettingsError, key_of, limits
from combomap.stacking.final_model import INFERENCE_MODES
from combomap.stacking.predict import OUTPUT_FORMATS

PAIRS_ACCEPTED = "a CSV/TSV file (columns drug1, drug2) or a list of pairs [drugA+drugB, ...]"


@dataclass
class PredictOutput(Checked):
    """Where and how the predictions are written (conf/predict.yaml's output)."""

    format: str = field(default="npy", metadata=limits(choices=OUTPUT_FORMATS))
    path: str = MISSING
    # the most predicted values (pairs x model genes) one run may hold and write; more is refused before any work
    max_entries: int = field(default=1_000_000_000, metadata=limits(1))  # 4 GB as float32


@dataclass
class PredictConfig(Checked):
    """combomap-predict's settings (conf/predict.yaml documents them)."""

    task_name: str = "predict"
    progress: bool = True
    model_dir: str = MISSING
    pairs: Any = MISSING  # a file, or a list of "A+B" strings / [A, B] lists
    inference: Optional[str] = field(default=None, metadata=limits(choices=INFERENCE_MODES))
    output: PredictOutput = field(default_factory=PredictOutput)
    paths: Any = None
    library: Any = None
    engine: Any = None

    def validate(self, prefix: str) -> None:
        key = key_of(prefix, "pairs")
        if isinstance(self.pairs, str):
            return
        if not isinstance(self.pairs, list):
            raise SettingsError(f"{key} must be {PAIRS_ACCEPTED}, got {self.pairs!r}")
        for position, pair in enumerate(self.pairs):
            if not (isinstance(pair, str) or (isinstance(pair, list) and len(pair) == 2
                                              and all(isinstance(drug, str) for drug in pair))):
                raise SettingsError(f"{key}[{position}] must be drugA+drugB or [drugA, drugB], got {pair!r}")


PREDICT_SCHEMA = "predict_schema"

SCHEMAS: list[tuple[Any, ...]] = [("", PredictConfig, PREDICT_SCHEMA)]
