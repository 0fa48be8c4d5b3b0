"""combomap: predict drug-combination signatures and rank drugs and pairs against a query signature."""

__version__ = "0.1.0"
