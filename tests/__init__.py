from pathlib import Path

# The checkout the tests run from (scripts in experiments/, notebooks/; the installed package has none of them).
REPO_ROOT = Path(__file__).resolve().parents[1]
