"""Checkpoint files: written atomically, read with ``weights_only=True``, and checked against a digest of their
weights, so a damaged file is refused (never reused, never resumed) instead of quietly changing a result.

A checkpoint is a dict: ``format``, ``architecture`` (enough to rebuild the network), ``model`` (its state
dict), ``weights_digest`` (SHA-256 of ``model``), and for training's ``last.pt`` what resuming needs
(``optimizer``, ``epoch``, ``history``, ``best_epoch``, ``best_val_dice``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from pathlib import Path

import torch

from .backbones import from_architecture

__all__ = ["CHECKPOINT_FORMAT", "LAST", "BEST", "RESUME_KEYS", "weights_digest", "save_checkpoint",
           "read_checkpoint", "checkpoint_architecture", "load_model", "remove_stale_temporaries"]

CHECKPOINT_FORMAT = "sikd-checkpoint/1"
LAST, BEST = "last.pt", "best.pt"
#: what a ``last.pt`` must hold to be resumed
RESUME_KEYS = ("optimizer", "epoch", "history", "best_epoch", "best_val_dice")


def weights_digest(state: dict) -> str:
    """SHA-256 over a state dict's names, dtypes, shapes and bytes (in name order): any flipped byte changes it."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(obj: dict, path: Path) -> None:
    """Write ``obj`` (with the digest of its ``model``) to a temporary file in the same folder, then rename: a
    crash never leaves half a file.

    The folder is fsynced after the rename so the new name survives a power cut; a process killed mid-write
    (SIGKILL skips the cleanup below) leaves a ``.<name>.*.tmp`` file, which :func:`remove_stale_temporaries`
    deletes when training next starts in that folder.
    """
    if "model" in obj:
        obj = {**obj, "weights_digest": weights_digest(obj["model"])}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete half-written checkpoint files left by a killed run in ``folder``; returns what was removed.

    Only our own pattern (``.last.pt.*.tmp``, ``.best.pt.*.tmp``) is touched. Call it only when no
    other process trains into the same folder (one run per folder, as training assumes).
    """
    folder = Path(folder)
    removed = []
    if folder.is_dir():
        for name in (LAST, BEST):
            for stale in folder.glob(f".{name}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    stale.unlink()
                    removed.append(stale)
    return removed


def read_checkpoint(path: str | os.PathLike, require: tuple[str, ...] = ()) -> dict:
    """A checkpoint file (or run folder: best.pt, else last.pt) as a dict, ``path`` added.

    Refused with a ``ValueError`` naming the file: what torch cannot read, what is not our format, what lacks
    ``model``, ``architecture`` or the ``require``-d keys, and weights that no longer match their digest (a file
    written before digests were recorded has none to check)."""
    path = Path(path)
    if path.is_dir():
        path = path / BEST if (path / BEST).exists() else path / LAST
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupt or foreign pickle
        raise ValueError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a SIKD Book checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    missing = [k for k in ("model", "architecture", *require) if k not in ckpt]
    if missing:
        raise ValueError(f"checkpoint {path} lacks {missing}; it cannot be "
                         f"{'resumed' if set(missing) & set(RESUME_KEYS) else 'loaded'}: delete it to train again")
    if not isinstance(ckpt["model"], dict) or not isinstance(ckpt["architecture"], dict):
        raise ValueError(f"checkpoint {path}: 'model' and 'architecture' must be dicts")
    recorded = ckpt.get("weights_digest")
    if recorded is not None:
        actual = weights_digest(ckpt["model"])
        if actual != recorded:
            raise ValueError(f"checkpoint {path} is damaged: its weights' SHA-256 is {actual[:12]}…, the file records "
                             f"{recorded[:12]}…; it is neither reused nor resumed: delete it to train again")
    ckpt["path"] = str(path)
    return ckpt


def checkpoint_architecture(ckpt: dict) -> dict:
    """A checkpoint's architecture; those written before other backbones existed hold our U-Net."""
    return {**ckpt["architecture"], "backbone": ckpt["architecture"].get("backbone", "unet")}


def load_model(path: str | os.PathLike, expect: dict | None = None):
    """Rebuild a network from a checkpoint file (or run folder: best.pt, else last.pt).

    ``expect`` maps architecture fields (in_channels, num_classes, base_channels, skip_connections,
    backbone) to required values; any difference raises a ValueError naming both, as do weights that do not
    fit the architecture the file records.
    """
    ckpt = read_checkpoint(path)
    arch = checkpoint_architecture(ckpt)
    if expect:
        wrong = {k: (arch.get(k), v) for k, v in expect.items() if arch.get(k) != v}
        if wrong:
            detail = ", ".join(f"{k}: checkpoint has {a!r}, expected {b!r}" for k, (a, b) in wrong.items())
            raise ValueError(f"checkpoint {ckpt['path']} does not match the required architecture ({detail})")
    try:
        model = from_architecture(arch)
    except Exception as err:
        raise ValueError(f"checkpoint {ckpt['path']} records an architecture that cannot be built ({arch}): {err}") from None
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise ValueError(f"checkpoint {ckpt['path']}: its weights do not fit the architecture it records ({arch}): "
                         f"{' '.join(first[:2])}") from None
    return model
