"""One training loop for the three SIKD roles.

* ``teacher``  — skip-free U-Net, cross-entropy on class-wise mean images;
* ``baseline`` — ordinary U-Net, cross-entropy on raw images;
* ``student``  — ordinary U-Net, cross-entropy + λ·MSE to a frozen teacher's last decoder features.

and the two roles of the plain feature-distillation control (same architectures, same recipe, but the
teacher never sees a class-wise mean image — it separates what the mean image brings from what any
feature distillation brings):

* ``raw_teacher`` — skip-free U-Net, cross-entropy on raw images;
* ``control``     — ordinary U-Net distilled from a ``raw_teacher`` exactly as the student is, the
  teacher fed the raw image.

Every role can use another backbone (``build_model(..., backbone=...)``, :mod:`sikd_utils.backbones`);
its teacher is the same network without skips. For the comparisons of issue 13, :class:`TrainConfig`
also chooses the distillation term (``distill_method``), the distilled layer (``distill_layer``) and
what the teacher sees (``teacher_input``: a ``teacher`` is trained on it, a ``student``'s teacher is
fed it) and whether the teacher keeps its skip connections (``teacher_skips``, the ablation that asks
whether removing them matters); the defaults are SIKD's and give exactly the results they gave before
these options existed.

Defaults are the official recipe (Adam 1e-3, ×0.5 at epochs 60/100/150/180 of 200 — scaled to the
epoch count —, batch 20, seed 20). Randomness is re-derived from (seed, epoch) at the start of every
epoch, and a checkpoint is written atomically after every epoch, so a run that is interrupted and
restarted ends with exactly the weights of an uninterrupted run (on CPU; CUDA kernels may differ in
the last bits).

Two settings make a step faster without changing its maths (issue 12; results differ by float noise
only): ``fused_optimizer`` (Adam as one kernel; the default on CUDA) and ``compile_step`` (torch.compile
takes the whole step — teacher input, both forward passes, loss, backward and Adam — as one graph, and
with ``"cuda_graphs"`` replays it as a CUDA graph). The compiled step holds no host sync: the labels are
checked on the host before each batch is copied and the loss's finiteness once per epoch.

Launched by torchrun (``torchrun --nproc_per_node=N -m sikd_utils train …``), one run is trained by N
processes with DistributedDataParallel at the same global ``batch_size``, equal to one process's run up to
float rounding: see :mod:`sikd_utils.distributed`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from . import distributed
from .checkpoints import (BEST, CHECKPOINT_FORMAT, LAST, RESUME_KEYS, load_model, read_checkpoint,
                          remove_stale_temporaries, save_checkpoint)
from .checks import check_bool, check_writable_dir
from .data.identity import describe_identity
from .backbones import (BACKBONES, build_backbone, check_backbone)
from .distill import (DISTILL_METHODS, TEACHER_INPUTS, check_choice,
                      sikd_step, teacher_input_function)
from .models import FEATURE_LAYERS, UNet, architecture_of
from .runtime import autocast, grad_scaler, resolve_device, resolve_precision, set_seed

__all__ = [
    "ROLES",
    "SKIP_FREE_ROLES",
    "DISTILLED_ROLES",
    "TrainConfig",
    "TrainResult",
    "train",
    "build_model",
    "load_model",
    "load_teacher",
    "learning_rate",
    "validation_dice",
    "set_seed",
    "resolve_device",
    "check_device",
    "remove_stale_temporaries",
    "CHECKPOINT_FORMAT",
    "COMPILE_STEPS",
    "BACKBONES",
    "DISTILL_METHODS",
    "FEATURE_LAYERS",
    "TEACHER_INPUTS",
]

from .train_config import (COMPILE_STEPS, DISTILLED_ROLES, ROLES, SKIP_FREE_ROLES, TrainConfig, check_device,  # noqa: E402
                           _refuse_cuda_graphs_in_fp16,
                           learning_rate)


@dataclass
class TrainResult:
    model: UNet  # holds the best-on-validation weights (the last ones without validation data)
    history: list[dict]
    best_epoch: int
    best_val_dice: float
    checkpoint_dir: Path | None = None
    config: TrainConfig | None = None
    extra: dict = field(default_factory=dict)


def build_model(
    role: str, in_channels: int, num_classes: int, base_channels: int = 64, seed: int | None = None,
    backbone: str = "unet", teacher_input: str | None = None, teacher_skips: bool = False,
    teacher_residual_projection: bool = False,
) -> UNet:
    """A freshly initialised network for ``role`` (the teacher has no skip connections).

    ``backbone``: ``"unet"`` (ours, the paper's) or a MONAI network of :mod:`sikd_utils.backbones`.
    ``teacher_input="label_onehot"`` builds a ``teacher`` for one-hot label maps: ``in_channels`` becomes
    ``num_classes`` (pass the same ``teacher_input`` in its TrainConfig); other values change nothing.
    ``teacher_skips=True`` keeps a teacher's skip connections (the ablation; pass it in its TrainConfig too).
    ``teacher_residual_projection=True`` gives a skip-free SwinUNETR teacher its student's residual projections
    (the ablation ``swin_unetr_projected``); roles with skips ignore it.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}, got {role!r}")
    check_backbone(backbone)
    if teacher_input is not None:
        check_choice("teacher_input", teacher_input, TEACHER_INPUTS)
    check_bool("teacher_skips", teacher_skips)
    check_bool("teacher_residual_projection", teacher_residual_projection)
    if teacher_residual_projection and backbone != "swin_unetr":
        raise ValueError(f"teacher_residual_projection is for backbone 'swin_unetr', got {backbone!r}")
    if role == "teacher" and teacher_input == "label_onehot":
        in_channels = num_classes
    if seed is not None:
        torch.manual_seed(seed)
    skips = role not in SKIP_FREE_ROLES or teacher_skips
    return build_backbone(backbone, in_channels, num_classes, base_channels, skip_connections=skips,
                          residual_projection=teacher_residual_projection and not skips)


def load_teacher(path: str | os.PathLike, student: UNet, teacher_input: str | None = None,
                 teacher_skips: bool = False) -> UNet:
    """Load a teacher checkpoint that can supervise ``student``: skip-free (with skips when
    ``teacher_skips``), same backbone, widths and classes, and the student's input channels — or
    ``num_classes`` when it sees one-hot label maps (``teacher_input="label_onehot"``)."""
    return load_model(path, expect=_teacher_architecture(student, teacher_input, teacher_skips))


def _teacher_architecture(student, teacher_input: str | None, teacher_skips: bool = False) -> dict:
    expect = architecture_of(student)
    expect["skip_connections"] = teacher_skips
    if teacher_input == "label_onehot":
        expect["in_channels"] = student.num_classes
    return expect


# --------------------------------------------------------------------------- training
from .batches import (_epoch_batches, _rank_batches,  # noqa: E402
                      _use_batched_augmentation, validation_dice)
from .steps import (_adam, _compiled_step, _idle_step, _load_optimizer, _set_lr, _supervised_step)  # noqa: E402


from .train_checks import (_check_resumable, _check_teacher, _check_train_inputs,  # noqa: E402
                           _dataset_identity, _prepare_teacher)


def train(
    model: UNet,
    train_data: Dataset,
    config: TrainConfig | None = None,
    val_data: Dataset | None = None,
    teacher: UNet | str | os.PathLike | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    callbacks: Sequence[Callable[[dict], None]] = (),
    data_identity: dict | None = None,
) -> TrainResult:
    """Train ``model`` in ``config.role``; returns the best-on-validation model and the history.

    ``train_data``/``val_data`` yield dicts with ``image`` (C, H, W) float and ``label`` (H, W) or
    (1, H, W) integer tensors (see ``sikd_utils.data.slices.SliceDataset``); if the dataset has
    ``set_epoch(epoch)`` it is called before every epoch so its augmentation is reproducible.
    With ``checkpoint_dir``, ``last.pt`` is written after every epoch and ``best.pt`` whenever the
    validation Dice improves; if ``last.pt`` exists and ``resume`` is true, training continues from
    it (a finished run returns at once, and says so). Each callback receives the epoch's history record.

    Every checkpoint records the identity of the data: ``data_identity`` (see
    :mod:`sikd_utils.data.identity`; :func:`sikd_utils.orchestration.run_task` passes the dataset's) plus a
    digest of the datasets when they are :class:`~sikd_utils.data.slices.SliceDataset` (else their type
    and length). Resuming on other data, or with other settings, raises ValueError naming the difference.
    All inputs are checked before the first step: labels of the wrong dtype or outside
    [0, num_classes), a teacher with skip connections, an unwritable ``checkpoint_dir``.

    When ``torch.distributed`` is initialised (torchrun), every process calls ``train`` alike and trains
    its share of each global batch with DistributedDataParallel (:mod:`sikd_utils.distributed`); every
    rank returns the same model and history, callbacks run on every rank with the same record (its
    ``seconds`` the slowest rank's), and rank 0 alone writes checkpoints.
    """
    config = TrainConfig() if config is None else config
    _check_train_inputs(model, train_data, config, val_data, callbacks, resume, data_identity)
    if config.skip_free() and model.skip_connections:
        raise ValueError(f"role {config.role!r} trains a skip-free UNet (skip_connections=False); "
                         "teacher_skips=True keeps the skips (the ablation)")
    if not config.skip_free() and not model.skip_connections:
        raise ValueError(f"role {config.role!r} trains an ordinary UNet (skip_connections=True)"
                         + (" when teacher_skips=True" if config.teacher_skips else ""))
    teacher_sees = config.effective_teacher_input()  # mean_image for SIKD, raw for the control, None for the baseline
    if config.role in DISTILLED_ROLES:
        _check_teacher(teacher, model, data_identity, config.role, teacher_sees, config.teacher_skips)
    elif teacher is not None:
        raise ValueError(f"a teacher is only used by roles {DISTILLED_ROLES}, not {config.role!r}; pass teacher=None")
    rank, world_size = distributed.world()  # (0, 1) unless launched by torchrun (sikd_utils.distributed)
    distributed.check_global_batch(config.batch_size, world_size)
    device = distributed.rank_device(resolve_device(config.device))
    cuda = device.type == "cuda"
    if cuda and not torch.cuda.is_available():
        raise ValueError(f"device {config.device!r} was asked for but torch sees no CUDA GPU; use 'auto' or 'cpu'")
    precision = resolve_precision(config.precision, device)
    _refuse_cuda_graphs_in_fp16(config.compile_step, precision)  # the config cannot know what 'auto' resolves to
    compiled = config.compile_step != "off"
    if config.compile_step == "cuda_graphs" and not cuda:
        raise ValueError(f"compile_step='cuda_graphs' replays CUDA graphs and needs a CUDA device; this run's device "
                         f"is {device.type!r} (use compile_step='whole' or 'off')")
    if compiled and world_size > 1:
        raise ValueError(f"compile_step={config.compile_step!r} does not combine with DistributedDataParallel "
                         "(torchrun); use compile_step='off' (compile=True compiles the model alone)")
    fused = cuda if config.fused_optimizer is None else config.fused_optimizer
    channels_last = cuda if config.channels_last is None else config.channels_last
    if cuda:
        torch.backends.cudnn.benchmark = True
    num_classes = model.num_classes
    has_val = val_data is not None and len(val_data) > 0
    folder = None
    if checkpoint_dir is not None:
        folder = check_writable_dir("checkpoint_dir", checkpoint_dir)
        if rank == 0:  # the only writer
            remove_stale_temporaries(folder)
    identity = {"data": data_identity, "train": _dataset_identity(train_data),
                "val": _dataset_identity(val_data) if has_val else None}

    with distributed.global_batch_norm(model, device):  # one process: does nothing
        model = model.to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = _adam(model, config, fused, tensor_lr=compiled)
        scaler = grad_scaler(device, precision)  # fp16 only; passes through otherwise
        history: list[dict] = []
        best_dice, best_epoch, best_state = float("-inf"), 0, None
        start = 0

        if folder is not None and resume and (folder / LAST).exists():
            ckpt = read_checkpoint(folder / LAST, require=RESUME_KEYS)
            _check_resumable(ckpt, config, model, identity)
            model.load_state_dict(ckpt["model"])
            _load_optimizer(optimizer, ckpt["optimizer"])
            if ckpt.get("scaler"):
                scaler.load_state_dict(ckpt["scaler"])
            history = list(ckpt["history"])
            start = int(ckpt["epoch"])
            best_dice, best_epoch = float(ckpt["best_val_dice"]), int(ckpt["best_epoch"])
            if (folder / BEST).exists():
                best_state = read_checkpoint(folder / BEST)["model"]

        batched = _use_batched_augmentation(config, train_data, cuda)
        teacher_net = None
        if config.role in DISTILLED_ROLES:
            teacher_net = _prepare_teacher(teacher, model, device, channels_last, teacher_sees,
                                           config.teacher_skips)
        teacher_input = teacher_input_function(teacher_sees) if teacher_sees else None
        # DDP averages gradients over ranks; the teacher is frozen and stays unwrapped
        net = model if world_size == 1 else DistributedDataParallel(model, device_ids=[device.index] if cuda else None)
        step_model = torch.compile(net) if config.compile else net
        step_autocast = functools.partial(autocast, device, precision)
        if compiled:
            fast_step = _compiled_step(config, model=net, teacher=teacher_net, optimizer=optimizer,
                                       num_classes=num_classes, inputs=teacher_input, autocast=step_autocast,
                                       scaler=scaler)

        def snapshot(epoch: int) -> dict:
            return {
                "format": CHECKPOINT_FORMAT,
                "role": config.role,
                "architecture": architecture_of(model),
                "data_identity": identity,
                "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()},
                "epoch": epoch,
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "history": history,
                "best_epoch": best_epoch,
                "best_val_dice": best_dice,
            }

        from tqdm.auto import tqdm

        say = tqdm.write if rank == 0 else (lambda message: None)
        if start >= config.epochs:
            say(f"reused finished {config.role} run from {folder} ({start} epochs, best epoch {best_epoch}, "
                       f"validation Dice {best_dice:.3f}); trained on {describe_identity(data_identity)}")
        elif start > 0:
            say(f"resuming {config.role} run in {folder} after epoch {start} of {config.epochs}")
        # One bar per run, counted in batches (one widget in a notebook, however many epochs); the
        # postfix carries the epoch, the last loss and the validation Dice.
        steps_per_epoch = math.ceil(len(train_data) / config.batch_size)
        bar = tqdm(desc=config.role, total=config.epochs * steps_per_epoch, initial=start * steps_per_epoch,
                   unit="batch", disable=not config.progress or rank != 0)
        for epoch in range(start, config.epochs):
            began = time.perf_counter()
            lr = learning_rate(config, epoch)
            _set_lr(optimizer, lr)
            epoch_seed = config.seed * 100_003 + epoch
            set_seed(epoch_seed)
            if hasattr(train_data, "set_epoch"):
                train_data.set_epoch(epoch)
            generator = torch.Generator().manual_seed(epoch_seed)
            if world_size == 1:
                batches = _epoch_batches(train_data, config, epoch, generator, device, channels_last, batched,
                                         num_classes if compiled else None)
            else:
                batches = _rank_batches(train_data, config, epoch, generator, device, channels_last, batched,
                                        rank, world_size)
            model.train()
            sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, ce, mse, items; read once per epoch
            bar.set_postfix_str(f"epoch {epoch + 1}/{config.epochs}", refresh=False)
            for images, labels, *global_batch in batches:
                n = images.shape[0]
                if global_batch:  # this rank's share: its loss weighted so DDP's average is the global mean
                    step_scaler = distributed.ShareScaler(scaler, n, global_batch[0], world_size)
                    if n == 0:  # a short last batch left this rank nothing; it still joins the collectives
                        _idle_step(step_model, optimizer, images, step_autocast, step_scaler)
                        bar.update()
                        continue
                else:
                    step_scaler = scaler
                try:
                    if compiled:  # the same maths, its checks outside: labels in the batches, the loss below
                        loss = fast_step(images, labels)
                    elif config.role in DISTILLED_ROLES:  # the step notebook 04 shows, line for line
                        # SIKD's teacher sees the class-wise mean image; the control's sees the raw image
                        loss = sikd_step(step_model, teacher_net, optimizer, images, labels, config.distill_weight,
                                         step_autocast, teacher_input, step_scaler, config.distill_method,
                                         config.distill_layer, config.kd_temperature)
                    else:  # a teacher trains on what it will be fed (teacher_input); the baseline on raw images
                        loss = _supervised_step(step_model, optimizer, images, labels, num_classes,
                                                teacher_input, step_autocast, step_scaler)
                except FloatingPointError as err:
                    raise FloatingPointError(f"{config.role}, epoch {epoch + 1}: {err}") from None
                sums[:3] += torch.stack([value.detach().double() for value in loss]) * n
                sums[3] += n
                bar.update()
            if compiled and not torch.isfinite(sums[0]):  # check_finite, once per epoch: before any checkpoint
                raise FloatingPointError(f"{config.role}, epoch {epoch + 1}: the loss became {sums[0].item()}: check "
                                         "the data for NaN/inf or lower the learning rate")

            val = float("nan")
            if has_val:
                val = validation_dice(model, val_data, num_classes, batch_size=config.batch_size, device=device,
                                      precision=precision,
                                      teacher_input=teacher_sees if config.role in SKIP_FREE_ROLES else None,
                                      across_ranks=world_size > 1)
            distributed.all_reduce(sums)  # every rank records the same history
            means = (sums[:3] / sums[3]).tolist()
            # the slowest rank's time, so callbacks (e.g. a deadline) decide alike on every rank
            seconds = distributed.all_reduce(torch.tensor([time.perf_counter() - began], device=device), op="max").item()
            record = {"epoch": epoch + 1, "lr": lr, **dict(zip(("loss", "ce", "mse"), means)), "val_dice": val,
                      "seconds": seconds}
            history.append(record)
            improved = (not has_val) or (not np.isnan(val) and val > best_dice)
            if improved:
                best_dice, best_epoch = val, epoch + 1
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            if folder is not None:
                if rank == 0:
                    if improved:
                        save_checkpoint({**snapshot(epoch + 1), "model": best_state}, folder / BEST)
                    save_checkpoint({**snapshot(epoch + 1), "optimizer": optimizer.state_dict(),
                                  "scaler": scaler.state_dict()}, folder / LAST)
                distributed.barrier()  # a rank stopped after this epoch resumes from this very last.pt
            bar.set_postfix_str(f"epoch {epoch + 1}/{config.epochs}, loss {record['loss']:.4f}, val Dice {val:.3f}")
            for callback in callbacks:
                callback(record)

        bar.close()
        if best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        return TrainResult(model, history, best_epoch, best_dice, folder, config)
