"""2D training slices from Cases, with the official SIKD augmentation — fast, and resumable bit for bit.

The models are 2D U-Nets, so every Case (2D image or 3D volume) is cut into slices along its last axis,
resized to the training size and, for training, augmented as the official code does: a random
translation of up to ±12.5 % of the size (p = 0.5), then a random rotation in ±180° (p = 0.5), both in
the raw slice's frame and followed by the resize, image and label moved together (image bilinear,
label nearest, zeros outside the field of view).

Two design decisions matter for the rest of the package:

* **Precompute, then one fused resample.** The resize to the training size is the same for every epoch,
  so it is done once, for all slices together, when the dataset is built. The two random steps are then
  fused into a single affine resample of the resized slice (one ``grid_sample`` per item), its matrix
  conjugated by the resize so the geometry is the official translate → rotate → resize
  (:func:`sampling_matrix`). The equivalent per-item MONAI pipeline (``RandAffined`` → ``RandRotated``
  → ``Resized`` on the raw slice; :func:`monai_reference_transform`) gives the same geometry — the tests
  check our matrix against MONAI's ``Affined`` and against that pipeline — but costs several ms per
  item on a CPU (MetaTensor bookkeeping, full-resolution resampling) against under one ms here, and
  interpolates the image twice.
* **Augmentation is a pure function of (seed, epoch, index).** Every item draws its parameters from a
  fresh generator seeded by that triple, so results depend neither on DataLoader workers nor on the order
  of access nor on where an interrupted run was resumed. The epoch lives in shared memory, so
  :meth:`SliceDataset.set_epoch` reaches workers too, persistent ones included.

``resize_images``/``resize_labels``/``case_slices`` are shared with :mod:`sikd_utils.inference`, so test
slices are resized exactly as training slices are. This module does not import MONAI (5 s); only
:func:`monai_reference_transform` does, when called.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from .case import Case

__all__ = [
    "SliceDataset",
    "AugmentParams",
    "case_slices",
    "resize_images",
    "resize_labels",
    "draw_augmentation",
    "sampling_matrix",
    "apply_affine",
    "affine_batch",
    "monai_reference_transform",
    "TRANSLATE_FRACTION",
    "MAX_ROTATION",
    "AUGMENT_PROB",
]

TRANSLATE_FRACTION = 0.125  # official: RandomAffine(0, translate=(0.125, 0.125)), p = 0.5
MAX_ROTATION = math.pi  # official: RandomRotate((-180, 180)), p = 0.5
AUGMENT_PROB = 0.5


# --------------------------------------------------------------------------------------------------
# Slicing and resizing (shared with inference)
# --------------------------------------------------------------------------------------------------


def as_size(image_size: int | Sequence[int]) -> tuple[int, int]:
    """``image_size`` as (height, width): an int means a square."""
    if isinstance(image_size, (int, np.integer)) and not isinstance(image_size, bool):
        size = (int(image_size), int(image_size))
    else:
        try:
            size = tuple(operator.index(s) for s in image_size)
        except TypeError:
            size = ()
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"image_size must be a positive int or a (height, width) pair, got {image_size!r}")
    return size


def case_slices(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """The 2D slices of ``case`` along its last axis: images (N, C, H, W) float32, labels (N, H, W).

    A 2D case is one slice (N = 1). The tensors share memory with the case's arrays (views).
    """
    image = torch.from_numpy(np.asarray(case.image, dtype=np.float32))
    label = np.asarray(case.label)
    if label.dtype not in (np.uint8, np.int16, np.int32, np.int64):  # dtypes torch handles fully
        label = label.astype(np.int64)
    label = torch.from_numpy(label)
    if label.ndim == 2:
        return image.unsqueeze(0), label.unsqueeze(0)
    return image.permute(3, 0, 1, 2), label.permute(2, 0, 1)


def resize_images(images: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Resize a batch (N, C, H, W) to ``size`` — bilinear, pixel centres aligned, anti-aliased.

    The one image resize of the package: training slices, test slices and the logits on their way back
    to the case's resolution all go through it. ``antialias=True`` matches the official code's PIL
    bilinear resize when shrinking (e.g. 512 px fundus images to 256) and changes nothing when
    enlarging. Same size in and out returns the input unchanged (as float32).
    """
    size = as_size(size)
    images = images.float()
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_labels(labels: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """Resize a batch of label maps (N, H, W) to ``size`` by nearest neighbour; dtype is kept.

    ``nearest-exact`` samples at pixel centres like the bilinear image resize (plain ``nearest`` is off
    by half a pixel), so label and image stay aligned; no label value is invented.
    """
    size = as_size(size)
    if tuple(labels.shape[-2:]) == size:
        return labels
    out = F.interpolate(labels[:, None].float(), size=size, mode="nearest-exact")
    return out[:, 0].round().to(labels.dtype)


# --------------------------------------------------------------------------------------------------
# The augmentation: parameters, matrix, resample
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AugmentParams:
    """One draw of the official augmentation, in MONAI's conventions.

    ``shift`` is MONAI's ``translate_params`` in pixels of the resized slice, (axis 0, axis 1);
    ``angle`` is MONAI's ``Rotate`` angle in radians. Both are zero when their step was not drawn
    (p = 0.5 each, independently).
    """

    shift: tuple[float, float] = (0.0, 0.0)
    angle: float = 0.0

    @property
    def is_identity(self) -> bool:
        return self.angle == 0.0 and self.shift == (0.0, 0.0)


def draw_augmentation(seed: int, epoch: int, index: int, size: int | Sequence[int]) -> AugmentParams:
    """The augmentation of item ``index`` at ``epoch``: a pure function of (seed, epoch, index).

    Five uniforms are always drawn, in a fixed order, from a generator seeded by the triple, so one
    parameter never shifts the stream of another.
    """
    h, w = as_size(size)
    u = np.random.default_rng((seed, epoch, index)).random(5)
    shift = (0.0, 0.0)
    if u[0] < AUGMENT_PROB:
        shift = (float((2 * u[1] - 1) * TRANSLATE_FRACTION * h), float((2 * u[2] - 1) * TRANSLATE_FRACTION * w))
    angle = float((2 * u[4] - 1) * MAX_ROTATION) if u[3] < AUGMENT_PROB else 0.0
    return AugmentParams(shift=shift, angle=angle)


def sampling_matrix(params: AugmentParams, scale: Sequence[float] = (1.0, 1.0)) -> np.ndarray:
    """3×3 matrix mapping output to input pixel coordinates (centred, (axis 0, axis 1) order).

    This is the ``affine`` MONAI's ``Affined`` would take. Translate-then-rotate, as the official code
    orders them, composes to ``input = R · output + shift`` (MONAI ``Affined(translate)`` followed by
    ``Rotated(angle)`` gives exactly this).

    ``scale`` is (resized / raw) per axis for the slice being augmented. The official code translates
    and rotates the *raw* slice and resizes last; we resize first (once), so the rotation is conjugated
    by that scaling, ``D R D⁻¹``: a non-square raw slice squashed to a square is then rotated as the
    anatomy it shows, not as the squashed picture, and the squash stays along the image axes as at test
    time. (The translation, a fraction of the size, is the same in either frame.) With a square raw
    slice ``D R D⁻¹ = R``.
    """
    c, s = math.cos(params.angle), math.sin(params.angle)
    ratio = float(scale[0]) / float(scale[1])
    return np.array([[c, -s * ratio, params.shift[0]], [s / ratio, c, params.shift[1]], [0.0, 0.0, 1.0]])


def _grid_theta(matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``matrix`` (3, 3), or a stack (B, 3, 3), in the normalised (x, y) coordinates of ``F.grid_sample``
    (align_corners=False): its top two rows, (2, 3) or (B, 2, 3)."""
    h, w = size
    # centred pixel coords (axis0, axis1) = D · normalised (x, y): x runs along axis 1 (width)
    to_pixels = np.array([[0.0, h / 2, 0.0], [w / 2, 0.0, 0.0], [0.0, 0.0, 1.0]])
    return (np.linalg.inv(to_pixels) @ matrix @ to_pixels)[..., :2, :]


@functools.lru_cache(maxsize=8)
def _pixel_centres(size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised pixel-centre coordinates along x (width) and y (height), align_corners=False."""
    h, w = size
    xs = (torch.arange(w, dtype=torch.float32) * 2 + 1) / w - 1
    ys = (torch.arange(h, dtype=torch.float32) * 2 + 1) / h - 1
    return xs, ys[:, None]


def _sampling_grid(matrix: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """The (1, H, W, 2) grid for ``F.grid_sample`` — what ``F.affine_grid`` returns, built by broadcasting
    because ``affine_grid`` costs ~1 ms for one 128×128 grid on a CPU, more than the resample itself."""
    (a, b, c), (d, e, f) = _grid_theta(matrix, size).tolist()
    xs, ys = _pixel_centres(size)
    grid = torch.empty((1, *size, 2), dtype=torch.float32)
    torch.add(ys * b + c, xs * a, out=grid[0, ..., 0])  # x = a·x' + b·y' + c
    torch.add(ys * e + f, xs * d, out=grid[0, ..., 1])  # y = d·x' + e·y' + f
    return grid


def apply_affine(
    image: torch.Tensor, label: torch.Tensor | None, matrix: np.ndarray
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Resample image (C, H, W) bilinear and label (H, W) nearest with one grid; zeros outside.

    Zero padding for both. For the label, 0 is background — the only honest value for "outside".
    For the image, zero rather than border: images are normalised to [0, 1] with 0 the darkest value,
    which is what lies outside the field of view in all five modalities (air in MRI/CT, the black
    surround of fundus and endoscopy frames, outside the ultrasound fan), and it is what the official
    code fills with. Border replication would smear edge rows into long streaks under 180° rotations,
    texture a model could learn and the class-wise mean image would average in.
    """
    grid = _sampling_grid(matrix, tuple(image.shape[-2:]))
    out = F.grid_sample(image[None].float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)[0]
    if label is None:
        return out, None
    # nearest sampling copies stored integers (exact in float32 below 2**24), so the cast is exact
    lab = F.grid_sample(label[None, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out, lab[0, 0].to(label.dtype)


def _grid_thetas(shift: np.ndarray, angle: np.ndarray, scale: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """:func:`sampling_matrix` then :func:`_grid_theta` for a whole batch at once: (B, 2, 3) float64.

    The matrix is built here vectorised rather than by calling :func:`sampling_matrix` per item, which
    stays scalar because the per-item DataLoader path is hot (numpy on one-element arrays costs 4× more);
    ``tests/test_slices.py`` checks the two paths agree bit for bit.
    """
    c, s = np.cos(angle), np.sin(angle)
    ratio = scale[:, 0] / scale[:, 1]
    matrix = np.zeros((len(angle), 3, 3))
    matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 0, 2] = c, -s * ratio, shift[:, 0]
    matrix[:, 1, 0], matrix[:, 1, 1], matrix[:, 1, 2] = s / ratio, c, shift[:, 1]
    matrix[:, 2, 2] = 1.0
    return _grid_theta(matrix, size)


def affine_batch(
    images: torch.Tensor, labels: torch.Tensor, thetas: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`apply_affine` for a batch in one resample: images (B, C, H, W), labels (B, H, W), thetas
    (B, 2, 3) in ``grid_sample``'s normalised coordinates, all on one device.

    The grid is built by the same broadcasting sum as the per-item path (not ``affine_grid``), so on a
    CPU the two agree bit for bit; on a GPU they differ by float rounding only.
    """
    size = tuple(images.shape[-2:])
    xs, ys = (t.to(images.device) for t in _pixel_centres(size))
    theta = thetas.to(device=images.device, dtype=torch.float32)
    a, b, c = (theta[:, 0, k, None, None] for k in range(3))
    d, e, f = (theta[:, 1, k, None, None] for k in range(3))
    grid = torch.stack((ys * b + c + xs * a, ys * e + f + xs * d), dim=-1)
    out = F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    lab = F.grid_sample(labels[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return out, lab[:, 0].to(labels.dtype)


def monai_reference_transform(image_size: int | Sequence[int], raw_size: int | Sequence[int], augment: bool = True):
    """The naive per-item MONAI pipeline that :class:`SliceDataset` is equivalent to (dict-based).

    On a raw slice of ``raw_size`` (the translation range is in raw pixels, so it is built per size):
    ``RandAffined`` translate ±12.5 % (p 0.5) → ``RandRotated`` ±180° (p 0.5) → ``Resized`` (image
    bilinear, label nearest-exact), zeros padding — the official order. Kept as the named reference for
    the benchmark and the tests; it costs several ms per item and interpolates the image twice.
    (MONAI's anti-aliasing is a Gaussian pre-filter, ours torch's PIL-like one: the two differ slightly
    when shrinking.)
    """
    from monai.transforms import Compose, RandAffined, RandRotated, Resized

    h, w = as_size(image_size)
    raw_h, raw_w = as_size(raw_size)
    keys = ("image", "label")
    steps = []
    if augment:
        steps += [
            RandAffined(
                keys,
                prob=AUGMENT_PROB,
                translate_range=(TRANSLATE_FRACTION * raw_h, TRANSLATE_FRACTION * raw_w),
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
            RandRotated(
                keys,
                range_x=MAX_ROTATION,
                prob=AUGMENT_PROB,
                keep_size=True,
                mode=("bilinear", "nearest"),
                padding_mode="zeros",
            ),
        ]
    steps.append(Resized(keys, spatial_size=(h, w), mode=("bilinear", "nearest-exact"), anti_aliasing=(True, False)))
    return Compose(steps)


# --------------------------------------------------------------------------------------------------
# The dataset
# --------------------------------------------------------------------------------------------------


_RESIZE_CHUNK = 64  # slices resized at once while building: bounds the memory a large CT volume needs


def _kept_slices(label: np.ndarray, foreground_only: bool) -> np.ndarray:
    """Indices along the last axis of the slices to keep (a 2D label is one slice, index 0)."""
    label = np.asarray(label)
    depth = label.shape[-1] if label.ndim == 3 else 1
    if not foreground_only:
        return np.arange(depth)
    return np.flatnonzero(label.reshape(-1, depth).any(axis=0))


def _label_dtype(max_label: int) -> torch.dtype:
    """Smallest integer dtype for the stored labels (items are int64; storage need not be)."""
    if max_label <= 255:
        return torch.uint8
    if max_label <= 32767:
        return torch.int16
    return torch.int32


class SliceDataset(Dataset):
    """2D slices of Cases, resized to ``image_size`` (and augmented), as a torch ``Dataset``.

    Items are dicts ``{"image": float32 (C, S, S), "label": int64 (S, S), "case_id": str, "slice": int}``.
    3D cases are cut along their last axis; a 2D case is one slice (``slice`` 0). With
    ``foreground_only`` (the official choice for training and validation) only slices whose label has
    any foreground are kept. All slices are resized once, here, and held in memory as two tensors
    (``images``, ``labels``); ``augment=True`` then applies the official translate/rotate on access.

    Item ``i`` at epoch ``e`` is a pure function of (``seed``, ``e``, ``i``): call :meth:`set_epoch`
    before each epoch (before iterating the DataLoader) and an interrupted run resumed at an epoch
    boundary sees exactly the same data, whatever the number of workers.
    """

    def __init__(
        self,
        cases: Iterable[Case],
        image_size: int | Sequence[int],
        augment: bool = False,
        foreground_only: bool = True,
        seed: int = 0,
    ):
        from ..checks import check_int

        if isinstance(cases, (Case, str, bytes)) or not isinstance(cases, Iterable):
            raise TypeError(f"SliceDataset needs an iterable of Case objects, got {type(cases).__name__}")
        cases = list(cases)
        if not cases:
            raise ValueError("SliceDataset needs at least one case")
        wrong = [(i, type(c).__name__) for i, c in enumerate(cases) if not isinstance(c, Case)]
        if wrong:
            raise TypeError(f"SliceDataset needs Case objects; item {wrong[0][0]} is a {wrong[0][1]}")
        self.image_size = as_size(image_size)
        self.augment = bool(augment)
        self.foreground_only = bool(foreground_only)
        self.seed = check_int("SliceDataset seed", seed, 0)
        channels = {case.image.shape[0] for case in cases}
        if len(channels) > 1:
            counts = {c: [case.case_id for case in cases if case.image.shape[0] == c][:3] for c in channels}
            raise ValueError(f"cases have different channel counts (channels: example case ids): {counts}")
        self.in_channels = channels.pop()
        label_dtype = _label_dtype(max(int(case.label.max()) if case.label.size else 0 for case in cases))

        # Pass 1: which slices to keep (judged on the original labels, before any resize).
        kept = [(case, _kept_slices(case.label, self.foreground_only)) for case in cases]
        index = [(case.case_id, int(z)) for case, keep in kept for z in keep]
        # raw in-plane size of every item: the augmentation rotates in the raw frame (sampling_matrix)
        self.raw_sizes = np.array([case.label.shape[:2] for case, keep in kept for _ in keep], dtype=np.int64)
        if not index:
            raise ValueError(
                f"no slices: none of the {len(cases)} cases has a slice with foreground "
                "(pass foreground_only=False to keep empty slices)"
            )
        # Pass 2: resize them, a chunk at a time, straight into preallocated storage (no final concat).
        h, w = self.image_size
        self.images = torch.empty((len(index), self.in_channels, h, w), dtype=torch.float32)  # resized
        self.labels = torch.empty((len(index), h, w), dtype=label_dtype)  # compact; items are int64
        row = 0
        for case, keep in kept:
            imgs, labs = case_slices(case)
            for start in range(0, len(keep), _RESIZE_CHUNK):
                chunk = torch.from_numpy(keep[start : start + _RESIZE_CHUNK])
                n = len(chunk)
                self.images[row : row + n] = resize_images(imgs[chunk], self.image_size)
                self.labels[row : row + n] = resize_labels(labs[chunk], self.image_size)
                row += n
        self.slice_index: list[tuple[str, int]] = index  # (case_id, slice along the last axis) per item
        self.num_cases = len(cases)
        # Shared memory: DataLoader workers (forked, spawned, persistent) see set_epoch from the parent.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    # -- epoch ---------------------------------------------------------------------------------------
    @property
    def epoch(self) -> int:
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation ``__getitem__`` returns (call before iterating)."""
        epoch = operator.index(epoch)
        if epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch}")
        self._epoch.fill_(epoch)

    # -- items ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.slice_index)

    def __getitem__(self, index: int) -> dict:
        return self.get_item(index, self.epoch)

    def get_item(self, index: int, epoch: int) -> dict:
        """Item ``index`` as it is at ``epoch`` (``__getitem__`` uses the current epoch)."""
        i = operator.index(index)
        n = len(self)
        if not -n <= i < n:
            raise IndexError(f"index {index} out of range for SliceDataset of length {n}")
        i %= n
        image, label = self.images[i], self.labels[i]
        params = self.augmentation(i, epoch) if self.augment else AugmentParams()
        if params.is_identity:
            image, label = image.clone(), label.to(torch.int64)
        else:
            matrix = sampling_matrix(params, scale=self.resize_scale(i))
            image, label = apply_affine(image, label.to(torch.int64), matrix)
        case_id, z = self.slice_index[i]
        return {"image": image, "label": label, "case_id": case_id, "slice": z}

    def batch(
        self, indices: Sequence[int] | torch.Tensor, epoch: int | None = None, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Items ``indices`` at ``epoch`` as one batch on ``device``: images (B, C, H, W) float32, labels
        (B, H, W) int64 — what stacking :meth:`get_item` gives, made in one resample on ``device``.

        Why: per-item resampling on a CPU feeds a GPU at a few hundred slices per second; here the
        stored slices stay on the device (copied once) and the whole batch is augmented there. The
        parameters are the same pure function of (seed, epoch, index), so resuming stays exact; items
        whose draw is the identity are copied, not resampled, exactly as :meth:`get_item` does.
        """
        epoch = self.epoch if epoch is None else operator.index(epoch)
        index = torch.as_tensor(indices, dtype=torch.int64).reshape(-1)
        n = len(self)
        if index.numel() and (int(index.min()) < -n or int(index.max()) >= n):
            raise IndexError(f"indices must lie in [-{n}, {n}) for SliceDataset of length {n}, "
                             f"got [{int(index.min())}, {int(index.max())}]")
        index = index % n
        images, labels = self._stored_on(torch.device(device))
        dev_index = index.to(images.device)
        images, labels = images[dev_index], labels[dev_index].to(torch.int64)
        if not self.augment:
            return images, labels
        draws = [self.augmentation(i, epoch) for i in index.tolist()]
        moved = np.array([not p.is_identity for p in draws])
        if not moved.any():
            return images, labels
        shift = np.array([p.shift for p in draws], dtype=np.float64)
        angle = np.array([p.angle for p in draws], dtype=np.float64)
        scale = np.array([self.resize_scale(i) for i in index.tolist()], dtype=np.float64)
        thetas = torch.from_numpy(_grid_thetas(shift[moved], angle[moved], scale[moved], self.image_size))
        rows = torch.from_numpy(np.flatnonzero(moved)).to(images.device)
        warped, warped_labels = affine_batch(images[rows], labels[rows], thetas)
        images[rows], labels[rows] = warped, warped_labels
        return images, labels

    def __getstate__(self) -> dict:
        # device copies stay with their process (DataLoader workers, pickling)
        return {k: v for k, v in self.__dict__.items() if k != "_device_copies"}

    def _stored_on(self, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """The stored slices on ``device``, copied there once and kept (a GPU copy of a 2,000-slice
        128 px set is ~130 MiB)."""
        if device.type == "cpu":
            return self.images, self.labels
        cache = self.__dict__.setdefault("_device_copies", {})
        key = str(device)
        if key not in cache:
            cache[key] = (self.images.to(device), self.labels.to(device))
        return cache[key]

    def fingerprint(self) -> str:
        """Digest of what training sees: the stored slices and the augmentation settings.

        Recorded in checkpoints by :func:`sikd_utils.train.train`, so a run is never resumed (or a
        finished one returned) on other data. Cached: the tensors do not change after construction.
        """
        if getattr(self, "_fingerprint", None) is None:
            from .identity import digest_arrays

            settings = (self.image_size, self.augment, self.foreground_only, self.seed, self.slice_index)
            self._fingerprint = digest_arrays([self.images.numpy(), self.labels.numpy()], repr(settings))
        return self._fingerprint

    def resize_scale(self, index: int) -> tuple[float, float]:
        """(resized / raw) size per axis of item ``index``: the precomputed resize's scaling."""
        raw_h, raw_w = self.raw_sizes[index]
        return self.image_size[0] / float(raw_h), self.image_size[1] / float(raw_w)

    def augmentation(self, index: int, epoch: int | None = None) -> AugmentParams:
        """The augmentation parameters of item ``index`` at ``epoch`` (default: the current one)."""
        epoch = self.epoch if epoch is None else operator.index(epoch)
        return draw_augmentation(self.seed, epoch, operator.index(index) % len(self), self.image_size)

    def __repr__(self) -> str:
        mib = (self.images.nbytes + self.labels.nbytes) / 2**20
        return (
            f"SliceDataset({len(self)} slices from {self.num_cases} cases, image_size={self.image_size}, "
            f"in_channels={self.in_channels}, augment={self.augment}, foreground_only={self.foreground_only}, "
            f"seed={self.seed}, epoch={self.epoch}, {mib:.1f} MiB)"
        )
