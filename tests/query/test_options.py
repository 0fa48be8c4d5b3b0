"""QueryOptions: conf/query.yaml's query settings, read once from the config and checked once, errors naming the
config keys; and the prepared Query that run_query ranks under them."""

from __future__ import annotations

import pandas as pd
import pytest

from combomap.data.dataset import DataError
from combomap.query.engine import Query, QueryOptions, run_query
from combomap.settings import SettingsError
from tests.query.helpers import query_from, small_library


def test_options_from_the_composed_config_are_typed(compose_cfg) -> None:
    cfg = compose_cfg("query", ["signature=q.csv", "score=wtcs", "top_n=7", "direction=reverse", "drugs.top_k=3",
                                "pairs.include=[D01,D02]", "pairs.top_k=null", "pairs.method=streamed",
                                "pairs.block_pairs=11", "pairs.inference=mean_net", "pairs.stacker_engine=backend"])
    assert QueryOptions.from_config(cfg) == QueryOptions(
        score="wtcs", top_n=7, xsum_extreme=None, direction="reverse", drugs_top_k=3, pairs=True,
        pair_model="average", include=("D01", "D02"), pairs_top_k=None, method="streamed", block_pairs=11,
        inference="mean_net", stacker_engine="backend")
    defaults = QueryOptions.from_config(compose_cfg("query", ["signature=q.csv", "pairs.enabled=false"]))
    assert defaults == QueryOptions(pairs=False)  # the dataclass defaults are conf/query.yaml's


@pytest.mark.parametrize("override,message", [
    ("score=euclid", "score must be one of"),
    ("direction=sideways", "direction must be one of"),
    ("pairs.model=best", "pairs.model must be one of"),
    ("pairs.method=fast", "pairs.method must be one of"),
    ("top_n=0", "top_n must be >= 1, got 0"),
    ("xsum_extreme=2.5", "xsum_extreme must be an integer >= 1 or null"),
    ("drugs.top_k=abc", "drugs.top_k must be an integer >= 1 or null, got 'abc'"),
    ("pairs.top_k=true", "pairs.top_k must be an integer"),
    ("pairs.block_pairs=-1", "pairs.block_pairs must be >= 1"),
    ("pairs.inference=median", "pairs.inference must be one of"),
])
def test_a_bad_setting_is_one_error_naming_its_config_key(compose_cfg, override: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        QueryOptions.from_config(compose_cfg("query", ["signature=q.csv", override]))


def test_options_built_in_code_are_checked_the_same_way() -> None:
    assert QueryOptions(top_n=3.0, include=["D1"]).top_n == 3  # a whole float is an int, a list a tuple
    assert QueryOptions(include=["D1"]).include == ("D1",)
    with pytest.raises(SettingsError, match="direction must be one of"):
        QueryOptions(direction="up")
    with pytest.raises(DataError, match="unknown stacker engine 'fast'"):
        QueryOptions(stacker_engine="fast")


def test_run_query_ranks_the_prepared_query_under_its_options() -> None:
    library = small_library(n_drugs=9, n_genes=40, seed=3)
    signature = query_from(library, 4, sign=-1.0)
    options = QueryOptions(top_n=25, direction="reverse", drugs_top_k=4, pairs_top_k=5)
    query = Query.prepare(signature, library, options)
    assert len(query.prepared.genes) == 25
    result = run_query(query, library, options)
    assert list(result.drugs["drug"])[:1] == ["D04"] and len(result.drugs) == 4 and len(result.pairs) == 5
    assert result.report["direction"] == "reverse" and result.report["top_n"] == 25 and result.report["include"] == []
    no_pairs = run_query(query, library, QueryOptions(top_n=25, direction="reverse", pairs=False))
    assert no_pairs.pairs is None and "n_pairs" not in no_pairs.report
    pd.testing.assert_frame_equal(no_pairs.drugs.head(4), result.drugs)
