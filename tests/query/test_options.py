"""The query's typed settings: conf/query.yaml's query keys and the engine group composed into QueryOptions and
EngineSettings (combomap.config.query), every bad value one error naming its config key before any data loads;
and the prepared Query that run_query ranks under them."""

from __future__ import annotations

import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException

from combomap.config.query import engine_settings, query_options
from combomap.console import describe
from combomap.query.search import Query, run_query
from combomap.query.settings import DrugOptions, EngineSettings, PairOptions, QueryOptions
from combomap.settings import SettingsError
from tests.query.helpers import query_from, small_library


def test_options_from_the_composed_config_are_typed(compose_cfg) -> None:
    cfg = compose_cfg("query", ["signature=q.csv", "score=wtcs", "top_n=7", "direction=reverse", "drugs.top_k=3",
                                "pairs.include=[D01,D02]", "pairs.top_k=null", "pairs.method=streamed",
                                "pairs.block_pairs=11", "pairs.inference=mean_net", "pairs.stacker_predictor=backend"])
    assert query_options(cfg) == QueryOptions(
        score="wtcs", top_n=7, xsum_extreme=None, direction="reverse", drugs=DrugOptions(top_k=3),
        pairs=PairOptions(enabled=True, model="average", include=["D01", "D02"], top_k=None, method="streamed",
                          block_pairs=11, inference="mean_net", stacker_predictor="backend"))
    defaults = compose_cfg("query", ["signature=q.csv"])
    assert query_options(defaults) == QueryOptions()  # conf/query.yaml's values are the schema's defaults
    assert engine_settings(defaults) == EngineSettings()
    dask = engine_settings(compose_cfg("query", ["signature=q.csv", "engine=dask", "engine.timeout_s=30"]))
    assert dask == EngineSettings(name="dask", timeout_s=30.0)


@pytest.mark.parametrize("override,message", [
    ("score=euclid", "score must be one of"),
    ("direction=sideways", "direction must be one of"),
    ("pairs.model=best", "pairs.model must be one of"),
    ("pairs.method=fast", "pairs.method must be one of"),
    ("pairs.stacker_predictor=fast", "pairs.stacker_predictor must be one of"),
    ("top_n=0", "top_n must be >= 1, got 0"),
    ("pairs.block_pairs=-1", "pairs.block_pairs must be >= 1"),
    ("pairs.inference=median", "pairs.inference must be one of"),
    ("+pairs.typo=1", "pairs.typo: Key 'typo' not in 'PairOptions'"),
    ("engine.n_workers=0", "engine.n_workers must be >= 1, got 0"),
    ("engine.retries=-1", "engine.retries must be >= 0, got -1"),
    ("engine.connect_timeout_s=0", "engine.connect_timeout_s must be > 0"),
    ("engine.timeout_s=0", "engine.timeout_s must be > 0 or null"),
    ("engine.address=127.0.0.1:8786", "tcp://HOST:PORT"),
    ("+engine.typo=1", "engine.typo is not a setting of engine"),
])
def test_a_bad_setting_is_one_error_naming_its_config_key(compose_cfg, override: str, message: str) -> None:
    cfg = compose_cfg("query", ["signature=q.csv", override])
    with pytest.raises(SettingsError, match=message) as error:
        query_options(cfg)
        engine_settings(cfg)
    assert describe(error.value) == (f"error: {error.value}", 2) and "\n" not in str(error.value)


@pytest.mark.parametrize("override,key", [
    ("top_n=abc", "top_n"), ("xsum_extreme=2.5", "xsum_extreme"), ("drugs.top_k=abc", "drugs.top_k"),
    ("pairs.top_k=true", "pairs.top_k"), ("pairs.top_k=nan", "pairs.top_k"), ("pairs.enabled=maybe", "pairs.enabled"),
    ("engine.n_workers=two", "engine.n_workers"), ("pairs.stacker_engine=backend", "pairs.stacker_engine"),
])
def test_a_wrong_type_or_unknown_key_is_refused_when_the_config_is_composed(compose_cfg, override: str, key: str) -> None:
    with pytest.raises(ConfigCompositionException) as error:
        compose_cfg("query", ["signature=q.csv", override])
    line, status = describe(error.value)
    assert status == 2 and key in line and "\n" not in line


def test_checked_options_built_in_code_refuse_what_the_config_refuses() -> None:
    assert QueryOptions(pairs=PairOptions(include=["D1"])).check().pairs.include == ["D1"]
    with pytest.raises(SettingsError, match="direction must be one of"):
        QueryOptions(direction="up").check()
    with pytest.raises(SettingsError, match="pairs.top_k must be >= 1"):
        QueryOptions(pairs=PairOptions(top_k=0)).check()
    with pytest.raises(SettingsError, match="engine.timeout_s must be a finite number, got nan"):
        EngineSettings(timeout_s=float("nan")).check("engine")


def test_run_query_ranks_the_prepared_query_under_its_options() -> None:
    library = small_library(n_drugs=9, n_genes=40, seed=3)
    signature = query_from(library, 4, sign=-1.0)
    options = QueryOptions(top_n=25, direction="reverse", drugs=DrugOptions(top_k=4), pairs=PairOptions(top_k=5))
    query = Query.prepare(signature, library, options)
    assert len(query.prepared.genes) == 25
    result = run_query(query, library, options)
    assert list(result.drugs["drug"])[:1] == ["D04"] and len(result.drugs) == 4 and len(result.pairs) == 5
    assert result.report["direction"] == "reverse" and result.report["top_n"] == 25 and result.report["include"] == []
    no_pairs = run_query(query, library, QueryOptions(top_n=25, direction="reverse", pairs=PairOptions(enabled=False)))
    assert no_pairs.pairs is None and "n_pairs" not in no_pairs.report
    pd.testing.assert_frame_equal(no_pairs.drugs.head(4), result.drugs)
