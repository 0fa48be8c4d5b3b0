"""Each console job's run(cfg): config -> objects -> domain calls -> MLflow."""
