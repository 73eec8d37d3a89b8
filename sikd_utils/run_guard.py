"""Guards for the commands that write results: one run per folder, committed results never replaced by another
run, and folders that cannot be written refused before any network is trained.

The files under ``book/results/`` are what the book is made of. A natural first try such as
``reproduce --preset tiny --tasks polyp`` must not turn the committed GPU evidence into a toy run's numbers,
and two runs sharing one ``--out-dir`` must not delete each other's temporary files.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

__all__ = ["FolderBusy", "FolderLock", "writable_folder", "replaced_results", "check_devices_present"]

LOCK_NAME = ".sikd-run.lock"


class FolderBusy(ValueError):
    """Another live run holds the folder's lock."""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class FolderLock:
    """``with FolderLock(folder, command):`` — hold ``folder/.sikd-run.lock`` (pid, host, start, command) while a
    run writes there. A lock whose process has ended on this host is stale: it is replaced and reported through
    ``log``. A live one, or one from another host (whose process cannot be asked), is a :class:`FolderBusy`."""

    def __init__(self, folder, command: str = "", log=None):
        self.path = Path(folder) / LOCK_NAME
        self.command = command
        self.log = log
        self._held = False

    def _owner(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable: a crash while writing it; treated as stale below

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                  "command": self.command}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is None:
                    continue  # released meanwhile
                pid, host = owner.get("pid"), owner.get("host")
                ended = isinstance(pid, int) and host == socket.gethostname() and not _alive(pid)
                if ended or not owner:
                    if self.log:
                        self.log(f"note: removed a stale lock {self.path} (process {pid} on {host} has ended)")
                    self.path.unlink(missing_ok=True)
                    continue
                where = "this machine" if host == socket.gethostname() else f"host {host}"
                raise FolderBusy(f"{self.path.parent} is in use by another run (pid {pid} on {where}, started "
                                 f"{owner.get('started')}: {owner.get('command') or 'no command recorded'}); wait for "
                                 f"it to end or use another folder (if that run is gone, delete {self.path})") from None
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh)
            self._held = True
            return self
        raise FolderBusy(f"could not take the lock {self.path}: it keeps reappearing; another run is starting there")

    def __exit__(self, *exc):
        if self._held:
            owner = self._owner()
            if owner and owner.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self._held = False
        return False


def writable_folder(path, what: str) -> Path:
    """``path`` as a folder that exists or can be made, and can be written (checked, not made); else an
    ``OSError`` naming it (``NotADirectoryError``, ``PermissionError``)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path} is a file, expected a folder")
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise PermissionError(f"{what} {path} cannot be written (no write permission on {probe})")
    return path


def replaced_results(results_dir, task: str, entry: dict | None, preset: str, run_key: str, seeds) -> str | None:
    """Why writing ``task`` into ``results_dir`` would replace another run's results (None: it would not).

    ``entry`` is the task's provenance entry there (None: none). Another preset, run key or set of seeds is
    another run; a ``<task>.csv`` without an entry is a file nobody can vouch for, also left alone."""
    folder = Path(results_dir)
    if entry is None:
        if (folder / f"{task}.csv").exists():
            return f"{folder / f'{task}.csv'} exists without a provenance entry"
        return None
    theirs = (entry.get("preset"), entry.get("run_key"), sorted(entry.get("seeds", [])))
    mine = (preset, run_key, sorted(int(s) for s in seeds))
    if theirs == mine:
        return None
    return (f"{folder / f'{task}.csv'} holds another run (preset {theirs[0]}, run key {theirs[1]}, seeds {theirs[2]}; "
            f"this one: preset {mine[0]}, run key {mine[1]}, seeds {mine[2]})")


def check_devices_present(device: str, gpus: int = 0) -> None:
    """Refuse a CUDA device, or ``gpus`` GPUs, that this machine does not have, before any job starts (a job
    would otherwise fail minutes later, or quietly train on the CPU)."""
    import torch

    seen = torch.cuda.device_count()
    text = str(device)
    if text.startswith("cuda"):
        index = int(text[5:]) if text[5:].isdigit() else 0
        if index >= seen:
            raise ValueError(f"device {device!r} asked for, but torch {torch.__version__} sees {seen} CUDA GPU(s); "
                             "use --device cpu or auto")
    if gpus >= 1 and seen < gpus:
        raise ValueError(f"--gpus {gpus} asked for, but torch {torch.__version__} sees {seen} CUDA GPU(s)"
                         + ("; leave --gpus out to run on the CPU" if seen == 0 else ""))
    if gpus >= 1 and not (str(device) in ("auto", "cuda") or str(device).startswith("cuda")):
        raise ValueError(f"--gpus {gpus} places jobs on GPUs; it cannot be combined with --device {device}")
