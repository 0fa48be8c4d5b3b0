"""combomap-predict's inputs and size: pairs files and lists (empty, self-pairs, delimiters), the output-size
check, pairs of drugs without a signature, and prediction in model chunks equal to prediction at once."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from combomap.data.dataset import DataError
from combomap.data.library import DrugLibrary
from combomap.settings import SettingsError
from combomap.stacking import predict
from combomap.stacking.predict import check_output_size, check_pair_drugs, human_bytes, parse_pairs, predict_pairs
from tests.conftest import random_dataset
from tests.stacking.test_oof_model import _fitted_model


@pytest.mark.parametrize("text", ["drug1,drug2\na,b\nc , d\n", "drug1\tdrug2\na\tb\nc\td\n",
                                  "\ufeffdrug1;drug2;dose\na;b;1\nc;d;2\n", "drug2,drug1\nb,a\nd,c\n"])
def test_pairs_file_delimiters_and_columns(tmp_path: Path, text: str) -> None:
    (tmp_path / "pairs.csv").write_text(text)
    assert parse_pairs(str(tmp_path / "pairs.csv")) == [("a", "b"), ("c", "d")]


@pytest.mark.parametrize("text, message", [
    ("", "the pairs file is empty"),
    ("drug1,drug2\n", "has a header but no pairs"),
    ("drug1,drug2\n\n\n", "has a header but no pairs"),
    ("drug1\na\n", "needs columns drug1, drug2 separated by a comma or a tab; its first line is 'drug1'"),
    ("a,b\nc,d\n", "needs columns drug1, drug2; got ['a', 'b']"),
    ("drug1,drug2\na,b\n,c\n", "line 3 has an empty drug name"),
    ("drug1,drug2\na,b,c,d\n", "cannot read the pairs file"),
    ("drug1,drug2\na,b\nc,c\nd,d\n", "line 3 pairs 'c' with itself (2 such line(s), e.g. [3, 4])"),
])
def test_bad_pairs_files_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(text)
    with pytest.raises(DataError) as error:
        parse_pairs(str(path))
    assert str(error.value).startswith(f"{path}: ") and message in str(error.value) and "\n" not in str(error.value)


def test_self_pairs_and_empty_lists_are_refused() -> None:
    assert parse_pairs(["a+b", ["c", "d"]]) == [("a", "b"), ("c", "d")]
    for spec in (["a+b", "c + c"], [["a", "a"]], "x+x"):
        with pytest.raises(DataError, match="a drug paired with itself is not a combination"):
            parse_pairs(spec)
    with pytest.raises(DataError, match="no drug pairs given"):
        parse_pairs([])


def test_output_size_is_logged_and_limited(caplog: pytest.LogCaptureFixture) -> None:
    assert [human_bytes(n) for n in (999, 1_000, 1_234_567, 4e9, 1.2e12, 3e15)] == [
        "999 bytes", "1.0 kB", "1.2 MB", "4.0 GB", "1.2 TB", "3000.0 TB"]
    with caplog.at_level(logging.INFO, logger="combomap.stacking.predict"):
        assert check_output_size(1_000_000, 978, 1_000_000_000, "npy") == 978_000_000
    assert "predicting 1,000,000 pair(s) x 978 genes = 978,000,000 values: about 3.9 GB as float32" in caplog.text
    with pytest.raises(SettingsError) as error:
        check_output_size(1_000_000, 978, 500_000_000, "csv")
    assert str(error.value) == ("pairs: 1,000,000 pairs x 978 genes = 978,000,000 predicted values (3.9 GB as float32) "
                                "exceed output.max_entries=500000000; raise it (output.max_entries=978000000) or "
                                "predict fewer pairs")


@pytest.fixture(scope="module")
def model_and_library():
    data = random_dataset(10, 20, seed=5)
    effects = np.vstack([data.drug1_effect, data.drug2_effect])
    library = DrugLibrary(effects=np.nan_to_num(effects), variances=np.vstack([data.drug1_var, data.drug2_var]),
                          genes=data.genes, drugs=[f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)])
    return _fitted_model(data), library


def test_prediction_in_chunks_equals_prediction_at_once(model_and_library, monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    model, library = model_and_library
    pairs = [(a, b) for i, a in enumerate(library.drugs) for b in library.drugs[i + 1:]]
    whole = predict_pairs(model, library, pairs)
    monkeypatch.setattr(predict, "MAX_ROWS_PER_CHUNK", 20 * 7)  # 7 pairs per chunk: 27 chunks
    with caplog.at_level(logging.INFO, logger="combomap.progress"):
        chunked = predict_pairs(model, library, pairs, progress=True)
    assert chunked.dtype == whole.dtype and chunked.shape == (190, 20)
    np.testing.assert_array_equal(chunked, whole)
    assert "predicting pairs 190/190 pairs" in caplog.text


def test_pairs_of_drugs_without_a_signature_are_refused(model_and_library) -> None:
    model, library = model_and_library
    check_pair_drugs(model, library, [("a0", "b0")])
    effects = library.effects.copy()
    effects[1], effects[12] = 0.0, np.nan
    effects[3, :] = 2.0
    effects[4, ::2] = np.nan
    effects[4, 1::2] = 7.0  # the measured values: all 7
    blank = DrugLibrary(effects=effects, genes=library.genes, drugs=library.drugs, source="lib")
    check_pair_drugs(model, blank, [("a0", "b0"), ("a2", "b3")])
    with pytest.raises(DataError) as error:
        check_pair_drugs(model, blank, [("a0", "a1"), ("a3", "b2"), ("a4", "b0"), ("a1", "a2"), ("a5", "b6")])
    assert str(error.value) == ("lib: drug(s) 'a1', 'a3', 'a4', 'b2' have constant (e.g. all 0) or missing values "
                                "on the model's 20 genes; the 4 pair(s) with them cannot be predicted: remove them "
                                "from pairs")
    with pytest.raises(DataError, match="unknown drug"):
        check_pair_drugs(model, blank, [("a0", "nope")])
