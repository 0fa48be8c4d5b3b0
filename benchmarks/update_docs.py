"""Rewrite every tagged figure in the docs (`<!-- fig:<bench>.<key> -->NUMBER`) from benchmarks/results/<bench>.json,
keeping the digits shown; prints what changed. Run after a benchmark; tests/test_figures.py then passes again.

    python benchmarks/update_docs.py            # README.md, docs/*.md, experiments/README.md, examples/README.md
    python benchmarks/update_docs.py --check    # only list the figures that differ (exit 1 if any)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "experiments" / "README.md",
        ROOT / "examples" / "README.md"]
TAG = re.compile(r"(<!-- fig:(\w+)\.(\w+) -->\**)([-+]?\d[\d,]*(?:\.\d+)?)")


def formatted(value: float, shown: str) -> str:
    """`value` with the decimals and thousands separators of `shown`."""
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    text = f"{float(value):,.{decimals}f}" if "," in shown else f"{float(value):.{decimals}f}"
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="list differing figures, change nothing")
    args = parser.parse_args()
    figures = {}
    for path in RESULTS.glob("*.json"):
        result = json.loads(path.read_text())
        figures[path.stem] = {**result.get("machine", {}), **result["figures"]}  # load_1min, cores: the machine's
    changed = 0
    for doc in DOCS:
        if not doc.is_file():
            continue
        text = doc.read_text()

        def replace(match: re.Match[str]) -> str:
            nonlocal changed
            prefix, bench, key, shown = match.groups()
            value = figures.get(bench, {}).get(key)
            if value is None:
                print(f"{doc.name}: fig:{bench}.{key} has no value in benchmarks/results/{bench}.json", file=sys.stderr)
                return match.group(0)
            new = formatted(value, shown)
            if new != shown:
                changed += 1
                print(f"{doc.relative_to(ROOT)}: {bench}.{key} {shown} -> {new}")
            return prefix + new

        updated = TAG.sub(replace, text)
        if updated != text and not args.check:
            doc.write_text(updated)
    return 1 if (args.check and changed) else 0


if __name__ == "__main__":
    sys.exit(main())
