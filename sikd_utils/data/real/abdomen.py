"""Synapse / BTCV multi-organ CT under the TransUNet protocol (8 organs, HU window, 18/12 cases)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from ..tasks import TASKS
from ._common import (CaseRef, check_root, check_same_shape, check_values, intensity, listing,
                      make_case, not_found, read_nifti, remap, walk)

__all__ = ["SYNAPSE_SPLITS", "SYNAPSE_ORGANS", "HU_WINDOW", "synapse_mapping", "index_synapse",
           "read_synapse"]

#: BTCV label codes as published with the data (Synapse syn3193805 data description).
SYNAPSE_ORGANS: dict[int, str] = {
    1: "spleen", 2: "right kidney", 3: "left kidney", 4: "gallbladder", 5: "esophagus", 6: "liver",
    7: "stomach", 8: "aorta", 9: "inferior vena cava", 10: "portal vein and splenic vein", 11: "pancreas",
    12: "right adrenal gland", 13: "left adrenal gland",
}

#: TransUNet's case split (its lists/lists_Synapse: 12 test volumes, the other 18 for training).
SYNAPSE_SPLITS: dict[str, frozenset[int]] = {
    "test": frozenset((1, 2, 3, 4, 8, 22, 25, 29, 32, 35, 36, 38)),
    "train": frozenset((5, 6, 7, 9, 10, 21, 23, 24, 26, 27, 28, 30, 31, 33, 34, 37, 39, 40)),
}

HU_WINDOW = (-125.0, 275.0)  # TransUNet: clip Hounsfield units, then rescale to [0, 1]

_IMG = re.compile(r"^img(\d+)\.nii(\.gz)?$")


def synapse_mapping() -> dict[int, int]:
    """BTCV code -> abdomen-task class index, matched by organ *name*.

    Matching by name rather than by hard-coded numbers means the remap follows the task registry's
    class order, whatever it is; organs the task does not list (esophagus, veins, adrenals) map to 0.
    """
    classes = TASKS["abdomen"].class_names
    mapping = {0: 0}
    for code, organ in SYNAPSE_ORGANS.items():
        mapping[code] = classes.index(organ) if organ in classes else 0
    kept = {SYNAPSE_ORGANS[c] for c, v in mapping.items() if c and v}
    if kept != set(classes[1:]):  # pragma: no cover - guards a registry edit that renames an organ
        raise RuntimeError(f"abdomen task classes {classes[1:]} do not all match BTCV organ names")
    return mapping


def index_synapse(root, split=None) -> list[CaseRef]:
    root = check_root("synapse", root)
    cases: dict[int, tuple[Path, Path]] = {}
    unlabelled = []
    for path, dirs, files in walk(root, 5):
        if path.name != "img":
            continue
        dirs[:] = []
        imgs = [f for f in files if _IMG.match(f)]
        if not imgs:
            continue
        label_dir = path.parent / "label"
        if not label_dir.is_dir():
            unlabelled.append(path)  # RawData/Testing ships images only
            continue
        for name in imgs:
            number = int(_IMG.match(name).group(1))
            image = path / name
            label = label_dir / name.replace("img", "label", 1)
            if not label.is_file():
                raise FileNotFoundError(f"Synapse: no label for {image}: expected {label}; "
                                        f"in {label_dir}: {listing(label_dir)}")
            if number in cases:
                raise ValueError(f"Synapse: case {number:04d} found twice: {cases[number][0]} and {image}")
            cases[number] = (image, label)
    if not cases:
        why = "only unlabelled img/ folders (e.g. RawData/Testing) found" if unlabelled else \
            "no 'img/imgNNNN.nii.gz' with a sibling 'label/' folder found"
        raise not_found("synapse", root, why)
    numbers = sorted(cases)
    if split is not None:
        wanted = SYNAPSE_SPLITS[split]
        numbers = [n for n in numbers if n in wanted]
        missing = sorted(wanted - set(cases))
        if not numbers:
            raise not_found("synapse", root, f"none of the {len(wanted)} cases of split {split!r} found")
        if missing:
            warnings.warn(f"Synapse split {split!r}: {len(missing)} of its {len(wanted)} cases are not under "
                          f"{root} (e.g. img{missing[0]:04d}); loading the {len(numbers)} present",
                          UserWarning, stacklevel=3)
    refs = []
    for n in numbers:
        image, label = cases[n]
        in_split = next((s for s, members in SYNAPSE_SPLITS.items() if n in members), None)
        refs.append(CaseRef(f"case{n:04d}", {"image": image, "label": label},
                            {"case_number": n, "file": image.name, "official_split": in_split}))
    return refs


def read_synapse(ref: CaseRef, preprocess: bool):
    image_path, label_path = ref.files["image"], ref.files["label"]
    image, spacing = read_nifti(image_path)
    label, label_spacing = read_nifti(label_path, label=True)
    check_same_shape(image.shape, label.shape, image_path, label_path)
    if not np.allclose(spacing, label_spacing, rtol=1e-3, atol=1e-4):
        raise ValueError(f"voxel spacing differs between {image_path} {spacing} and {label_path} {label_spacing}")
    check_values(label, range(14), label_path)
    label = remap(label, synapse_mapping())
    image = intensity(image, preprocess, window=HU_WINDOW)
    return make_case(image[None], label, spacing, ref, "synapse", TASKS["abdomen"].num_classes, image_path)
