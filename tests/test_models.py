import pytest
import torch

from sikd_utils.models import UNet, architecture_of, count_parameters


def test_parameter_counts_match_official_code():
    assert count_parameters(UNet(1, 4, 64)) == 34_526_084
    assert count_parameters(UNet(1, 4, 64, skip_connections=False)) == 31_392_644


@pytest.mark.parametrize("skip", [True, False])
@pytest.mark.parametrize("size", [(32, 32), (37, 50), (16, 17)])
def test_outputs_and_features_at_input_resolution(skip, size):
    net = UNet(3, 5, base_channels=4, skip_connections=skip).eval()
    logits, features = net(torch.rand(2, 3, *size))
    assert logits.shape == (2, 5, *size)
    assert features.shape == (2, 4, *size)


def test_teacher_decoder_sees_no_skip():
    teacher = UNet(1, 2, base_channels=4, skip_connections=False)
    student = UNet(1, 2, base_channels=4)
    assert [d[0].in_channels for d in teacher.decoders] == [32, 16, 8, 4]
    assert [d[0].in_channels for d in student.decoders] == [64, 32, 16, 8]


def test_wrong_channel_count_is_a_clear_error():
    with pytest.raises(ValueError, match=r"\(batch, 1, height, width\)"):
        UNet(1, 4, 4)(torch.rand(1, 3, 16, 16))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError):
        UNet(num_classes=1)
    with pytest.raises(ValueError):
        UNet(base_channels=0)


def test_architecture_round_trip():
    from sikd_utils.backbones import from_architecture

    net = UNet(3, 3, 8, skip_connections=False)
    assert architecture_of(net)["backbone"] == "unet"
    assert from_architecture(architecture_of(net)).state_dict().keys() == net.state_dict().keys()
    old = {k: v for k, v in architecture_of(net).items() if k != "backbone"}  # checkpoints before issue 13
    assert isinstance(from_architecture(old), UNet)
