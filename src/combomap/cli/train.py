"""combomap-train: train one MLP ("Hopeless Model") on a data set, as one MLflow run. Config: conf/train.yaml.

    combomap-train                                    # default: CPU-friendly (as experiment=quick_mlp)
    combomap-train experiment=blog_mlp trainer=gpu    # the original's full size, 5000 epochs
    combomap-train -m augment=none,flip schedule=linear,cosine

Writes mlp.safetensors (+ mlp.json), metrics.json and plots/ into paths.output_dir and logs all but the weights to
the run (its tag weights_file names them: stored once); returns cfg.optimized_metric for sweepers. The work:
combomap.jobs.train.
"""

from __future__ import annotations

from omegaconf import DictConfig

from combomap.console import command
from combomap.jobs import train


@command("combomap-train", "train")
def main(cfg: DictConfig) -> float:
    return train.optimized_metric(cfg, train.run(cfg))


if __name__ == "__main__":
    main()
