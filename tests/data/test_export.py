"""combomap-data export=library|signature: what it writes, the loaders read back unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from combomap.jobs import data as data_job
from combomap.data.dataset import DataError
from combomap.data.library_io import GctxLibrary, NpyLibrary, SimulatedLibrary, TidyLibrary, load_library
from combomap.query.signature import read_signature

SMALL_LIBRARY = ["data.preset=tiny", "library.n_drugs=6"]


@pytest.mark.parametrize("fmt,reader", [
    ("npy", lambda out: NpyLibrary(dir=str(out))),
    ("csv.gz", lambda out: TidyLibrary(path=str(out / "library.csv.gz"))),
    ("gctx", lambda out: GctxLibrary(path=str(out / "library.gctx"), variances_path=str(out / "library_variances.gctx"))),
])
def test_exported_library_reads_back_identically(compose_cfg, tmp_path: Path, fmt: str, reader) -> None:
    out = tmp_path / "library"
    cfg = compose_cfg("data_tool", [*SMALL_LIBRARY, "export=library", f"export.format={fmt}", f"out={out}"])
    summary = data_job.run(cfg)
    assert summary["n_drugs"] == 6 and summary["n_genes"] == 300
    original = load_library(SimulatedLibrary(n_drugs=6, preset="tiny"))
    back = load_library(reader(out))
    assert back.drugs == original.drugs and back.genes == original.genes
    np.testing.assert_allclose(back.effects, original.effects, rtol=1e-6)
    np.testing.assert_allclose(back.variances, original.variances, rtol=1e-6)
    with pytest.raises(DataError, match="overwrite=true"):
        data_job.run(cfg)


def test_signatures_of_a_drug_a_pair_and_a_disease(compose_cfg, tmp_path: Path) -> None:
    library = load_library(SimulatedLibrary(n_drugs=6, preset="tiny"))
    drug = data_job.run(compose_cfg("data_tool", [*SMALL_LIBRARY, "export=signature", "export.drug=drug0002",
                                                  f"out={tmp_path / 'drug'}"]))
    values = read_signature(drug["output"])
    np.testing.assert_allclose(values.to_numpy(), library.effects[2], rtol=1e-5)
    assert list(values.index) == library.genes

    pair = data_job.run(compose_cfg("data_tool", [*SMALL_LIBRARY, "export=signature", "export.of=pair",
                                                  "export.pair=drug0001+drug0004", "export.format=csv",
                                                  f"out={tmp_path / 'pair'}"]))
    assert pair["output"].endswith("signature.csv")
    np.testing.assert_allclose(read_signature(pair["output"]).to_numpy(),
                               (library.effects[1] + library.effects[4]) / 2, rtol=1e-5)

    disease = data_job.run(compose_cfg("data_tool", [*SMALL_LIBRARY, "export=signature", "export.of=disease",
                                                     "export.pair=drug0000+drug0003", "export.noise=0",
                                                     f"out={tmp_path / 'disease'}"]))
    assert disease["n_genes"] == 150 and "drug0000+drug0003" in disease["description"]
    signature = read_signature(disease["output"])
    columns = [library.genes.index(g) for g in signature.index]
    reverser = -(library.effects[0, columns] + library.effects[3, columns]) / 2  # measured, so close, not equal
    assert np.corrcoef(signature.to_numpy(), reverser)[0, 1] > 0.5

    with pytest.raises(DataError, match="library=simulated"):
        data_job.run(compose_cfg("data_tool", ["export=signature", "export.of=disease", "library=npy",
                                               f"library.dir={tmp_path}", f"out={tmp_path / 'x'}"]))
