"""Cardiac cine MRI: ACDC (source) and M&Ms (target), one case per ED and per ES frame.

Both are returned in ACDC's class order (bg, RV, MYO, LV). M&Ms stores the reverse (1 LV, 3 RV): a
model trained on ACDC and scored on unmapped M&Ms labels would look catastrophically wrong for a
reason that has nothing to do with domain shift, so the remap happens here, once.
"""

from __future__ import annotations

import csv
import re
import warnings
from pathlib import Path

import numpy as np

from ._common import (CaseRef, check_root, check_same_shape, check_values, intensity, listing,
                      make_case, not_found, read_nifti, remap, walk)

__all__ = ["ACDC_SPLITS", "index_acdc", "read_acdc", "index_mnms", "read_mnms"]


def _numbers(text: str) -> frozenset[int]:
    return frozenset(int(t) for t in text.split())


#: The official SIKD split of the 100 ACDC training patients (patient numbers).
ACDC_SPLITS: dict[str, frozenset[int]] = {
    "train": _numbers(
        "001 003 005 006 008 009 011 012 013 014 015 017 019 020 022 024 025 027 028 029 030 031 "
        "034 036 037 038 039 041 043 044 045 046 047 048 049 050 051 053 054 055 057 059 061 065 066 067 068 "
        "069 070 071 072 074 077 078 079 080 081 082 083 084 085 087 090 092 093 094 095 096 097 099"
    ),
    "val": _numbers("002 007 010 023 026 033 035 056 058 073 075 076 089 098 100"),
    "test": _numbers("004 016 018 021 032 040 042 052 060 062 063 064 086 088 091"),
}

_PATIENT_DIR = re.compile(r"^patient(\d{3})$")
_ACDC_CODES = (0, 1, 2, 3)  # bg, RV, MYO, LV: already the task's order
_MNMS_TO_TASK = {0: 0, 1: 3, 2: 2, 3: 1}  # M&Ms 1=LV, 2=MYO, 3=RV -> bg, RV, MYO, LV


def _spacing_matches(a, b, image: Path, label: Path) -> None:
    if not np.allclose(a, b, rtol=1e-3, atol=1e-4):
        raise ValueError(f"voxel spacing differs between {image} {tuple(a)} and {label} {tuple(b)}")


# ------------------------------------------------------------------------------------------ ACDC
def _read_info(path: Path) -> dict:
    """Parse ACDC's Info.cfg ('ED: 1', 'ES: 12', 'Group: DCM', ...)."""
    if not path.is_file():
        raise FileNotFoundError(f"ACDC: {path} is missing (it gives the ED and ES frame numbers); "
                                f"in {path.parent}: {listing(path.parent)}")
    info: dict[str, str] = {}
    try:
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if ":" in line:
                key, value = line.split(":", 1)
                info[key.strip()] = value.strip()
        out = {"ED": int(float(info["ED"])), "ES": int(float(info["ES"]))}
    except (KeyError, ValueError) as err:
        raise ValueError(f"{path}: cannot read the ED and ES frame numbers ({err!r}); "
                         f"expected lines like 'ED: 1' and 'ES: 12'") from err
    for key, name in (("Group", "group"), ("NbFrame", "nb_frames"), ("Height", "height_cm"),
                      ("Weight", "weight_kg")):
        if key in info:
            value = info[key]
            try:
                out[name] = int(value) if key == "NbFrame" else value if key == "Group" else float(value)
            except ValueError:
                out[name] = value
    return out


def index_acdc(root, split=None) -> list[CaseRef]:
    root = check_root("acdc", root)
    patients: dict[int, Path] = {}
    for path, dirs, _files in walk(root, 4):
        m = _PATIENT_DIR.match(path.name)
        if m:
            number = int(m.group(1))
            if number in patients:
                raise ValueError(f"ACDC: patient {number:03d} found twice: {patients[number]} and {path}")
            patients[number] = path
            dirs[:] = []
    if not patients:
        raise not_found("acdc", root, "no patientNNN folders found")
    numbers = sorted(patients)
    if split is not None:
        wanted = ACDC_SPLITS[split]
        numbers = sorted(n for n in numbers if n in wanted)
        missing = sorted(wanted - set(patients))
        if not numbers:
            raise not_found("acdc", root, f"none of the {len(wanted)} patients of split {split!r} found")
        if missing:
            warnings.warn(f"ACDC split {split!r}: {len(missing)} of its {len(wanted)} patients are not "
                          f"under {root} (e.g. patient{missing[0]:03d}); loading the {len(numbers)} present",
                          UserWarning, stacklevel=3)
    refs = []
    for number in numbers:
        pdir = patients[number]
        info = _read_info(pdir / "Info.cfg")
        in_split = next((s for s, members in ACDC_SPLITS.items() if number in members), None)
        for phase in ("ED", "ES"):
            frame = info[phase]
            image = pdir / f"{pdir.name}_frame{frame:02d}.nii.gz"
            label = pdir / f"{pdir.name}_frame{frame:02d}_gt.nii.gz"
            if not image.is_file():
                raise FileNotFoundError(f"ACDC: {pdir / 'Info.cfg'} gives {phase} frame {frame} but "
                                        f"{image} is missing; in {pdir}: {listing(pdir)}")
            if not label.is_file():
                raise FileNotFoundError(f"ACDC: no label for {image}: expected {label}; "
                                        f"in {pdir}: {listing(pdir)}")
            meta = {"patient": pdir.name, "frame": phase, "frame_number": frame, "official_split": in_split}
            meta.update({k: v for k, v in info.items() if k not in ("ED", "ES")})
            refs.append(CaseRef(f"{pdir.name}_{phase}", {"image": image, "label": label}, meta))
    return refs


def read_acdc(ref: CaseRef, preprocess: bool):
    image_path, label_path = ref.files["image"], ref.files["label"]
    image, spacing = read_nifti(image_path)
    label, label_spacing = read_nifti(label_path, label=True)
    check_same_shape(image.shape, label.shape, image_path, label_path)
    _spacing_matches(spacing, label_spacing, image_path, label_path)
    check_values(label, _ACDC_CODES, label_path)
    return make_case(intensity(image, preprocess)[None], label, spacing, ref, "acdc", 4, image_path)


# ------------------------------------------------------------------------------------------ M&Ms
_INFO_CSV = re.compile(r"m&ms_dataset_information.*\.csv$", re.IGNORECASE)
_SUBSETS = {"labeled": "train", "validation": "val", "testing": "test"}
_REQUIRED = ("External code", "Vendor", "Centre", "ED", "ES")


def _read_mnms_csv(root: Path) -> tuple[Path, dict[str, dict]]:
    found = [p / f for p, _d, files in walk(root, 2) for f in files if _INFO_CSV.search(f)]
    if not found:
        raise not_found("mnms", root, "no '*M&Ms_Dataset_Information*.csv' (ED/ES frames, vendor, "
                                      "centre) found")
    path = sorted(found, key=lambda p: p.name)[-1]  # names start with the release date: newest last
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            missing = [c for c in _REQUIRED if c not in columns]
            if missing:
                raise ValueError(f"missing column(s) {missing}; found {columns}")
            rows = {}
            for raw in reader:
                row = {k.strip(): (v or "").strip() for k, v in raw.items() if k}
                if row.get("External code"):
                    row["ED"], row["ES"] = int(float(row["ED"])), int(float(row["ES"]))
                    rows[row["External code"]] = row
    except (ValueError, KeyError, csv.Error, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the M&Ms information CSV: {err}") from err
    return path, rows


def index_mnms(root, split=None, vendors=None) -> list[CaseRef]:
    root = check_root("mnms", root)
    csv_path, rows = _read_mnms_csv(root)
    vendors = None if vendors is None else {str(v) for v in ([vendors] if isinstance(vendors, str) else vendors)}
    refs = []
    n_found = 0
    for path, dirs, files in walk(root, 4):
        image_name = f"{path.name}_sa.nii.gz"
        if image_name not in files:
            continue
        dirs[:] = []
        parts = [p.lower() for p in path.relative_to(root).parts[:-1]]
        if "unlabeled" in parts:
            continue  # the publisher ships these without labels on purpose
        subset = next((_SUBSETS[p] for p in reversed(parts) if p in _SUBSETS), None)
        code = path.name
        image = path / image_name
        label = path / f"{code}_sa_gt.nii.gz"
        if not label.is_file():
            raise FileNotFoundError(f"M&Ms: no label for {image}: expected {label}; in {path}: {listing(path)}")
        if code not in rows:
            raise ValueError(f"M&Ms: case {code} ({path}) has no row in {csv_path}")
        n_found += 1
        row = rows[code]
        if split is not None and subset != split:
            continue
        if vendors is not None and row["Vendor"] not in vendors:
            continue
        for phase in ("ED", "ES"):
            meta = {"code": code, "frame": phase, "frame_index": row[phase], "vendor": row["Vendor"],
                    "vendor_name": row.get("VendorName", ""), "centre": row["Centre"], "subset": subset}
            for extra in ("Pathology", "Sex", "Age", "Height", "Weight"):
                if row.get(extra):
                    meta[extra.lower()] = row[extra]
            refs.append(CaseRef(f"{code}_{phase}", {"image": image, "label": label}, meta))
    if n_found == 0:
        raise not_found("mnms", root, "no labelled '<code>/<code>_sa.nii.gz' case folders found")
    if not refs:
        raise not_found("mnms", root, f"no case matches split={split!r}, vendors={vendors}")
    order = {"train": 0, "val": 1, "test": 2, None: 3}
    return sorted(refs, key=lambda r: (order[r.meta["subset"]], r.case_id))


def read_mnms(ref: CaseRef, preprocess: bool):
    image_path, label_path = ref.files["image"], ref.files["label"]
    t = ref.meta["frame_index"]
    image, spacing = read_nifti(image_path, frame=t)
    label, label_spacing = read_nifti(label_path, frame=t, label=True)
    check_same_shape(image.shape, label.shape, image_path, label_path)
    _spacing_matches(spacing, label_spacing, image_path, label_path)
    check_values(label, tuple(_MNMS_TO_TASK), label_path)
    if not label.any():
        raise ValueError(f"{label_path}: the {ref.meta['frame']} frame (time index {t}, 0-based, from the "
                         f"information CSV) has no labelled voxel; the CSV and the files disagree")
    label = remap(label, _MNMS_TO_TASK)
    return make_case(intensity(image, preprocess)[None], label, spacing, ref, "mnms", 4, image_path)
