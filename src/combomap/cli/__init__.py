"""Console entry points: one thin @hydra.main wrapper per job over `combomap.jobs.<job>.run(cfg)`, started by
`combomap.cli.launch` (the console scripts), which handles signals before these modules' imports begin."""
