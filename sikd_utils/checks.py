"""Argument checks shared by the package: one wording for "what was given, what is expected".

Every public entry point validates its inputs here *before* any work starts, so a bad setting fails in
a second with a message naming the setting, the value and the allowed range, instead of deep inside
torch after minutes of training (or, worse, silently). Nothing here imports torch or numpy.
"""

from __future__ import annotations

import math
import numbers
import os
import uuid
from pathlib import Path

__all__ = ["UnknownNameError", "check_int", "check_float", "check_bool", "check_writable_dir",
           "check_output_file"]


class UnknownNameError(KeyError, ValueError):
    """An unknown key (task, dataset, role…): a ``KeyError`` for lookups and a ``ValueError`` for callers
    that validate settings; prints its message without the quotes ``KeyError`` adds."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def check_int(name: str, value, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an ``int`` within [minimum, maximum]; refuses bools, fractions and strings."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if isinstance(value, numbers.Integral):
        out = int(value)
    elif math.isfinite(float(value)) and float(value).is_integer():
        out = int(value)
    else:
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if (minimum is not None and out < minimum) or (maximum is not None and out > maximum):
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value!r}")
    return out


def check_float(name: str, value, minimum: float | None = None, maximum: float | None = None,
                strict_minimum: bool = False) -> float:
    """``value`` as a finite ``float`` in range (``strict_minimum``: above ``minimum``, not equal)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    below = minimum is not None and (out <= minimum if strict_minimum else out < minimum)
    if below or (maximum is not None and out > maximum):
        lo = "-inf" if minimum is None else minimum
        hi = "inf" if maximum is None else maximum
        raise ValueError(f"{name} must lie in {'(' if strict_minimum else '['}{lo}, {hi}], got {value!r}")
    return out


def check_bool(name: str, value) -> bool:
    """Only real booleans (``"False"`` is truthy and would silently mean True)."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def _as_path(name: str, path) -> Path:
    if not isinstance(path, (str, os.PathLike)) or str(path) == "":
        raise TypeError(f"{name} must be a non-empty path (str or os.PathLike), got {path!r}")
    return Path(path).expanduser()


def check_writable_dir(name: str, path, create: bool = True) -> Path:
    """Make sure ``path`` is (or can become) a folder we can write to; probe it with a tiny file.

    Called before training, so an unwritable or wrong output location fails in a second, not after
    hours. Raises ``OSError`` (``NotADirectoryError``, ``PermissionError``…) naming the folder.
    """
    folder = _as_path(name, path)
    if folder.exists() and not folder.is_dir():
        raise NotADirectoryError(f"{name} {str(folder)!r} is a file, expected a folder to write into")
    if not folder.exists():
        if not create:
            raise FileNotFoundError(f"{name} {str(folder)!r} does not exist")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise type(err)(err.errno, f"{name} {str(folder)!r} cannot be created ({err.strerror or err})") from None
    probe = folder / f".sikd-write-probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise PermissionError(err.errno, f"{name} {str(folder)!r} is not writable ({err.strerror or err})") from None
    return folder


def check_output_file(name: str, path) -> Path:
    """A file we will write later: its folder must exist and be writable, and it must not be a folder."""
    target = _as_path(name, path)
    if target.is_dir():
        raise IsADirectoryError(f"{name} {str(target)!r} is a folder, expected a file name")
    parent = target.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"{name} {str(target)!r}: its folder {str(parent)!r} does not exist")
    check_writable_dir(name, parent, create=False)
    return target
