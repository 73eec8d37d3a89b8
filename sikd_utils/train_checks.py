"""What ``train()`` checks before any work: the teacher it is given, the data, a checkpoint it would resume, and
its own arguments, each refused with a message naming the thing and what is expected."""

from __future__ import annotations

import os

import torch

from .backbones import SEGMENTER_ATTRIBUTES, is_segmenter
from .batches import _check_labels, _first_item
from .checkpoints import checkpoint_architecture as _architecture
from .checkpoints import read_checkpoint
from .checks import check_bool
from .data.identity import differences
from .models import UNet, architecture_of
from .train_config import _FIELD_DEFAULTS, _RUN_DEFINING, SKIP_FREE_ROLES, TrainConfig, _teacher_sees

__all__: list[str] = []  # train() calls these; nothing outside it does

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
    from .train import _teacher_architecture, load_teacher  # train imports this module: resolved at call time

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
