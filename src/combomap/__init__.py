"""combomap: predict drug-combination signatures and rank drugs and pairs against a query signature."""

import os
import sys

# OpenBLAS worker threads spin for about 0.1 s after every matrix product; the stacked-model query alternates
# BLAS products (the nets) with the compiled stacker kernel block by block, and the spinning threads halved the
# kernel's speed on 2 cores. 2**4 cycles instead makes them sleep at once. Read when numpy loads, so this takes
# effect whenever combomap is imported before numpy (every combomap-* command); a user's value is kept.
OPENBLAS_SPIN_LIMITED = "OPENBLAS_THREAD_TIMEOUT" in os.environ or "numpy" not in sys.modules
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
