"""Console entry points: thin @hydra.main wrappers around plain `run(cfg)` functions."""
