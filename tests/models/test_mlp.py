"""The network's missing-value policy and the masked loss: NaN never reaches a gradient."""

from __future__ import annotations

import pytest
import torch

from combomap.models.mlp import Activation, ComboMLP, assemble_inputs, masked_mse


def test_masked_mse_ignores_missing_targets() -> None:
    prediction = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, float("nan"), 5.0], [float("nan"), 1.0, float("nan")]])
    # measured residuals: 0, -2, -1 -> (0 + 4 + 1) / 3
    assert float(masked_mse(prediction, target)) == pytest.approx(5.0 / 3.0)
    all_missing = torch.full((2, 3), float("nan"))
    assert float(masked_mse(prediction, all_missing)) == 0.0


def test_gradients_are_finite_with_nan_inputs_and_targets() -> None:
    torch.manual_seed(0)
    net = ComboMLP(n_genes=6, hidden_sizes=[5, 4], uses_variances=True, uses_mask=True, var_fill=0.7)
    effects = torch.randn(4, 2, 6)
    effects[0, 0, :] = float("nan")
    effects[2, 1, 3] = float("nan")
    variances = torch.rand(4, 2, 6)
    variances[1, :, 2] = float("nan")
    target = torch.randn(4, 6)
    target[3, :] = float("nan")
    target[0, 1] = float("nan")
    loss = masked_mse(net(effects, variances), target)
    loss.backward()
    assert torch.isfinite(loss)
    for parameter in net.parameters():
        assert torch.isfinite(parameter.grad).all()
    # an all-missing batch gives zero loss and zero (finite) gradients
    net.zero_grad()
    masked_mse(net(effects, variances), torch.full_like(target, float("nan"))).backward()
    assert all(bool((p.grad == 0).all()) for p in net.parameters())


def test_input_policy_zero_fill_var_fill_and_mask() -> None:
    effects = torch.tensor([[[1.0, float("nan")], [float("nan"), 4.0]]])  # (1, 2 drugs, 2 genes)
    variances = torch.tensor([[[0.1, 0.2], [float("nan"), 0.4]]])
    inputs = assemble_inputs(effects, variances, uses_variances=True, uses_mask=True, var_fill=9.0)
    expected = [1.0, 0.0, 0.0, 4.0, 0.1, 0.2, 9.0, 0.4, 1.0, 0.0, 0.0, 1.0]
    assert inputs.tolist() == [pytest.approx(expected)]
    plain = assemble_inputs(effects, None, uses_variances=False, uses_mask=False, var_fill=1.0)
    assert plain.tolist() == [[1.0, 0.0, 0.0, 4.0]]
    with pytest.raises(ValueError, match="variances"):
        assemble_inputs(effects, None, uses_variances=True, uses_mask=False, var_fill=1.0)


def test_default_architecture_is_the_original() -> None:
    net = ComboMLP(n_genes=10)
    layers = list(net.layers)
    assert layers[0].p == 0.85 and layers[3].p == 0.5
    assert [(l.in_features, l.out_features) for l in net.linear_layers()] == [(20, 2500), (2500, 10)]
    z = torch.tensor([-3.0, 0.0, 6.0])
    assert Activation("very_leaky_relu")(z).tolist() == [-1.0, 0.0, 6.0]
    with pytest.raises(ValueError, match="activation"):
        Activation("swish")
