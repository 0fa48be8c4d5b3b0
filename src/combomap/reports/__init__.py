"""Reports read back from MLflow (combomap.tracking's read helpers): the ablation table, sweeps, a run's figures."""
