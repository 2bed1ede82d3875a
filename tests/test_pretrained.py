"""lite-unet's ImageNet start: the registry package's tensors land on our encoder exactly."""

from __future__ import annotations

import pytest
import torch

from polypview.nets import create_model

pretrained = pytest.importorskip("training.pretrained")
reference_package = pytest.importorskip(
    "efficientnet_lite_pytorch", reason="the reference implementation is a test extra"
)


@pytest.fixture(scope="module")
def reference_state() -> dict[str, torch.Tensor]:
    try:
        return pretrained.load_reference_state()
    except pretrained.PretrainedError as error:
        pytest.skip(str(error))


def test_imagenet_logits_equal_the_reference_implementation(reference_state) -> None:
    ours = pretrained.ImageNetClassifier.from_reference(reference_state).eval()
    reference = reference_package.EfficientNet.from_name("efficientnet-lite0").eval()
    reference.load_state_dict(reference_state)
    torch.manual_seed(0)
    images = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected, actual = reference(images), ours(images)
    torch.testing.assert_close(actual, expected, rtol=0, atol=1e-5)
    assert torch.equal(actual.argmax(1), expected.argmax(1))


def test_every_encoder_tensor_is_mapped_and_the_classifier_left_out(reference_state) -> None:
    network = create_model("lite-unet")
    state = pretrained.imagenet_encoder_state(network.encoder, reference_state)
    assert state.keys() == network.encoder.state_dict().keys()
    before = {k: v.clone() for k, v in network.decoder.state_dict().items()}
    pretrained.load_imagenet_encoder(network.encoder)
    assert torch.equal(network.encoder.stem[1].weight, reference_state["_conv_stem.weight"])
    assert all(torch.equal(before[k], v) for k, v in network.decoder.state_dict().items())


def test_a_checkpoint_that_does_not_fit_says_which_tensor(reference_state) -> None:
    broken = dict(reference_state)
    broken["_blocks.3._project_conv.weight"] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(pretrained.PretrainedError, match=r"_blocks\.3\._project_conv\.weight"):
        pretrained.imagenet_encoder_state(create_model("lite-unet").encoder, broken)
    del broken["_blocks.3._project_conv.weight"]
    with pytest.raises(pretrained.PretrainedError, match="lacks 1 tensors"):
        pretrained.imagenet_encoder_state(create_model("lite-unet").encoder, broken)
