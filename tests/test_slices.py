"""SliceDataset: slice counts, shapes, resize, joint augmentation, MONAI geometry, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from sikd_utils.data import Case
from sikd_utils.data.slices import (
    AugmentParams,
    SliceDataset,
    apply_affine,
    draw_augmentation,
    resize_images,
    resize_labels,
    sampling_matrix,
)


def blob_label(h, w, classes=(1, 2, 3), rng=None):
    """A label map with a few rectangles of distinct classes, off-centre so transforms show."""
    rng = rng or np.random.default_rng(0)
    lab = np.zeros((h, w), np.int64)
    for c in classes:
        y0, x0 = rng.integers(h // 8, h // 2), rng.integers(w // 8, w // 2)
        lab[y0 : y0 + h // 3, x0 : x0 + w // 4] = c
    return lab


def volume_case(h=30, w=26, fg_slices=(1, 2, 4), depth=7, case_id="vol", channels=1):
    lab = np.zeros((h, w, depth), np.int64)
    for z in fg_slices:
        lab[..., z] = blob_label(h, w, rng=np.random.default_rng(z))
    img = np.repeat(lab[None].astype(np.float32) * 0.25, channels, axis=0)
    return Case(img, lab, (1.0, 1.0, 5.0), case_id)


def image_case(h=40, w=36, case_id="img", channels=1, classes=(1, 2), k=0.2, seed=0):
    lab = blob_label(h, w, classes=classes, rng=np.random.default_rng(seed))
    img = np.stack([lab.astype(np.float32) * k * (i + 1) for i in range(channels)])
    return Case(img, lab, (1.0, 1.0), case_id)


# ---------------------------------------------------------------------------------------------- counts


def test_3d_foreground_only_counts_and_index():
    case = volume_case(fg_slices=(1, 2, 4), depth=7)
    ds = SliceDataset([case], 32)
    assert len(ds) == 3
    assert ds.slice_index == [("vol", 1), ("vol", 2), ("vol", 4)]
    assert [ds[i]["slice"] for i in range(3)] == [1, 2, 4]
    assert len(SliceDataset([case], 32, foreground_only=False)) == 7


def test_2d_cases_one_slice_each_and_empty_ones_dropped():
    cases = [image_case(case_id="a"), image_case(case_id="b", seed=1)]
    empty = Case(np.zeros((1, 20, 20), np.float32), np.zeros((20, 20), np.int64), (1.0, 1.0), "empty")
    ds = SliceDataset(cases + [empty], 24)
    assert len(ds) == 2
    assert [(ds[i]["case_id"], ds[i]["slice"]) for i in range(2)] == [("a", 0), ("b", 0)]
    assert len(SliceDataset(cases + [empty], 24, foreground_only=False)) == 3


def test_mixed_2d_and_3d_cases():
    ds = SliceDataset([volume_case(fg_slices=(0, 3)), image_case()], 16)
    assert len(ds) == 3
    assert ds.slice_index[-1] == ("img", 0)


# ------------------------------------------------------------------------------------- shapes, resize


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int32, np.int64])
def test_label_dtypes(dtype):
    case = volume_case()
    case = Case(case.image, case.label.astype(dtype), case.spacing, case.case_id)
    ds = SliceDataset([case], 40, augment=True)
    assert ds[0]["label"].dtype == torch.int64
    assert set(torch.unique(ds[0]["label"]).tolist()) <= {0, 1, 2, 3}


@pytest.mark.parametrize("channels", [1, 3])
def test_item_shapes_and_dtypes(channels):
    ds = SliceDataset([volume_case(h=30, w=22, channels=channels)], 40, augment=True)
    for i in range(len(ds)):
        item = ds[i]
        assert item["image"].shape == (channels, 40, 40) and item["image"].dtype == torch.float32
        assert item["label"].shape == (40, 40) and item["label"].dtype == torch.int64
        assert isinstance(item["case_id"], str) and isinstance(item["slice"], int)
        assert type(item["image"]) is torch.Tensor  # plain tensors collate fast (no MetaTensor)


def test_non_square_size_and_batching():
    ds = SliceDataset([volume_case()], (24, 40), augment=True)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=3)))
    assert batch["image"].shape == (3, 1, 24, 40) and batch["label"].shape == (3, 24, 40)


@pytest.mark.parametrize("size", [48, 17])  # enlarge and shrink
def test_no_augmentation_equals_plain_resize(size):
    case = volume_case(h=30, w=26, channels=2)
    ds = SliceDataset([case], size, augment=False, foreground_only=False)
    for z in range(case.label.shape[-1]):
        img = torch.from_numpy(case.image[..., z])[None]
        lab = torch.from_numpy(case.label[..., z])[None, None].float()
        want_img = F.interpolate(img, size=(size, size), mode="bilinear", align_corners=False, antialias=True)[0]
        want_lab = F.interpolate(lab, size=(size, size), mode="nearest-exact")[0, 0].long()
        torch.testing.assert_close(ds[z]["image"], want_img)
        assert torch.equal(ds[z]["label"], want_lab)
    ds.set_epoch(5)  # epochs change nothing without augmentation
    assert torch.equal(ds[0]["image"], ds.get_item(0, 0)["image"])


def test_resize_matches_monai_resized_when_enlarging():
    from monai.transforms import Resized

    case = image_case(h=20, w=28, channels=3)
    ref = Resized(("image", "label"), spatial_size=(40, 40), mode=("bilinear", "nearest-exact"))(
        {"image": torch.from_numpy(case.image), "label": torch.from_numpy(case.label)[None].float()}
    )
    img, lab = torch.from_numpy(case.image)[None], torch.from_numpy(case.label)[None]
    torch.testing.assert_close(resize_images(img, 40)[0], ref["image"].as_tensor(), atol=1e-5, rtol=0)
    assert torch.equal(resize_labels(lab, 40)[0], ref["label"][0].long().as_tensor())


def test_resize_same_size_is_identity():
    x = torch.rand(2, 3, 16, 16)
    assert resize_images(x, 16) is x
    y = torch.randint(0, 3, (2, 16, 16))
    assert resize_labels(y, (16, 16)) is y


# --------------------------------------------------------------------------------------- augmentation


def interior(label: torch.Tensor, width: int = 2) -> np.ndarray:
    """Pixels whose (2·width+1)² neighbourhood holds a single label value (away from every edge)."""
    lab = label.numpy()
    footprint = np.ones((2 * width + 1,) * 2, bool)
    return ndimage.maximum_filter(lab, footprint=footprint, mode="nearest") == ndimage.minimum_filter(
        lab, footprint=footprint, mode="nearest"
    )


def test_augmentation_moves_image_and_label_together():
    k = 0.2
    cases = [image_case(h=48, w=40, channels=3, classes=(1, 2, 3), k=k, seed=s, case_id=f"c{s}") for s in range(4)]
    ds = SliceDataset(cases, 48, augment=True, seed=3)
    plain = SliceDataset(cases, 48, augment=False)
    moved = 0
    epochs = 10
    for epoch in range(epochs):
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            item = ds[i]
            label, image = item["label"], item["image"]
            inside = interior(label)
            assert inside.mean() > 0.5
            for c in range(3):  # channel c holds label * k * (c + 1)
                err = (image[c] - label.float() * k * (c + 1)).abs().numpy()
                assert err[inside].max() < 1e-4, (epoch, i, c)
            if not torch.equal(label, plain[i]["label"]):
                moved += 1
                assert not torch.equal(image, plain[i]["image"])
    assert moved >= 0.5 * epochs * len(ds)  # 75 % of draws transform something (these fixed draws: 24 of 40)


def test_label_values_stay_a_subset():
    lab = np.zeros((36, 36), np.int64)
    lab[4:20, 6:30], lab[18:33, 10:22] = 2, 5
    case = Case(lab[None].astype(np.float32), lab, (1.0, 1.0), "sparse")
    ds = SliceDataset([case], 50, augment=True)
    seen = set()
    for epoch in range(20):
        values = set(torch.unique(ds.get_item(0, epoch)["label"]).tolist())
        assert values <= {0, 2, 5}
        seen |= values
    assert seen == {0, 2, 5}


def test_augmentation_parameters_follow_the_official_recipe():
    draws = [draw_augmentation(0, 0, i, (64, 32)) for i in range(4000)]
    translated = [d for d in draws if d.shift != (0.0, 0.0)]
    rotated = [d for d in draws if d.angle != 0.0]
    assert 0.45 < len(translated) / len(draws) < 0.55 and 0.45 < len(rotated) / len(draws) < 0.55
    both = sum(1 for d in draws if d.shift != (0.0, 0.0) and d.angle != 0.0)
    assert 0.2 < both / len(draws) < 0.3  # independent draws
    assert max(abs(d.shift[0]) for d in translated) <= 8.0 and max(abs(d.shift[1]) for d in translated) <= 4.0
    assert max(abs(d.shift[0]) for d in translated) > 7.5
    assert max(abs(d.angle) for d in rotated) <= math.pi and max(abs(d.angle) for d in rotated) > 3.0


def test_geometry_matches_monai():
    """Our fused resample is MONAI's ``Affined`` with our matrix, and ≈ ``Affined(translate)`` then
    ``Rotated`` (the official translate-then-rotate order) up to the second interpolation."""
    from monai.transforms import Affined, Compose, Rotated

    case = image_case(h=40, w=52, channels=1, classes=(1, 2, 3))
    image = torch.from_numpy(case.image)
    label = torch.from_numpy(case.label)
    keys, modes = ("image", "label"), ("bilinear", "nearest")
    for params in (AugmentParams((4.3, -6.0), 0.0), AugmentParams((0.0, 0.0), 0.9), AugmentParams((3.2, 5.1), -2.4)):
        matrix = sampling_matrix(params)
        out_img, out_lab = apply_affine(image, label, matrix)
        data = {"image": image, "label": label[None].float()}
        ref = Affined(keys, affine=torch.as_tensor(matrix), mode=modes, padding_mode="zeros")(dict(data))
        torch.testing.assert_close(out_img, ref["image"].as_tensor(), atol=1e-4, rtol=0)
        assert (out_lab != ref["label"][0].long()).float().mean() < 1e-3
        two_step = Compose(
            [
                Affined(keys, translate_params=params.shift, mode=modes, padding_mode="zeros"),
                Rotated(keys, angle=params.angle, keep_size=True, mode=modes, padding_mode="zeros"),
            ]
        )(dict(data))
        assert (out_lab != two_step["label"][0].long()).float().mean() < 0.03


def test_official_order_on_non_square_raw_slices():
    """Items equal the official order — translate and rotate the *raw* slice, then resize — done by MONAI
    (``monai_reference_transform``'s steps with our drawn parameters), up to interpolation."""
    from monai.transforms import Affined, Compose, Resized, Rotated

    raw_h, raw_w, size = 40, 64, 48  # strongly non-square raw slice
    case = image_case(h=raw_h, w=raw_w, channels=1, classes=(1, 2, 3), seed=4)
    ds = SliceDataset([case], size, augment=True, seed=2)
    scale = ds.resize_scale(0)
    assert scale == (size / raw_h, size / raw_w)
    keys, modes = ("image", "label"), ("bilinear", "nearest")
    checked = 0
    for epoch in range(20):
        params = ds.augmentation(0, epoch)
        if params.angle == 0.0:
            continue
        raw_shift = (params.shift[0] / scale[0], params.shift[1] / scale[1])
        official = Compose(
            [
                Affined(keys, translate_params=raw_shift, mode=modes, padding_mode="zeros"),
                Rotated(keys, angle=params.angle, keep_size=True, mode=modes, padding_mode="zeros"),
                Resized(keys, spatial_size=(size, size), mode=("bilinear", "nearest-exact")),
            ]
        )({"image": torch.from_numpy(case.image), "label": torch.from_numpy(case.label)[None].float()})
        want = official["label"][0].long().as_tensor()
        got = ds.get_item(0, epoch)["label"]
        assert (got == want).float().mean() > 0.96, epoch
        # rotating the squashed picture instead (no conjugation) is measurably further off
        _, naive = apply_affine(ds.images[0], ds.labels[0].long(), sampling_matrix(params))
        assert (naive == want).float().mean() < (got == want).float().mean()
        checked += 1
    assert checked >= 4


def test_monai_reference_transform_runs():
    from sikd_utils.data.slices import monai_reference_transform

    case = image_case(h=30, w=20, channels=3)
    out = monai_reference_transform(32, (30, 20))({"image": case.image, "label": case.label[None]})
    assert tuple(out["image"].shape) == (3, 32, 32) and tuple(out["label"].shape) == (1, 32, 32)


# ---------------------------------------------------------------------------------------- determinism


def items_equal(a, b):
    return torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_same_seed_epoch_index_gives_identical_item():
    cases = [volume_case(case_id=f"v{i}") for i in range(3)]
    a = SliceDataset(cases, 32, augment=True, seed=7)
    b = SliceDataset(cases, 32, augment=True, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    assert all(items_equal(a[i], b[i]) for i in range(len(a)))
    assert all(items_equal(a[i], a.get_item(i, 3)) for i in range(len(a)))


def test_different_epoch_or_seed_changes_items():
    cases = [volume_case(case_id=f"v{i}") for i in range(3)]
    ds = SliceDataset(cases, 32, augment=True, seed=7)
    other = SliceDataset(cases, 32, augment=True, seed=8)
    n = len(ds)
    assert sum(not items_equal(ds.get_item(i, 0), ds.get_item(i, 1)) for i in range(n)) >= n // 2
    assert sum(not items_equal(ds.get_item(i, 0), other.get_item(i, 0)) for i in range(n)) >= n // 2


def test_independent_of_access_order():
    ds = SliceDataset([volume_case(case_id=f"v{i}") for i in range(3)], 32, augment=True, seed=1)
    ds.set_epoch(2)
    forward = [ds[i] for i in range(len(ds))]
    order = np.random.default_rng(0).permutation(len(ds))
    shuffled = {int(i): ds[int(i)] for i in order}
    for _ in range(3):  # repeated access does not advance any random state
        ds[0]
    assert all(items_equal(forward[i], shuffled[i]) for i in range(len(ds)))
    assert items_equal(forward[0], ds[0])


def test_dataloader_workers_follow_set_epoch():
    """Persistent forked workers must see set_epoch (the epoch lives in shared memory)."""
    ds = SliceDataset([volume_case(case_id=f"v{i}") for i in range(2)], 24, augment=True, seed=5)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=2, num_workers=2, persistent_workers=True, multiprocessing_context="fork"
    )
    for epoch in (0, 1, 4):
        ds.set_epoch(epoch)
        images = torch.cat([batch["image"] for batch in loader])
        want = torch.stack([ds.get_item(i, epoch)["image"] for i in range(len(ds))])
        assert torch.equal(images, want), epoch


# --------------------------------------------------------------------------------------------- errors


def test_errors():
    with pytest.raises(ValueError, match="channel"):
        SliceDataset([image_case(channels=1), image_case(channels=3, case_id="rgb")], 16)
    empty = Case(np.zeros((1, 8, 8), np.float32), np.zeros((8, 8), np.int64), (1.0, 1.0), "e")
    with pytest.raises(ValueError, match="foreground"):
        SliceDataset([empty], 16)
    with pytest.raises(ValueError, match="image_size"):
        SliceDataset([image_case()], 0)
    with pytest.raises(ValueError):
        SliceDataset([], 16)
    ds = SliceDataset([image_case()], 16)
    with pytest.raises(IndexError):
        ds[1]
    with pytest.raises(ValueError):
        ds.set_epoch(-1)
    assert "1 slices from 1 cases" in repr(ds)


# ---------------------------------------------------------------------------------------------- batches


def _mixed_dataset(augment=True):
    """Raw sizes differ (non-square and square) so the conjugated rotation is exercised too."""
    cases = [volume_case(h=30, w=26, case_id="v"), image_case(h=40, w=36, case_id="a"),
             image_case(h=32, w=32, case_id="b", seed=3)]
    return SliceDataset(cases, 24, augment=augment, seed=5)


@pytest.mark.parametrize("epoch", [0, 3])
def test_batch_equals_stacked_items_bit_for_bit_on_cpu(epoch):
    ds = _mixed_dataset()
    order = torch.tensor([4, 0, 2, 1, 3])
    images, labels = ds.batch(order, epoch)
    items = [ds.get_item(int(i), epoch) for i in order]
    moved = sum(not ds.augmentation(int(i), epoch).is_identity for i in order)
    assert 0 < moved < len(order)  # both paths (resampled and copied) are exercised
    assert torch.equal(images, torch.stack([it["image"] for it in items]))
    assert torch.equal(labels, torch.stack([it["label"] for it in items]))
    assert labels.dtype == torch.int64 and images.dtype == torch.float32


def test_batch_without_augmentation_and_index_errors():
    ds = _mixed_dataset(augment=False)
    images, labels = ds.batch([-1, 0])
    assert torch.equal(images[0], ds.images[-1]) and torch.equal(labels[1], ds.labels[0].long())
    images[0] += 1  # a copy: the stored slices are untouched
    assert not torch.equal(images[0], ds.images[-1])
    with pytest.raises(IndexError, match=r"indices must lie in \[-5, 5\)"):
        ds.batch([0, 5])


def test_batch_device_copy_is_not_pickled():
    import pickle

    ds = _mixed_dataset()
    ds._device_copies = {"meta": "stand-in for a GPU copy"}
    assert "_device_copies" not in pickle.loads(pickle.dumps(ds)).__dict__
