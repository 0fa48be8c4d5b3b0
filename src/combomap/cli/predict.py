"""combomap-predict: combination signatures of drug pairs from a saved stacked model and a drug library.

    combomap-predict model_dir=outputs/stack/runs/<time>/model library.source=npy library.dir=LIB \
        'pairs=[drugA+drugB,drugC+drugD]'
    combomap-predict model_dir=... library.source=tidy library.path=lib.parquet pairs=pairs.csv output.format=parquet

See conf/predict.yaml; the work is in combomap.stacking.predict.run. Bad input (unknown drugs, genes
that do not match the model's, a model directory from an incompatible version) ends with a one-line
error and exit status 2 instead of a traceback.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from combomap.cli import user_errors
from combomap.paths import CONF_DIR
from combomap.stacking.backends import StackerError
from combomap.stacking.final_model import ModelFormatError
from combomap.stacking.predict import run


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="predict")
@user_errors("combomap-predict", ModelFormatError, StackerError)
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
