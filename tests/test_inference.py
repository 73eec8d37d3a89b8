"""predict_case / predict_cases: exact recovery with an oracle model, shapes, channels, mode restore."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sikd_utils.data import Case
from sikd_utils.data.slices import SliceDataset
from sikd_utils.inference import predict_case, predict_cases
from sikd_utils.models import UNet


class Oracle(nn.Module):
    """Reads the label off one input channel (image = label values) and returns one-hot logits.

    Records every input batch so tests can see exactly what the model was fed.
    """

    def __init__(self, in_channels=1, num_classes=4, channel=0):
        super().__init__()
        self.in_channels, self.num_classes, self.channel = in_channels, num_classes, channel
        self.scale = nn.Parameter(torch.tensor(10.0))  # gives the model a device
        self.inputs = []

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        label = x[:, self.channel].round().long().clamp(0, self.num_classes - 1)
        logits = F.one_hot(label, self.num_classes).permute(0, 3, 1, 2).float() * self.scale
        return logits, torch.zeros(x.shape[0], 2, *x.shape[-2:])


class IndicatorOracle(Oracle):
    """Input channel c is the indicator of class c; those maps are the logits. Resizing is linear, so
    unlike label-valued images no in-between class appears at a 1|3 boundary (the blend is not "2")."""

    def __init__(self, num_classes=4):
        super().__init__(in_channels=num_classes, num_classes=num_classes)

    def forward(self, x):
        self.inputs.append(x.detach().clone())
        return x * self.scale, torch.zeros(x.shape[0], 2, *x.shape[-2:])


def indicator_case(case):
    """The same label, with the image replaced by one indicator channel per class."""
    image = np.stack([(case.label == c).astype(np.float32) for c in range(4)])
    return Case(image, case.label, case.spacing, case.case_id)


def label_volume(h, w, depth, rng=0):
    """Non-symmetric blobs of classes 1..3, different per slice, some slices empty."""
    rng = np.random.default_rng(rng)
    lab = np.zeros((h, w, depth), np.int64)
    for z in range(depth):
        if z % 3 == 2:
            continue
        for c in (1, 2, 3):
            y0, x0 = rng.integers(0, h * 2 // 3), rng.integers(0, w * 2 // 3)
            lab[y0 : y0 + h // 4 + 2, x0 : x0 + w // 5 + 2, z] = c
    return lab


def case_3d(h=32, w=32, depth=5, channels=1, label_channel=0, case_id="vol"):
    lab = label_volume(h, w, depth)
    img = np.random.default_rng(1).random((channels, h, w, depth)).astype(np.float32)
    img[label_channel] = lab
    return Case(img, lab, (1.0, 1.0, 3.0), case_id)


def case_2d(h=40, w=28, channels=1, label_channel=0, case_id="img"):
    lab = label_volume(h, w, 1)[..., 0]
    img = np.random.default_rng(2).random((channels, h, w)).astype(np.float32)
    img[label_channel] = lab
    return Case(img, lab, (1.0, 1.0), case_id)


def test_oracle_recovers_3d_label_exactly_at_same_size():
    case = case_3d(32, 32, 5)
    pred = predict_case(Oracle(), case, 32, batch_size=2)  # 3 batches, the last one short
    assert pred.shape == case.label.shape and pred.dtype == np.int64
    np.testing.assert_array_equal(pred, case.label)


def test_oracle_recovers_2d_label_exactly():
    case = case_2d(40, 28)
    pred = predict_case(Oracle(), case, (40, 28))
    assert pred.shape == (40, 28) and pred.dtype == np.int64
    np.testing.assert_array_equal(pred, case.label)


@pytest.mark.parametrize("size", [64, 24])  # enlarge, shrink
def test_oracle_nearly_recovers_label_through_resizing(size):
    case = indicator_case(case_3d(40, 56, 6))  # non-square: a transposition or flip would show
    pred = predict_case(IndicatorOracle(), case, size)
    assert pred.shape == case.label.shape
    agreement = (pred == case.label).mean()
    assert agreement > (0.97 if size == 64 else 0.9), agreement
    for c in (1, 2, 3):  # each class lands where it belongs
        want = np.argwhere(case.label == c).mean(0)
        got = np.argwhere(pred == c).mean(0)
        assert np.abs(got - want).max() < 1.0, (c, got, want)
    # the label-valued oracle also gets through, less exactly (blends of classes 1 and 3 read as 2)
    assert (predict_case(Oracle(), case_3d(40, 56, 6), size) == case.label).mean() > 0.85


def test_rgb_case():
    case = case_2d(36, 36, channels=3, label_channel=2)
    pred = predict_case(Oracle(in_channels=3, channel=2), case, 36)
    np.testing.assert_array_equal(pred, case.label)
    assert (predict_case(Oracle(in_channels=3, channel=2), case, 48) == case.label).mean() > 0.97


def test_model_sees_slices_resized_exactly_as_in_training():
    case = case_3d(30, 44, 4, channels=3)
    model = Oracle(in_channels=3)
    predict_case(model, case, 36, batch_size=3)  # enlarges height, shrinks width
    seen = torch.cat(model.inputs)
    train = SliceDataset([case], 36, augment=False, foreground_only=False)
    assert torch.equal(seen, train.images)


def test_wrong_channel_count_is_a_clear_error():
    case = case_2d(channels=3, case_id="rgb_007")
    with pytest.raises(ValueError, match=r"'rgb_007'.*3 image channel.*in_channels=1"):
        predict_case(Oracle(in_channels=1), case, 32)
    with pytest.raises(ValueError, match="rgb_007"):
        list(predict_cases(UNet(1, 2, base_channels=2), [case], 32, progress=False))


def test_model_mode_is_restored():
    model = Oracle()
    model.train()
    predict_case(model, case_2d(), 32)
    assert model.training
    model.eval()
    predict_case(model, case_2d(), 32)
    assert not model.training
    unet = UNet(1, 3, base_channels=2)
    unet.train()
    unet.encoders[0].eval()  # a deliberate mixture survives
    predict_case(unet, case_2d(), 32)
    assert unet.training and unet.decoders[0].training and not unet.encoders[0].training


def test_real_unet_eval_no_grad_and_batch_independent():
    torch.manual_seed(0)
    model = UNet(1, 4, base_channels=4)
    model.train()
    case = case_3d(24, 20, 5)
    stats = {k: v.clone() for k, v in model.state_dict().items()}
    a = predict_case(model, case, 32, batch_size=1)
    b = predict_case(model, case, 32, batch_size=5)
    np.testing.assert_array_equal(a, b)  # eval mode: BatchNorm does not depend on the batch
    assert a.shape == case.label.shape and a.min() >= 0 and a.max() < 4
    for k, v in model.state_dict().items():  # running statistics untouched
        assert torch.equal(v, stats[k]), k
    assert all(p.grad is None for p in model.parameters())


def test_predict_cases_yields_pairs_in_order():
    cases = [case_3d(case_id="a"), case_2d(32, 32, case_id="b"), case_3d(16, 16, 3, case_id="c")]
    out = list(predict_cases(Oracle(), cases, 32, batch_size=4, progress=False))
    assert [c.case_id for c, _ in out] == ["a", "b", "c"]
    for case, pred in out:
        assert pred.shape == case.label.shape
    np.testing.assert_array_equal(out[0][1], cases[0].label)
    gen = predict_cases(Oracle(), iter(cases[:1]), 32)  # any iterable, progress bar on
    assert next(gen)[0] is cases[0]


def test_case_is_never_modified():
    class InPlace(Oracle):
        def forward(self, x):
            out = super().forward(x)
            x.mul_(0)  # a careless model writing into its input
            return out

    for case in (case_2d(32, 32), case_3d(32, 32, 4)):
        before = case.image.copy()
        predict_case(InPlace(), case, 32)
        np.testing.assert_array_equal(case.image, before)
