"""Stacking: out-of-fold nets + a pooled GBM stacker over (combination, gene) rows.

Modules: backends (xgboost / lightgbm behind one interface), features (named stacker features,
canonical drug order), cv (grouped folds), oof (out-of-fold fold nets), pipeline (combomap-stack),
final_model (the saved model and its inference), predict (combomap-predict).
"""
