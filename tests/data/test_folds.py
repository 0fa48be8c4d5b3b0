"""Grouped fold assignment (combomap.data.folds)."""

from __future__ import annotations

import numpy as np
import pytest

from combomap.data.folds import FoldError, assign_folds


def test_assign_folds_keeps_groups_whole_and_balanced() -> None:
    groups = np.repeat(np.arange(40), np.random.default_rng(0).integers(1, 6, size=40))
    folds = assign_folds(groups, 3, seed=0)
    for group in np.unique(groups):
        assert len(set(folds[groups == group])) == 1
    sizes = np.bincount(folds)
    assert sizes.max() - sizes.min() <= 5
    np.testing.assert_array_equal(folds, assign_folds(groups, 3, seed=0))
    assert not np.array_equal(folds, assign_folds(groups, 3, seed=1))
    with pytest.raises(FoldError, match="cannot fill"):
        assign_folds([1, 1, 2], 3)
