"""Real-data loaders, exercised on tiny fake files written in each publisher's exact layout."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import numpy as np
import pytest

from sikd_utils.data import TASKS
from sikd_utils.data import real
from sikd_utils.data.preprocess import window_intensity

try:  # tests/ may or may not be a package
    from . import fake_datasets as fake
except ImportError:  # pragma: no cover - depends on how pytest imports tests/
    import fake_datasets as fake


def _quiet_load(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return real.load(*args, **kwargs)


@pytest.fixture(scope="module")
def fakes(tmp_path_factory):
    """Every fake dataset written once; tests that modify files write their own copy."""
    return fake.write_all(tmp_path_factory.mktemp("fake_data"))


# ------------------------------------------------------------------------------------ every dataset
@pytest.mark.parametrize("dataset", real.DATASETS)
def test_every_dataset_loads_in_the_task_format(fakes, dataset):
    root, expected = fakes[dataset]
    task = TASKS[real.task_of(dataset)]
    cases = _quiet_load(dataset, root)
    assert sorted(cases.case_ids) == sorted(expected)
    assert len(cases) == len(expected)
    for case in cases:
        want = expected[case.case_id]
        assert case.dataset == dataset and case.domain == dataset
        assert case.image.dtype == np.float32
        assert case.image.shape[0] == task.in_channels
        assert case.label.ndim == task.spatial_dims
        assert case.image.shape[1:] == case.label.shape == want["label"].shape
        np.testing.assert_array_equal(case.label, want["label"])  # remap to the task's class order
        assert case.label.max() < task.num_classes
        assert 0.0 <= case.image.min() and case.image.max() <= 1.0  # normalised by load itself
        assert case.image.max() == pytest.approx(1.0) and case.image.min() == pytest.approx(0.0)
        if task.spatial_dims == 3:
            np.testing.assert_allclose(case.spacing, want["spacing"], rtol=1e-6)  # from the header
        else:
            assert case.spacing == (1.0, 1.0)  # pixels: no physical size is published


@pytest.mark.parametrize("dataset", real.DATASETS)
def test_preprocess_false_returns_raw_intensities(fakes, dataset):
    root, expected = fakes[dataset]
    cases = _quiet_load(dataset, root, preprocess=False)
    checked = 0
    for case in cases:
        want = expected[case.case_id]["image"]
        assert case.image.dtype == np.float32
        if want is None:  # stored as lossy JPEG: exact values unknowable, but surely not normalised
            assert case.image.max() > 1.0
            continue
        np.testing.assert_array_equal(case.image, want)
        checked += 1
    assert checked or dataset in ("refuge", "kvasir")


def test_case_list_is_lazy_sliceable_and_materialisable(fakes, monkeypatch):
    root, _ = fakes["udiat"]
    cases = real.load("udiat", root)
    calls = []
    reader = cases._reader
    cases._reader = lambda ref, pre: calls.append(ref.case_id) or reader(ref, pre)
    assert calls == []  # indexing read no pixel
    part = cases[1:]
    assert isinstance(part, real.CaseList) and part.case_ids == ["000002", "000003"]
    assert part[0].case_id == "000002" and calls == ["000002"]
    eager = real.load("udiat", root, lazy=False)
    assert [c.case_id for c in eager] == cases.case_ids and eager[0] is eager[0]
    assert "udiat" in repr(cases) and "3 cases" in repr(cases)


# ------------------------------------------------------------------------------------- ACDC
def test_acdc_official_split_membership(tmp_path):
    # 1, 3, 5 are train, 2 and 7 val, 4 and 16 test in the official list
    fake.write_acdc(tmp_path, patients=(1, 2, 3, 4, 5, 7, 16))
    with pytest.warns(UserWarning, match="67 of its 70 patients are not"):
        train = real.load("acdc", tmp_path, split="train")
    assert train.case_ids == [f"patient{n:03d}_{p}" for n in (1, 3, 5) for p in ("ED", "ES")]
    with pytest.warns(UserWarning):
        assert {m["patient"] for m in real.load("acdc", tmp_path, split="val").metas} == {"patient002", "patient007"}
    with pytest.warns(UserWarning):
        assert {m["patient"] for m in real.load("acdc", tmp_path, split="test").metas} == {"patient004", "patient016"}
    assert len(real.load("acdc", tmp_path)) == 14  # split=None: everything, ED + ES each
    assert real.ACDC_SPLITS["train"].isdisjoint(real.ACDC_SPLITS["val"] | real.ACDC_SPLITS["test"])
    assert sum(len(v) for v in real.ACDC_SPLITS.values()) == 100


def test_acdc_frames_come_from_info_cfg(tmp_path):
    expected = fake.write_acdc(tmp_path, patients=(6,), ed=2, es=4, nb_frames=5)
    cases = real.load("acdc", tmp_path, preprocess=False)
    assert [c.meta["frame_number"] for c in cases] == [2, 4]
    assert [c.meta["frame"] for c in cases] == ["ED", "ES"]
    for c in cases:
        np.testing.assert_array_equal(c.image, expected[c.case_id]["image"])
    assert cases[0].meta["group"] == "DCM" and cases[0].meta["official_split"] == "train"


def test_acdc_2023_release_with_testing_folder(tmp_path):
    fake.write_acdc(tmp_path / "database", patients=(1,), folder="training")
    fake.write_acdc(tmp_path / "database", patients=(101,), folder="testing")
    cases = real.load("acdc", tmp_path)
    assert {m["patient"] for m in cases.metas} == {"patient001", "patient101"}
    assert [m["official_split"] for m in cases.metas if m["patient"] == "patient101"] == [None, None]


# ------------------------------------------------------------------------------------- M&Ms
def test_mnms_remaps_lv_rv_and_reads_the_csv_frames(fakes):
    root, expected = fakes["mnms"]
    cases = real.load("mnms", root, preprocess=False)
    for case in cases:
        want = expected[case.case_id]
        np.testing.assert_array_equal(case.image, want["image"])  # right time frame (intensities differ)
        assert case.meta["frame_index"] == want["frame_index"]
        assert case.meta["vendor"] == want["vendor"] and case.meta["centre"] == want["centre"]
    # explicit check of the swap on one voxel of each code
    a = cases[[c.case_id for c in cases].index("A0S9V9_ED")]
    assert list(a.label.ravel()[:4]) == [0, 3, 2, 1]  # source codes 0,1(LV),2(MYO),3(RV)
    assert "E9X9X9_ED" not in cases.case_ids  # Training/Unlabeled is skipped


def test_mnms_splits_are_the_publisher_folders_and_vendor_filter(fakes):
    root, _ = fakes["mnms"]
    assert {m["code"] for m in real.load("mnms", root, split="train").metas} == {"A0S9V9", "B3D0N1"}
    assert {m["code"] for m in real.load("mnms", root, split="val").metas} == {"C8E6P2"}
    assert {m["code"] for m in real.load("mnms", root, split="test").metas} == {"D1K4R7"}
    assert {m["vendor"] for m in real.load("mnms", root, vendors=("B", "C")).metas} == {"B", "C"}


def test_mnms_older_csv_name_is_found(tmp_path):
    fake.write_mnms(tmp_path, cases=fake.MNMS_CASES[:1], csv_name="201014_M&Ms_Dataset_Information_-_opendataset.csv")
    assert len(real.load("mnms", tmp_path)) == 2


def test_mnms_missing_csv_and_missing_row(tmp_path):
    fake.write_mnms(tmp_path, cases=fake.MNMS_CASES[:1])
    csv = tmp_path / fake.MNMS_CSV
    text = csv.read_text()
    csv.unlink()
    with pytest.raises(FileNotFoundError, match="M&Ms_Dataset_Information"):
        real.load("mnms", tmp_path)
    csv.write_text("\n".join(line for line in text.splitlines() if not line.startswith("A0S9V9")))
    with pytest.raises(ValueError, match="A0S9V9.*has no row"):
        real.load("mnms", tmp_path)


# ---------------------------------------------------------------------------------- Synapse
def test_synapse_maps_13_organs_to_the_8_task_organs_by_name(fakes):
    root, expected = fakes["synapse"]
    case = real.load("synapse", root)[0]
    names = TASKS["abdomen"].class_names
    source = expected[case.case_id]["source_label"]
    for code, organ in real.SYNAPSE_ORGANS.items():
        got = set(np.unique(case.label[source == code]).tolist())
        assert got == ({names.index(organ)} if organ in names else {0}), organ
    assert set(np.unique(case.label).tolist()) == set(range(9))


def test_synapse_uses_the_transunet_hu_window_and_case_split(fakes):
    root, expected = fakes["synapse"]
    case = real.load("synapse", root)[0]
    raw = expected[case.case_id]["image"]
    np.testing.assert_allclose(case.image, window_intensity(raw, -125, 275), atol=1e-6)
    with pytest.warns(UserWarning, match="16 of its 18 cases are not"):
        assert real.load("synapse", root, split="train").case_ids == ["case0005", "case0040"]
    with pytest.warns(UserWarning):
        assert real.load("synapse", root, split="test").case_ids == ["case0001", "case0008", "case0022"]
    assert "case0061" not in real.load("synapse", root).case_ids  # RawData/Testing has no labels
    assert len(real.SYNAPSE_SPLITS["train"]) == 18 and len(real.SYNAPSE_SPLITS["test"]) == 12


# ----------------------------------------------------------------------------------- REFUGE
def test_refuge_grey_levels_splits_and_glaucoma(fakes):
    root, expected = fakes["refuge"]
    cases = real.load("refuge", root)
    for case in cases:
        assert case.meta["subset"] == expected[case.case_id]["subset"]
        assert case.meta["glaucoma"] == expected[case.case_id]["glaucoma"]
    grey, classes = fake._refuge_mask()
    assert set(np.unique(classes[grey == 0])) == {2} and set(np.unique(classes[grey == 128])) == {1}
    assert real.load("refuge", root, split="train").case_ids == ["g0001", "n0001"]
    assert real.load("refuge", root, split="val").case_ids == ["V0001"]
    assert real.load("refuge", root, split="test").case_ids == ["T0001", "T0002"]


# ----------------------------------------------------------------------------------- Kvasir
def test_kvasir_fallback_split_is_deterministic_documented_and_warned(fakes):
    root, expected = fakes["kvasir"]
    with pytest.warns(UserWarning, match="not the official split"):
        test = real.load("kvasir", root, split="test")
    with pytest.warns(UserWarning):
        train = real.load("kvasir", root, split="train")
    assert len(test) == round(0.12 * len(expected)) and len(train) + len(test) == len(expected)
    assert set(test.case_ids).isdisjoint(train.case_ids)
    with pytest.warns(UserWarning):
        assert real.load("kvasir", root, split="test").case_ids == test.case_ids


def test_kvasir_uses_official_split_files_when_present(tmp_path):
    names = fake.write_kvasir(tmp_path)
    stems = sorted(names)
    (tmp_path / "train.txt").write_text("\n".join(stems[:7]) + "\n")
    (tmp_path / "val.txt").write_text("\n".join(f"{s}.jpg" for s in stems[7:]) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no fallback warning
        assert real.load("kvasir", tmp_path, split="test").case_ids == stems[7:]
        assert real.load("kvasir", tmp_path, split="train").metas[0]["split_source"].startswith("official")


def test_kvasir_jpeg_masks_are_thresholded(tmp_path):
    fake.write_kvasir(tmp_path, names=fake.KVASIR_NAMES[:1])
    mask_file = tmp_path / "Kvasir-SEG" / "masks" / f"{fake.KVASIR_NAMES[0]}.jpg"
    from PIL import Image

    raw = np.asarray(Image.open(mask_file))
    assert len(np.unique(raw)) > 2  # the JPEG really is lossy: grey levels besides 0 and 255
    case = real.load("kvasir", tmp_path)[0]
    np.testing.assert_array_equal(case.label, fake._blob())


# ------------------------------------------------------------------------------ CVC, BUSI, UDIAT
def test_cvc_clinicdb_kaggle_repack_prefers_tif(tmp_path):
    expected = fake.write_cvc_clinicdb(tmp_path, n=2, layout="kaggle")
    cases = real.load("cvc_clinicdb", tmp_path, preprocess=False)
    assert cases.case_ids == ["1", "2"] and {m["format"] for m in cases.metas} == {".tif"}
    np.testing.assert_array_equal(cases[1].image, expected["2"]["image"])


def test_busi_unions_multiple_masks_and_stores_one_channel(fakes):
    root, expected = fakes["busi"]
    cases = real.load("busi", root)
    two = cases[cases.case_ids.index("benign (2)")]
    assert two.meta["n_masks"] == 2 and two.image.shape[0] == 1
    np.testing.assert_array_equal(two.label, expected["benign (2)"]["label"])
    assert two.label.sum() > fake._blob().sum()  # the _mask_1 lesion was added, not dropped
    assert cases[cases.case_ids.index("normal (1)")].label.sum() == 0
    assert {m["class"] for m in real.load("busi", root, classes=("benign", "malignant")).metas} == {"benign", "malignant"}


# ------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("dataset", real.DATASETS)
def test_missing_root_says_what_was_expected(tmp_path, dataset):
    with pytest.raises(FileNotFoundError) as err:
        real.load(dataset, tmp_path / "nowhere")
    msg = str(err.value)
    assert "does not exist" in msg and "Expected layout" in msg and str(tmp_path / "nowhere") in msg
    assert real.LAYOUTS[dataset].tree.splitlines()[1] in msg


@pytest.mark.parametrize("dataset", real.DATASETS)
def test_wrong_root_lists_what_was_found(fakes, dataset):
    other = "busi" if dataset != "busi" else "acdc"
    root, _ = fakes[other]
    with pytest.raises(FileNotFoundError) as err:
        real.load(dataset, root)
    first_entry = sorted(p.name for p in root.iterdir())[0]
    assert f"found: {first_entry}/" in str(err.value)


def test_unknown_split_dataset_and_option(fakes):
    with pytest.raises(ValueError, match=r"valid: None, 'train', 'val', 'test'"):
        real.load("acdc", fakes["acdc"][0], split="training")
    with pytest.raises(ValueError, match=r"valid: None\."):
        real.load("busi", fakes["busi"][0], split="train")
    with pytest.raises(KeyError, match="choose one of"):
        real.load("acdc2", fakes["acdc"][0])
    with pytest.raises(TypeError, match="unknown option"):
        real.load("acdc", fakes["acdc"][0], vendors="A")


def _acdc_one(tmp_path):
    fake.write_acdc(tmp_path, patients=(1,))
    return tmp_path / "training" / "patient001"


def test_acdc_unknown_label_value_names_the_file(tmp_path):
    pdir = _acdc_one(tmp_path)
    gt = pdir / "patient001_frame01_gt.nii.gz"
    label = fake._cycle_label(fake.ACDC_SHAPE, (0, 1, 2, 3))
    label[0, 0, 0] = 7
    fake.write_nifti(gt, label, (1.5, 1.25, 10.0))
    with pytest.raises(ValueError, match=r"patient001_frame01_gt\.nii\.gz.*unexpected label values \[7\]"):
        real.load("acdc", tmp_path)[0]


def test_acdc_shape_mismatch_names_both_files(tmp_path):
    pdir = _acdc_one(tmp_path)
    fake.write_nifti(pdir / "patient001_frame03_gt.nii.gz", np.zeros((8, 8, 2), np.uint8), (1.5, 1.25, 10.0))
    with pytest.raises(ValueError, match=r"shape mismatch.*patient001_frame03\.nii\.gz.*patient001_frame03_gt"):
        real.load("acdc", tmp_path)[1]


def test_nan_intensities_name_the_file(tmp_path):
    pdir = _acdc_one(tmp_path)
    image = np.ones(fake.ACDC_SHAPE, np.float32)
    image[1, 1, 1] = np.nan
    fake.write_nifti(pdir / "patient001_frame01.nii.gz", image, (1.5, 1.25, 10.0))
    with pytest.raises(ValueError, match=r"patient001_frame01\.nii\.gz.*NaN"):
        real.load("acdc", tmp_path, preprocess=False)[0]


def test_truncated_nifti_names_the_file(tmp_path):
    pdir = _acdc_one(tmp_path)
    f = pdir / "patient001_frame03.nii.gz"
    f.write_bytes(f.read_bytes()[:60])
    with pytest.raises(ValueError, match=r"cannot read NIfTI file .*patient001_frame03\.nii\.gz"):
        real.load("acdc", tmp_path)[1]
    f.write_bytes(gzip.compress(b"not a nifti header at all" * 20))
    with pytest.raises(ValueError, match=r"patient001_frame03\.nii\.gz"):
        real.load("acdc", tmp_path)[1]


def test_missing_gt_and_info_cfg_are_named(tmp_path):
    pdir = _acdc_one(tmp_path)
    (pdir / "patient001_frame03_gt.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"no label for .*patient001_frame03\.nii\.gz"):
        real.load("acdc", tmp_path)
    (pdir / "Info.cfg").write_text("Group: DCM\n")
    with pytest.raises(ValueError, match=r"Info\.cfg.*ED and ES"):
        real.load("acdc", tmp_path)
    (pdir / "Info.cfg").unlink()
    with pytest.raises(FileNotFoundError, match=r"Info\.cfg is missing"):
        real.load("acdc", tmp_path)


def test_refuge_unknown_grey_level_names_the_mask(tmp_path):
    fake.write_refuge(tmp_path, train=("g0001",), val=(), test=())
    mask = next(tmp_path.rglob("Disc_Cup_Masks/Glaucoma/g0001.bmp"))
    grey, _ = fake._refuge_mask()
    grey[0, 0] = 50
    fake._save(mask, grey)
    with pytest.raises(ValueError, match=r"g0001\.bmp.*unexpected mask grey levels \[50\]"):
        real.load("refuge", tmp_path)[0]


def test_missing_masks_name_the_image(tmp_path):
    fake.write_kvasir(tmp_path / "k", names=fake.KVASIR_NAMES[:2])
    (tmp_path / "k" / "Kvasir-SEG" / "masks" / f"{fake.KVASIR_NAMES[1]}.jpg").unlink()
    with pytest.raises(FileNotFoundError, match=rf"no mask for image .*{fake.KVASIR_NAMES[1]}\.jpg"):
        real.load("kvasir", tmp_path / "k")
    fake.write_busi(tmp_path / "b")
    (tmp_path / "b" / "Dataset_BUSI_with_GT" / "malignant" / "malignant (1)_mask.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"no mask for image .*malignant \(1\)\.png"):
        real.load("busi", tmp_path / "b")
    fake.write_refuge(tmp_path / "r", train=(), val=("V0001",), test=())
    next((tmp_path / "r").rglob("V0001.bmp")).unlink()
    with pytest.raises(FileNotFoundError, match=r"no mask for image .*V0001\.jpg"):
        real.load("refuge", tmp_path / "r")


def test_wrong_channel_counts_are_refused(tmp_path):
    fake.write_kvasir(tmp_path / "k", names=fake.KVASIR_NAMES[:1])
    image = tmp_path / "k" / "Kvasir-SEG" / "images" / f"{fake.KVASIR_NAMES[0]}.jpg"
    fake._save(image, np.zeros(fake.IMAGE_HW, np.uint8))  # greyscale where RGB is published
    with pytest.raises(ValueError, match=rf"{fake.KVASIR_NAMES[0]}\.jpg: expected an RGB image with 3 channels, got 1"):
        real.load("kvasir", tmp_path / "k")[0]
    fake.write_udiat(tmp_path / "u", n=1)
    rgba = np.zeros(fake.IMAGE_HW + (4,), np.uint8)  # a half-transparent picture is not an ultrasound frame
    rgba[..., 3] = 100
    fake._save(tmp_path / "u" / "BUS_Dataset_B" / "original" / "000001.png", rgba)
    with pytest.raises(ValueError, match=r"000001\.png: image has a transparency channel"):
        real.load("udiat", tmp_path / "u")[0]


def test_garbage_image_files_name_the_file(tmp_path):
    fake.write_udiat(tmp_path, n=2)
    bad = tmp_path / "BUS_Dataset_B" / "GT" / "000002.png"
    bad.write_bytes(b"\x89PNG garbage, not an image")
    cases = real.load("udiat", tmp_path)
    assert cases[0].case_id == "000001"  # the good case still loads
    with pytest.raises(ValueError, match=r"cannot read image file .*GT/000002\.png"):
        cases[1]


def test_2d_shape_mismatch_names_both_files(tmp_path):
    fake.write_cvc_clinicdb(tmp_path, n=1)
    fake._save(tmp_path / "CVC-ClinicDB" / "Ground Truth" / "1.tif", np.zeros((5, 5), np.uint8))
    with pytest.raises(ValueError, match=r"shape mismatch.*Original/1\.tif.*\(12, 16\).*Ground Truth/1\.tif.*\(5, 5\)"):
        real.load("cvc_clinicdb", tmp_path)[0]


def test_loading_never_writes_into_the_data_folder(fakes):
    data_root = next(iter(fakes.values()))[0].parent
    before = fake.snapshot(data_root)
    for dataset, (root, _) in fakes.items():
        for case in _quiet_load(dataset, root):
            assert case.image.size
        for split in real._DATASETS[dataset].splits:
            list(_quiet_load(dataset, root, split=split, preprocess=False))
    assert fake.snapshot(data_root) == before


# ------------------------------------------------------------------------------- describe, fetch
@pytest.mark.parametrize("dataset", real.DATASETS)
def test_describe_gives_access_tree_labels_and_splits(dataset):
    text = real.describe(dataset)
    layout = real.LAYOUTS[dataset]
    for part in (layout.where, layout.tree, layout.labels, layout.splits):
        assert part in text
    assert layout.task in TASKS


def _no_network(*args, **kwargs):
    raise AssertionError("the network must not be touched")


@pytest.mark.parametrize("dataset", [d for d in real.DATASETS if d not in real.ARCHIVES])
def test_fetch_prints_instructions_for_gated_sets(tmp_path, capsys, monkeypatch, dataset):
    monkeypatch.setattr(real.download, "_download", _no_network)
    assert real.fetch(dataset, tmp_path) is None
    out = capsys.readouterr().out
    assert real.LAYOUTS[dataset].where in out and real.LAYOUTS[dataset].tree in out
    assert f"load({dataset!r}, {str(tmp_path)!r})" in out
    assert list(tmp_path.iterdir()) == []


def _serve(payload: bytes, calls: list):
    def fake_download(url, dest, desc, **limits):
        calls.append(url)
        Path(dest).write_bytes(payload)
    return fake_download


def test_fetch_kvasir_downloads_verifies_and_unpacks(tmp_path, capsys, monkeypatch):
    import dataclasses
    import hashlib

    payload = fake.kvasir_zip_bytes(3)
    calls = []
    monkeypatch.setattr(real.download, "_download", _serve(payload, calls))
    small = dataclasses.replace(real.ARCHIVES["kvasir"], counts={"images": 3, "masks": 3})
    monkeypatch.setitem(real.ARCHIVES, "kvasir", small)
    target = real.fetch("kvasir", tmp_path / "data", sha256=hashlib.sha256(payload).hexdigest())
    assert calls == [small.url] and target == tmp_path / "data" / "Kvasir-SEG"
    out = capsys.readouterr().out
    assert hashlib.sha256(payload).hexdigest() in out and "no checksum" in out
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["Kvasir-SEG"]  # temp folder gone
    assert not (target / "__MACOSX").exists()
    assert len(real.load("kvasir", tmp_path / "data")) == 3
    assert real.fetch("kvasir", tmp_path / "data") == target and calls == [small.url]  # not again


def test_fetch_checksum_mismatch_leaves_root_untouched(tmp_path, monkeypatch):
    import dataclasses

    monkeypatch.setattr(real.download, "_download", _serve(fake.kvasir_zip_bytes(3), []))
    monkeypatch.setitem(real.ARCHIVES, "kvasir",
                        dataclasses.replace(real.ARCHIVES["kvasir"], counts={"images": 3, "masks": 3}))
    with pytest.raises(ValueError, match="SHA-256 checksum mismatch"):
        real.fetch("kvasir", tmp_path, sha256="0" * 64)
    with pytest.raises(ValueError, match="MD5 checksum mismatch"):
        real.fetch("kvasir", tmp_path, md5="0" * 32)
    assert list(tmp_path.iterdir()) == []


def test_fetch_refuses_an_archive_with_the_wrong_content(tmp_path, monkeypatch):
    # the real expectation: 1000 images + 1000 masks; a 3-image zip must be refused
    monkeypatch.setattr(real.download, "_download", _serve(fake.kvasir_zip_bytes(3), []))
    with pytest.raises(ValueError, match=r"'images/' holds 3 .jpg files, expected 1000"):
        real.fetch("kvasir", tmp_path)
    monkeypatch.setattr(real.download, "_download", _serve(b"<html>moved</html>", []))
    with pytest.raises(ValueError, match="did not serve a zip"):
        real.fetch("kvasir", tmp_path)
    import dataclasses

    monkeypatch.setitem(real.ARCHIVES, "kvasir",
                        dataclasses.replace(real.ARCHIVES["kvasir"], counts={"images": 3, "masks": 3}))
    monkeypatch.setattr(real.download, "_download", _serve(fake.kvasir_zip_bytes(3, drop_mask=True), []))
    with pytest.raises(ValueError, match="'masks/' holds 2"):
        real.fetch("kvasir", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_opaque_alpha_and_greyscale_stored_as_rgb_are_accepted(tmp_path):
    expected = fake.write_udiat(tmp_path, n=2)
    grey = expected["000001"]["image"][0].astype(np.uint8)
    rgba = np.dstack([grey, grey, grey, np.full_like(grey, 255)])  # exported with an opaque alpha
    fake._save(tmp_path / "BUS_Dataset_B" / "original" / "000001.png", rgba)
    case = real.load("udiat", tmp_path, preprocess=False)[0]
    assert case.image.shape == (1,) + fake.IMAGE_HW and "converted_from_colour" not in case.meta
    np.testing.assert_array_equal(case.image, expected["000001"]["image"])


def test_fetch_interrupted_while_unpacking_leaves_no_partial_dataset(tmp_path, monkeypatch):
    import dataclasses

    monkeypatch.setattr(real.download, "_download", _serve(fake.kvasir_zip_bytes(3), []))
    monkeypatch.setitem(real.ARCHIVES, "kvasir",
                        dataclasses.replace(real.ARCHIVES["kvasir"], counts={"images": 3, "masks": 3}))
    copied = []

    def copy_then_fail(src, dst, *args):
        if copied:
            raise OSError("disk full")
        copied.append(dst)
        dst.write(src.read())

    monkeypatch.setattr(real.download.shutil, "copyfileobj", copy_then_fail)
    with pytest.raises(OSError, match="disk full"):
        real.fetch("kvasir", tmp_path)
    assert copied and list(tmp_path.iterdir()) == []


def test_masks_saved_as_0_1_are_kept_and_dataset_keys_are_forgiving(tmp_path):
    expected = fake.write_udiat(tmp_path, n=1)
    fake._save(tmp_path / "BUS_Dataset_B" / "GT" / "000001.png", expected["000001"]["label"])  # 0/1, not 0/255
    case = real.load("UDIAT", tmp_path)[0]
    np.testing.assert_array_equal(case.label, expected["000001"]["label"])
    assert case.dataset == "udiat"


def test_fetch_without_network_explains_the_manual_route(tmp_path, monkeypatch):
    import urllib.error

    def offline(url, dest, desc, **limits):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(real.download, "_download", offline)
    with pytest.raises(ConnectionError, match=r"kvasir-seg\.zip elsewhere and unzip it into"):
        real.fetch("Kvasir", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_coloured_ultrasound_is_reduced_to_luma_and_flagged(tmp_path):
    fake.write_udiat(tmp_path, n=1)
    colour = fake._rgb(3)
    fake._save(tmp_path / "BUS_Dataset_B" / "original" / "000001.png", colour)
    case = real.load("udiat", tmp_path, preprocess=False)[0]
    assert case.image.shape == (1,) + fake.IMAGE_HW and case.meta["converted_from_colour"] is True
    np.testing.assert_allclose(case.image[0], colour.astype(np.float32) @ np.array([0.299, 0.587, 0.114]),
                               rtol=1e-5)
