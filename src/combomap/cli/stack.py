"""combomap-stack: baselines, out-of-fold nets, the stacker ablation and the final model, as one MLflow run.

    combomap-stack                                  # default simulated compendium, quick fold nets
    combomap-stack stacker=lightgbm data=npy data.dir=DIR
    combomap-stack experiment=blog trainer=gpu      # the original's full-size nets

See conf/stack.yaml for every setting and the MLflow metric keys; the work is in
combomap.stacking.pipeline.run.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from combomap.cli import user_errors
from combomap.paths import CONF_DIR
from combomap.stacking.backends import StackerError
from combomap.stacking.cv import FoldError
from combomap.stacking.features import FeatureError
from combomap.stacking.pipeline import run


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="stack")
@user_errors("combomap-stack", StackerError, FoldError, FeatureError)
def main(cfg: DictConfig) -> float:
    return run(cfg)


if __name__ == "__main__":
    main()
