"""combomap-evaluate: score the baselines and saved predictions on one data set. Config: conf/evaluate.yaml.

    combomap-evaluate data=simulated data.preset=small
    combomap-evaluate data=npy data.dir=DIR +predictions.mlp=preds/mlp.npy
"""

from omegaconf import DictConfig

from combomap.console import command
from combomap.jobs import evaluate


@command("combomap-evaluate", "evaluate")
def main(cfg: DictConfig) -> None:
    evaluate.run(cfg)


if __name__ == "__main__":
    main()
