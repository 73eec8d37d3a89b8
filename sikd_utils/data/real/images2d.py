"""2D sets: REFUGE (fundus), Kvasir-SEG and CVC-ClinicDB (colonoscopy), BUSI and UDIAT (ultrasound).

None of these publishes a physical pixel size, so every case gets spacing (1.0, 1.0): distances such as
HD95 are then in pixels, and images of different resolution are not comparable in millimetres.
"""

from __future__ import annotations

import hashlib
import re
import warnings
from pathlib import Path

import numpy as np

from ..tasks import TASKS
from ._common import (CaseRef, as_image, binary_mask, check_root, check_same_shape, check_values,
                      grey_mask, intensity, listing, make_case, natural_key, not_found, read_picture,
                      to_grey, to_rgb, unique_by_stem, walk)

__all__ = ["index_refuge", "read_refuge", "index_kvasir", "read_kvasir", "index_cvc_clinicdb",
           "read_cvc_clinicdb", "index_busi", "read_busi", "index_udiat", "read_udiat",
           "KVASIR_TEST_FRACTION"]

PIXEL_SPACING = (1.0, 1.0)
_PICTURE = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def _pictures(folder: Path, suffixes=_PICTURE) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in suffixes
                   and not p.name.startswith(".")), key=lambda p: natural_key(p.name))


def _read_image(path: Path, rgb: bool) -> tuple[np.ndarray, dict]:
    arr = read_picture(path)
    if rgb:
        return as_image(to_rgb(arr, path), path), {}
    image, converted = to_grey(arr, path)
    return as_image(image, path), ({"converted_from_colour": True} if converted else {})


def _binary_case(ref: CaseRef, preprocess: bool, dataset: str, task: str, rgb: bool):
    image_path = ref.files["image"]
    masks = ref.files["mask"] if isinstance(ref.files["mask"], tuple) else (ref.files["mask"],)
    image, extra = _read_image(image_path, rgb)
    label = None
    for mask_path in masks:  # BUSI: several masks per image -> their union
        part = binary_mask(read_picture(mask_path), mask_path)
        check_same_shape(image.shape[1:], part.shape, image_path, mask_path)
        label = part if label is None else np.maximum(label, part)
    if extra:
        ref = CaseRef(ref.case_id, ref.files, {**ref.meta, **extra})
    return make_case(intensity(image, preprocess), label, PIXEL_SPACING, ref, dataset,
                     TASKS[task].num_classes, image_path)


def _pair_dirs(root: Path, image_dir: str, mask_dir: str, depth: int) -> list[Path]:
    """Folders below root (root included) holding both an image and a mask subfolder."""
    out = []
    for path, dirs, _files in walk(root, depth):
        names = {d.lower(): d for d in dirs}
        if image_dir.lower() in names and mask_dir.lower() in names:
            out.append(path)
    return out


def _missing_mask(dataset: str, image: Path, expected: str, folder: Path) -> FileNotFoundError:
    return FileNotFoundError(f"{dataset}: no mask for image {image}: expected {expected} in {folder} "
                             f"({listing(folder)})")


# ---------------------------------------------------------------------------------------- REFUGE
_REFUGE_IMAGE = re.compile(r"^[gnVT]\d{4}$")
_REFUGE_SUBSET = {"g": "train", "n": "train", "V": "val", "T": "test"}
_REFUGE_TO_TASK = {255: 0, 128: 1, 0: 2}  # grey level -> bg, disc (rim), cup
_REFUGE_SKIP = {"disc_cup_masks", "disc_cup_fovea_illustration"}


def index_refuge(root, split=None) -> list[CaseRef]:
    root = check_root("refuge", root)
    images, masks = [], []
    for path, _dirs, files in walk(root, 6):
        parts = {p.lower() for p in path.relative_to(root).parts}
        for f in files:
            p = path / f
            if "disc_cup_masks" in parts and p.suffix.lower() == ".bmp":
                masks.append(p)
            elif not parts & _REFUGE_SKIP and p.suffix.lower() == ".jpg" and _REFUGE_IMAGE.match(p.stem):
                images.append(p)
    if not images:
        raise not_found("refuge", root, "no fundus images (g0001.jpg, n0001.jpg, V0001.jpg, T0001.jpg …) found")
    by_stem = unique_by_stem(images, "REFUGE image")
    mask_by_stem = unique_by_stem(masks, "REFUGE mask")
    refs = []
    order = {"train": 0, "val": 1, "test": 2}
    for stem in sorted(by_stem, key=lambda s: (order[_REFUGE_SUBSET[s[0]]], s)):
        subset = _REFUGE_SUBSET[stem[0]]
        if split is not None and subset != split:
            continue
        image = by_stem[stem]
        if stem not in mask_by_stem:
            raise FileNotFoundError(
                f"REFUGE: no mask for image {image}: expected {stem}.bmp under a 'Disc_Cup_Masks' folder "
                f"(e.g. Annotation-Training400/Disc_Cup_Masks/…, REFUGE-Validation400-GT/Disc_Cup_Masks/, "
                f"REFUGE-Test-GT/Disc_Cup_Masks/G|N/); {len(mask_by_stem)} masks found under {root}")
        mask = mask_by_stem[stem]
        if subset == "train":
            glaucoma = stem[0] == "g"
        elif subset == "test" and mask.parent.name in ("G", "N"):
            glaucoma = mask.parent.name == "G"
        else:
            glaucoma = None  # validation labels live in a spreadsheet we do not read
        refs.append(CaseRef(stem, {"image": image, "mask": mask}, {"subset": subset, "glaucoma": glaucoma}))
    if not refs:
        raise not_found("refuge", root, f"no image of split {split!r} found")
    return refs


def read_refuge(ref: CaseRef, preprocess: bool):
    image_path, mask_path = ref.files["image"], ref.files["mask"]
    image, _ = _read_image(image_path, rgb=True)
    grey = grey_mask(read_picture(mask_path), mask_path)
    check_same_shape(image.shape[1:], grey.shape, image_path, mask_path)
    check_values(grey, tuple(_REFUGE_TO_TASK), mask_path, what="mask grey levels")
    label = np.zeros(grey.shape, dtype=np.uint8)
    for level, cls in _REFUGE_TO_TASK.items():
        label[grey == level] = cls
    return make_case(intensity(image, preprocess), label, PIXEL_SPACING, ref, "refuge",
                     TASKS["fundus"].num_classes, image_path)


# ---------------------------------------------------------------------------------------- Kvasir
KVASIR_TEST_FRACTION = 0.12  # 120 of 1000, the size of the official validation list


def _kvasir_dir(root: Path) -> Path:
    found = _pair_dirs(root, "images", "masks", 3)
    if not found:
        raise not_found("kvasir", root, "no folder with 'images/' and 'masks/' found")
    named = [p for p in found if "kvasir" in p.name.lower()]
    pick = named if named else found
    if len(pick) > 1:
        raise ValueError(f"Kvasir-SEG: several candidate folders under {root}: {[str(p) for p in pick]}; "
                         f"pass the one you mean as root")
    return pick[0]


def _read_name_list(path: Path) -> list[str]:
    names = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line:
            names.append(Path(line.split()[0]).stem)
    return names


def _kvasir_split(stems: list[str], base: Path, root: Path, split_dir) -> tuple[dict[str, str], str]:
    """stem -> 'train'/'test', and where that split came from."""
    places = [Path(split_dir)] if split_dir is not None else [root, base, base.parent]
    for place in places:
        train, val = place / "train.txt", place / "val.txt"
        if train.is_file() and val.is_file():
            assignment = {s: "train" for s in _read_name_list(train)}
            assignment.update({s: "test" for s in _read_name_list(val)})
            listed = set(assignment)
            unknown = sorted(listed - set(stems))
            if unknown:
                raise FileNotFoundError(f"Kvasir-SEG: {len(unknown)} names in {train} / {val} have no image in "
                                        f"{base / 'images'} (e.g. {unknown[0]!r})")
            unlisted = sorted(set(stems) - listed)
            if unlisted:
                raise ValueError(f"Kvasir-SEG: {len(unlisted)} images are in neither {train} nor {val} "
                                 f"(e.g. {unlisted[0]!r})")
            return assignment, f"official lists {train} and {val}"
        if split_dir is not None:
            raise FileNotFoundError(f"Kvasir-SEG: split_dir {place} should hold train.txt and val.txt "
                                    f"({listing(place)})")
    ranked = sorted(stems, key=lambda s: hashlib.sha256(s.encode("utf-8")).hexdigest())
    n_test = int(round(len(stems) * KVASIR_TEST_FRACTION)) if len(stems) > 1 else 0
    n_test = max(n_test, 1) if len(stems) > 1 else 0
    test = set(ranked[:n_test])
    return {s: ("test" if s in test else "train") for s in stems}, "fallback: SHA-256 of file name"


def index_kvasir(root, split=None, split_dir=None) -> list[CaseRef]:
    root = check_root("kvasir", root)
    base = _kvasir_dir(root)
    image_dir = next(d for d in base.iterdir() if d.name.lower() == "images")
    mask_dir = next(d for d in base.iterdir() if d.name.lower() == "masks")
    images = unique_by_stem(_pictures(image_dir), "Kvasir-SEG image")
    if not images:
        raise not_found("kvasir", image_dir, "no .jpg images")
    masks = unique_by_stem(_pictures(mask_dir), "Kvasir-SEG mask")
    stems = sorted(images)
    assignment, source = _kvasir_split(stems, base, root, split_dir)
    if split is not None and source.startswith("fallback"):
        warnings.warn(f"Kvasir-SEG: official split files (train.txt, val.txt) not found near {base}; using "
                      f"the documented deterministic fallback ({source}), which is not the official split",
                      UserWarning, stacklevel=3)
    refs = []
    for stem in stems:
        if split is not None and assignment[stem] != split:
            continue
        if stem not in masks:
            raise _missing_mask("Kvasir-SEG", images[stem], f"{stem}.jpg", mask_dir)
        refs.append(CaseRef(stem, {"image": images[stem], "mask": masks[stem]},
                            {"subset": assignment[stem], "split_source": source}))
    return refs


def read_kvasir(ref: CaseRef, preprocess: bool):
    return _binary_case(ref, preprocess, "kvasir", "polyp", rgb=True)


# ---------------------------------------------------------------------------------- CVC-ClinicDB
def index_cvc_clinicdb(root, split=None) -> list[CaseRef]:
    root = check_root("cvc_clinicdb", root)
    found = []
    for base in _pair_dirs(root, "Original", "Ground Truth", 3):
        image_dir = next(d for d in base.iterdir() if d.name.lower() == "original")
        files = _pictures(image_dir)
        if files:
            kinds = {p.suffix.lower() for p in files}
            found.append((0 if kinds & {".tif", ".tiff"} else 1, str(base), base, image_dir))
    if not found:
        raise not_found("cvc_clinicdb", root, "no folder with 'Original/' and 'Ground Truth/' images found")
    found.sort()
    best = [f for f in found if f[0] == found[0][0]]
    if len(best) > 1:
        raise ValueError(f"CVC-ClinicDB: several copies under {root}: {[f[1] for f in best]}; "
                         f"pass the one you mean as root")
    _, _, base, image_dir = best[0]
    mask_dir = next(d for d in base.iterdir() if d.name.lower() == "ground truth")
    images = unique_by_stem(_pictures(image_dir), "CVC-ClinicDB image")
    masks = unique_by_stem(_pictures(mask_dir), "CVC-ClinicDB mask")
    refs = []
    for stem in sorted(images, key=natural_key):
        if stem not in masks:
            raise _missing_mask("CVC-ClinicDB", images[stem], f"{stem}{images[stem].suffix}", mask_dir)
        refs.append(CaseRef(stem, {"image": images[stem], "mask": masks[stem]}, {"format": images[stem].suffix}))
    return refs


def read_cvc_clinicdb(ref: CaseRef, preprocess: bool):
    return _binary_case(ref, preprocess, "cvc_clinicdb", "polyp", rgb=True)


# ------------------------------------------------------------------------------------------ BUSI
BUSI_CLASSES = ("benign", "malignant", "normal")
_BUSI_MASK = re.compile(r"^(?P<stem>.+)_mask(_(?P<k>\d+))?$")


def index_busi(root, split=None, classes=None) -> list[CaseRef]:
    root = check_root("busi", root)
    classes = BUSI_CLASSES if classes is None else tuple([classes] if isinstance(classes, str) else classes)
    unknown = [c for c in classes if c not in BUSI_CLASSES]
    if unknown:
        raise ValueError(f"BUSI: unknown class(es) {unknown}; choose from {BUSI_CLASSES}")
    candidates = []
    for path, dirs, _files in walk(root, 3):
        present = [d for d in dirs if d in BUSI_CLASSES]
        if present:
            candidates.append(path)
            dirs[:] = []
    if not candidates:
        raise not_found("busi", root, "no 'benign/', 'malignant/' or 'normal/' folder found")
    if len(candidates) > 1:
        named = [p for p in candidates if "busi" in p.name.lower()]
        if len(named) != 1:
            raise ValueError(f"BUSI: several candidate folders under {root}: {[str(p) for p in candidates]}; "
                             f"pass the one you mean as root")
        candidates = named
    base = candidates[0]
    refs = []
    for cls in classes:
        folder = base / cls
        if not folder.is_dir():
            continue
        images, masks = {}, {}
        for p in _pictures(folder, {".png"}):
            m = _BUSI_MASK.match(p.stem)
            if m:
                masks.setdefault(m.group("stem"), []).append((int(m.group("k") or 0), p))
            else:
                images[p.stem] = p
        for stem in sorted(images, key=natural_key):
            if stem not in masks:
                raise _missing_mask("BUSI", images[stem], f"'{stem}_mask.png'", folder)
            paths = tuple(p for _k, p in sorted(masks[stem]))
            refs.append(CaseRef(stem, {"image": images[stem], "mask": paths},
                                {"class": cls, "n_masks": len(paths)}))
    if not refs:
        raise not_found("busi", base, f"no images of class(es) {list(classes)}")
    return refs


def read_busi(ref: CaseRef, preprocess: bool):
    return _binary_case(ref, preprocess, "busi", "breast_us", rgb=False)


# ----------------------------------------------------------------------------------------- UDIAT
def index_udiat(root, split=None) -> list[CaseRef]:
    root = check_root("udiat", root)
    found = _pair_dirs(root, "original", "GT", 3)
    if not found:
        raise not_found("udiat", root, "no folder with 'original/' and 'GT/' found")
    if len(found) > 1:
        raise ValueError(f"UDIAT: several candidate folders under {root}: {[str(p) for p in found]}; "
                         f"pass the one you mean as root")
    base = found[0]
    image_dir = next(d for d in base.iterdir() if d.name.lower() == "original")
    mask_dir = next(d for d in base.iterdir() if d.name.lower() == "gt")
    images = unique_by_stem(_pictures(image_dir), "UDIAT image")
    if not images:
        raise not_found("udiat", image_dir, "no images")
    masks = unique_by_stem(_pictures(mask_dir), "UDIAT mask")
    refs = []
    for stem in sorted(images, key=natural_key):
        if stem not in masks:
            raise _missing_mask("UDIAT", images[stem], f"{stem}.png", mask_dir)
        refs.append(CaseRef(stem, {"image": images[stem], "mask": masks[stem]}, {}))
    return refs


def read_udiat(ref: CaseRef, preprocess: bool):
    return _binary_case(ref, preprocess, "udiat", "breast_us", rgb=False)
