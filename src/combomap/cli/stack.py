"""combomap-stack: baselines, out-of-fold nets, the stacker ablation and the final model, as one MLflow run.

    combomap-stack                                  # default simulated compendium, quick fold nets
    combomap-stack stacker=lightgbm data=npy data.dir=DIR
    combomap-stack experiment=blog trainer=gpu      # the original's full-size nets

See conf/stack.yaml for every setting and the MLflow metric keys; the work is in
combomap.stacking.pipeline.run.
"""

from __future__ import annotations

from omegaconf import DictConfig

from combomap.cli import command
from combomap.stacking.pipeline import run


@command("combomap-stack", "stack")
def main(cfg: DictConfig) -> float:
    return run(cfg)


if __name__ == "__main__":
    main()
