"""Console entry points: one thin @hydra.main wrapper per job over `combomap.jobs.<job>.run(cfg)`."""

from combomap.console import command

__all__ = ["command"]
