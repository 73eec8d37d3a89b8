"""Which data a run was trained on: the identity recorded in run keys and in every checkpoint.

Trained models are reused by folder (``out_dir/<task>/<run key>/…``) and interrupted runs resume from
their checkpoint, so the key and the checkpoint must say *which data* produced the weights; otherwise
another data folder, another data seed or an edited file list silently gets the first data's models.

* **Synthetic data**: the generator and its settings (task, domain, image size, ``data_seed``, case
  counts) plus a digest of the generated training and validation arrays, which also catches a change
  of the generator's code.
* **Real data**: the dataset key, its root folder (absolute) and a digest of the training and
  validation file list with each file's size and modification time (cheap: no pixel is hashed).
* **Cases given by hand**: a digest of their arrays, ids and spacings.

Test sets are not part of the identity: they do not change the trained weights, and every run is
evaluated afresh. :func:`identity_tag` turns an identity into the short string hashed into run keys;
:func:`differences` words a mismatch for error messages.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

__all__ = ["digest_arrays", "cases_digest", "synthetic_identity", "real_identity", "cases_identity",
           "identity_tag", "describe_identity", "differences"]

_DIGEST_CHARS = 16


def digest_arrays(arrays: Iterable, extra: str = "") -> str:
    """SHA-256 (first 16 hex digits) of arrays' dtypes, shapes and bytes, plus an ``extra`` string."""
    h = hashlib.sha256(extra.encode("utf-8"))
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()[:_DIGEST_CHARS]


def cases_digest(cases: Sequence) -> str:
    """Digest of a list of :class:`~sikd_utils.data.case.Case`: ids, spacings, images and labels."""
    arrays, ids = [], []
    for case in cases:
        arrays += [case.image, case.label]
        ids.append((case.case_id, tuple(case.spacing)))
    return digest_arrays(arrays, repr(ids))


def synthetic_identity(task: str, image_size: int, data_seed: int, n_train: int, n_val: int,
                       train_cases: Sequence, val_cases: Sequence, difficulty: int = 0) -> dict:
    """Identity of synthetic training data: generator settings and a digest of what it produced.

    ``difficulty`` is recorded only when it is not 0, so identities made before it existed still match.
    """
    identity = {"kind": "synthetic", "generator": "sikd_utils.data.synthetic.make_cases", "task": task,
                "domain": "source", "image_size": int(image_size), "data_seed": int(data_seed),
                "n_train": int(n_train), "n_val": int(n_val), "content": cases_digest([*train_cases, *val_cases])}
    if difficulty:
        identity["difficulty"] = int(difficulty)
    return identity


def _files_of(refs: Iterable) -> list[Path]:
    files = []
    for ref in refs:
        for value in ref.files.values():
            files += [Path(v) for v in (value if isinstance(value, (tuple, list)) else (value,))]
    return files


def real_identity(dataset: str, root, train_refs: Sequence, val_refs: Sequence) -> dict:
    """Identity of real training data: dataset, root and a digest of (path, size, mtime) of its files."""
    root = Path(root).expanduser().resolve()
    entries = []
    for part, refs in (("train", train_refs), ("val", val_refs)):
        for path in _files_of(refs):
            try:
                stat = path.stat()
            except OSError as err:
                raise FileNotFoundError(f"{dataset}: cannot read the size and date of {path} ({err})") from None
            try:
                name = str(path.resolve().relative_to(root))
            except ValueError:
                name = str(path.resolve())
            entries.append((part, name, stat.st_size, stat.st_mtime_ns))
    listing = json.dumps(sorted(entries)).encode()
    return {"kind": "real", "dataset": dataset, "root": str(root), "n_train": len(train_refs),
            "n_val": len(val_refs), "n_files": len(entries),
            "files": hashlib.sha256(listing).hexdigest()[:_DIGEST_CHARS]}


def cases_identity(train_cases: Sequence, val_cases: Sequence) -> dict:
    """Identity of cases given by hand (a custom :class:`~sikd_utils.configuration.Splits`)."""
    return {"kind": "cases", "n_train": len(train_cases), "n_val": len(val_cases),
            "content": cases_digest([*train_cases, *val_cases])}


def identity_tag(identity: dict) -> str:
    """Short, readable string naming the data, with a digest of the whole identity (for run keys)."""
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:12]
    label = identity.get("dataset") or identity.get("task") or ""
    counts = f"{identity.get('n_train', '?')},{identity.get('n_val', '?')}"
    return f"{identity.get('kind', 'data')}:{label}:{counts}:{digest}"


def describe_identity(identity: dict | None) -> str:
    """One line for people: what data a run (or a reused model) was trained on."""
    if not identity:
        return "data of unknown identity"
    if identity.get("kind") == "real":
        return (f"real {identity['dataset']} under {identity['root']} ({identity['n_train']} train / "
                f"{identity['n_val']} val cases, file list {identity['files']})")
    if identity.get("kind") == "synthetic":
        level = f", difficulty {identity['difficulty']}" if identity.get("difficulty") else ""
        return (f"synthetic {identity['task']}{level} (data_seed {identity['data_seed']}, {identity['n_train']} train / "
                f"{identity['n_val']} val cases at {identity['image_size']} px, content {identity['content']})")
    return ", ".join(f"{k} {v}" for k, v in identity.items())


def differences(stored: dict | None, now: dict | None, prefix: str = "") -> list[str]:
    """Human-readable differences between two identities (nested dicts are compared key by key)."""
    if stored == now:
        return []
    if not isinstance(stored, dict) or not isinstance(now, dict):
        return [f"{prefix or 'data'}: checkpoint {stored!r}, now {now!r}"]
    out = []
    for key in sorted(set(stored) | set(now)):
        out += differences(stored.get(key), now.get(key), f"{prefix}.{key}" if prefix else str(key))
    return out
