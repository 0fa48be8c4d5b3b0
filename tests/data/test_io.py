"""Readers and writers: exact round trips, and a clear DataError (file + shape/gene) for every bad input."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.compute as pc
import pytest

from combomap.data import io as data_io
from combomap.data.dataset import ComboDataset, DataError
from combomap.data.io import read_npy_dir, read_tidy, write_npy_dir, write_tidy
from combomap.data.library import DrugLibrary
from combomap.data.library_io import read_library_tidy, write_library_tidy
from combomap.query.signature import read_signature
from tests.conftest import random_dataset

ARRAYS = ("drug1_effect", "drug2_effect", "combo_effect", "drug1_var", "drug2_var")


def assert_same(actual: ComboDataset, expected: ComboDataset) -> None:
    for name in ARRAYS:
        a, e = getattr(actual, name), getattr(expected, name)
        if e is None:
            assert a is None, name
            continue
        assert a.dtype == np.float32, name
        np.testing.assert_array_equal(a, e, err_msg=name)  # NaN == NaN here, bits otherwise
    assert actual.genes == expected.genes
    pd.testing.assert_frame_equal(actual.combos, expected.combos)


def without_variances(dataset: ComboDataset) -> ComboDataset:
    return ComboDataset(
        drug1_effect=dataset.drug1_effect,
        drug2_effect=dataset.drug2_effect,
        combo_effect=dataset.combo_effect,
        genes=dataset.genes,
        combos=dataset.combos,
    )


def awkward_dataset() -> ComboDataset:
    """G2 unmeasured in the first combo, G1 never measured, names a naive CSV reader would mangle."""
    dataset = random_dataset(n_combos=6, n_genes=9, seed=3)
    for block in (dataset.drug1_effect, dataset.drug2_effect, dataset.combo_effect, dataset.drug1_var, dataset.drug2_var):
        block[0, 2] = np.nan
        block[:, 1] = np.nan
    dataset.combo_effect[:, 0] = 1.0
    dataset.combos.loc[0, "drug1"] = "NA"
    dataset.combos.loc[1, "drug2"] = 'a, "quoted" drug'
    dataset.combos.loc[2, "study"] = ""
    return ComboDataset(**{n: getattr(dataset, n) for n in ARRAYS}, genes=dataset.genes, combos=dataset.combos)


def write_raw_dir(directory: Path, X, y, Xv=None, genes=None, combos=None) -> Path:
    """The original layout, written by hand (no combomap writer involved)."""
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "X.npy", np.asarray(X))
    np.save(directory / "y.npy", np.asarray(y))
    if Xv is not None:
        np.save(directory / "Xv.npy", np.asarray(Xv))
    if genes is not None:
        (directory / "genes.txt").write_text("\n".join(genes) + "\n")
    if combos is not None:
        pd.DataFrame(combos).to_csv(directory / "combos.csv", index=False)
    return directory


def good_raw(directory: Path, n: int = 4, g: int = 3) -> dict:
    rng = np.random.default_rng(0)
    return dict(
        directory=directory,
        X=rng.normal(size=(n, 2 * g)),
        y=rng.normal(size=(n, g)),
        Xv=rng.uniform(0.1, 1, size=(n, 2 * g)),
        genes=[f"G{j}" for j in range(g)],
        combos={"combo": [f"C{i}" for i in range(n)], "study": ["S"] * n, "drug1": ["a"] * n, "drug2": ["b"] * n},
    )


# ------------------------------------------------------------------------------------------- npy


def test_npy_round_trip_is_exact(tmp_path: Path) -> None:
    dataset = awkward_dataset()
    written = write_npy_dir(dataset, tmp_path / "set")
    assert sorted(p.name for p in written.iterdir()) == sorted(data_io.NPY_FILES)
    assert_same(read_npy_dir(written), dataset)


def test_npy_round_trip_without_variances_writes_no_xv(tmp_path: Path) -> None:
    dataset = without_variances(awkward_dataset())
    written = write_npy_dir(dataset, tmp_path / "set")
    assert not (written / "Xv.npy").exists()
    assert_same(read_npy_dir(written), dataset)


def test_npy_minimal_dir_gets_default_names(tmp_path: Path) -> None:
    raw = good_raw(tmp_path / "raw")
    raw["y"][1, 2] = np.nan
    write_raw_dir(raw["directory"], raw["X"], raw["y"])
    dataset = read_npy_dir(raw["directory"])
    assert dataset.genes == ["gene00001", "gene00002", "gene00003"]
    assert dataset.combos.to_dict("list") == {
        "combo": ["combo0", "combo1", "combo2", "combo3"],
        "study": ["study0", "study1", "study2", "study3"],
        "drug1": ["drug1_0", "drug1_1", "drug1_2", "drug1_3"],
        "drug2": ["drug2_0", "drug2_1", "drug2_2", "drug2_3"],
    }
    assert dataset.drug1_var is None and dataset.drug2_var is None
    np.testing.assert_array_equal(dataset.drug2_effect, raw["X"][:, 3:].astype(np.float32))
    assert np.isnan(dataset.combo_effect[1, 2])


def test_npy_with_variances_only(tmp_path: Path) -> None:
    raw = good_raw(tmp_path / "raw")
    write_raw_dir(raw["directory"], raw["X"], raw["y"], Xv=raw["Xv"])
    dataset = read_npy_dir(raw["directory"])
    np.testing.assert_array_equal(dataset.drug2_var, raw["Xv"][:, 3:].astype(np.float32))


def _mutate(raw: dict, case: str) -> tuple[str, str]:
    """Break one thing; return (file named in the message, detail the message must also hold)."""
    n, g = raw["y"].shape
    if case == "odd X columns":
        raw["X"] = raw["X"][:, :-1]
        return "X.npy", r"odd column count 5 \(shape \(4, 5\)\)"
    if case == "X/y rows":
        raw["y"] = raw["y"][:-1]
        return "X.npy", r"4 rows \(shape \(4, 6\)\).*y.npy has 3 \(shape \(3, 3\)\)"
    if case == "X columns != 2 G":
        raw["X"] = np.concatenate([raw["X"], raw["X"][:, :2]], axis=1)
        return "X.npy", r"8 columns.*y.npy has 3 genes.*2 x 3 = 6"
    if case == "Xv shape":
        raw["Xv"] = raw["Xv"][:, :4]
        return "Xv.npy", r"shape \(4, 4\) differs from X.npy shape \(4, 6\)"
    if case == "genes.txt length":
        raw["genes"] = raw["genes"][:2]
        return "genes.txt", "2 gene names but y.npy has 3 gene columns"
    if case == "genes.txt duplicate":
        raw["genes"] = ["G0", "G1", "G0"]
        return "genes.txt", "duplicate gene 'G0' on lines 1 and 3"
    if case == "genes.txt blank line":
        raw["genes"] = ["G0", "", "G2"]
        return "genes.txt", "empty gene name on line 2"
    if case == "combos.csv rows":
        raw["combos"] = {k: v[:3] for k, v in raw["combos"].items()}
        return "combos.csv", "3 rows but y.npy has 4 rows"
    if case == "combos.csv columns":
        del raw["combos"]["study"]
        return "combos.csv", r"missing column\(s\) \['study'\]"
    if case == "combos.csv duplicate":
        raw["combos"]["combo"][3] = "C1"
        return "combos.csv", "duplicate combo id 'C1' on lines 3 and 5"
    if case == "inf in X":
        raw["X"][2, 4] = np.inf
        return "X.npy", "inf at row 2, column 4 \\(drug2 gene 'G1'\\)"
    if case == "-inf in y":
        raw["y"][1, 0] = -np.inf
        return "y.npy", "-inf at row 1, column 0 \\(gene 'G0'\\)"
    if case == "inf in Xv":
        raw["Xv"][0, 1] = np.inf
        return "Xv.npy", "inf at row 0, column 1 \\(drug1 gene 'G1'\\)"
    if case == "negative variance":
        raw["Xv"][3, 5] = -0.5
        return "Xv.npy", "negative variance -0.5 at row 3, column 5 \\(drug2 gene 'G2'\\)"
    if case == "combo without a measured gene":
        raw["y"][2, :] = np.nan
        return "y.npy", "combo 'C2' \\(row 2\\) has no measured gene"
    if case == "3-D y":
        raw["y"] = raw["y"][:, :, None]
        return "y.npy", r"must be 2-D .* shape \(4, 3, 1\)"
    if case == "text array":
        raw["X"] = raw["X"].astype(str)
        return "X.npy", "real numeric array, got dtype <U"
    raise AssertionError(case)


BAD_NPY_CASES = [
    "odd X columns", "X/y rows", "X columns != 2 G", "Xv shape", "genes.txt length", "genes.txt duplicate",
    "genes.txt blank line", "combos.csv rows", "combos.csv columns", "combos.csv duplicate", "inf in X",
    "-inf in y", "inf in Xv", "negative variance", "combo without a measured gene", "3-D y", "text array",
]


@pytest.mark.parametrize("case", BAD_NPY_CASES)
def test_npy_bad_input_names_file_and_shape(tmp_path: Path, case: str) -> None:
    raw = good_raw(tmp_path / "raw")
    file_name, detail = _mutate(raw, case)
    write_raw_dir(**raw)
    with pytest.raises(DataError, match=detail) as caught:
        read_npy_dir(raw["directory"])
    assert str(raw["directory"] / file_name) in str(caught.value)


@pytest.mark.parametrize("missing", ["X.npy", "y.npy"])
def test_npy_missing_required_file(tmp_path: Path, missing: str) -> None:
    raw = good_raw(tmp_path / "raw")
    write_raw_dir(**raw)
    (raw["directory"] / missing).unlink()
    with pytest.raises(DataError, match=f"{raw['directory'] / missing}: missing"):
        read_npy_dir(raw["directory"])


def test_npy_missing_directory_or_file_instead(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"{tmp_path / 'nope'}: no such data directory"):
        read_npy_dir(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        read_npy_dir(tmp_path / "file")


class _Trap:
    """Unpickling this would create a directory: proof that a loader ran pickle."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (os.mkdir, (str(self.sentinel),))


def test_npy_object_array_is_refused_not_unpickled(tmp_path: Path) -> None:
    raw = good_raw(tmp_path / "raw")
    write_raw_dir(**raw)
    sentinel = tmp_path / "unpickled"
    objects = np.empty((4, 6), dtype=object)
    objects[:] = 1.0
    objects[0, 0] = _Trap(sentinel)
    np.save(raw["directory"] / "X.npy", objects, allow_pickle=True)
    with pytest.raises(DataError, match=r"X.npy: holds Python objects .*refusing to unpickle"):
        read_npy_dir(raw["directory"])
    assert not sentinel.exists()


def test_npy_garbage_file_is_a_data_error(tmp_path: Path) -> None:
    raw = good_raw(tmp_path / "raw")
    write_raw_dir(**raw)
    (raw["directory"] / "y.npy").write_bytes(b"not numpy at all")
    with pytest.raises(DataError, match="y.npy: not a readable .npy array"):
        read_npy_dir(raw["directory"])


def test_write_npy_refuses_non_empty_dir_unless_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "set"
    write_npy_dir(random_dataset(seed=1), target)
    replacement = without_variances(random_dataset(seed=2))
    with pytest.raises(DataError, match="not empty.*overwrite=True"):
        write_npy_dir(replacement, target)
    write_npy_dir(replacement, target, overwrite=True)
    assert not (target / "Xv.npy").exists()  # the stale variances went with the old data set
    assert_same(read_npy_dir(target), replacement)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]  # no temp or backup left behind


def test_write_npy_into_existing_empty_dir(tmp_path: Path) -> None:
    (tmp_path / "set").mkdir()
    write_npy_dir(random_dataset(), tmp_path / "set")
    assert (tmp_path / "set" / "X.npy").is_file()


def test_write_npy_never_replaces_a_foreign_directory(tmp_path: Path) -> None:
    target = tmp_path / "home"
    target.mkdir()
    (target / "thesis.tex").write_text("precious")
    with pytest.raises(DataError, match=r"refusing to replace .*\['thesis.tex'\]"):
        write_npy_dir(random_dataset(), target, overwrite=True)
    assert (target / "thesis.tex").read_text() == "precious"
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        write_npy_dir(random_dataset(), tmp_path / "file", overwrite=True)


def _failing_save(monkeypatch: pytest.MonkeyPatch, fail_on_call: int) -> None:
    real_save = np.save
    calls = {"n": 0}

    def save(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == fail_on_call:
            raise OSError("disk full (simulated)")
        return real_save(*args, **kwargs)

    monkeypatch.setattr(np, "save", save)


def test_failed_write_keeps_the_previous_data_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "set"
    original = random_dataset(seed=1)
    write_npy_dir(original, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    _failing_save(monkeypatch, fail_on_call=2)  # X.npy written, y.npy fails
    with pytest.raises(OSError, match="disk full"):
        write_npy_dir(random_dataset(seed=2), target, overwrite=True)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]
    assert_same(read_npy_dir(target), original)


def test_failed_write_to_a_new_target_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _failing_save(monkeypatch, fail_on_call=3)
    with pytest.raises(OSError):
        write_npy_dir(random_dataset(), tmp_path / "set")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------- tidy


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".tsv", ".txt.gz", ".parquet"])
def test_tidy_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    dataset = awkward_dataset()
    path = write_tidy(dataset, tmp_path / f"table{suffix}")
    assert_same(read_tidy(path), dataset)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"table{suffix}"]


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_tidy_round_trip_without_variances(tmp_path: Path, suffix: str) -> None:
    dataset = without_variances(random_dataset(seed=4))
    path = write_tidy(dataset, tmp_path / f"table{suffix}")
    assert_same(read_tidy(path), dataset)


def test_tidy_writer_drops_empty_entries_but_keeps_gene_order(tmp_path: Path) -> None:
    dataset = awkward_dataset()
    table = data_io.to_tidy_table(dataset)
    assert table.column_names == data_io.TIDY_COLUMNS
    # never-measured gene G1: listed once, in the first combo only
    assert table.filter(pc.equal(table["gene"], "G1")).num_rows == 1
    assert table["combo"][0].as_py() == "C0" and table["gene"].to_pylist()[:9] == dataset.genes


def test_tidy_pivot_by_first_appearance(tmp_path: Path) -> None:
    path = tmp_path / "hand.csv"
    path.write_text(
        "combo,study,drug1,drug2,gene,d1,d2,y\n"
        "B,S1,NA,x,TP53,1,2,3\n"
        "A,S2,p,q,MYC,4,,6\n"
        "B,S1,NA,x,MYC,7,8,9\n"
        "A,S2,p,q,EGFR,nan,NA,10\n"
    )
    dataset = read_tidy(path)
    assert dataset.genes == ["TP53", "MYC", "EGFR"]
    assert dataset.combos.to_dict("list") == {"combo": ["B", "A"], "study": ["S1", "S2"], "drug1": ["NA", "p"], "drug2": ["x", "q"]}
    nan = np.nan
    np.testing.assert_array_equal(dataset.drug1_effect, [[1, 7, nan], [nan, 4, nan]])
    np.testing.assert_array_equal(dataset.drug2_effect, [[2, 8, nan], [nan, nan, nan]])
    np.testing.assert_array_equal(dataset.combo_effect, [[3, 9, nan], [nan, 6, 10]])
    assert dataset.drug1_var is None


def test_tidy_parquet_from_pandas_with_integer_ids_and_categories(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "combo": [7, 7, 8], "study": pd.Categorical(["s", "s", "t"]), "drug1": ["a", "a", "c"],
            "drug2": ["b", "b", "d"], "gene": ["g1", "g2", "g1"], "d1": [1.0, 2.0, 3.0], "d2": [1, 2, 3],
            "v1": [0.1, None, 0.3], "v2": [0.1, 0.2, 0.3], "y": [1.5, None, 2.5],
        }
    )
    frame.to_parquet(tmp_path / "t.parquet")
    dataset = read_tidy(tmp_path / "t.parquet")
    assert dataset.combos["combo"].tolist() == ["7", "8"]
    np.testing.assert_array_equal(dataset.drug1_var, np.array([[0.1, np.nan], [0.3, np.nan]], dtype=np.float32))


TIDY_HEADER = "combo,study,drug1,drug2,gene,d1,d2,v1,v2,y\n"
GOOD_ROWS = ["C1,S,a,b,G1,1,2,0.1,0.2,3", "C1,S,a,b,G2,1,2,0.1,0.2,3", "C2,S,c,d,G1,1,2,0.1,0.2,3"]


@pytest.mark.parametrize(
    ("header", "rows", "detail"),
    [
        ("combo,study,drug1,gene,d1,y\n", ["C1,S,a,G1,1,2"], r"missing column\(s\) \['drug2', 'd2'\]"),
        (TIDY_HEADER, GOOD_ROWS + ["C1,S,a,b,G2,5,5,0.1,0.1,5"], "duplicate row for combo 'C1', gene 'G2' \\(line 3 and line 5\\)"),
        (TIDY_HEADER, GOOD_ROWS + ["C2,T,c,d,G2,1,2,0.1,0.2,3"], "combo 'C2' has study 'S' at line 4 but 'T' at line 5"),
        (TIDY_HEADER, GOOD_ROWS + ["C2,S,c,e,G2,1,2,0.1,0.2,3"], "combo 'C2' has drug2 'd' at line 4 but 'e' at line 5"),
        (TIDY_HEADER, GOOD_ROWS + ["C2,S,c,d,G2,1,oops,0.1,0.2,3"], "column 'd2' is not numeric: 'oops' at line 5"),
        (TIDY_HEADER, GOOD_ROWS + ["C2,S,c,d,G2,1,2,0.1,0.2,inf"], "column 'y' holds inf at line 5 \\(combo 'C2', gene 'G2'\\)"),
        (TIDY_HEADER, GOOD_ROWS + ["C2,S,c,d,G2,1,2,-1,0.2,3"], "column 'v1' has a negative variance -1.0 at line 5"),
        (TIDY_HEADER, GOOD_ROWS + ["C2,S,c,d,,1,2,0.1,0.2,3"], "column 'gene' is blank at line 5"),
        (TIDY_HEADER, GOOD_ROWS + ["C3,S,c,d,G2,1,2,0.1,0.2,"], "combo 'C3' has no measured gene"),
        ("combo,study,drug1,drug2,gene,d1,d2,v1,y\n", ["C1,S,a,b,G1,1,2,0.1,3"], "has v1 but not v2"),
        (TIDY_HEADER, [], "no rows"),
    ],
    ids=["columns", "duplicate", "study", "drug2", "non-numeric", "inf", "negative var", "blank gene", "empty combo", "v1 only", "empty"],
)
def test_tidy_bad_input_names_file_and_place(tmp_path: Path, header: str, rows: list[str], detail: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(header + "".join(row + "\n" for row in rows))
    with pytest.raises(DataError, match=detail) as caught:
        read_tidy(path)
    assert str(path) in str(caught.value)


def test_tidy_bad_parquet_value_type(tmp_path: Path) -> None:
    frame = pd.DataFrame({c: ["x"] for c in data_io.TIDY_ID_COLUMNS} | {"d1": [1.0], "d2": ["two"], "y": [1.0]})
    frame.to_parquet(tmp_path / "t.parquet")
    with pytest.raises(DataError, match="t.parquet: column 'd2' is not numeric: 'two' at row 0"):
        read_tidy(tmp_path / "t.parquet")


@pytest.mark.parametrize("suffix", [suffix for suffix, (kind, _, _) in data_io.TIDY_SUFFIXES.items() if kind == "csv"])
def test_library_and_signature_readers_share_the_suffix_table(tmp_path: Path, suffix: str) -> None:
    """A suffix means the same delimiter (and compression) for the data set, the drug library and a query signature."""
    library = DrugLibrary(effects=np.array([[0.5, -1.25], [np.nan, 3.0]], np.float32), genes=["g1", "g2"], drugs=["a", "b"])
    back = read_library_tidy(write_library_tidy(library, tmp_path / f"library{suffix}"))
    assert back.drugs == ["a", "b"] and back.genes == ["g1", "g2"]
    np.testing.assert_array_equal(back.effects, library.effects)
    path = tmp_path / f"signature{suffix}"
    _, delimiter, compressed = data_io.tidy_format(path)
    text = f"gene{delimiter}value\ng1{delimiter}0.5\ng2{delimiter}-1.25\n".encode()
    path.write_bytes(gzip.compress(text) if compressed else text)
    assert read_signature(path).to_dict() == {"g1": 0.5, "g2": -1.25}


def test_tidy_missing_file_and_unknown_extension(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=f"{tmp_path / 'no.csv'}: no such file"):
        read_tidy(tmp_path / "no.csv")
    (tmp_path / "t.xlsx").write_text("x")
    with pytest.raises(DataError, match=r"t.xlsx: unknown table format; use one of .*'.parquet'"):
        read_tidy(tmp_path / "t.xlsx")
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(DataError, match="broken.parquet: cannot read as Parquet"):
        read_tidy(tmp_path / "broken.parquet")


def test_write_tidy_refuses_existing_file_and_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_tidy(random_dataset(seed=1), tmp_path / "t.csv")
    before = path.read_bytes()
    with pytest.raises(DataError, match="t.csv: exists; pass overwrite=True"):
        write_tidy(random_dataset(seed=2), path)

    def broken_write_csv(table, sink, write_options=None):
        sink.write(b"combo,half a file")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(data_io.pa_csv, "write_csv", broken_write_csv)
    with pytest.raises(OSError, match="disk full"):
        write_tidy(random_dataset(seed=2), path, overwrite=True)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
    monkeypatch.undo()
    write_tidy(random_dataset(seed=2), path, overwrite=True)
    assert_same(read_tidy(path), random_dataset(seed=2))


def test_tidy_pivot_round_trips_half_a_million_rows(tmp_path: Path) -> None:
    """500k rows pivot back exactly (its speed is measured by benchmarks/bench_scoring.py, not asserted here)."""
    dataset = random_dataset(n_combos=100, n_genes=5000, seed=5)
    path = write_tidy(dataset, tmp_path / "big.parquet")
    assert_same(read_tidy(path), dataset)
