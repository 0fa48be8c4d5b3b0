"""Every figure tagged in the docs (`<!-- fig:<bench>.<key> -->` right before the number) equals the value in
benchmarks/results/<bench>.json to the digits shown, and its bench's command is quoted in the same paragraph or
table (or the paragraph right before it), so the docs and the measurements cannot drift apart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests import REPO_ROOT

RESULTS = REPO_ROOT / "benchmarks" / "results"
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md")), REPO_ROOT / "experiments" / "README.md",
        REPO_ROOT / "examples" / "README.md"]
TAG = re.compile(r"<!-- fig:(\w+)\.(\w+) -->\**([-+]?\d[\d,]*(?:\.\d+)?)")
ANY_TAG = re.compile(r"<!-- fig:\w+\.\w+ -->")


def tagged_figures() -> list[tuple[str, str, str, str, str]]:
    """(doc, bench, key, number as shown, the paragraph or table row around it) for every tag."""
    found = []
    for doc in DOCS:
        text = doc.read_text()
        blocks = re.split(r"\n\s*\n", text)
        for before, block in zip(["", *blocks], blocks):  # a table's command may stand in the paragraph before it
            for bench, key, shown in TAG.findall(block):
                found.append((doc.name, bench, key, shown, before + "\n\n" + block))
    return found


def test_docs_tag_figures_right_before_their_numbers() -> None:
    for doc in DOCS:
        text = doc.read_text()
        assert len(TAG.findall(text)) == len(ANY_TAG.findall(text)), f"{doc.name}: a fig tag not right before a number"
    benches = {bench for _, bench, _, _, _ in tagged_figures()}
    assert {"job_stack", "job_train", "stacker", "query_stacked"} <= benches


@pytest.mark.parametrize("doc,bench,key,shown,block", tagged_figures(), ids=lambda v: v if len(str(v)) < 40 else "")
def test_tagged_figure_matches_its_results_file(doc: str, bench: str, key: str, shown: str, block: str) -> None:
    path = RESULTS / f"{bench}.json"
    assert path.is_file(), f"{doc}: fig:{bench}.{key} but no {path.relative_to(REPO_ROOT)}"
    result = json.loads(path.read_text())
    value = result["figures"].get(key, result["machine"].get(key))  # a figure, or a condition (load_1min, cores)
    assert value is not None, f"{doc}: {bench}.json has no figure {key!r}"
    decimals = len(shown.split(".")[1]) if "." in shown else 0
    assert round(float(value), decimals) == pytest.approx(float(shown.replace(",", ""))), (
        f"{doc}: fig:{bench}.{key} shows {shown}, {bench}.json has {value}")
    script = result["command"].split()[1] if result["command"].startswith("python ") else result["command"]
    assert script in block or result["command"] in block, f"{doc}: fig:{bench}.{key} without its command {script}"
