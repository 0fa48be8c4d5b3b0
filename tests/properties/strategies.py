"""Shared hypothesis settings and strategies: small float32 blocks with ties and NaN (unmeasured), odd names."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from combomap.data.pairs import PairBatch


def fast(max_examples: int) -> settings:
    """Few examples, no deadline (the first call of a numba kernel compiles), the same examples on every run."""
    return settings(max_examples=max_examples, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ties and signed zeros on purpose: orders, signs and canonical drug orders must hold for them too
TIED_VALUES = (0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 2.0)


def float32_values(missing: bool = True, low: float = -4.0, high: float = 4.0) -> st.SearchStrategy[float]:
    choices = [st.sampled_from(TIED_VALUES), st.floats(low, high, width=32)]
    if missing:
        choices.append(st.just(float("nan")))
    return st.one_of(*choices)


def blocks(shape: tuple[int, int], missing: bool = True, low: float = -4.0, high: float = 4.0):
    return hnp.arrays(np.float32, shape, elements=float32_values(missing, low, high))


def variances(shape: tuple[int, int], missing: bool = True):
    return blocks(shape, missing, 0.0, 3.0).map(np.abs)


# A name legal in every format: no line break of str.splitlines (genes.txt and drugs.txt hold one name a line),
# no whitespace at either end, no byte-order mark (UTF-8 readers drop it at the start of a file), no NUL (HDF5
# strings refuse it, CSV readers end the name there).
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
NAME_CHARACTERS = st.characters(blacklist_categories=("Cs",), blacklist_characters=LINE_BREAKS + "\ufeff\x00")
NAMES = st.text(NAME_CHARACTERS, min_size=1, max_size=6).map(str.strip).filter(bool)
ASCII_CHARACTERS = st.characters(min_codepoint=32, max_codepoint=126)
ASCII_NAMES = st.text(ASCII_CHARACTERS, min_size=1, max_size=6).map(str.strip).filter(bool)


def unique_names(count: int, names: st.SearchStrategy[str] = NAMES):
    return st.lists(names, min_size=count, max_size=count, unique=True)


@st.composite
def pair_batches(draw, n_genes: int | None = None, max_pairs: int = 5, with_variances: bool | None = None,
                 names: list[str] | None = None) -> PairBatch:
    """A batch of pairs (NaN where unmeasured); `names`: the drugs' names are drawn from them."""
    n_genes = n_genes or draw(st.integers(1, 8))
    shape = (draw(st.integers(1, max_pairs)), n_genes)
    has_variances = draw(st.booleans()) if with_variances is None else with_variances
    drug1_var, drug2_var = (draw(variances(shape)), draw(variances(shape))) if has_variances else (None, None)
    drug1_name = drug2_name = None
    if names is not None:
        per_pair = st.lists(st.sampled_from(names), min_size=shape[0], max_size=shape[0])
        drug1_name, drug2_name = np.array(draw(per_pair), dtype=object), np.array(draw(per_pair), dtype=object)
    return PairBatch(draw(blocks(shape)), draw(blocks(shape)), drug1_var, drug2_var, drug1_name, drug2_name)
