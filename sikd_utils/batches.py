"""What one epoch feeds a network: a dataset turned into device batches in the epoch's order (on a GPU,
augmented there as whole batches), each rank's share under DDP, and the validation Dice that picks the best
epoch. Split from :mod:`sikd_utils.train`, which runs the loop over them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch.utils.data import DataLoader, Dataset

from . import distributed
from .distill import teacher_input_function
from .runtime import autocast, resolve_device, resolve_precision

__all__ = ["validation_dice"]

if TYPE_CHECKING:
    from .models import UNet
    from .train import TrainConfig


def _batch(batch, device: torch.device, channels_last: bool,
           check_classes: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, dict):
        images, labels = batch["image"], batch["label"]
    else:
        images, labels = batch[0], batch[1]
    if check_classes is not None:  # on the host, before the copy: the compiled step checks nothing itself
        _check_labels(labels, check_classes, "train_data batch")
    images = images.to(device, non_blocking=True).float()
    labels = labels.to(device, non_blocking=True).long()
    if labels.ndim == images.ndim:
        labels = labels[:, 0]
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, labels


@torch.no_grad()
def validation_dice(
    model: UNet,
    data: Dataset,
    num_classes: int | None = None,
    mean_images: bool = False,
    batch_size: int = 32,
    device: str | torch.device = "auto",
    precision: str = "auto",
    teacher_input: str | None = None,
    across_ranks: bool = False,
) -> float:
    """Mean foreground Dice over a validation set of 2D slices (model selection only).

    Intersections and sizes are pooled over all slices per class (classes absent everywhere are
    skipped), then averaged over classes. The published per-case metrics live in ``metrics``.
    ``mean_images=True`` feeds class-wise mean images, as the teacher is validated; ``teacher_input``
    names any input of TEACHER_INPUTS instead (a label_onehot teacher is validated on one-hot labels).
    ``precision`` as in :class:`~sikd_utils.train.TrainConfig`. ``across_ranks=True`` (data-parallel training): each rank
    scores a contiguous share of the slices and the pooled counts are summed over ranks, so every rank
    gets the Dice of the whole set in 1/N of the time.
    """
    if mean_images and teacher_input not in (None, "mean_image"):
        raise ValueError(f"mean_images=True contradicts teacher_input={teacher_input!r}; pass one of them")
    transform = teacher_input_function("mean_image" if mean_images else teacher_input) \
        if (mean_images or teacher_input) else None
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    num_classes = num_classes or model.num_classes
    was_training = model.training
    model.eval()
    inter = torch.zeros(num_classes, dtype=torch.float64, device=device)
    total = torch.zeros(num_classes, dtype=torch.float64, device=device)
    order = torch.arange(len(data))
    if across_ranks:
        order = distributed.rank_share(order, *distributed.world())
    if callable(getattr(data, "batch", None)):  # SliceDataset: slices straight from its stored tensors
        batches = (data.batch(order[i:i + batch_size], device=device) for i in range(0, len(order), batch_size))
    else:
        subset = data if len(order) == len(data) else torch.utils.data.Subset(data, order.tolist())
        batches = (_batch(b, device, channels_last=False) for b in DataLoader(subset, batch_size=batch_size))
    try:
        for images, labels in batches:
            if transform is not None:
                images = transform(images, labels, num_classes)
            with autocast(device, precision):
                logits, _ = model(images)
            pred = logits.argmax(1)
            for k in range(1, num_classes):
                p, t = pred == k, labels == k
                inter[k] += (p & t).sum()
                total[k] += p.sum() + t.sum()
    finally:
        model.train(was_training)
    if across_ranks:
        distributed.all_reduce(inter)
        distributed.all_reduce(total)
    inter, total = inter.cpu(), total.cpu()
    present = total[1:] > 0
    if not present.any():
        return float("nan")
    return float((2 * inter[1:][present] / total[1:][present]).mean())


def _use_batched_augmentation(config: TrainConfig, data, cuda: bool) -> bool:
    """Whether this run augments whole batches on its device (see ``TrainConfig.batched_augmentation``)."""
    able = callable(getattr(data, "batch", None))
    if config.batched_augmentation and not able:
        raise ValueError(f"batched_augmentation=True needs a dataset with a batch(indices, epoch, device) "
                         f"method (SliceDataset); got {type(data).__name__}")
    return able if config.batched_augmentation is None and cuda else bool(config.batched_augmentation)


def _epoch_batches(data, config: TrainConfig, epoch: int, generator: torch.Generator, device: torch.device,
                   channels_last: bool, batched: bool, check_classes: int | None = None):
    """The epoch's (images, labels) batches on ``device``. The batched path takes its indices from a
    shuffling DataLoader over ``range(len(data))`` with the same generator, so both paths see the same
    items in the same batches (whatever the DataLoader draws from the generator, in whatever order).
    ``check_classes``: check every batch's labels lie in [0, check_classes) (for the compiled step),
    except those of a dataset whose stored labels were all checked before training."""
    if not batched:
        loader = DataLoader(data, batch_size=config.batch_size, shuffle=True, generator=generator,
                            num_workers=config.num_workers, pin_memory=device.type == "cuda",
                            persistent_workers=False)
        for batch in loader:
            yield _batch(batch, device, channels_last, check_classes)
        return
    if isinstance(getattr(data, "labels", None), torch.Tensor):  # SliceDataset: checked by _check_data
        check_classes = None
    for index in DataLoader(range(len(data)), batch_size=config.batch_size, shuffle=True, generator=generator):
        images, labels = data.batch(index, epoch, device)
        if check_classes is not None:
            _check_labels(labels, check_classes, "train_data batch")
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        yield images, labels


def _rank_batches(data, config: TrainConfig, epoch: int, generator: torch.Generator, device: torch.device,
                  channels_last: bool, batched: bool, rank: int, world_size: int):
    """This rank's share of each of the epoch's global batches, as (images, labels, global batch size).

    The global batches are one process's (the same shuffling DataLoader over ``range(len(data))`` and the
    same generator as :func:`_epoch_batches`); each is cut into contiguous shares
    (:func:`sikd_utils.distributed.rank_share`), so a step's shares together are one process's batch.
    A share can be empty (a last batch with fewer items than ranks): it comes as an empty batch.
    """
    order = DataLoader(range(len(data)), batch_size=config.batch_size, shuffle=True, generator=generator)
    shares = [(distributed.rank_share(index, rank, world_size), len(index)) for index in order]
    if batched:
        for share, global_batch in shares:
            images, labels = data.batch(share, epoch, device)
            if channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            yield images, labels, global_batch
        return
    # items augmented per item in DataLoader workers, as in one process; empty shares skip the loader
    loaded = iter(DataLoader(data, batch_sampler=[share.tolist() for share, _ in shares if len(share)],
                             num_workers=config.num_workers, pin_memory=device.type == "cuda"))
    for share, global_batch in shares:
        batch = _batch(next(loaded), device, channels_last) if len(share) else _empty_batch(data, device)
        yield (*batch, global_batch)


def _empty_batch(data, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of no items shaped like ``data``'s (for a rank left without a share)."""
    image, label = _first_item(data, "train_data")
    return (torch.zeros((0, *image.shape), dtype=torch.float32, device=device),
            torch.zeros((0, *image.shape[1:]), dtype=torch.int64, device=device))


def _first_item(data, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        item = data[0]
    except Exception as err:
        raise ValueError(f"{name}[0] cannot be read ({type(err).__name__}: {err})") from err
    if isinstance(item, dict):
        if "image" not in item or "label" not in item:
            raise ValueError(f"{name} items must hold 'image' and 'label', got keys {sorted(item)}")
        image, label = item["image"], item["label"]
    elif isinstance(item, (tuple, list)) and len(item) >= 2:
        image, label = item[0], item[1]
    else:
        raise TypeError(f"{name} items must be dicts with 'image' and 'label' or (image, label) pairs, "
                        f"got {type(item).__name__}")
    return torch.as_tensor(image), torch.as_tensor(label)


def _check_labels(label: torch.Tensor, num_classes: int, where: str) -> None:
    if label.dtype.is_floating_point or label.dtype.is_complex or label.dtype == torch.bool:
        raise TypeError(f"{where}: labels must be integer class indices, got dtype {label.dtype}")
    if label.numel() and (int(label.min()) < 0 or int(label.max()) >= num_classes):
        raise ValueError(f"{where}: label values must lie in [0, {num_classes}) for a model with "
                         f"num_classes={num_classes}, found [{int(label.min())}, {int(label.max())}]")
