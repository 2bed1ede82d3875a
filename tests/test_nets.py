from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from polypview.errors import ModelError
from polypview.nets import create_model, model_names


def parameter_count(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def seeded_model(name: str) -> nn.Module:
    """A model with fixed weights and batch-norm statistics taken from one random batch.

    Non-default running statistics make the save/load round trip prove the buffers travel too.
    """
    torch.manual_seed(0)
    model = create_model(name)
    with torch.no_grad():
        model.train()(torch.randn(2, 3, 64, 64))
    return model.eval()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("unet", 1_944_049),
        ("resunet", 8_223_809),
        ("resunetpp", 4_062_993),
        ("lite-unet", 5_191_073),
    ],
)
def test_parameter_count(name: str, expected: int) -> None:
    assert parameter_count(create_model(name)) == expected


# dynamo=False selects the TorchScript exporter; torch flags it deprecated, so mute just that.
@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript-based ONNX export")
@pytest.mark.filterwarnings("ignore:The feature will be removed:DeprecationWarning")
@pytest.mark.parametrize("name", model_names())
def test_model_contract(name: str, tmp_path: Path) -> None:
    model = seeded_model(name)

    with torch.no_grad():
        for batch, height, width in [(1, 256, 256), (2, 224, 320)]:
            logits = model(torch.randn(batch, 3, height, width))
            assert logits.shape == (batch, 1, height, width)

    model.train()
    images = torch.randn(2, 3, 64, 64)
    targets = (torch.rand(2, 1, 64, 64) > 0.5).float()
    nn.functional.binary_cross_entropy_with_logits(model(images), targets).backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
    model.eval()

    weights_path = tmp_path / "weights.safetensors"
    save_file(model.state_dict(), weights_path)
    reloaded = create_model(name)
    reloaded.load_state_dict(load_file(weights_path))
    reloaded.eval()
    with torch.no_grad():
        assert torch.equal(reloaded(images), model(images))

    onnx_path = tmp_path / "model.onnx"
    torch.onnx.export(
        model, (images,), onnx_path, input_names=["images"], output_names=["logits"], dynamo=False
    )
    session = onnxruntime.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    (onnx_logits,) = session.run(None, {"images": images.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(onnx_logits, model(images).numpy(), rtol=0, atol=1e-4)


def test_unknown_name_lists_the_choices() -> None:
    expected = f"unknown model 'foo'; choose one of: {', '.join(model_names())}"
    with pytest.raises(ModelError, match=re.escape(expected)):
        create_model("foo")
    assert model_names() == ["lite-unet", "resunet", "resunetpp", "unet"]


@pytest.mark.parametrize("name", model_names())
def test_channels_are_honoured(name: str) -> None:
    model = create_model(name, in_channels=1, classes=3).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 3, 64, 64)


def test_resunetpp_sigmoid_gate_keeps_the_parameters_and_bounds_the_gated_features() -> None:
    torch.manual_seed(0)
    reference = create_model("resunetpp").eval()
    sigmoid = create_model("resunetpp", attention_gate="sigmoid").eval()
    sigmoid.load_state_dict(reference.state_dict())  # same parameters, names and shapes
    image = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert not torch.allclose(reference(image), sigmoid(image))
        attention = sigmoid.attentions[0]
        skip, feature = torch.randn(1, 64, 16, 16), torch.randn(1, 256, 8, 8) * 100
        gated = attention(skip, feature)
    assert (gated.abs() <= feature.abs()).all()  # a sigmoid only ever scales down
    with pytest.raises(ModelError, match="attention_gate is one of reference, sigmoid"):
        create_model("resunetpp", attention_gate="tanh")


def test_lite_unet_decoder_widths_are_a_constructor_option() -> None:
    slim = create_model("lite-unet", decoder_channels=(128, 64, 32, 16)).eval()
    assert parameter_count(slim) == 3_782_353
    with torch.no_grad():
        assert slim(torch.randn(1, 3, 64, 64)).shape == (1, 1, 64, 64)
    with pytest.raises(ModelError, match="decoder_channels needs 4 positive integers"):
        create_model("lite-unet", decoder_channels=(128, 64))
    with pytest.raises(ModelError, match="cannot build unet"):
        create_model("unet", decoder_channels=(128, 64, 32, 16))
