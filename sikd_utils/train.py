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

import bisect
import dataclasses
import functools
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset

from . import distributed
from .checkpoints import (BEST, CHECKPOINT_FORMAT, LAST, RESUME_KEYS, load_model, read_checkpoint,
                          remove_stale_temporaries, save_checkpoint)
from .checkpoints import checkpoint_architecture as _architecture
from .checks import check_bool, check_float, check_int, check_writable_dir
from .data.identity import describe_identity, differences
from .backbones import (BACKBONES, SEGMENTER_ATTRIBUTES, build_backbone, check_backbone, is_segmenter)
from .distill import (DEFAULT_TEMPERATURE, DEFAULT_WEIGHT, DISTILL_METHODS, TEACHER_INPUTS, check_choice,
                      sikd_step, teacher_input_function)
from .models import FEATURE_LAYERS, UNet, architecture_of
from .runtime import PRECISIONS, autocast, grad_scaler, resolve_device, resolve_precision, set_seed

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

ROLES = ("teacher", "baseline", "student", "raw_teacher", "control")
SKIP_FREE_ROLES = ("teacher", "raw_teacher")  # U-Nets without skip connections
DISTILLED_ROLES = ("student", "control")  # trained with a frozen teacher; "student" feeds it mean images
# settings that change the weights a run produces: a resumed run must match them exactly
_RUN_DEFINING = ("role", "epochs", "batch_size", "lr", "weight_decay", "milestones", "gamma",
                 "distill_weight", "seed", "distill_method", "kd_temperature", "distill_layer", "teacher_input",
                 "teacher_skips")
#: the choices of ``TrainConfig.compile_step``, how much of a training step torch.compile takes
COMPILE_STEPS = ("off", "whole", "cuda_graphs")
# roles whose teacher input is fixed by definition (teacher_input may only repeat it)
_FIXED_TEACHER_INPUT = {"raw_teacher": "raw", "control": "raw"}


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (official ACDC recipe by default)."""

    role: str = "baseline"
    epochs: int = 200
    batch_size: int = 20  # the global batch: under torchrun, split over the processes
    lr: float = 1e-3
    weight_decay: float = 0.0
    milestones: tuple[int, ...] = (60, 100, 150, 180)  # given for 200 epochs; scaled to `epochs`
    gamma: float = 0.5
    distill_weight: float = DEFAULT_WEIGHT
    seed: int = 20
    # comparisons (issue 13); like distill_weight, the first three are ignored by roles that do not distil
    distill_method: str = "feature_mse"  # SIKD's; or "logit_kd", "attention_transfer" (sikd_utils.distill)
    kd_temperature: float = DEFAULT_TEMPERATURE  # logit_kd only
    distill_layer: str = "last_decoder"  # or "bottleneck" (feature methods only)
    teacher_input: str | None = None  # None: the role's own (mean_image; raw for raw_teacher and control)
    # the "teacher with skips" ablation: a teacher/raw_teacher keeps its skip connections, and a
    # student/control expects its teacher to have them (False: the paper's skip-free teacher)
    teacher_skips: bool = False
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 on GPUs >= 8.0, fp16 + GradScaler below, fp32 on CPU (see runtime)
    channels_last: bool | None = None  # None: on CUDA only
    compile: bool = False  # torch.compile the model (CUDA speed-up; first epoch pays compilation)
    # Adam as one fused kernel over all parameters (same maths, float noise apart). None: on CUDA only
    fused_optimizer: bool | None = None
    # torch.compile the whole step (teacher input, forward passes, loss, backward, Adam): "off", "whole",
    # or "cuda_graphs" (CUDA only: the compiled step replayed as CUDA graphs, mode="reduce-overhead")
    compile_step: str = "off"
    # whole batches augmented on the training device (SliceDataset.batch) instead of per item in a
    # DataLoader; same batches, same parameters, results equal up to float rounding. None: on CUDA only.
    batched_augmentation: bool | None = None
    num_workers: int = 0
    progress: bool = True

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got {self.role!r}")
        self.epochs = check_int("epochs", self.epochs, 1)
        self.batch_size = check_int("batch_size", self.batch_size, 1)
        self.lr = check_float("lr", self.lr, 0.0, strict_minimum=True)
        self.weight_decay = check_float("weight_decay", self.weight_decay, 0.0)
        self.gamma = check_float("gamma (learning-rate decay factor)", self.gamma, 0.0, 1.0, strict_minimum=True)
        self.distill_weight = check_float("distill_weight", self.distill_weight, 0.0)
        check_choice("distill_method", self.distill_method, DISTILL_METHODS)
        self.kd_temperature = check_float("kd_temperature", self.kd_temperature, 0.0, strict_minimum=True)
        check_choice("distill_layer", self.distill_layer, FEATURE_LAYERS)
        if self.distill_method == "logit_kd" and self.distill_layer != "last_decoder":
            raise ValueError(f"distill_layer={self.distill_layer!r} does not apply to logit_kd, which distils "
                             "the logits; leave distill_layer='last_decoder'")
        if self.teacher_input is not None:
            check_choice("teacher_input", self.teacher_input, TEACHER_INPUTS)
            if self.role == "baseline":
                raise ValueError("role 'baseline' has no teacher; leave teacher_input=None")
            fixed = _FIXED_TEACHER_INPUT.get(self.role)
            if fixed is not None and self.teacher_input != fixed:
                raise ValueError(f"role {self.role!r} feeds its teacher the {fixed!r} image by definition, got "
                                 f"teacher_input={self.teacher_input!r}; for the ablation use roles 'teacher' "
                                 "and 'student' with that teacher_input")
        check_bool("teacher_skips", self.teacher_skips)
        if self.teacher_skips and self.role == "baseline":
            raise ValueError("role 'baseline' has no teacher; leave teacher_skips=False")
        self.seed = check_int("seed", self.seed, 0)
        self.num_workers = check_int("num_workers", self.num_workers, 0)
        if isinstance(self.milestones, (str, bytes)) or not isinstance(self.milestones, Iterable):
            raise TypeError(f"milestones must be a sequence of epoch numbers, got {self.milestones!r}")
        self.milestones = tuple(check_int("milestones entry", m, 0) for m in self.milestones)
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.channels_last is not None:
            check_bool("channels_last", self.channels_last)
        check_bool("compile", self.compile)
        if self.fused_optimizer is not None:
            check_bool("fused_optimizer", self.fused_optimizer)
        check_choice("compile_step", self.compile_step, COMPILE_STEPS)
        if self.compile and self.compile_step != "off":
            raise ValueError(f"compile=True compiles the model alone and compile_step={self.compile_step!r} compiles "
                             "it within the whole step; choose one")
        _refuse_cuda_graphs_in_fp16(self.compile_step, self.precision)
        if self.batched_augmentation is not None:
            check_bool("batched_augmentation", self.batched_augmentation)
        check_device(self.device)

    def effective_teacher_input(self) -> str | None:
        """What the teacher sees, by name (TEACHER_INPUTS): the input a ``teacher``/``raw_teacher`` is
        trained and validated on, and the one a ``student``/``control`` feeds its frozen teacher; None
        for the baseline."""
        return _teacher_sees(self.role, self.teacher_input)

    def skip_free(self) -> bool:
        """Whether this role trains a network without skip connections (a teacher, unless teacher_skips)."""
        return self.role in SKIP_FREE_ROLES and not self.teacher_skips

    def scaled_milestones(self) -> list[int]:
        """The 200-epoch milestones scaled to this run's length (at least epoch 1)."""
        return sorted({max(1, round(m * self.epochs / 200)) for m in self.milestones})


_FIELD_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _refuse_cuda_graphs_in_fp16(compile_step: str, precision: str) -> None:
    """Asked by TrainConfig of ``precision='fp16'`` (before any work) and by train() of the precision it
    resolved on its device (``'auto'`` is fp16 on GPUs below compute capability 8.0)."""
    if compile_step == "cuda_graphs" and precision == "fp16":
        raise ValueError("compile_step='cuda_graphs' cannot replay fp16's loss scaler (it reads the gradients back to "
                         "skip a step); use compile_step='whole' or 'off' (or precision 'bf16' on a GPU of compute "
                         "capability 8.0 or above)")


def _teacher_sees(role: str, teacher_input: str | None) -> str | None:
    """TrainConfig.effective_teacher_input for a role and setting (also for settings read from checkpoints)."""
    if role == "baseline":
        return None
    return _FIXED_TEACHER_INPUT.get(role) or teacher_input or "mean_image"


def learning_rate(config: TrainConfig, epoch: int) -> float:
    """Learning rate used during 0-based ``epoch`` (step decay, as torch's MultiStepLR would give)."""
    return config.lr * config.gamma ** bisect.bisect_right(config.scaled_milestones(), epoch)


@dataclass
class TrainResult:
    model: UNet  # holds the best-on-validation weights (the last ones without validation data)
    history: list[dict]
    best_epoch: int
    best_val_dice: float
    checkpoint_dir: Path | None = None
    config: TrainConfig | None = None
    extra: dict = field(default_factory=dict)


def check_device(device: str | torch.device) -> None:
    """Refuse a device string torch cannot parse (``"gpu"``, ``"cuda:x"``) before any work starts."""
    if isinstance(device, torch.device) or device == "auto":
        return
    if not isinstance(device, str):
        raise TypeError(f"device must be 'auto', a device string such as 'cpu' or 'cuda:0', or a torch.device, "
                        f"got {device!r}")
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device {device!r} is not a device torch knows; use 'auto', 'cpu', 'cuda', 'cuda:0', "
                         f"'mps'") from None


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
from .batches import (_check_labels, _epoch_batches, _first_item, _rank_batches,  # noqa: E402
                      _use_batched_augmentation, validation_dice)
from .steps import (_adam, _compiled_step, _idle_step, _load_optimizer, _set_lr, _supervised_step)  # noqa: E402


def _check_teacher(teacher, student: UNet, data_identity: dict | None, role: str = "student",
                   teacher_input: str = "mean_image", teacher_skips: bool = False) -> None:
    """Everything about the teacher that can be checked before training starts."""
    if teacher is None:
        raise ValueError(f"roles 'student' and 'control' need a trained teacher (a UNet or a checkpoint path); "
                         f"role {role!r} got none")
    if isinstance(teacher, torch.nn.Module):
        if not is_segmenter(teacher):
            raise TypeError(f"teacher must be a sikd_utils UNet, another network from build_model(..., backbone=...) "
                            f"or a checkpoint path, got {type(teacher).__name__}")
        if teacher.skip_connections and not teacher_skips:
            raise ValueError("teacher is a UNet with skip connections; SIKD's teacher (and the control's "
                             "raw_teacher) must be skip-free (build_model('teacher', ...) or "
                             "UNet(..., skip_connections=False)); for the ablation pass teacher_skips=True")
        if teacher_skips and not teacher.skip_connections:
            raise ValueError("teacher_skips=True asks for a teacher with skip connections, got a skip-free one "
                             "(build_model('teacher', ..., teacher_skips=True))")
        return
    if not isinstance(teacher, (str, os.PathLike)):
        raise TypeError(f"teacher must be a UNet or a checkpoint path, got {teacher!r}")
    ckpt = read_checkpoint(teacher)
    stored = (ckpt.get("data_identity") or {}).get("data")
    if data_identity is not None and stored is not None and stored != data_identity:
        raise ValueError(f"teacher checkpoint {ckpt['path']} was trained on other data "
                         f"({'; '.join(differences(stored, data_identity))}); train a teacher on this data")
    if ckpt.get("role") in SKIP_FREE_ROLES:  # what the teacher was trained on must be what it will be fed
        seen = _teacher_sees(ckpt["role"], (ckpt.get("config") or {}).get("teacher_input"))
        if seen != teacher_input:
            raise ValueError(f"teacher checkpoint {ckpt['path']} was trained on teacher_input={seen!r}, but role "
                             f"{role!r} would feed it {teacher_input!r}; train a teacher on that input")


def _prepare_teacher(teacher, student: UNet, device: torch.device, channels_last: bool,
                     teacher_input: str = "mean_image", teacher_skips: bool = False) -> UNet:
    if not isinstance(teacher, torch.nn.Module):
        teacher = load_teacher(teacher, student, teacher_input, teacher_skips)
    else:
        mine, theirs = _teacher_architecture(student, teacher_input), architecture_of(teacher)
        for key in ("backbone", "in_channels", "num_classes", "base_channels"):
            if mine[key] != theirs[key]:
                raise ValueError(
                    f"teacher {key}={theirs[key]} does not match student {key}={mine[key]}"
                    + (" (a label_onehot teacher has in_channels = num_classes)" if key == "in_channels" else "")
                    + ": features can only be distilled between networks of the same backbone and widths"
                )
    teacher = teacher.to(device).eval()
    teacher.requires_grad_(False)
    if channels_last:
        teacher = teacher.to(memory_format=torch.channels_last)
    return teacher


def _check_resumable(ckpt: dict, config: TrainConfig, model: UNet, identity: dict) -> None:
    stored = ckpt.get("config", {})
    if "data_identity" not in ckpt:
        diffs = ["data: the checkpoint predates data identities, so its data cannot be verified"]
    else:
        diffs = [f"data {d}" for d in differences(ckpt["data_identity"], identity)]
    for key in _RUN_DEFINING:
        now = getattr(config, key)
        now = list(now) if isinstance(now, tuple) else now
        # settings added later (issue 13) are missing from older checkpoints, which ran with their defaults
        was = stored[key] if key in stored else _FIELD_DEFAULTS.get(key)
        was = list(was) if isinstance(was, tuple) else was
        if key == "teacher_input":  # None and the role's own input are the same run
            was, now = _teacher_sees(stored.get("role", config.role), was), config.effective_teacher_input()
        if was != now:
            diffs.append(f"{key}: checkpoint {was!r}, now {now!r}")
    if _architecture(ckpt) != architecture_of(model):
        diffs.append(f"architecture: checkpoint {_architecture(ckpt)}, now {architecture_of(model)}")
    if diffs:
        raise ValueError(
            f"{ckpt['path']} holds a run with other settings ({'; '.join(diffs)}). "
            "Use another run folder (--out-dir on the command line), or delete this one to train again "
            "(train(..., resume=False) in Python overwrites it)."
        )


def _dataset_identity(data) -> dict:
    """What a checkpoint records about a dataset: a content digest when it offers one, else type and length."""
    if hasattr(data, "fingerprint"):
        return {"type": type(data).__name__, "length": len(data), "digest": data.fingerprint()}
    return {"type": f"{type(data).__module__}.{type(data).__qualname__}", "length": len(data)}


def _check_data(data, name: str, model: UNet, image_channels: bool = True) -> None:
    if not hasattr(data, "__len__") or not hasattr(data, "__getitem__"):
        raise TypeError(f"{name} must be a map-style Dataset (with __len__ and __getitem__), "
                        f"got {type(data).__name__}")
    if len(data) == 0:
        raise ValueError(f"{name} is empty")
    image, label = _first_item(data, name)
    if not image.dtype.is_floating_point:
        raise TypeError(f"{name}[0] image must be a float tensor, got dtype {image.dtype}")
    if image.ndim != 3 or (image_channels and image.shape[0] != model.in_channels):
        raise ValueError(f"{name}[0] image must be (C={model.in_channels}, H, W) for this model, "
                         f"got shape {tuple(image.shape)}")
    if label.ndim == 3 and label.shape[0] == 1:
        label = label[0]
    if tuple(label.shape) != tuple(image.shape[1:]):
        raise ValueError(f"{name}[0] label shape {tuple(label.shape)} does not match image shape "
                         f"{tuple(image.shape)}; expected (H, W) or (1, H, W)")
    _check_labels(label, model.num_classes, f"{name}[0]")
    stored = getattr(data, "labels", None)  # SliceDataset: every stored label, cheaply
    if isinstance(stored, torch.Tensor):
        _check_labels(stored, model.num_classes, name)


def _check_train_inputs(model, train_data, config, val_data, callbacks, resume, data_identity) -> None:
    if not is_segmenter(model):
        raise TypeError(f"model must be a sikd_utils UNet or another network from build_model(..., backbone=...) "
                        f"(with attributes {SEGMENTER_ATTRIBUTES}), got {type(model).__name__}")
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    # a teacher of one-hot label maps never sees the images: their channels are not its in_channels
    one_hot = config.role == "teacher" and config.effective_teacher_input() == "label_onehot"
    if one_hot and model.in_channels != model.num_classes:
        raise ValueError(f"a teacher trained on one-hot labels (teacher_input='label_onehot') needs in_channels = "
                         f"num_classes = {model.num_classes}, got {model.in_channels}; build it with "
                         "build_model('teacher', ..., teacher_input='label_onehot')")
    check_bool("resume", resume)
    if data_identity is not None and not isinstance(data_identity, dict):
        raise TypeError(f"data_identity must be a dict or None, got {type(data_identity).__name__}")
    if callable(callbacks) or not all(callable(c) for c in callbacks):
        raise TypeError("callbacks must be a sequence of callables, each taking the epoch's record")
    _check_data(train_data, "train_data", model, image_channels=not one_hot)
    if val_data is not None and len(val_data) > 0:
        _check_data(val_data, "val_data", model, image_channels=not one_hot)


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
