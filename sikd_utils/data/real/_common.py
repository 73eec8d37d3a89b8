"""Shared plumbing of the real-data loaders: the lazy case list, file discovery, readers and checks.

Every reader here turns a failure into an error that names the file, because "ValueError: cannot
reshape array" after twenty minutes of training tells a reader nothing about which of 1,000 files is bad.
Nothing in this module ever writes to disk.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..case import Case
from ..preprocess import normalize_percentile, window_intensity
from .layouts import LAYOUTS

__all__ = ["CaseRef", "CaseList"]

#: Folders that unpacking tools add and that never hold data.
_SKIP_DIRS = {"__MACOSX", ".git", ".ipynb_checkpoints", "__pycache__"}


# --------------------------------------------------------------------------------------------------
# The lazy sequence returned by load()
# --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CaseRef:
    """Where one case lives on disk and what is known about it before reading any pixel."""

    case_id: str
    files: dict  # role -> Path (e.g. {"image": ..., "label": ...}); a role may map to a tuple of paths
    meta: dict = field(default_factory=dict)


class CaseList(Sequence):
    """A read-only sequence of :class:`~sikd_utils.data.case.Case`, read from disk on access.

    Indexing is cheap to set up and each ``cases[i]`` reads (and preprocesses) one case, so a
    multi-gigabyte dataset such as Synapse never has to sit in memory at once. Slicing returns
    another ``CaseList``; ``case_ids`` and ``metas`` are available without reading any image.
    Convert with ``list(cases)`` when you do want everything in memory.
    """

    def __init__(self, dataset: str, refs: Sequence[CaseRef], reader: Callable[[CaseRef, bool], Case],
                 preprocess: bool, root: Path, split: str | None = None):
        self.dataset = dataset
        self.refs = tuple(refs)
        self._reader = reader
        self.preprocess = preprocess
        self.root = Path(root)
        self.split = split

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return CaseList(self.dataset, self.refs[index], self._reader, self.preprocess, self.root,
                            self.split)
        return self._reader(self.refs[index], self.preprocess)

    def __iter__(self) -> Iterator[Case]:
        for ref in self.refs:
            yield self._reader(ref, self.preprocess)

    @property
    def case_ids(self) -> list[str]:
        return [r.case_id for r in self.refs]

    @property
    def metas(self) -> list[dict]:
        return [dict(r.meta) for r in self.refs]

    def __repr__(self) -> str:
        split = "all cases" if self.split is None else f"split={self.split!r}"
        state = "normalised" if self.preprocess else "raw intensities"
        return f"CaseList({self.dataset!r}, {split}, {len(self)} cases, {state}, root={str(self.root)!r})"


# --------------------------------------------------------------------------------------------------
# Discovery helpers
# --------------------------------------------------------------------------------------------------
def walk(root: Path, max_depth: int) -> Iterator[tuple[Path, list[str], list[str]]]:
    """``os.walk`` limited to ``max_depth`` levels below ``root``, sorted, skipping junk folders."""
    root = Path(root)
    base = len(root.parts)
    for dirpath, dirnames, filenames in os.walk(root):
        path = Path(dirpath)
        depth = len(path.parts) - base
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        if depth >= max_depth:
            dirnames[:] = []
        yield path, dirnames, sorted(f for f in filenames if not f.startswith("._"))


def listing(root: Path, limit: int = 8) -> str:
    """What is actually at ``root``, for error messages: the first few entries, folders marked '/'."""
    root = Path(root)
    if not root.exists():
        return "the folder does not exist"
    if not root.is_dir():
        return "it is a file, not a folder"
    try:
        entries = sorted(root.iterdir(), key=lambda p: p.name)
    except OSError as err:  # pragma: no cover - permissions
        return f"it cannot be listed ({err})"
    if not entries:
        return "the folder is empty"
    names = [e.name + ("/" if e.is_dir() else "") for e in entries[:limit]]
    more = f", … ({len(entries) - limit} more)" if len(entries) > limit else ""
    return "found: " + ", ".join(names) + more


def not_found(dataset: str, root: Path, what: str) -> FileNotFoundError:
    """The error for a root that does not hold the dataset: what was expected, what is there."""
    layout = LAYOUTS[dataset]
    return FileNotFoundError(
        f"{layout.title}: {what} under {str(root)!r} ({listing(root)}).\n"
        f"Expected layout (the publisher's, unchanged):\n{layout.tree}\n"
        f"Run sikd_utils.data.real.fetch({dataset!r}, root) for how to get it."
    )


def check_root(dataset: str, root) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise not_found(dataset, root, "no data folder")
    return root


def natural_key(text: str):
    """Sort 'img2' before 'img10' and '2.tif' before '10.tif'."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", text)]


def unique_by_stem(paths: Sequence[Path], what: str) -> dict[str, Path]:
    """Map stem -> path, refusing two files with the same stem (an archive unpacked twice)."""
    out: dict[str, Path] = {}
    for p in paths:
        if p.stem in out:
            raise ValueError(f"two {what} files share the name {p.stem!r}: {out[p.stem]} and {p}; "
                             f"remove one copy so the pairing is unambiguous")
        out[p.stem] = p
    return out


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------
def read_nifti(path: Path, *, frame: int | None = None, ndim: int = 3, label: bool = False):
    """Read a NIfTI volume (optionally one time frame of a 4D file); return (array, spatial zooms).

    Images come back as float32 with the header's scaling applied; labels as integers after checking
    that every value is integral. Truncated or corrupt files raise ValueError naming the file.
    """
    import nibabel as nib

    try:
        img = nib.load(str(path))
        shape = img.shape
        zooms = tuple(float(z) for z in img.header.get_zooms()[:3])
        if frame is not None:
            if len(shape) != 4:
                raise ValueError(f"expected a 4D (x, y, z, time) volume, got shape {shape}")
            if not 0 <= frame < shape[3]:
                raise ValueError(f"frame index {frame} outside the file's {shape[3]} time frames")
            data = np.asarray(img.dataobj[..., frame])
        else:
            data = np.asarray(img.dataobj)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    except Exception as err:  # nibabel raises many kinds (EOFError, zlib.error, ImageFileError, ...)
        raise ValueError(f"cannot read NIfTI file {path}: {type(err).__name__}: {err}") from err
    while data.ndim > ndim and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim != ndim:
        raise ValueError(f"{path}: expected a {ndim}D volume, got shape {data.shape}")
    if len(zooms) < 3 or any(not np.isfinite(z) or z <= 0 for z in zooms):
        raise ValueError(f"{path}: header voxel spacing {zooms} is not three positive numbers")
    if label:
        return as_label(data, path), zooms
    return as_image(data, path), zooms


def read_picture(path: Path) -> np.ndarray:
    """Read a 2D picture file as an array: (H, W) for greyscale, (H, W, C) for colour.

    Palette images are expanded to their colours; anything PIL cannot decode (garbage bytes, a
    truncated file) raises ValueError naming the file.
    """
    from PIL import Image

    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("P", "PA"):
                im = im.convert("RGBA" if "transparency" in im.info or im.mode == "PA" else "RGB")
            elif im.mode == "CMYK":
                im = im.convert("RGB")
            return np.array(im)
    except Exception as err:
        if path.suffix.lower() in (".tif", ".tiff"):
            try:  # some TIFF flavours are beyond PIL; use tifffile when the reader has it
                import tifffile

                return np.asarray(tifffile.imread(str(path)))
            except ImportError:
                pass
            except Exception:
                pass
        raise ValueError(f"cannot read image file {path}: {type(err).__name__}: {err}") from err


def as_image(data: np.ndarray, path: Path) -> np.ndarray:
    data = np.asarray(data)
    if not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise ValueError(f"{path}: image data has non-numeric type {data.dtype}")
    data = data.astype(np.float32, copy=False)
    if not np.all(np.isfinite(data)):
        n = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
        raise ValueError(f"{path}: image holds {n} NaN or infinite values")
    return data


def as_label(data: np.ndarray, path: Path) -> np.ndarray:
    data = np.asarray(data)
    if data.dtype == bool:
        return data.astype(np.uint8)
    if not np.issubdtype(data.dtype, np.integer):
        if not np.all(np.isfinite(data)) or not np.all(np.equal(np.mod(data, 1), 0)):
            raise ValueError(f"{path}: label map holds non-integer values")
    if data.size and (data.min() < 0 or data.max() > 65535):
        raise ValueError(f"{path}: label values outside [0, 65535] (min {data.min()}, max {data.max()})")
    return data.astype(np.uint16 if data.size and data.max() > 255 else np.uint8)


def check_values(label: np.ndarray, allowed, path: Path, what: str = "label values") -> None:
    """Refuse a label map holding a code the publisher never uses (a wrong file, a wrong dataset)."""
    present = np.unique(label)
    bad = sorted(int(v) for v in present if int(v) not in set(allowed))
    if bad:
        raise ValueError(f"{path}: unexpected {what} {bad}; this dataset uses only {sorted(allowed)}")


def remap(label: np.ndarray, mapping: dict[int, int]) -> np.ndarray:
    """Apply a code -> class lookup table (codes absent from ``mapping`` become 0)."""
    lut = np.zeros(int(max(max(mapping), int(label.max()) if label.size else 0)) + 1, dtype=np.uint8)
    for src, dst in mapping.items():
        lut[src] = dst
    return lut[label]


def check_same_shape(image_shape, label_shape, image_path: Path, label_path: Path) -> None:
    if tuple(image_shape) != tuple(label_shape):
        raise ValueError(
            f"image/label shape mismatch: {image_path} has shape {tuple(image_shape)} but "
            f"{label_path} has shape {tuple(label_shape)}"
        )


_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R BT.601, what PIL's convert('L') uses


def _drop_opaque_alpha(arr: np.ndarray, path: Path) -> np.ndarray:
    alpha = arr[..., -1]
    full = np.iinfo(arr.dtype).max if np.issubdtype(arr.dtype, np.integer) else 1.0
    if not np.all(alpha == full):
        raise ValueError(f"{path}: image has a transparency channel that is not fully opaque; "
                         f"expected a plain picture")
    return arr[..., :-1]


def to_rgb(arr: np.ndarray, path: Path) -> np.ndarray:
    """(H, W, 3) colour picture -> (3, H, W). Greyscale or odd channel counts are errors here."""
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = _drop_opaque_alpha(arr, path)
    if arr.ndim != 3 or arr.shape[2] != 3:
        got = "1 (greyscale)" if arr.ndim == 2 else str(arr.shape[2]) if arr.ndim == 3 else f"shape {arr.shape}"
        raise ValueError(f"{path}: expected an RGB image with 3 channels, got {got}")
    return np.moveaxis(arr, 2, 0)


def to_grey(arr: np.ndarray, path: Path) -> tuple[np.ndarray, bool]:
    """Greyscale picture -> (1, H, W); greyscale stored as RGB collapses to one channel exactly.

    Returns (image, converted) where ``converted`` says the three channels differed (a coloured
    overlay, say) and BT.601 luma was used, which callers record in the case's meta.
    """
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        arr = _drop_opaque_alpha(arr, path)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 2:
        return arr[None], False
    if arr.ndim == 3 and arr.shape[2] == 3:
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            return arr[None, ..., 0], False
        return (arr.astype(np.float32) @ _LUMA)[None], True
    raise ValueError(f"{path}: expected a greyscale image (1 channel, or 3 equal channels), "
                     f"got shape {arr.shape}")


def grey_mask(arr: np.ndarray, path: Path) -> np.ndarray:
    """A mask file as (H, W) grey levels; colour masks are reduced by BT.601 luma (= PIL 'L')."""
    if arr.ndim == 3 and arr.shape[2] in (2, 4):
        arr = arr[..., :-1]
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[2] == 3:
        if np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 0], arr[..., 2]):
            arr = arr[..., 0]
        else:
            arr = np.rint(arr.astype(np.float32) @ _LUMA)
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2D mask, got shape {arr.shape}")
    return arr


#: A JPEG mask whose brightest grey level is below this is taken as empty: compression noise, no lesion.
JPEG_NOISE_FLOOR = 32


def binary_mask(arr: np.ndarray, path: Path) -> np.ndarray:
    """Binary mask -> {0, 1} uint8.

    The rule: grey 0 is background and the lesion is every pixel at or above **half the mask's
    brightest grey level**. For the published 0/255 masks that is the old threshold of 128 (which
    also undoes the ringing of Kvasir-SEG's lossy JPEG masks), and a mask that stores its lesion
    with another level -- 0/1, 0/2, 0/100, 0/127, as re-saved UDIAT/BUSI masks do -- keeps its
    lesion instead of loading empty. A JPEG mask whose brightest level is below
    ``JPEG_NOISE_FLOOR`` (32) holds only compression noise and loads empty.
    """
    grey = grey_mask(arr, path)
    if grey.dtype == bool:
        return grey.astype(np.uint8)
    if not np.all(np.isfinite(grey)):
        raise ValueError(f"{path}: mask holds NaN or infinite values")
    if grey.size and grey.min() < 0:
        raise ValueError(f"{path}: mask holds negative grey levels (min {grey.min()}); expected 0 = background")
    brightest = float(grey.max()) if grey.size else 0.0
    lossy = path.suffix.lower() in (".jpg", ".jpeg")
    if brightest == 0 or (lossy and brightest < JPEG_NOISE_FLOOR):
        return np.zeros(grey.shape, dtype=np.uint8)
    return (grey >= brightest / 2).astype(np.uint8)


# --------------------------------------------------------------------------------------------------
# Case assembly
# --------------------------------------------------------------------------------------------------
def intensity(image: np.ndarray, preprocess: bool, window: tuple[float, float] | None = None) -> np.ndarray:
    """The one place where loaders normalise: same call for train and test, so they cannot differ."""
    if not preprocess:
        return image.astype(np.float32, copy=False)
    if window is not None:
        return window_intensity(image, *window)
    return normalize_percentile(image)


def make_case(image, label, spacing, ref: CaseRef, dataset: str, num_classes: int, where: Path) -> Case:
    try:
        case = Case(image=image, label=label, spacing=spacing, case_id=ref.case_id, domain=dataset,
                    dataset=dataset, meta=dict(ref.meta))
        return case.check_classes(num_classes)
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from err
