"""What a training run is: its role and the settings that change the weights it produces (:class:`TrainConfig`),
and the learning-rate schedule. Split from :mod:`sikd_utils.train`, which re-exports every name here."""

from __future__ import annotations

import bisect
import dataclasses
from dataclasses import dataclass
from typing import Iterable

import torch

from .checks import check_bool, check_float, check_int
from .distill import DEFAULT_TEMPERATURE, DEFAULT_WEIGHT, DISTILL_METHODS, TEACHER_INPUTS, check_choice
from .models import FEATURE_LAYERS
from .runtime import PRECISIONS

__all__: list[str] = []  # re-exported by sikd_utils.train, which documents them

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
