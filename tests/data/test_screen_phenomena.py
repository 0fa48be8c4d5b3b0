"""The real-screen phenomena of the simulator (docs/simulator.md, "Real-screen phenomena") and
combomap.evaluation.screen_stats: the presets without them are unchanged, each phenomenon is gone at 0,
the screen preset's design, determinism, and the statistics on hand-made data."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from combomap.data.dataset import ComboDataset
from combomap.data.simulate import PRESETS, simulate_compendium, simulate_compendium_with_truth
from combomap.evaluation.screen_stats import format_table, load_source, main, screen_statistics

# sha256 of simulate_compendium_with_truth(preset, seed) (the float32 arrays and the combos table) computed
# with the code before the real-screen phenomena were added (commit a44f77a): with them off the
# simulator must give exactly the same data.
HEAD_HASHES = {
    ("tiny", 0): "a0fd42291b52a4a9df3fdb2a145118187886358134bafa5a5dc08d8001695e4a",
    ("tiny", 3): "b60de41486e6e4c3f4299891f0a2b4db4001dbd2ddaa2dc0ccce1e9aceed1ee9",
    ("small", 0): "e209beb3fcc1401b3c0f23eb524ddff40fcc831ee3b83c7b00780aab80f8469b",
    ("default", 0): "c1921c81d237fc83292b8b9f219393a158e4201753e4c04221dfb974a27d1b46",
}


def simulation_hash(dataset: ComboDataset, truth) -> str:
    digest = hashlib.sha256()
    for array in (
        dataset.drug1_effect, dataset.drug2_effect, dataset.combo_effect, dataset.drug1_var, dataset.drug2_var,
        truth.drug1, truth.drug2, truth.combo,
    ):
        digest.update(np.ascontiguousarray(array).tobytes())
    digest.update(dataset.combos.to_csv(index=False).encode())
    digest.update("\n".join(dataset.genes).encode())
    return digest.hexdigest()


@pytest.mark.parametrize(("preset", "seed"), sorted(HEAD_HASHES))
def test_presets_without_the_phenomena_are_unchanged(preset: str, seed: int) -> None:
    assert simulation_hash(*simulate_compendium_with_truth(preset, seed)) == HEAD_HASHES[(preset, seed)]
