"""Several networks of one architecture trained in one process as one batched computation.

Why: at the evidence scale (128 px, base 32) one network's step is many small kernels that leave most of
a GPU idle. ``torch.func.stack_module_state`` stacks N networks' weights along a new first dimension and
``torch.vmap`` over ``torch.func.functional_call`` runs them together: vmap turns the N networks'
convolutions into grouped convolutions and their batch norms into one call each, so N seeds (or roles)
cost about the kernel launches of one.

Each packed network is trained as :func:`sikd_utils.train.train` trains it alone, so the two agree up to
float rounding (``tests/test_packed.py``):

* its own initial weights (stacked, not shared) and its own data order — the same ``_epoch_batches``
  drawn with the generator of its own seed and epoch;
* its own batch-norm statistics: vmap normalises each network over its own batch and updates its own slice
  of the stacked running statistics (no ``replace_all_batch_norm_modules_`` is needed: the buffers are
  stacked and batched like the weights);
* its own loss — the very ``sikd_loss`` / cross-entropy of ``sikd_step`` / ``_supervised_step`` on its
  slice of the outputs; the losses are summed before one backward pass, and since network i's weights reach
  only loss i, each network receives exactly its own gradient;
* Adam, which is elementwise, over the stacked weights, with the learning rate of ``learning_rate``.

What must be shared, and is checked: the architecture; the schedule (epochs, batch size, learning rate,
milestones, decay, weight decay), since one optimiser with one rate serves the stack; the device and
precision. fp16 is refused: one loss scaler would skip every network's step when one network overflows.
Not here, by design: checkpoints and resuming, DistributedDataParallel and torch.compile (the step takes
an ``autocast`` like the ordinary step, so compilation can wrap it from outside).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import time
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state
from torch.utils.data import DataLoader

from . import distributed
from .backbones import is_segmenter
from .averaging import class_wise_mean
from .distill import SIKDLoss, sikd_loss, teacher_input_function
from .models import DEPTH, FEATURE_LAYERS, architecture_of
from .runtime import autocast, resolve_device, resolve_precision, set_seed
from .batches import _batch, _check_labels, _epoch_batches, _use_batched_augmentation
from .steps import _set_lr
from .train import TrainResult
from .train_checks import _check_teacher, _check_train_inputs, _prepare_teacher
from .train_config import DISTILLED_ROLES, SKIP_FREE_ROLES, TrainConfig, learning_rate

__all__ = ["PackedNetworks", "packed_step", "packed_validation_dice", "train_packed", "train_roles_packed",
           "SHARED_SETTINGS"]

#: TrainConfig fields every network of a pack must share (one optimiser, one data loader shape, one device)
SHARED_SETTINGS = ("epochs", "batch_size", "lr", "weight_decay", "milestones", "gamma", "device", "precision",
                   "distill_method", "distill_layer", "kd_temperature", "fused_optimizer", "batched_augmentation",
                   "num_workers")


def _skip_input_check(*args) -> None:
    """Stands in for UNet._check_input inside vmap, where its host-side reads cannot run; PackedNetworks
    checks the whole stack once, outside, instead."""


class PackedNetworks:
    """N U-Nets of one architecture: their weights and buffers stacked along dim 0, run together by vmap.

    ``trainable=False`` packs frozen networks (teachers): no gradients, always evaluated in eval mode.
    """

    def __init__(self, models: Sequence[torch.nn.Module], trainable: bool = True):
        models = list(models)
        if not models:
            raise ValueError("PackedNetworks needs at least one network")
        for i, model in enumerate(models):
            if not is_segmenter(model):
                raise TypeError(f"network {i} is a {type(model).__name__}, not a sikd_utils network")
            if model.backbone != "unet":
                raise ValueError(f"network {i} has backbone {model.backbone!r}; only the U-Net ('unet') is packed "
                                 "(its forward is checked to run under vmap)")
        first = architecture_of(models[0])
        shapes = {k: (v.shape, v.dtype) for k, v in models[0].state_dict().items()}
        for i, model in enumerate(models[1:], 1):
            if architecture_of(model) != first:
                raise ValueError(f"networks of different architectures cannot be packed: network 0 is {first}, "
                                 f"network {i} is {architecture_of(model)}")
            theirs = {k: (v.shape, v.dtype) for k, v in model.state_dict().items()}
            if theirs != shapes:
                raise ValueError(f"network {i}'s weights are not shaped like network 0's, though both are {first}")
        devices = {p.device for m in models for p in m.state_dict().values()}
        if len(devices) > 1:
            raise ValueError(f"the networks to pack lie on several devices {sorted(map(str, devices))}; move them "
                             "to one first")
        self.architecture = first
        self.count = len(models)
        self.trainable = bool(trainable)
        params, buffers = stack_module_state(models)
        self.params = {k: v.detach().requires_grad_(self.trainable) for k, v in params.items()}
        self.buffers = buffers
        self._template = copy.deepcopy(models[0]).to("meta")  # holds the structure only; weights come in
        self._template._check_input = _skip_input_check
        self._template.train(self.trainable)

    def __len__(self) -> int:
        return self.count

    @property
    def in_channels(self) -> int:
        return self.architecture["in_channels"]

    @property
    def num_classes(self) -> int:
        return self.architecture["num_classes"]

    @property
    def training(self) -> bool:
        return self._template.training

    def train(self, mode: bool = True) -> "PackedNetworks":
        if mode and not self.trainable:
            raise ValueError("frozen packed networks (trainable=False) run in eval mode only")
        self._template.train(mode)
        return self

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values())

    def __call__(self, inputs: torch.Tensor, features_at: str = "last_decoder"):
        """``inputs`` (N, B, C, H, W), network i's batch at ``inputs[i]`` → (logits, features), each (N, B, ...)."""
        self._check_inputs(inputs, features_at)

        def one(params, buffers, x):
            return functional_call(self._template, (params, buffers), (x,), {"features_at": features_at})

        return torch.vmap(one, randomness="error")(self.params, self.buffers, inputs)

    def _check_inputs(self, x: torch.Tensor, features_at: str) -> None:
        """UNet._check_input's checks for a whole stack, once (vmap cannot run them per network)."""
        if features_at not in FEATURE_LAYERS:
            raise ValueError(f"features_at must be one of {FEATURE_LAYERS}, got {features_at!r}")
        if not isinstance(x, torch.Tensor) or x.ndim != 5 or x.shape[0] != self.count \
                or x.shape[2] != self.in_channels:
            raise ValueError(f"packed networks expect inputs ({self.count} networks, batch, {self.in_channels}, "
                             f"height, width), got {tuple(getattr(x, 'shape', ()))}")
        if not x.is_floating_point():
            raise TypeError(f"packed networks expect floating-point images, got {x.dtype}")
        if 0 in x.shape:
            raise ValueError(f"packed networks got an empty input of shape {tuple(x.shape)}")
        padded = [-(-s // 2**DEPTH) for s in x.shape[-2:]]
        if self.training and x.shape[1] * padded[0] * padded[1] < 2:
            raise ValueError(f"packed networks in training mode got input {tuple(x.shape)}: each network's "
                             "bottleneck holds one value per channel, which batch norm cannot normalise")
        if x.device.type == "cpu" and not bool(torch.isfinite(x).all()):
            raise ValueError("packed networks' input holds non-finite values (NaN or inf); clean the images first")

    def state_dict(self, index: int) -> dict[str, torch.Tensor]:
        """Network ``index``'s weights and buffers, as its own ``state_dict`` (detached copies)."""
        if not 0 <= index < self.count:
            raise IndexError(f"network index {index} outside [0, {self.count})")
        return {k: v[index].detach().clone() for k, v in {**self.params, **self.buffers}.items()}


def _per_network(images, labels, functions, num_classes):
    """Network i's input: ``functions[i](images[i], labels[i], num_classes)``, or the images where it is None."""
    if all(f is None for f in functions):
        return images
    return torch.stack([x if f is None else f(x, y, num_classes) for x, y, f in zip(images, labels, functions)])


def packed_step(pack: PackedNetworks, optimizer, images, labels, inputs: Sequence[Callable | None],
                teachers: PackedNetworks | None = None, teacher_inputs: Sequence[Callable] = (),
                weights: Sequence[float] = (), autocast=contextlib.nullcontext, method="feature_mse",
                layer="last_decoder", temperature=4.0, check_values=True) -> list[SIKDLoss]:
    """One training step of every packed network on its batch ``images[i]``, ``labels[i]``.

    The first ``len(teachers)`` networks are distilled (sikd_step's loss: network i's teacher is
    ``teachers`` network i and sees ``teacher_inputs[i](images[i], labels[i], ...)``, with weight
    ``weights[i]``); the others take _supervised_step's cross-entropy on ``inputs[i]`` (None: raw images).
    Returns each network's loss parts."""
    distilled = len(teachers) if teachers is not None else 0
    if len(inputs) != len(pack) or len(teacher_inputs) != distilled or len(weights) != distilled:
        raise ValueError(f"packed_step needs one input function per network ({len(pack)}, got {len(inputs)}) and "
                         f"one teacher input and weight per distilled network ({distilled}, got "
                         f"{len(teacher_inputs)} and {len(weights)})")
    if check_values:  # once for the whole stack (one host sync), not once per network
        _check_labels(labels, pack.num_classes, "packed_step labels")
    with autocast():
        if distilled:
            with torch.no_grad():
                seen = _per_network(images[:distilled], labels[:distilled], teacher_inputs, teachers.num_classes)
                teacher_logits, teacher_features = teachers(seen, features_at=layer)
        logits, features = pack(_per_network(images, labels, inputs, pack.num_classes), features_at=layer)
        losses = []
        for i in range(len(pack)):
            if i < distilled:
                losses.append(sikd_loss(logits[i], features[i], teacher_features[i], labels[i], weights[i], method,
                                        teacher_logits[i], temperature, check_values=False))
            else:
                ce = F.cross_entropy(logits[i].float(), labels[i])
                losses.append(SIKDLoss(ce, ce, torch.zeros((), device=images.device)))
    totals = torch.stack([loss.total for loss in losses])
    if check_values and not bool(torch.isfinite(totals).all()):  # check_finite, for all networks in one sync
        bad = [i for i, value in enumerate(totals.tolist()) if not np.isfinite(value)]
        raise FloatingPointError(f"packed network(s) {bad}: the loss became {totals[bad[0]].item()}: check the data "
                                 "for NaN/inf or lower the learning rate")
    optimizer.zero_grad(set_to_none=True)
    totals.sum().backward()  # network i's weights reach loss i only
    optimizer.step()
    return losses


@torch.no_grad()
def packed_validation_dice(pack: PackedNetworks, data, inputs: Sequence[Callable | None], batch_size: int = 32,
                           device: str | torch.device = "auto", precision: str = "auto") -> list[float]:
    """validation_dice of every packed network on the same data (network i fed ``inputs[i]`` of each batch,
    None: the raw images): foreground Dice pooled over slices per class, averaged over present classes."""
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    n, classes = len(pack), pack.num_classes
    inter = torch.zeros(n, classes, dtype=torch.float64, device=device)
    total = torch.zeros(n, classes, dtype=torch.float64, device=device)
    order = torch.arange(len(data))
    if callable(getattr(data, "batch", None)):
        batches = (data.batch(order[i:i + batch_size], device=device) for i in range(0, len(order), batch_size))
    else:
        batches = (_batch(b, device, channels_last=False) for b in DataLoader(data, batch_size=batch_size))
    was_training = pack.training
    pack.train(False)
    try:
        for images, labels in batches:
            stacked = _per_network(images.expand(n, *images.shape), labels.expand(n, *labels.shape), inputs, classes)
            with autocast(device, precision):
                logits, _ = pack(stacked)
            pred = logits.argmax(2)  # (N, B, H, W)
            for k in range(1, classes):
                p, t = pred == k, (labels == k).unsqueeze(0)
                inter[:, k] += (p & t).flatten(1).sum(1)
                total[:, k] += p.flatten(1).sum(1) + t.flatten(1).sum(1)
    finally:
        if was_training:
            pack.train(True)
    inter, total = inter.cpu()[:, 1:], total.cpu()[:, 1:]
    scores = []
    for i in range(n):
        present = total[i] > 0
        scores.append(float((2 * inter[i][present] / total[i][present]).mean()) if present.any() else float("nan"))
    return scores


def _unchecked_input(name: str) -> Callable:
    """What the teacher sees, by name, without class_wise_mean's per-call label check (a host sync per network):
    train_packed's labels are checked once per step (packed_step) or up front (validation data)."""
    function = teacher_input_function(name)
    return functools.partial(class_wise_mean, check_values=False) if function is class_wise_mean else function


def _check_pack(models, configs, teachers, train_data, val_data, data_identity) -> None:
    """Everything train() checks of each network, plus what a pack needs its networks to share."""
    if not isinstance(models, Sequence) or not isinstance(configs, Sequence) or not models:
        raise TypeError("train_packed needs a non-empty list of networks and a list of TrainConfigs")
    if len(configs) != len(models):
        raise ValueError(f"train_packed needs one TrainConfig per network: {len(models)} networks, "
                         f"{len(configs)} configs")
    if teachers is not None and len(teachers) != len(models):
        raise ValueError(f"teachers must hold one entry per network (None for roles that are not distilled): "
                         f"{len(models)} networks, {len(teachers)} teachers")
    for key in SHARED_SETTINGS:
        values = [getattr(c, key) for c in configs]
        if any(v != values[0] for v in values):
            raise ValueError(f"packed networks share one {key}, got {values}; train networks of different {key} "
                             "in different packs")
    for i, (model, config) in enumerate(zip(models, configs)):
        _check_train_inputs(model, train_data, config, val_data, (), True, data_identity)
        if config.compile or config.compile_step != "off":
            raise ValueError(f"network {i}: train_packed compiles nothing (compile=False, compile_step='off'); "
                             "wrap packed_step in torch.compile from outside")
        if config.channels_last:
            raise ValueError(f"network {i}: packed networks run on 5-D stacks, where channels-last does not apply; "
                             "leave channels_last None or False")
        if config.skip_free() != (not model.skip_connections):
            raise ValueError(f"network {i}: role {config.role!r} trains a "
                             f"{'skip-free' if config.skip_free() else 'ordinary'} UNet, got the other kind")
        teacher = teachers[i] if teachers is not None else None
        if config.role in DISTILLED_ROLES:
            _check_teacher(teacher, model, data_identity, config.role, config.effective_teacher_input(),
                           config.teacher_skips)
        elif teacher is not None:
            raise ValueError(f"network {i}: role {config.role!r} has no teacher; pass None in its place")


def train_packed(models: Sequence[torch.nn.Module], train_data, configs: Sequence[TrainConfig], val_data=None,
                 teachers: Sequence | None = None, data_identity: dict | None = None,
                 callbacks: Sequence[Callable[[list[dict]], None]] = ()) -> list[TrainResult]:
    """Train ``models[i]`` as ``train(models[i], train_data, configs[i], val_data, teachers[i])`` would, all
    in one batched computation; returns one TrainResult per network, in order.

    Networks may differ in seed and role (SKIP_FREE roles pack with each other, as do the others) but share
    :data:`SHARED_SETTINGS`. Each result's model holds its best-on-validation weights (the last without
    validation data); every history record's ``seconds`` is the whole pack's epoch. Each callback receives
    the epoch's records, one per network. No checkpoints are written (see the module docstring).
    """
    models, configs = list(models), list(configs)
    _check_pack(models, configs, teachers, train_data, val_data, data_identity)
    if distributed.world()[1] > 1:
        raise ValueError("train_packed runs in one process; under torchrun use train()")
    first = configs[0]
    device = resolve_device(first.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {first.device!r} was asked for but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    precision = resolve_precision(first.precision, device)
    if precision == "fp16":
        raise ValueError("train_packed does not train in fp16: one loss scaler would skip every network's step when "
                         "one network's gradients overflow; use precision 'bf16' or 'fp32'")
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    # distilled networks first, so that teacher j serves network j (packed_step's convention)
    order = sorted(range(len(models)), key=lambda i: configs[i].role not in DISTILLED_ROLES)
    models, configs = [models[i] for i in order], [configs[i] for i in order]
    sees = [c.effective_teacher_input() for c in configs]
    distilled = sum(c.role in DISTILLED_ROLES for c in configs)
    teacher_nets = [_prepare_teacher(teachers[order[i]], models[i], device, False, sees[i], configs[i].teacher_skips)
                    for i in range(distilled)]
    pack = PackedNetworks([m.to(device) for m in models])
    frozen = PackedNetworks(teacher_nets, trainable=False) if distilled else None
    fused = cuda if first.fused_optimizer is None else first.fused_optimizer
    optimizer = torch.optim.Adam(pack.parameters(), lr=first.lr, weight_decay=first.weight_decay,
                                 **({"fused": True} if fused else {}))
    step_inputs = [None if c.role in DISTILLED_ROLES or s is None else _unchecked_input(s)
                   for c, s in zip(configs, sees)]
    val_inputs = [_unchecked_input(s) if c.role in SKIP_FREE_ROLES else None for c, s in zip(configs, sees)]
    step = functools.partial(packed_step, pack, optimizer, inputs=step_inputs, teachers=frozen,
                             teacher_inputs=[_unchecked_input(s) for s in sees[:distilled]],
                             weights=[c.distill_weight for c in configs[:distilled]],
                             autocast=functools.partial(autocast, device, precision), method=first.distill_method,
                             layer=first.distill_layer, temperature=first.kd_temperature)
    batched = _use_batched_augmentation(first, train_data, cuda)
    has_val = val_data is not None and len(val_data) > 0
    seeds = sorted({c.seed for c in configs})
    stream_of = [seeds.index(c.seed) for c in configs]  # networks of one seed see the same batches: drawn once
    histories = [[] for _ in models]
    best = [(float("-inf"), 0, None) for _ in models]
    for epoch in range(first.epochs):
        began = time.perf_counter()
        lr = learning_rate(first, epoch)
        _set_lr(optimizer, lr)
        set_seed(first.seed * 100_003 + epoch)  # as train(); nothing in a step draws from the global generators
        if hasattr(train_data, "set_epoch"):
            train_data.set_epoch(epoch)
        streams = [_epoch_batches(train_data, first, epoch, torch.Generator().manual_seed(seed * 100_003 + epoch),
                                  device, False, batched) for seed in seeds]
        pack.train(True)
        sums = torch.zeros(len(models), 4, dtype=torch.float64, device=device)  # loss, ce, mse, items
        for drawn in zip(*streams):
            images = torch.stack([drawn[s][0] for s in stream_of])
            labels = torch.stack([drawn[s][1] for s in stream_of])
            try:
                losses = step(images, labels)
            except FloatingPointError as err:
                raise FloatingPointError(f"epoch {epoch + 1}: {err}") from None
            parts = torch.stack([torch.stack([loss.total, loss.ce, loss.mse]).detach().double() for loss in losses])
            sums[:, :3] += parts * images.shape[1]
            sums[:, 3] += images.shape[1]
        scores = [float("nan")] * len(models)
        if has_val:
            scores = packed_validation_dice(pack, val_data, val_inputs, first.batch_size, device, precision)
        means = (sums[:, :3] / sums[:, 3:]).tolist()
        seconds = time.perf_counter() - began
        records = []
        for i, (mean, val) in enumerate(zip(means, scores)):
            record = {"epoch": epoch + 1, "lr": lr, **dict(zip(("loss", "ce", "mse"), mean)), "val_dice": val,
                      "seconds": seconds}
            histories[i].append(record)
            records.append(record)
            if (not has_val) or (not np.isnan(val) and val > best[i][0]):
                best[i] = (val, epoch + 1, {k: v.cpu() for k, v in pack.state_dict(i).items()})
        for callback in callbacks:
            callback([records[order.index(i)] for i in range(len(order))])
    results = [None] * len(models)
    for i, (model, config) in enumerate(zip(models, configs)):
        dice, epoch, state = best[i]
        model.load_state_dict(state if state is not None else pack.state_dict(i))
        model.eval()
        results[order[i]] = TrainResult(model, histories[i], epoch, dice, None, config)
    return results


def train_roles_packed(config, splits, roles: Sequence[str], seeds: Sequence[int],
                       pack_size: int | None = None) -> dict:
    """:func:`sikd_utils.orchestration.train_roles` for several seeds at once, packed: returns
    ``(seed, role) -> TrainResult`` for the same networks, data and settings (no run folder: nothing is
    saved or reused). The teachers of the distilled roles train first; then every other role. Within a
    stage, networks that can share a pack (same architecture and :data:`SHARED_SETTINGS`) do, at most
    ``pack_size`` at a time (None: all; a smaller pack needs less device memory)."""
    from .data.slices import SliceDataset
    from .orchestration import TEACHER_OF

    if pack_size is not None and (isinstance(pack_size, bool) or not isinstance(pack_size, int) or pack_size < 1):
        raise ValueError(f"pack_size must be a positive integer or None, got {pack_size!r}")
    if not seeds:
        raise ValueError("train_roles_packed needs at least one seed")
    train_ds = SliceDataset(splits.train, config.image_size, augment=config.augment, foreground_only=True,
                            seed=config.data_seed)
    val_ds = SliceDataset(splits.val, config.image_size, augment=False, foreground_only=True)
    needed = [TEACHER_OF[r] for r in roles if r in TEACHER_OF]
    missing = [t for t in needed if t not in roles]
    if missing:
        raise ValueError(f"roles {tuple(roles)} need their teachers {tuple(missing)} among them")
    stages = [[r for r in roles if r in needed], [r for r in roles if r not in needed]]
    results = {}
    for stage in stages:
        groups: dict = {}
        for role in stage:
            for seed in seeds:
                model, train_config = config.build_model(role, seed=seed), config.train_config(role, seed)
                train_config = dataclasses.replace(train_config, progress=False)
                key = (tuple(sorted(architecture_of(model).items())),
                       tuple(getattr(train_config, k) for k in SHARED_SETTINGS))
                groups.setdefault(key, []).append((seed, role, model, train_config))
        for members in groups.values():
            size = pack_size or len(members)
            for start in range(0, len(members), size):
                chunk = members[start:start + size]
                teachers = [results[(s, TEACHER_OF[r])].model if r in TEACHER_OF else None for s, r, _, _ in chunk]
                trained = train_packed([m for _, _, m, _ in chunk], train_ds, [c for _, _, _, c in chunk], val_ds,
                                       teachers=teachers, data_identity=splits.identity)
                for (seed, role, _, train_config), result in zip(chunk, trained):
                    result.extra["steps"] = train_config.epochs * -(-len(train_ds) // train_config.batch_size)
                    results[(seed, role)] = result
    return results
