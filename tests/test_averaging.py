import pytest
import torch

from sikd_utils.averaging import class_wise_mean


def slow_reference(image, label, num_classes):
    """Obviously-correct loop version: for each sample, channel and class, fill in the class mean."""
    out = torch.empty_like(image, dtype=torch.float64)
    for b in range(image.shape[0]):
        for c in range(image.shape[1]):
            for k in range(num_classes):
                mask = label[b] == k
                if mask.any():
                    out[b, c][mask] = image[b, c][mask].double().mean()
    return out


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_slow_reference_with_absent_classes(channels, seed):
    g = torch.Generator().manual_seed(seed)
    image = torch.rand(4, channels, 12, 9, generator=g) * 5 - 1
    label = torch.randint(0, 5, (4, 12, 9), generator=g)
    label[0][label[0] == 3] = 0  # class 3 absent from sample 0
    label[1] = 0  # sample 1: background only
    label[2][label[2] == 4] = 1
    out = class_wise_mean(image, label, num_classes=6)  # class 5 absent everywhere
    ref = slow_reference(image, label, 6)
    assert out.shape == image.shape and out.dtype == image.dtype
    assert not torch.isnan(out).any()
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)


def test_piecewise_constant_and_channel_separate():
    image = torch.zeros(1, 3, 4, 4)
    image[0, 0] = torch.arange(16.0).reshape(4, 4)
    image[0, 2] = 7.0
    label = torch.zeros(1, 1, 4, 4, dtype=torch.long)
    label[0, 0, :2] = 1
    out = class_wise_mean(image, label, 2)
    assert torch.allclose(out[0, 0, :2], torch.full((2, 4), 3.5))  # mean of 0..7
    assert torch.allclose(out[0, 0, 2:], torch.full((2, 4), 11.5))  # mean of 8..15
    assert torch.all(out[0, 1] == 0) and torch.all(out[0, 2] == 7)


def test_samples_do_not_mix():
    image = torch.stack([torch.ones(1, 5, 5), 3 * torch.ones(1, 5, 5)])
    label = torch.zeros(2, 5, 5, dtype=torch.long)
    out = class_wise_mean(image, label, 1)
    assert torch.all(out[0] == 1) and torch.all(out[1] == 3)


def test_3d_spatial_input():
    image = torch.rand(2, 1, 4, 5, 3)
    label = torch.randint(0, 3, (2, 4, 5, 3))
    torch.testing.assert_close(class_wise_mean(image, label, 3).double(), slow_reference(image, label, 3))


def test_under_cpu_autocast_keeps_dtype_and_accuracy():
    image = torch.rand(2, 3, 16, 16)
    label = torch.randint(0, 3, (2, 16, 16))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = class_wise_mean(image.bfloat16(), label, 3)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), slow_reference(image.bfloat16().float(), label, 3), atol=2e-2, rtol=2e-2)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    image = torch.rand(3, 3, 32, 32)
    label = torch.randint(0, 4, (3, 32, 32))
    torch.testing.assert_close(class_wise_mean(image.cuda(), label.cuda(), 4).cpu(), class_wise_mean(image, label, 4))


@pytest.mark.parametrize("bad", [-1, 4])
def test_label_out_of_range_is_a_clear_error(bad):
    label = torch.zeros(1, 4, 4, dtype=torch.long)
    label[0, 0, 0] = bad
    with pytest.raises(ValueError, match=r"\[0, 4\)"):
        class_wise_mean(torch.rand(1, 1, 4, 4), label, 4)


def test_shape_and_type_errors():
    with pytest.raises(ValueError, match="does not match"):
        class_wise_mean(torch.rand(2, 1, 4, 4), torch.zeros(2, 4, 5, dtype=torch.long), 2)
    with pytest.raises(ValueError, match="does not match"):
        class_wise_mean(torch.rand(2, 1, 4, 4), torch.zeros(3, 4, 4, dtype=torch.long), 2)
    with pytest.raises(TypeError, match="integer"):
        class_wise_mean(torch.rand(1, 1, 4, 4), torch.zeros(1, 4, 4), 2)
    with pytest.raises(TypeError, match="floating"):
        class_wise_mean(torch.zeros(1, 1, 4, 4, dtype=torch.long), torch.zeros(1, 4, 4, dtype=torch.long), 2)


def test_value_check_can_be_skipped_for_validated_labels():
    image = torch.rand(2, 1, 5, 5)
    label = torch.randint(0, 3, (2, 5, 5))
    assert torch.equal(class_wise_mean(image, label, 3), class_wise_mean(image, label, 3, check_values=False))
    with pytest.raises(ValueError, match=r"label values must lie in \[0, 2\)"):
        class_wise_mean(image, label, 2)
