"""combomap-predict: combination signatures of drug pairs from a saved stacked model and a drug library.

    combomap-predict model_dir=outputs/stack/runs/<time>/model library=npy library.dir=LIB \
        'pairs=[drugA+drugB,drugC+drugD]'
    combomap-predict model_dir=... library=tidy library.path=lib.parquet pairs=pairs.csv output.format=parquet

Config: conf/predict.yaml; the job is combomap.jobs.predict.run.
"""

from omegaconf import DictConfig

from combomap.console import command
from combomap.jobs import predict


@command("combomap-predict", "predict")
def main(cfg: DictConfig) -> None:
    predict.run(cfg)


if __name__ == "__main__":
    main()
