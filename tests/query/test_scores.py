"""Single-drug scores: the original's self-query checks, textbook definitions, gene matching, query files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.query.rank import wtcs, xsum_extreme
from combomap.query.scores import SCORES, prepare_query
from combomap.query.search import drug_scores, rank_drugs
from combomap.query.signature import read_signature
from combomap.settings import SettingsError
from tests.query.helpers import query_from, reference_score, reference_wtcs, small_library


@pytest.mark.parametrize("score", ["pearson", "cosine", "spearman", "wtcs"])
@pytest.mark.parametrize("top_n", [20, None])
def test_self_query_scores_plus_one_and_ranks_first_negated_minus_one(score: str, top_n: int | None) -> None:
    library = small_library(n_drugs=40, n_genes=80, seed=1)
    for drug in (0, 17, 39):
        mimic = rank_drugs(library, prepare_query(query_from(library, drug), library, score, top_n))
        assert mimic.drug.iloc[0] == library.drugs[drug]
        assert mimic.score.iloc[0] == pytest.approx(1.0, abs=1e-12)
        reverse = rank_drugs(library, prepare_query(query_from(library, drug, -1), library, score, top_n), direction="reverse")
        assert reverse.drug.iloc[0] == library.drugs[drug]
        assert reverse.score.iloc[0] == pytest.approx(-1.0, abs=1e-12)
        assert list(reverse["rank"]) == list(range(1, library.n_drugs + 1))


def test_xsum_self_query_is_its_own_best_and_flips_sign() -> None:
    library = small_library(n_drugs=30, n_genes=50, seed=2, missing=0.0)
    prepared = prepare_query(query_from(library, 4), library, "xsum", top_n=None)
    scores = drug_scores(library, prepared)
    own = np.abs(library.effects[4]).sum()
    assert scores[4] == pytest.approx(own, rel=1e-6)
    negated = drug_scores(library, prepare_query(query_from(library, 4, -1), library, "xsum", top_n=None))
    np.testing.assert_allclose(negated, -scores)


@pytest.mark.parametrize("score", ["pearson", "cosine", "spearman", "xsum"])
def test_scores_match_textbook_formulas_on_the_top_genes(score: str) -> None:
    library = small_library(n_drugs=15, n_genes=70, seed=3)
    rng = np.random.default_rng(0)
    values = np.round(rng.normal(size=70), 1)  # ties in the query (spearman averages them)
    query = pd.Series(values, index=library.genes[::-1])  # gene order differs from the library's
    prepared = prepare_query(query, library, score, top_n=25)
    assert prepared.genes == list(query.abs().sort_values(ascending=False, kind="stable").index[:25])
    scores = drug_scores(library, prepared)
    q = query.loc[prepared.genes].to_numpy()
    for drug in range(library.n_drugs):
        signature = np.nan_to_num(library.effects[drug, prepared.columns]).astype(np.float64)
        assert scores[drug] == pytest.approx(reference_score(score, q, signature), abs=1e-10)


def test_wtcs_matches_the_running_sum_definition_with_ties() -> None:
    rng = np.random.default_rng(4)
    signatures = np.round(rng.normal(size=(60, 150)), 1)
    signatures[rng.random(signatures.shape) < 0.2] = 0.0  # many ties, as unmeasured genes give
    up = rng.choice(150, 12, replace=False)
    down = np.setdiff1d(rng.choice(150, 20, replace=False), up)
    expected = [reference_wtcs(s, up, down) for s in signatures]
    np.testing.assert_allclose(wtcs(signatures, up, down), expected, atol=1e-12)
    assert np.count_nonzero(expected) > 10


def test_xsum_extreme_keeps_each_signatures_extreme_genes_only() -> None:
    rng = np.random.default_rng(5)
    signatures = rng.normal(size=(20, 40))
    up, down = np.arange(0, 8), np.arange(8, 14)
    got = xsum_extreme(signatures, up, down, extreme=5)
    for row, s in zip(got, signatures):
        keep = np.zeros(40, dtype=bool)
        keep[np.argsort(s)[-5:]] = s[np.argsort(s)[-5:]] > 0
        keep[np.argsort(s)[:5]] |= s[np.argsort(s)[:5]] < 0
        kept = np.where(keep, s, 0.0)
        assert row == pytest.approx(kept[up].sum() - kept[down].sum())
    assert np.allclose(xsum_extreme(signatures, up, down, extreme=40), signatures[:, up].sum(1) - signatures[:, down].sum(1))


def test_gene_matching_reports_missing_and_unmeasured_genes() -> None:
    library = small_library(n_drugs=6, n_genes=10, seed=6, missing=0.0)
    library.effects[:, 3] = np.nan  # never measured: counts as absent
    query = pd.Series({"G0": 1.0, "G3": 2.0, "G5": -1.0, "NOPE": 3.0, "ALSO_NOT": -2.0})
    prepared = prepare_query(query, library, "pearson", top_n=200)
    assert prepared.genes == ["G0", "G5"]
    assert prepared.report["missing_genes"] == ["NOPE", "ALSO_NOT"]
    assert prepared.report["unmeasured_genes"] == ["G3"]
    assert prepared.report["n_matched"] == 2 and prepared.report["n_query_genes"] == 5
    with pytest.raises(DataError, match="none of the query's 2 genes is in the library"):
        prepare_query(pd.Series({"X1": 1.0, "X2": 2.0}), library, "pearson")
    with pytest.raises(DataError, match="duplicate gene"):
        prepare_query(pd.Series([1.0, 2.0, 3.0], index=["G0", "G1", "G0"]), library, "pearson")
    with pytest.raises(DataError, match="constant"):
        prepare_query(pd.Series({"G0": 1.0, "G1": 1.0}), library, "pearson")
    with pytest.raises(SettingsError, match="score must be one of"):
        prepare_query(query, library, "kendall")
    assert set(SCORES) == {"pearson", "cosine", "spearman", "xsum", "wtcs"}


def test_unmeasured_library_values_count_as_zero() -> None:
    library = DrugLibrary(
        effects=np.array([[1.0, np.nan, -1.0, 2.0], [1.0, 0.0, -1.0, 2.0]], dtype=np.float32),
        genes=["a", "b", "c", "d"], drugs=["x", "y"],
    )
    for score in ("pearson", "cosine", "spearman", "xsum", "wtcs"):
        prepared = prepare_query(pd.Series({"a": 0.5, "b": 2.0, "c": -1.0, "d": 1.0}), library, score, None)
        scores = drug_scores(library, prepared)
        assert scores[0] == pytest.approx(scores[1]), score


def test_read_signature_csv_tsv_header_and_errors(tmp_path: Path) -> None:
    csv = tmp_path / "q.csv"
    csv.write_text("gene,logFC\nG1,1.5\nG2,-2\nG3,NA\nG4,\n")
    signature = read_signature(csv)
    assert signature.to_dict() == {"G1": 1.5, "G2": -2.0}
    assert signature.attrs["n_missing_values"] == 2
    tsv = tmp_path / "q.tsv"
    tsv.write_text("G1\t1.5\nG2\t-2e-1\n")
    assert read_signature(tsv).to_dict() == {"G1": 1.5, "G2": -0.2}
    named = tmp_path / "named.csv"
    named.write_text("id,symbol,score\n1,G1,0.5\n2,G2,0.7\n")
    assert read_signature(named, gene_column="symbol", value_column="score").to_dict() == {"G1": 0.5, "G2": 0.7}
    duplicated = tmp_path / "dup.csv"
    duplicated.write_text("G1,1\nG2,2\nG1,3\n")
    with pytest.raises(DataError, match=r"dup.csv: duplicate gene name 'G1'$"):
        read_signature(duplicated)
    bad = tmp_path / "bad.csv"
    bad.write_text("gene,value\nG1,1\nG2,up\n")
    with pytest.raises(DataError, match="'up' for gene 'G2' \\(line 3\\)"):
        read_signature(bad)
    one_column = tmp_path / "one.csv"
    one_column.write_text("G1\nG2\n")
    with pytest.raises(DataError, match="two columns"):
        read_signature(one_column)
    with pytest.raises(DataError, match="no such signature file"):
        read_signature(tmp_path / "missing.csv")
