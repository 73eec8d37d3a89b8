"""What each real dataset looks like on disk once unpacked: the one source of truth.

The loaders' "not found" errors, ``describe()`` and ``fetch()``'s instructions all print these texts, so
what a reader is told to build is exactly what the loader looks for. Each layout is the publisher's own;
the loaders search a few folder levels below the root you give, so one extra folder level from
unzipping (``root/Kvasir-SEG/…`` or ``root/kvasir-seg/Kvasir-SEG/…``) is fine.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Layout", "LAYOUTS", "describe"]


@dataclass(frozen=True)
class Layout:
    key: str
    title: str
    task: str  # key of sikd_utils.data.TASKS
    access: str  # "public download", "registration", "on request"
    where: str  # URL to download from or register at
    get: str  # what to download and how to unpack it
    tree: str  # the expected folder tree under the root passed to load()
    labels: str  # label codes in the files and how load() maps them
    splits: str  # what load(split=...) accepts
    spacing: str
    cite: str


LAYOUTS: dict[str, Layout] = {
    "acdc": Layout(
        key="acdc",
        title="ACDC (Automated Cardiac Diagnosis Challenge, cine MRI)",
        task="cardiac",
        access="registration",
        where="https://www.creatis.insa-lyon.fr/Challenge/acdc/ (data now served by the Human Heart "
              "Project database: https://humanheart-project.creatis.insa-lyon.fr/database/)",
        get="Create an account, accept the terms, download the ACDC dataset archive and unzip it. "
            "Pass the unzipped folder (the one holding training/, or database/ in the 2023 release) "
            "as root.",
        tree="""\
<root>/                                  e.g. ACDC/database/
└── training/
    ├── patient001/
    │   ├── Info.cfg                     lines 'ED: 1', 'ES: 12', 'Group: DCM', 'NbFrame: 30', ...
    │   ├── patient001_4d.nii.gz         (the whole cine; not read)
    │   ├── patient001_frame01.nii.gz    ED frame (number from Info.cfg, 1-based, 2 digits)
    │   ├── patient001_frame01_gt.nii.gz
    │   ├── patient001_frame12.nii.gz    ES frame
    │   └── patient001_frame12_gt.nii.gz
    ├── patient002/ …
    └── patient100/
(testing/patient101…150, labelled in the 2023 release, are read too when present; they belong to no
official split and are returned only with split=None)""",
        labels="gt files: 0 background, 1 RV, 2 MYO, 3 LV -- already the cardiac task's order; any "
               "other value is an error.",
        splits="'train' (70 patients), 'val' (15), 'test' (15): the official SIKD split of the 100 "
               "training patients, ED and ES frames of each; None = every patient found.",
        spacing="from each frame's NIfTI header (mm).",
        cite="O. Bernard et al., IEEE TMI 37(11):2514-2525, 2018.",
    ),
    "mnms": Layout(
        key="mnms",
        title="M&Ms (Multi-Centre, Multi-Vendor & Multi-Disease Cardiac Segmentation, 2020)",
        task="cardiac",
        access="registration",
        where="https://www.ub.edu/mnms/ (fill in the form, accept the terms; a download link is mailed)",
        get="Download the OpenDataset archive and unzip it; pass the folder holding Training/, "
            "Validation/, Testing/ and the information CSV as root.",
        tree="""\
<root>/                                  e.g. OpenDataset/
├── 211230_M&Ms_Dataset_information_diagnosis_opendataset.csv
│       (or 201014_M&Ms_Dataset_Information_-_opendataset.csv; any '*M&Ms_Dataset_Information*.csv')
│       columns: External code, VendorName, Vendor, Centre, ED, ES (ED/ES: 0-based time indices)
├── Training/
│   ├── Labeled/A0S9V9/A0S9V9_sa.nii.gz      4D short-axis cine (x, y, z, t)
│   │                 A0S9V9_sa_gt.nii.gz    4D labels, non-empty at the ED and ES frames
│   └── Unlabeled/…                          (no labels; skipped)
├── Validation/<code>/<code>_sa.nii.gz, <code>_sa_gt.nii.gz
└── Testing/<code>/<code>_sa.nii.gz, <code>_sa_gt.nii.gz""",
        labels="gt files: 0 background, 1 LV, 2 MYO, 3 RV (reverse of ACDC); remapped to the cardiac "
               "task's order bg, RV, MYO, LV (1->3, 3->1).",
        splits="'train' = Training/Labeled, 'val' = Validation, 'test' = Testing (the publisher's "
               "folders); None = all labelled cases found. One case per ED and per ES frame.",
        spacing="from the NIfTI header of the _sa file (spatial zooms, mm).",
        cite="V. M. Campello et al., IEEE TMI 40(12):3543-3554, 2021.",
    ),
    "synapse": Layout(
        key="synapse",
        title="Synapse multi-organ CT (MICCAI 2015 Beyond the Cranial Vault, 'Abdomen')",
        task="abdomen",
        access="registration",
        where="https://www.synapse.org/#!Synapse:syn3193805/wiki/ (Synapse account, join the challenge)",
        get="Download Abdomen/RawData.zip from the challenge's Files tab and unzip it; pass the folder "
            "holding RawData/ as root.",
        tree="""\
<root>/
└── RawData/
    ├── Training/
    │   ├── img/img0001.nii.gz … img0040.nii.gz       30 CT volumes (0001-0010, 0021-0040), HU
    │   └── label/label0001.nii.gz … label0040.nii.gz  13-organ labels
    └── Testing/img/…                                   (no labels; skipped)""",
        labels="label files: 1 spleen, 2 right kidney, 3 left kidney, 4 gallbladder, 5 esophagus, 6 "
               "liver, 7 stomach, 8 aorta, 9 inferior vena cava, 10 portal and splenic vein, 11 "
               "pancreas, 12 right adrenal gland, 13 left adrenal gland. The 8 TransUNet organs are "
               "remapped to the abdomen task's order; esophagus, veins and adrenal glands become 0.",
        splits="'train' (18 cases) and 'test' (12 cases: 0001 0002 0003 0004 0008 0022 0025 0029 0032 "
               "0035 0036 0038), the TransUNet protocol; None = all labelled cases found.",
        spacing="from the NIfTI header (mm). Intensities: HU window [-125, 275] -> [0, 1] (TransUNet).",
        cite="B. Landman et al., MICCAI 2015 Multi-Atlas Labeling Beyond the Cranial Vault; "
             "J. Chen et al., TransUNet, arXiv 2102.04306.",
    ),
    "refuge": Layout(
        key="refuge",
        title="REFUGE (Retinal Fundus Glaucoma Challenge 2018, optic disc and cup)",
        task="fundus",
        access="registration",
        where="https://refuge.grand-challenge.org/ (grand-challenge account; download page "
              "https://refuge.grand-challenge.org/REFUGE2Download/)",
        get="Download REFUGE2.zip (it holds REFUGE-Training400.zip, Annotation-Training400.zip, "
            "REFUGE-Validation400.zip, REFUGE-Validation400-GT.zip, REFUGE-Test400.zip, "
            "REFUGE-Test-GT.zip) and unzip each inner zip into one folder; pass that folder as root.",
        tree="""\
<root>/
├── Training400/Glaucoma/g0001.jpg …, Training400/Non-Glaucoma/n0001.jpg …
├── Annotation-Training400/Disc_Cup_Masks/Glaucoma/g0001.bmp …, …/Non-Glaucoma/n0001.bmp …
├── REFUGE-Validation400/V0001.jpg …
├── REFUGE-Validation400-GT/Disc_Cup_Masks/V0001.bmp …
├── Test400/T0001.jpg …
└── REFUGE-Test-GT/Disc_Cup_Masks/G/T0001.bmp …, …/N/T0xxx.bmp
(images are paired with the .bmp of the same name anywhere under a Disc_Cup_Masks folder; extra
folder levels from unzipping are fine; Disc_Cup_Fovea_Illustration overlays are ignored)""",
        labels="mask grey levels: 255 background, 128 optic disc rim, 0 optic cup; remapped to "
               "bg=0, disc (rim)=1, cup=2. Any other grey level is an error.",
        splits="'train' (Training400), 'val' (Validation400), 'test' (Test400): the challenge's split, "
               "told apart by the file names g/n, V and T; None = all.",
        spacing="(1.0, 1.0): pixels. Fundus images carry no physical pixel size; HD95 is in pixels.",
        cite="J. I. Orlando et al., Medical Image Analysis 59:101570, 2020.",
    ),
    "kvasir": Layout(
        key="kvasir",
        title="Kvasir-SEG (polyp segmentation, colonoscopy)",
        task="polyp",
        access="public download",
        where="https://datasets.simula.no/kvasir-seg/ (zip: https://datasets.simula.no/downloads/kvasir-seg.zip)",
        get="sikd_utils.data.real.fetch('kvasir', root) downloads and unpacks it; or download "
            "kvasir-seg.zip yourself and unzip it into root.",
        tree="""\
<root>/
└── Kvasir-SEG/
    ├── images/<id>.jpg          1000 RGB images, e.g. cju0qkwl35piu0993l0dewei2.jpg
    ├── masks/<id>.jpg           1000 masks, same names (JPEG: lossy 0/255)
    └── kavsir_bboxes.json       (bounding boxes; not read)
optional, for the official 880/120 split: train.txt and val.txt from
https://github.com/DebeshJha/2020-MediaEval-Medico-polyp-segmentation/tree/master/kvasir-seg-train-val
placed in <root> or <root>/Kvasir-SEG (or pass split_dir=...)""",
        labels="masks are binarised at half their brightest grey level (128 for the published 0/255 "
               "JPEGs, which undoes their ringing), giving bg=0, polyp=1.",
        splits="'train' (880) and 'test' (120). With train.txt/val.txt present: the official split "
               "(val.txt is the 120). Without: a deterministic fallback -- images ranked by the SHA-256 "
               "of their file name, the first 12 % (120 of 1000) are 'test' -- which is NOT the "
               "official split; load() warns when it uses it. None = all.",
        spacing="(1.0, 1.0): pixels (no physical pixel size is published).",
        cite="D. Jha et al., Kvasir-SEG: A Segmented Polyp Dataset, MMM 2020.",
    ),
    "cvc_clinicdb": Layout(
        key="cvc_clinicdb",
        title="CVC-ClinicDB (CVC-612, polyp segmentation, colonoscopy)",
        task="polyp",
        access="from the publisher's page (accept its terms of use)",
        where="https://polyp.grand-challenge.org/CVCClinicDB/",
        get="Download the CVC-ClinicDB archive linked from that page and unpack it; pass the folder "
            "holding 'Original' and 'Ground Truth' (or the folder above it) as root.",
        tree="""\
<root>/
└── CVC-ClinicDB/
    ├── Original/1.tif … 612.tif          RGB frames, 384x288
    └── Ground Truth/1.tif … 612.tif      binary masks (0/255)
(the common re-packaging with PNG/Original, PNG/Ground Truth, TIF/Original, TIF/Ground Truth is also
read; when both PNG and TIF copies are present the TIF ones are used)""",
        labels="masks binarised at half their brightest grey level (128 for 0/255 masks): bg=0, polyp=1.",
        splits="None only: CVC-ClinicDB serves as an unseen target domain and has no official split.",
        spacing="(1.0, 1.0): pixels.",
        cite="J. Bernal et al., Computerized Medical Imaging and Graphics 43:99-111, 2015.",
    ),
    "busi": Layout(
        key="busi",
        title="BUSI (Breast Ultrasound Images, Al-Dhabyani et al.)",
        task="breast_us",
        access="public download",
        where="https://scholar.cu.edu.eg/?q=afahmy/pages/dataset",
        get="Download Dataset_BUSI.zip from that page and unzip it into root.",
        tree="""\
<root>/
└── Dataset_BUSI_with_GT/
    ├── benign/benign (1).png, benign (1)_mask.png, benign (4)_mask_1.png …   437 images
    ├── malignant/malignant (1).png, malignant (1)_mask.png …                 210 images
    └── normal/normal (1).png, normal (1)_mask.png …                          133 images (empty masks)""",
        labels="masks binarised at half their brightest grey level (128 for the published 0/255 masks; "
               "a lesion stored as 1, 2, 100 or 127 on 0 is kept); an image with several masks (_mask, _mask_1, _mask_2 …) "
               "gets their union: bg=0, tumour=1. Images are greyscale stored as RGB and are returned "
               "with one channel.",
        splits="None only (no official split); pass classes=('benign', 'malignant') to drop normals.",
        spacing="(1.0, 1.0): pixels.",
        cite="W. Al-Dhabyani et al., Data in Brief 28:104863, 2020.",
    ),
    "udiat": Layout(
        key="udiat",
        title="UDIAT Dataset B (breast ultrasound, Yap et al.)",
        task="breast_us",
        access="on request",
        where="https://helward.mmu.ac.uk/STAFF/M.Yap/dataset.php (request form of M. H. Yap; "
              "dataset from UDIAT Diagnostic Centre, Sabadell)",
        get="Request Dataset B, accept the licence, unzip the archive; pass the folder holding "
            "BUS_Dataset_B/ (or BUS_Dataset_B itself) as root.",
        tree="""\
<root>/
└── BUS_Dataset_B/
    ├── original/000001.png … 000163.png     163 greyscale ultrasound images
    ├── GT/000001.png … 000163.png           binary masks, same names
    └── DatasetB.xlsx                        (benign/malignant per image; not read)""",
        labels="masks binarised at half their brightest grey level (128 for the published 0/255 masks; "
               "a lesion stored as 1, 2, 100 or 127 on 0 is kept): bg=0, tumour=1.",
        splits="None only: UDIAT is an unseen target domain without an official split.",
        spacing="(1.0, 1.0): pixels.",
        cite="M. H. Yap et al., IEEE JBHI 22(4):1218-1226, 2018.",
    ),
}


def describe(dataset: str) -> str:
    """A printable description of one dataset: where to get it, the tree load() expects, labels, splits."""
    if dataset not in LAYOUTS:
        raise KeyError(f"unknown dataset {dataset!r}; choose one of {sorted(LAYOUTS)}")
    d = LAYOUTS[dataset]
    return (
        f"{d.title}  [load('{d.key}', root) -> task '{d.task}']\n"
        f"Access: {d.access}. {d.where}\n"
        f"How: {d.get}\n"
        f"Expected tree:\n{d.tree}\n"
        f"Labels: {d.labels}\n"
        f"Splits: {d.splits}\n"
        f"Spacing: {d.spacing}\n"
        f"Cite: {d.cite}"
    )
