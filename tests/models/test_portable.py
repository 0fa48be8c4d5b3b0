"""The NumPy-only predictor matches the torch module in eval mode and round-trips through safetensors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from combomap.data.pairs import PairBatch
from combomap.models.mlp import ComboMLP, assemble_inputs
from combomap.models.portable import ACTIVATIONS, PortableMLP, split_first_layer


def _random_inputs(n: int, n_genes: int, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    blocks = [rng.normal(size=(n, n_genes)).astype(np.float32) for _ in range(2)]
    blocks += [(rng.random(size=(n, n_genes)) + 0.05).astype(np.float32) for _ in range(2)]
    for block in blocks:
        block[rng.random(block.shape) < 0.15] = np.nan
    return tuple(blocks)


def _torch_predict(net: ComboMLP, d1, d2, v1, v2) -> np.ndarray:
    net.eval()
    effects = torch.from_numpy(np.stack([d1, d2], axis=1))
    variances = torch.from_numpy(np.stack([v1, v2], axis=1))
    with torch.no_grad():
        return net(effects, variances if net.uses_variances else None).numpy()


@pytest.mark.parametrize("activation", sorted(ACTIVATIONS))
@pytest.mark.parametrize("uses_variances,uses_mask", [(False, False), (True, True)])
def test_portable_matches_torch_eval_mode(activation: str, uses_variances: bool, uses_mask: bool) -> None:
    torch.manual_seed(0)
    n_genes = 40
    net = ComboMLP(n_genes, hidden_sizes=[64, 32], activation=activation, uses_variances=uses_variances, uses_mask=uses_mask, var_fill=0.3)
    d1, d2, v1, v2 = _random_inputs(25, n_genes, seed=1)
    expected = _torch_predict(net, d1, d2, v1, v2)
    predictor = net.to_portable([f"G{i}" for i in range(n_genes)])
    got = predictor.predict(PairBatch(d1, d2, v1, v2))
    assert got.dtype == np.float32 and got.shape == (25, n_genes)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_save_load_roundtrip_metadata_and_layer_split(tmp_path: Path) -> None:
    torch.manual_seed(1)
    n_genes = 30
    net = ComboMLP(n_genes, hidden_sizes=[20], uses_variances=True, uses_mask=False, var_fill=0.25)
    genes = [f"gene{i}" for i in range(n_genes)]
    predictor = net.to_portable(genes)
    path = predictor.save(tmp_path / "net1.safetensors")
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["layer_sizes"] == [120, 20, 30] and meta["activation"] == "very_leaky_relu"
    assert meta["uses_variances"] is True and meta["uses_mask"] is False and meta["genes"] == genes
    assert meta["version"] == 1
    loaded = PortableMLP.load(path)
    d1, d2, v1, v2 = _random_inputs(7, n_genes, seed=2)
    pairs = PairBatch(d1, d2, v1, v2)
    np.testing.assert_array_equal(loaded.predict(pairs), predictor.predict(pairs))
    np.testing.assert_allclose(loaded.predict(pairs), _torch_predict(net, d1, d2, v1, v2), atol=1e-5)
    # First layer split for connectivity mapping: drug1 / drug2 columns.
    w_drug1, w_drug2 = split_first_layer(loaded)
    np.testing.assert_array_equal(w_drug1, net.linear_layers()[0].weight.detach().numpy()[:, :n_genes])
    np.testing.assert_array_equal(w_drug2, net.linear_layers()[0].weight.detach().numpy()[:, n_genes : 2 * n_genes])
    assert set(loaded.first_layer_blocks()) == {"drug1_effect", "drug2_effect", "drug1_var", "drug2_var"}
    with pytest.raises(ValueError, match="variances"):
        loaded.predict(PairBatch(d1, d2))
    with pytest.raises(ValueError, match="genes"):
        loaded.predict(PairBatch(d1[:, :5], d2[:, :5], v1[:, :5], v2[:, :5]))


@pytest.mark.parametrize("uses_variances,uses_mask", [(False, False), (True, False), (False, True), (True, True)])
def test_numpy_inputs_apply_the_torch_missing_value_policy_exactly(uses_variances: bool, uses_mask: bool) -> None:
    """portable.inputs (and the per-drug drug_inputs the query's factorized nets use) == mlp.assemble_inputs."""
    n_genes = 12
    net = ComboMLP(n_genes, hidden_sizes=[4], uses_variances=uses_variances, uses_mask=uses_mask, var_fill=0.7)
    predictor = net.to_portable([f"G{i}" for i in range(n_genes)])
    d1, d2, v1, v2 = _random_inputs(9, n_genes, seed=3)
    expected = assemble_inputs(torch.from_numpy(np.stack([d1, d2], axis=1)), torch.from_numpy(np.stack([v1, v2], axis=1)),
                               uses_variances, uses_mask, 0.7).numpy()
    got = predictor.inputs(PairBatch(d1, d2, v1, v2))
    assert not np.isnan(got).any() and got.shape == (9, predictor.n_inputs)
    np.testing.assert_array_equal(got, expected)
    for name, columns in predictor.input_blocks.items():
        drug, kind = name.split("_")
        own = predictor.drug_inputs(d1 if drug == "drug1" else d2, v1 if drug == "drug1" else v2)[kind]
        np.testing.assert_array_equal(got[:, columns], own)


def test_load_rejects_foreign_files(tmp_path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({"weight_0": np.zeros((2, 2), dtype=np.float32)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="metadata"):
        PortableMLP.load(tmp_path / "other.safetensors")
    (tmp_path / "pickle.safetensors").write_bytes(b"\x80\x04K\x01.")  # a pickle is never executed
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        PortableMLP.load(tmp_path / "pickle.safetensors")
    with pytest.raises(FileNotFoundError):
        PortableMLP.load(tmp_path / "missing.safetensors")


def test_portable_module_imports_without_torch() -> None:
    code = (
        "import sys; import combomap.models.portable as p; "
        "assert 'torch' not in sys.modules, 'torch was imported'; print('ok')"
    )
    out = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
