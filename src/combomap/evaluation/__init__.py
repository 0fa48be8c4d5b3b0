"""Metrics (defined once, here) and the evaluation report and plots."""
