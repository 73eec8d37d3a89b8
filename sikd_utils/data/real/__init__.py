"""Loaders for the paper's real datasets, reading each publisher's own layout.

>>> from sikd_utils.data import real
>>> print(real.describe("acdc"))                    # where to get it and the tree load() expects
>>> train = real.load("acdc", "/data/ACDC/database", split="train")
>>> case = train[0]                                 # read from disk now, not before
>>> case.image.shape, case.label.shape, case.spacing

``load`` returns a lazy sequence of :class:`~sikd_utils.data.case.Case`: images channel-first
((1, H, W, D) volumes for ACDC, M&Ms and Synapse; (3, H, W) RGB for REFUGE, Kvasir-SEG, CVC-ClinicDB;
(1, H, W) for BUSI and UDIAT), labels in the task's class order, spacing in mm from the NIfTI header
for 3D sets and (1.0, 1.0) -- pixels -- for 2D sets. Masks are never cases of their own.

The official intensity preprocessing is applied here, by ``load`` itself, so training and test data
can never be normalised differently: per image/volume 2nd-98th percentile clip then [0, 1], except
Synapse, which uses TransUNet's HU window [-125, 275] -> [0, 1]. ``preprocess=False`` gives the raw
intensities (float32). Loading never writes anything into the data folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ._common import CaseList, CaseRef
from .abdomen import HU_WINDOW, SYNAPSE_ORGANS, SYNAPSE_SPLITS, index_synapse, read_synapse, synapse_mapping
from .cardiac import ACDC_SPLITS, index_acdc, index_mnms, read_acdc, read_mnms
from .download import ARCHIVES, Archive, fetch
from .images2d import (index_busi, index_cvc_clinicdb, index_kvasir, index_refuge, index_udiat, read_busi,
                       read_cvc_clinicdb, read_kvasir, read_refuge, read_udiat)
from .layouts import LAYOUTS, Layout, describe

__all__ = ["load", "fetch", "describe", "splits_of", "LAYOUTS", "DATASETS", "CaseList", "CaseRef", "Layout", "Archive",
           "ARCHIVES", "ACDC_SPLITS", "SYNAPSE_SPLITS", "SYNAPSE_ORGANS", "HU_WINDOW", "synapse_mapping",
           "task_of"]


@dataclass(frozen=True)
class _Dataset:
    index: Callable  # (root, split=None, **options) -> list[CaseRef]; cheap, reads no pixels
    read: Callable  # (CaseRef, preprocess) -> Case
    splits: tuple[str, ...]
    options: tuple[str, ...] = ()


_DATASETS: dict[str, _Dataset] = {
    "acdc": _Dataset(index_acdc, read_acdc, ("train", "val", "test")),
    "mnms": _Dataset(index_mnms, read_mnms, ("train", "val", "test"), ("vendors",)),
    "synapse": _Dataset(index_synapse, read_synapse, ("train", "test")),
    "refuge": _Dataset(index_refuge, read_refuge, ("train", "val", "test")),
    "kvasir": _Dataset(index_kvasir, read_kvasir, ("train", "test"), ("split_dir",)),
    "cvc_clinicdb": _Dataset(index_cvc_clinicdb, read_cvc_clinicdb, ()),
    "busi": _Dataset(index_busi, read_busi, (), ("classes",)),
    "udiat": _Dataset(index_udiat, read_udiat, ()),
}

#: The dataset keys load() understands.
DATASETS: tuple[str, ...] = tuple(_DATASETS)


def splits_of(dataset: str) -> tuple[str, ...]:
    """The named splits ``load(dataset, root, split=...)`` accepts (empty when only ``None`` is valid)."""
    return _DATASETS[_check_dataset(dataset)].splits


def task_of(dataset: str) -> str:
    """The task (key of ``sikd_utils.data.TASKS``) whose class order a dataset's labels use."""
    return LAYOUTS[_check_dataset(dataset)].task


def _check_dataset(dataset: str) -> str:
    from ...checks import UnknownNameError

    if not isinstance(dataset, str):
        raise TypeError(f"dataset must be a dataset key (str), got {dataset!r}")
    key = dataset.strip().lower().replace("-", "_")  # 'ACDC', 'cvc-clinicdb' are fine too
    if key not in _DATASETS:
        raise UnknownNameError(f"unknown dataset {dataset!r}; choose one of {list(_DATASETS)}")
    return key


def load(dataset: str, root, split: str | None = None, preprocess: bool = True, **options) -> CaseList:
    """Index ``dataset`` under ``root`` and return its cases (read lazily, one per access).

    split: None for every labelled case found, or one of the dataset's splits (``describe(dataset)``
    says which; an unknown name raises ValueError listing the valid ones).
    preprocess: apply the official intensity normalisation (True) or return raw intensities (False).
    options: ``lazy=False`` reads (and so fully validates) every case now and keeps them in memory;
    mnms: ``vendors=('A', 'B')``; kvasir: ``split_dir=`` folder with the official train.txt/val.txt;
    busi: ``classes=('benign', 'malignant')``.

    Problems with the files are reported by name: a missing or wrong root raises FileNotFoundError
    saying what was expected and what was found, a missing mask raises FileNotFoundError naming the
    image, and unreadable files, shape mismatches, unknown label codes or NaN intensities raise
    ValueError naming the file (the latter when the case is read).
    """
    dataset = _check_dataset(dataset)
    spec = _DATASETS[dataset]
    lazy = options.pop("lazy", True)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        raise TypeError(f"load({dataset!r}) got unknown option(s) {unknown}; it accepts "
                        f"{list(spec.options) + ['lazy']}")
    if split is not None and split not in spec.splits:
        valid = ", ".join(repr(s) for s in (None,) + spec.splits)
        raise ValueError(f"unknown split {split!r} for {dataset!r}; valid: {valid}. {LAYOUTS[dataset].splits}")
    root = Path(root).expanduser()
    refs = spec.index(root, split, **options)
    cases = CaseList(dataset, refs, spec.read, bool(preprocess), root, split)
    if not lazy:
        loaded = list(cases)
        return _Materialised(cases, loaded)
    return cases


class _Materialised(CaseList):
    """A CaseList whose cases were all read up front (``load(..., lazy=False)``)."""

    def __init__(self, base: CaseList, loaded):
        super().__init__(base.dataset, base.refs, base._reader, base.preprocess, base.root, base.split)
        self._loaded = list(loaded)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return _Materialised(super().__getitem__(index), self._loaded[index])
        return self._loaded[index]

    def __iter__(self):
        return iter(self._loaded)
