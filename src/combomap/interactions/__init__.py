"""Interaction maps: where a measured combination departs from what its singles predict, with error control.

    expected      what the combination should be without an interaction (additive, average, learned out of fold,
                  a saved combomap-stack model that never saw the combination)
    noise         the SD of observed - expected under no interaction (measured variances, calibrated; or a robust
                  residual scale where the data have none)
    fdr           Benjamini-Hochberg q-values (written once)
    calls         z, two-sided p, q over all entries and per combination, a call per entry
    summaries     Norman et al. 2019's per-combination metrics and a class per combination
    planted       a simulated compendium with planted interactions of known genes and sizes, and the scoring of calls
    pipeline      the whole analysis on one data set (call_interactions)
    outputs, plots  the tables, the .h5ad and the figures

The job (combomap.jobs.interactions) reads the config and does the MLflow logging; nothing here calls MLflow.
"""
