"""Tiny fake copies of the real datasets, written in each publisher's exact layout.

No real data can be downloaded where the tests run, so every loader is exercised on files that look
like the real thing in every way the loader can see: folder and file names, formats (.nii.gz, .jpg,
.bmp, .tif, .png), label codes, header spacing, an Info.cfg or information CSV. Each writer returns
what the loader must produce, keyed by case id: the raw image in the loader's channel-first layout
(None where a lossy JPEG makes exact values unknowable) and the label already remapped to the task's
class order. Label maps are built so that every code the publisher uses occurs, which makes a wrong
remap visible.
"""

from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

__all__ = [
    "write_acdc", "write_mnms", "write_synapse", "write_refuge", "write_kvasir", "kvasir_zip_bytes",
    "write_cvc_clinicdb", "write_busi", "write_udiat", "write_nifti", "write_all", "snapshot",
    "ACDC_SHAPE", "MNMS_SHAPE", "SYNAPSE_SHAPE", "IMAGE_HW",
]

ACDC_SHAPE = (8, 8, 3)
MNMS_SHAPE = (8, 7, 3)
SYNAPSE_SHAPE = (8, 8, 4)
IMAGE_HW = (12, 16)  # 2D sets: 16 wide, 12 high


def write_nifti(path: Path, data: np.ndarray, spacing) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    zooms = tuple(spacing) + (1.0,) * (data.ndim - len(spacing))
    img = nib.Nifti1Image(data, np.diag(list(spacing[:3]) + [1.0]))
    img.header.set_zooms(zooms[: data.ndim])
    nib.save(img, str(path))
    return path


def _cycle_label(shape, codes) -> np.ndarray:
    """Every code appears: code k at flat positions k, k + n, k + 2n, ..."""
    flat = np.array([codes[i % len(codes)] for i in range(int(np.prod(shape)))], dtype=np.uint8)
    return flat.reshape(shape)


def _rng(seed):
    return np.random.default_rng(seed)


def _seed(text: str) -> int:
    """A seed from a name that is the same in every process (unlike hash())."""
    return zlib.crc32(text.encode("utf-8"))


# ------------------------------------------------------------------------------------------- ACDC
def write_acdc(root, patients=(1, 2, 3, 4), shape=ACDC_SHAPE, spacing=(1.5, 1.25, 10.0), folder="training",
               ed=1, es=3, nb_frames=4) -> dict:
    """ACDC: <root>/<folder>/patientNNN/{Info.cfg, patientNNN_frameFF[_gt].nii.gz, patientNNN_4d.nii.gz}."""
    root = Path(root)
    expected = {}
    for n in patients:
        name = f"patient{n:03d}"
        pdir = root / folder / name
        pdir.mkdir(parents=True, exist_ok=True)
        (pdir / "Info.cfg").write_text(f"ED: {ed}\nES: {es}\nGroup: DCM\nHeight: 184.0\nNbFrame: {nb_frames}\n"
                                       f"Weight: 95.0\n")
        cine = _rng(n).normal(200.0, 60.0, shape + (nb_frames,)).astype(np.float32)
        write_nifti(pdir / f"{name}_4d.nii.gz", cine, spacing)
        for phase, frame in (("ED", ed), ("ES", es)):
            image = cine[..., frame - 1]
            label = _cycle_label(shape, (0, 1, 2, 3) if phase == "ED" else (3, 2, 1, 0))
            write_nifti(pdir / f"{name}_frame{frame:02d}.nii.gz", image, spacing)
            write_nifti(pdir / f"{name}_frame{frame:02d}_gt.nii.gz", label, spacing)
            expected[f"{name}_{phase}"] = {"image": image[None], "label": label, "spacing": spacing}
    return expected


# ------------------------------------------------------------------------------------------- M&Ms
MNMS_CSV = "211230_M&Ms_Dataset_information_diagnosis_opendataset.csv"
MNMS_CASES = (
    # code, folder, vendor, vendor name, centre, ED, ES (0-based)
    ("A0S9V9", "Training/Labeled", "A", "Siemens", "1", 0, 2),
    ("B3D0N1", "Training/Labeled", "B", "Philips", "2", 1, 3),
    ("C8E6P2", "Validation", "C", "GE", "4", 0, 3),
    ("D1K4R7", "Testing", "D", "Canon", "5", 2, 0),
)


def write_mnms(root, cases=MNMS_CASES, shape=MNMS_SHAPE, spacing=(1.3, 1.3, 9.2), frames=4,
               unlabeled=("E9X9X9",), csv_name=MNMS_CSV) -> dict:
    """M&Ms: <root>/{csv, Training/Labeled/<code>/<code>_sa[_gt].nii.gz, Validation/…, Testing/…}."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = ["External code,VendorName,Vendor,Centre,ED,ES,Pathology,Sex,Age,Height,Weight"]
    expected = {}
    mnms_to_task = np.array([0, 3, 2, 1], dtype=np.uint8)
    for i, (code, folder, vendor, vname, centre, ed, es) in enumerate(cases):
        rows.append(f"{code},{vname},{vendor},{centre},{ed},{es},NOR,M,50,170,70")
        cdir = root / folder / code
        cine = np.empty(shape + (frames,), dtype=np.float32)
        gt = np.zeros(shape + (frames,), dtype=np.uint8)
        for t in range(frames):  # each frame's intensities differ, so reading the wrong frame shows
            cine[..., t] = _rng(100 * i + t).normal(300.0 + 1000.0 * t, 50.0, shape)
        for phase, t in (("ED", ed), ("ES", es)):
            gt[..., t] = _cycle_label(shape, (0, 1, 2, 3) if phase == "ED" else (1, 3, 0, 2))
            expected[f"{code}_{phase}"] = {"image": cine[..., t][None], "label": mnms_to_task[gt[..., t]],
                                           "spacing": spacing, "vendor": vendor, "centre": centre,
                                           "frame_index": t}
        write_nifti(cdir / f"{code}_sa.nii.gz", cine, spacing)
        write_nifti(cdir / f"{code}_sa_gt.nii.gz", gt, spacing)
    for code in unlabeled:  # the publisher ships these without labels
        rows.append(f"{code},Siemens,A,1,0,1,,,,,")
        write_nifti(root / "Training" / "Unlabeled" / code / f"{code}_sa.nii.gz",
                    np.ones(shape + (frames,), np.float32), spacing)
    (root / csv_name).write_text("\n".join(rows) + "\n")
    return expected


# ---------------------------------------------------------------------------------------- Synapse
def write_synapse(root, numbers=(1, 5, 8, 22, 40), shape=SYNAPSE_SHAPE, spacing=(0.75, 0.75, 3.0),
                  testing=(61,)) -> dict:
    """Synapse: <root>/RawData/Training/{img/img00XX.nii.gz, label/label00XX.nii.gz}, Testing/img only."""
    from sikd_utils.data.real import synapse_mapping

    root = Path(root)
    mapping = synapse_mapping()
    lut = np.array([mapping[c] for c in range(14)], dtype=np.uint8)
    expected = {}
    for n in numbers:
        image = _rng(n).integers(-1024, 1500, shape).astype(np.int16)
        label = _cycle_label(shape, tuple(range(14)))
        write_nifti(root / "RawData" / "Training" / "img" / f"img{n:04d}.nii.gz", image, spacing)
        write_nifti(root / "RawData" / "Training" / "label" / f"label{n:04d}.nii.gz", label, spacing)
        expected[f"case{n:04d}"] = {"image": image.astype(np.float32)[None], "label": lut[label],
                                    "source_label": label, "spacing": spacing}
    for n in testing:
        write_nifti(root / "RawData" / "Testing" / "img" / f"img{n:04d}.nii.gz",
                    np.zeros(shape, np.int16), spacing)
    return expected


# ----------------------------------------------------------------------------------------- 2D sets
def _save(path: Path, array: np.ndarray, **kwargs) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, **kwargs)
    return path


def _rgb(seed, hw=IMAGE_HW) -> np.ndarray:
    return _rng(seed).integers(0, 256, hw + (3,)).astype(np.uint8)


def _blob(hw=IMAGE_HW, shift=0) -> np.ndarray:
    """A 0/1 rectangle big enough to survive JPEG compression exactly after thresholding."""
    m = np.zeros(hw, np.uint8)
    m[2:10, 3 + shift:11 + shift] = 1
    return m


def _refuge_mask(hw=IMAGE_HW) -> tuple[np.ndarray, np.ndarray]:
    """Grey levels 255 background, 128 disc rim, 0 cup; and the expected classes 0, 1, 2."""
    grey = np.full(hw, 255, np.uint8)
    grey[2:10, 3:13] = 128
    grey[4:8, 6:10] = 0
    return grey, np.select([grey == 255, grey == 128, grey == 0], [0, 1, 2]).astype(np.uint8)


def write_refuge(root, train=("g0001", "n0001"), val=("V0001",), test=(("T0001", "G"), ("T0002", "N"))) -> dict:
    """REFUGE 2018, each zip unpacked as published (the training zips keep their extra folder level)."""
    root = Path(root)
    grey, classes = _refuge_mask()
    expected = {}

    def add(stem, image_path, mask_path, subset, glaucoma):
        _save(image_path, _rgb(_seed(stem)), quality=95)
        _save(mask_path, grey)  # 8-bit greyscale BMP
        # the GT zips also hold overlay JPEGs with the same names; the loader must ignore them
        _save(mask_path.parent.parent / "Disc_Cup_Fovea_Illustration" / f"{stem}.jpg", _rgb(7))
        expected[stem] = {"image": None, "label": classes, "subset": subset, "glaucoma": glaucoma}

    for stem in train:
        group = "Glaucoma" if stem.startswith("g") else "Non-Glaucoma"
        add(stem, root / "REFUGE-Training400" / "Training400" / group / f"{stem}.jpg",
            root / "Annotation-Training400" / "Annotation-Training400" / "Disc_Cup_Masks" / group / f"{stem}.bmp",
            "train", stem.startswith("g"))
    for stem in val:
        add(stem, root / "REFUGE-Validation400" / f"{stem}.jpg",
            root / "REFUGE-Validation400-GT" / "Disc_Cup_Masks" / f"{stem}.bmp", "val", None)
    for stem, group in test:
        add(stem, root / "Test400" / f"{stem}.jpg",
            root / "REFUGE-Test-GT" / "Disc_Cup_Masks" / group / f"{stem}.bmp", "test", group == "G")
    return expected


KVASIR_NAMES = ("cju0qkwl35piu0993l0dewei2", "cju0qoxqj9q6s0835b43399p4", "cju0roawvklrq0799vmjorwfv",
                "cju0rx1idathl0835detmsp84", "cju0s2a9ekvms080138tjjpxr", "cju0s690hkp960855tjuaqvv0",
                "cju0sr5ghl0nd08789uzf1raf", "cju0sxqiclckk08551ycbwhno", "cju0t4oil7vzk099370nun5h9",
                "cju0tl3uz8blh0993wxvn7ly3")


def write_kvasir(root, names=KVASIR_NAMES, top="Kvasir-SEG") -> dict:
    """Kvasir-SEG as the zip unpacks: <root>/Kvasir-SEG/{images,masks}/<id>.jpg + kavsir_bboxes.json."""
    base = Path(root) / top
    expected = {}
    for i, name in enumerate(names):
        _save(base / "images" / f"{name}.jpg", _rgb(i), quality=90)
        mask = _blob(shift=i % 3)
        _save(base / "masks" / f"{name}.jpg", np.repeat((mask * 255)[..., None], 3, axis=2), quality=75)
        expected[name] = {"image": None, "label": mask}
    (base / "kavsir_bboxes.json").write_text("{}")
    return expected


def kvasir_zip_bytes(n: int = 3, top: str = "Kvasir-SEG", drop_mask: bool = False) -> bytes:
    """A small zip shaped like kvasir-seg.zip (for fetch tests; no network)."""
    from PIL import Image

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(f"{top}/", b"")
        for i in range(n):
            name = KVASIR_NAMES[i]
            for sub, arr in (("images", _rgb(i)), ("masks", np.repeat((_blob() * 255)[..., None], 3, axis=2))):
                if sub == "masks" and drop_mask and i == n - 1:
                    continue
                jpg = io.BytesIO()
                Image.fromarray(arr).save(jpg, format="JPEG", quality=90)
                zf.writestr(f"{top}/{sub}/{name}.jpg", jpg.getvalue())
        zf.writestr(f"{top}/kavsir_bboxes.json", "{}")
        zf.writestr("__MACOSX/._junk", b"x")
    return buf.getvalue()


def write_cvc_clinicdb(root, n=3, layout="original") -> dict:
    """CVC-ClinicDB: 'original' = CVC-ClinicDB/{Original,Ground Truth}/N.tif; 'kaggle' adds PNG/ and TIF/ copies."""
    root = Path(root)
    bases = {"original": [(root / "CVC-ClinicDB", ".tif")],
             "kaggle": [(root / "PNG", ".png"), (root / "TIF", ".tif")]}[layout]
    expected = {}
    for k in range(1, n + 1):
        image, mask = _rgb(40 + k), _blob(shift=k % 2)
        for base, ext in bases:
            _save(base / "Original" / f"{k}{ext}", image)
            _save(base / "Ground Truth" / f"{k}{ext}", mask * 255)
        expected[str(k)] = {"image": np.moveaxis(image, 2, 0).astype(np.float32), "label": mask}
    return expected


def write_busi(root) -> dict:
    """BUSI: <root>/Dataset_BUSI_with_GT/{benign,malignant,normal}/'<cls> (k).png' + '_mask[_j].png'."""
    base = Path(root) / "Dataset_BUSI_with_GT"
    expected = {}

    def add(cls, k, masks, stored_as_rgb=True):
        grey = _rng(_seed(f"{cls}{k}")).integers(0, 256, IMAGE_HW).astype(np.uint8)
        stem = f"{cls} ({k})"
        stored = np.repeat(grey[..., None], 3, axis=2) if stored_as_rgb else grey
        _save(base / cls / f"{stem}.png", stored)
        union = np.zeros(IMAGE_HW, np.uint8)
        for j, m in enumerate(masks):
            suffix = "_mask" if j == 0 else f"_mask_{j}"
            _save(base / cls / f"{stem}{suffix}.png", m * 255)
            union = np.maximum(union, m)
        expected[stem] = {"image": grey[None].astype(np.float32), "label": union, "class": cls, "n_masks": len(masks)}

    second = np.zeros(IMAGE_HW, np.uint8)
    second[9:12, 12:16] = 1  # a second lesion, only in the _mask_1 file
    add("benign", 1, [_blob()])
    add("benign", 2, [_blob(), second])
    add("malignant", 1, [_blob(shift=2)], stored_as_rgb=False)
    add("normal", 1, [np.zeros(IMAGE_HW, np.uint8)])
    return expected


def write_udiat(root, n=3) -> dict:
    """UDIAT Dataset B: <root>/BUS_Dataset_B/{original,GT}/00000k.png (+ DatasetB.xlsx, not read)."""
    base = Path(root) / "BUS_Dataset_B"
    expected = {}
    for k in range(1, n + 1):
        grey = _rng(70 + k).integers(0, 256, IMAGE_HW).astype(np.uint8)
        mask = _blob(shift=k % 3)
        _save(base / "original" / f"{k:06d}.png", grey)
        _save(base / "GT" / f"{k:06d}.png", mask * 255)
        expected[f"{k:06d}"] = {"image": grey[None].astype(np.float32), "label": mask}
    (base / "DatasetB.xlsx").write_bytes(b"PK not really a spreadsheet")
    return expected


WRITERS = {
    "acdc": write_acdc, "mnms": write_mnms, "synapse": write_synapse, "refuge": write_refuge,
    "kvasir": write_kvasir, "cvc_clinicdb": write_cvc_clinicdb, "busi": write_busi, "udiat": write_udiat,
}


def write_all(root) -> dict[str, tuple[Path, dict]]:
    """Every fake dataset in its own folder under root: {dataset: (its root, expected)}."""
    out = {}
    for key, writer in WRITERS.items():
        folder = Path(root) / key
        out[key] = (folder, writer(folder))
    return out


def snapshot(root) -> dict[str, tuple[int, int]]:
    """Every file and folder under root with (size, mtime_ns): proof that nothing was written."""
    root = Path(root)
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}
