"""combomap-interactions: which genes of each measured combination depart from its singles, with FDR control, as one
MLflow run. Config: conf/interactions.yaml (every setting, the files and the MLflow keys); docs/interactions.md.

    combomap-interactions                                   # the default simulated compendium, expected additive
    combomap-interactions data=tidy data.path=FILE          # a tidy table (no variances: a robust residual scale)
    combomap-interactions interactions.expected=interaction # the learned baseline, out of fold
    combomap-interactions interactions=planted data.preset=small   # planted interactions: precision, recall, FDP

The work: combomap.jobs.interactions.
"""

from __future__ import annotations

from omegaconf import DictConfig

from combomap.console import command
from combomap.jobs import interactions


@command("combomap-interactions", "interactions")
def main(cfg: DictConfig) -> dict[str, float]:
    return interactions.run(cfg)


if __name__ == "__main__":
    main()
