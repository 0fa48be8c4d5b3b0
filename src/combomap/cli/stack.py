"""combomap-stack: baselines, out-of-fold nets, the stacker ablation and the final model, as one MLflow run.
Config: conf/stack.yaml (every setting and the MLflow metric keys).

    combomap-stack                                  # default simulated compendium, quick fold nets
    combomap-stack stacker=lightgbm data=npy data.dir=DIR
    combomap-stack experiment=blog trainer=gpu      # the original's full-size nets

The work: combomap.jobs.stack.
"""

from __future__ import annotations

from omegaconf import DictConfig

from combomap.console import command
from combomap.jobs import stack


@command("combomap-stack", "stack")
def main(cfg: DictConfig) -> float:
    return stack.run(cfg)


if __name__ == "__main__":
    main()
