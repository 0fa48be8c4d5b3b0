"""combomap-predict: combination signatures of drug pairs from a saved stacked model and a drug library.

    combomap-predict model_dir=outputs/stack/runs/<time>/model library.source=npy library.dir=LIB \
        'pairs=[drugA+drugB,drugC+drugD]'
    combomap-predict model_dir=... library.source=tidy library.path=lib.parquet pairs=pairs.csv output.format=parquet

See conf/predict.yaml; the work is in combomap.stacking.predict.run. Bad input (unknown drugs, genes
that do not match the model's, a model directory from an incompatible version) ends with a one-line
error and exit status 2 instead of a traceback.
"""

from __future__ import annotations

from omegaconf import DictConfig

from combomap.cli import command
from combomap.stacking.predict import run


@command("combomap-predict", "predict")
def main(cfg: DictConfig) -> None:
    run(cfg)


if __name__ == "__main__":
    main()
