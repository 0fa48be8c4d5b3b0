"""Hydra sweeper `hydra/sweeper=combomap_optuna`: Optuna (>=4) studies in a persistent storage.

Why our own plugin: hydra-optuna-sweeper 1.3.0 pins optuna<3, whose SQLite storage breaks under the
SQLAlchemy 2 that MLflow 3 needs (docs/sweeps.md). This one speaks to Optuna's ask/tell API directly.
"""

__version__ = "0.1.0"
