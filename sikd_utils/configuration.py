"""What one experiment is: its settings (:class:`ExperimentConfig`), its data (:class:`Splits`) and the
typed names of its test sets (:class:`TestSet`: a shift family and a severity).

Test sets are keyed by ``(family, severity)``: ``("clean", 0)`` is the source domain's own test set,
``("target", s)`` the realistic "new device" domain at severity ``s``, and any family of the shift
benchmark (``sikd_utils.data.shifts``) at severities 1–5. Each key is also a string (``"source"``,
``"target@1"``, ``"blur@3"``) so that tables keep one readable label column; code reads the fields, never
parses the label.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from typing import Sequence

from .data.case import Case
from .data.tasks import get_task
from .distill import DEFAULT_TEMPERATURE
from .runtime import PRECISIONS
from .train import TrainConfig

__all__ = ["ExperimentConfig", "Splits", "TestSet", "synthetic_splits", "real_splits", "benchmark_splits", "preset_config",
           "VOLUME_COUNTS", "IMAGE_COUNTS", "COUNT_FIELDS", "TEST_SEED_OFFSET", "COMPARISON_DEFAULTS"]

# default synthetic case counts (train, validation, source test, target test): a volume holds 6-12
# slices, so 2D tasks get proportionally more images for a similar number of training slices
VOLUME_COUNTS = (6, 3, 6, 6)
IMAGE_COUNTS = (32, 8, 12, 12)
COUNT_FIELDS = ("n_train", "n_val", "n_test", "n_target")
# benchmark test cases are drawn with data_seed + TEST_SEED_OFFSET, so that their anatomy can never
# coincide with a training case (drawn with data_seed)
TEST_SEED_OFFSET = 1000
# the comparison settings of issue 13 (sikd_utils.ablations) and their defaults, which are SIKD's: a run
# key includes one only when it differs from its default, so every key computed before they existed holds
COMPARISON_DEFAULTS = {"backbone": "unet", "distill_method": "feature_mse", "kd_temperature": DEFAULT_TEMPERATURE,
                       "distill_layer": "last_decoder", "teacher_input": None, "teacher_skips": False,
                       "teacher_lr": None, "teacher_residual_projection": False}


class TestSet(str):
    """The name of a test set, carrying its typed key: ``family`` (str) and ``severity`` (number).

    ``TestSet("clean", 0) == "source"``, ``TestSet("target", 1) == "target@1"``; a real dataset used as a
    test set is ``TestSet("mnms")`` (severity 0: the data as published).
    """

    __test__ = False  # not a pytest test class
    family: str
    severity: float

    def __new__(cls, family: str, severity: float = 0):
        if not isinstance(family, str) or not family:
            raise ValueError(f"a test set's family must be a non-empty string, got {family!r}")
        if isinstance(severity, bool) or not isinstance(severity, (int, float)) or severity < 0:
            raise ValueError(f"a test set's severity must be a number >= 0, got {severity!r}")
        severity = int(severity) if float(severity).is_integer() else float(severity)
        if family in ("clean", "source"):
            family, name = "clean", "source"
            if severity:
                raise ValueError(f"the clean test set has severity 0 only, got {severity!r}")
        elif severity == 0:
            name = family
        else:
            name = f"{family}@{severity:g}"
        self = super().__new__(cls, name)
        self.family, self.severity = family, severity
        return self

    @classmethod
    def of(cls, name) -> "TestSet":
        """The key of a test-set name (``"source"``, ``"target@2"``, ``"mnms"``); a TestSet is returned as is."""
        if isinstance(name, TestSet):
            return name
        if isinstance(name, tuple) and len(name) == 2:
            return cls(*name)
        family, sep, severity = str(name).partition("@")
        if not sep:
            return cls(family, 0)
        try:
            value = float(severity)
        except ValueError:
            raise ValueError(f"test set {name!r}: expected '<family>@<severity>', e.g. 'target@2'") from None
        return cls(family, value)

    @property
    def key(self) -> tuple[str, float]:
        return self.family, self.severity

    def __reduce__(self):  # pickles (worker processes) keep the fields
        return TestSet, (self.family, self.severity)


@dataclass
class ExperimentConfig:
    """Everything that defines one task's experiment. CPU-sized defaults; see :mod:`sikd_utils.presets`."""

    task: str = "cardiac"
    image_size: int = 64
    base_channels: int = 8  # 64 = the paper's U-Net
    epochs: int = 20
    teacher_epochs: int | None = None  # default: same as epochs (also for the control's raw teacher)
    batch_size: int = 8
    lr: float = 1e-3
    distill_weight: float = 2.0
    # comparisons (issue 13; see TrainConfig and build_model): the defaults are SIKD's
    backbone: str = "unet"  # or "swin_unetr" (base_channels a multiple of 12), "basic_unet"
    distill_method: str = "feature_mse"  # or "logit_kd", "attention_transfer"
    kd_temperature: float = DEFAULT_TEMPERATURE  # logit_kd only
    distill_layer: str = "last_decoder"  # or "bottleneck"
    teacher_input: str | None = None  # what SIKD's teacher sees: None = the class-wise mean image
    teacher_skips: bool = False  # True: the teachers keep their skip connections (ablation)
    teacher_lr: float | None = None  # the teachers' Adam learning rate (None: lr); a skip-free SwinUNETR needs a lower one
    teacher_residual_projection: bool = False  # True: a SwinUNETR teacher with its student's residual projections
    seeds: tuple[int, ...] = (0, 1, 2)
    # synthetic data (ignored when splits are given); None = the task's default below
    n_train: int | None = None
    n_val: int | None = None
    n_test: int | None = None
    n_target: int | None = None
    severities: tuple[float, ...] = (1.0,)
    shape_shift: bool = True
    data_seed: int = 0
    difficulty: int = 0  # level of the synthetic suite (sikd_utils.data.synthetic): 0 = the original phantoms
    augment: bool = True
    device: str = "auto"
    precision: str = "auto"  # auto, fp32, fp16 or bf16: see sikd_utils.runtime.choose_precision
    out_dir: str | None = "runs"
    progress: bool = True

    def __post_init__(self):
        get_task(self.task)  # unknown task: a clear error now, not later
        # The case counts stay None when not given, so that dataclasses.replace(config, task=...) (and
        # run_task(task=...)) picks the new task's defaults; counts() resolves them.
        for name in COUNT_FIELDS:
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                      or int(value) != value or value < 1):
                raise ValueError(f"{name} must be a positive integer or None (the task's default), got {value!r}")
        for name in ("seeds", "severities"):
            if isinstance(getattr(self, name), (str, bytes)) or not hasattr(getattr(self, name), "__iter__"):
                raise TypeError(f"{name} must be a sequence, e.g. (0, 1, 2), got {getattr(self, name)!r}")
        _check_experiment_config(self)
        self.seeds = tuple(int(s) for s in self.seeds)
        self.severities = tuple(float(s) for s in self.severities)
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    def counts(self) -> dict[str, int]:
        """Synthetic case counts (train, val, test, target), the task's defaults where not given."""
        defaults = VOLUME_COUNTS if get_task(self.task).spatial_dims == 3 else IMAGE_COUNTS
        return {name: int(default if getattr(self, name) is None else getattr(self, name))
                for name, default in zip(COUNT_FIELDS, defaults)}

    def train_config(self, role: str, seed: int) -> TrainConfig:
        teacher_like = role in ("teacher", "raw_teacher")
        epochs = self.teacher_epochs if teacher_like and self.teacher_epochs else self.epochs
        lr = self.teacher_lr if teacher_like and self.teacher_lr is not None else self.lr
        # teacher_input belongs to SIKD's pair (the control's is raw by definition); the baseline has no teacher
        return TrainConfig(role=role, epochs=epochs, batch_size=self.batch_size, lr=lr,
                           distill_weight=self.distill_weight, seed=seed, device=self.device,
                           precision=self.precision, progress=self.progress, distill_method=self.distill_method,
                           kd_temperature=self.kd_temperature, distill_layer=self.distill_layer,
                           teacher_input=self.teacher_input if role in ("teacher", "student") else None,
                           teacher_skips=self.teacher_skips and role != "baseline")

    def build_model(self, role: str, seed: int | None = None):
        """A freshly initialised network for ``role`` in these settings (backbone, width, teacher input, skips)."""
        from .train import build_model

        spec = get_task(self.task)
        return build_model(role, spec.in_channels, spec.num_classes, self.base_channels, seed=seed,
                           backbone=self.backbone, teacher_input=self.teacher_input if role == "teacher" else None,
                           teacher_skips=self.teacher_skips and role != "baseline",
                           teacher_residual_projection=self.teacher_residual_projection and role == "teacher")

    def run_root(self, data_tag: str):
        """Folder holding this configuration's trained models (None when nothing is saved)."""
        from pathlib import Path

        if self.out_dir is None:
            return None
        return Path(self.out_dir) / self.task / self.run_key(data_tag)

    def run_key(self, data_tag: str) -> str:
        """Short hash of the settings that change trained weights (not seeds, test sets or device)."""
        keys = ("task", "image_size", "base_channels", "epochs", "teacher_epochs", "batch_size", "lr",
                "distill_weight", "augment")
        changed = {k: getattr(self, k) for k, v in COMPARISON_DEFAULTS.items() if getattr(self, k) != v}
        if self.difficulty:  # level 0 leaves every key made before the setting existed as it was
            changed["difficulty"] = self.difficulty
        payload = json.dumps({k: getattr(self, k) for k in keys} | changed | {"data": data_tag}, sort_keys=True)
        return hashlib.sha1(payload.encode()).hexdigest()[:10]


@dataclass
class Splits:
    """Training, validation and named test sets of Cases (the clean source test set is ``"source"``).

    Test-set names may be given as strings (``"target@1"``) or ``(family, severity)`` pairs; they are
    stored as :class:`TestSet` keys. ``identity`` says which data train and val are
    (:mod:`sikd_utils.data.identity`); it is hashed into the run key (appended to ``tag``) and recorded
    in every checkpoint. Left out, it is a digest of the cases' arrays.
    """

    train: list[Case]
    val: list[Case]
    tests: dict[str, list[Case]]
    tag: str  # names the data in the run hash; the identity's digest is appended
    identity: dict | None = None

    def __post_init__(self):
        from .data.identity import cases_identity, identity_tag

        self.tests = {TestSet.of(name): cases for name, cases in self.tests.items()}
        if self.identity is None:
            self.identity = cases_identity(self.train, self.val)
        key = identity_tag(self.identity)
        if not self.tag.endswith(key):
            self.tag = f"{self.tag}|{key}"


def _synthetic_identity(config: ExperimentConfig, train_cases, val_cases) -> dict:
    from .data.identity import synthetic_identity

    return synthetic_identity(config.task, config.image_size, config.data_seed, len(train_cases), len(val_cases),
                              train_cases, val_cases, difficulty=config.difficulty)


def synthetic_splits(config: ExperimentConfig) -> Splits:
    """Source cases split into train/val/test, plus one target test set per severity and a shape shift."""
    from .data.synthetic import make_cases

    n = config.counts()
    n_train, n_val = n["n_train"], n["n_val"]
    source = make_cases(config.task, "source", n_train + n_val + n["n_test"], config.image_size,
                        seed=config.data_seed, difficulty=config.difficulty)
    train_cases = source[:n_train]
    val_cases = source[n_train : n_train + n_val]
    tests = {TestSet("clean", 0): source[n_train + n_val :]}
    for severity in config.severities:
        tests[TestSet("target", severity)] = make_cases(config.task, "target", n["n_target"], config.image_size,
                                                        seed=config.data_seed, severity=severity,
                                                        difficulty=config.difficulty)
    if config.shape_shift:
        tests[TestSet("shape_shift", 1)] = make_cases(config.task, "shape_shift", n["n_target"],
                                                      config.image_size, seed=config.data_seed, severity=1.0,
                                                      difficulty=config.difficulty)
    return Splits(train_cases, val_cases, tests, "synthetic", _synthetic_identity(config, train_cases, val_cases))


def benchmark_splits(config: ExperimentConfig, families: Sequence[str] | None = None,
                     severities: Sequence[int] = (1, 2, 3, 4, 5)) -> Splits:
    """Source train/val cases and the shift benchmark's test sets (``sikd_utils.data.shifts``).

    Test sets: ``("clean", 0)``, ``("target", s)`` and every family of ``families`` (default: the
    registry's ``benchmark_families(task)`` if it has one, else every family of ``shift_families(task)``;
    compounds such as ``"gamma+blur"`` are allowed) at every severity. Test cases come from seed ``data_seed + TEST_SEED_OFFSET`` (never
    a training case); ``n_test`` clean cases and ``n_target`` cases per shifted test set.
    """
    from .data import shifts
    from .data.synthetic import make_cases

    n = config.counts()
    n_train, n_val = n["n_train"], n["n_val"]
    source = make_cases(config.task, "source", n_train + n_val, config.image_size, seed=config.data_seed,
                        difficulty=config.difficulty)
    if families is None:  # the registry's benchmark list (singles and compounds) where it has one
        listed = getattr(shifts, "benchmark_families", None)
        families = list(listed(config.task) if listed else shifts.shift_families(config.task))
    test_seed = config.data_seed + TEST_SEED_OFFSET

    def cases(family, severity):
        count = n["n_test"] if family == "clean" else n["n_target"]
        return shifts.shift_cases(config.task, family, severity, count, config.image_size, seed=test_seed,
                                  difficulty=config.difficulty)

    tests = {TestSet("clean", 0): cases("clean", 0)}
    for family in ["target", *[f for f in families if f not in ("clean", "target")]]:
        for severity in severities:
            tests[TestSet(family, int(severity))] = cases(family, int(severity))
    # same training data as synthetic_splits, so the same identity and run folder
    return Splits(source[:n_train], source[n_train:], tests, "synthetic",
                  _synthetic_identity(config, source[:n_train], source[n_train:]))


def real_splits(task: str, source_root, target_roots: dict | None = None, val_fraction: float = 0.15,
                test_fraction: float = 0.15) -> Splits:
    """Train/val/test Cases from a task's real source dataset, plus its real target datasets as tests.

    Uses the dataset's official splits where it has them (ACDC train/val/test; Synapse and Kvasir
    train/test, with the last ``val_fraction`` of train held out for validation); otherwise a
    deterministic split in the loader's order. ``target_roots`` maps a target dataset key (e.g.
    ``"mnms"``) to its folder; each becomes a test set named after it. All cases are read into memory.
    """
    from .data import real
    from .data.identity import real_identity

    spec = get_task(task)
    source = spec.real_source
    for dataset in (target_roots or {}):
        if real.task_of(dataset) != spec.key:
            raise ValueError(f"target dataset {dataset!r} belongs to task {real.task_of(dataset)!r}, not "
                             f"{spec.key!r}; this task's targets: {list(spec.real_targets) or 'none listed'}")
    known = set(real.splits_of(source))
    if {"train", "val", "test"} <= known:
        parts = [real.load(source, source_root, split=s) for s in ("train", "val", "test")]
    elif {"train", "test"} <= known:
        train_all = real.load(source, source_root, split="train")
        n_val = max(1, round(val_fraction * len(train_all)))
        parts = [train_all[:-n_val], train_all[-n_val:], real.load(source, source_root, split="test")]
    else:
        cases = real.load(source, source_root)
        n_val = max(1, round(val_fraction * len(cases)))
        n_test = max(1, round(test_fraction * len(cases)))
        parts = [cases[: len(cases) - n_val - n_test], cases[len(cases) - n_val - n_test : len(cases) - n_test],
                 cases[len(cases) - n_test :]]
    if not all(parts):
        raise ValueError(f"{source} under {source_root}: not enough cases for train/val/test ({[len(p) for p in parts]})")
    identity = real_identity(source, source_root, parts[0].refs, parts[1].refs)
    parts = [list(p) for p in parts]
    tests = {TestSet("clean", 0): parts[2]}
    for dataset, root in (target_roots or {}).items():
        tests[TestSet(dataset, 0)] = list(real.load(dataset, root))
    return Splits(parts[0], parts[1], tests, f"real:{source}", identity)


def _check_experiment_config(config: ExperimentConfig) -> None:
    """Types and ranges of every setting, before any data is made or any model trained."""
    from .checks import check_bool, check_float, check_int
    from .train import check_device

    check_int("image_size", config.image_size, 16)
    check_int("base_channels", config.base_channels, 1)
    check_int("epochs", config.epochs, 1)
    if config.teacher_epochs is not None:
        check_int("teacher_epochs", config.teacher_epochs, 1)
    check_int("batch_size", config.batch_size, 1)
    check_float("lr", config.lr, 0.0, strict_minimum=True)
    if config.teacher_lr is not None:
        check_float("teacher_lr", config.teacher_lr, 0.0, strict_minimum=True)
    check_float("distill_weight", config.distill_weight, 0.0)
    for seed in config.seeds:
        check_int("seeds entry", seed, 0)
    for severity in config.severities:
        check_float("severities entry", severity, 0.0)
    check_int("data_seed", config.data_seed, 0)
    from .data.synthetic import check_difficulty

    check_difficulty(config.difficulty)
    _check_comparisons(config)
    for name in ("shape_shift", "augment", "progress", "teacher_skips", "teacher_residual_projection"):
        check_bool(name, getattr(config, name))
    check_device(config.device)
    if config.out_dir is not None and (not isinstance(config.out_dir, (str, os.PathLike)) or str(config.out_dir) == ""):
        raise TypeError(f"out_dir must be a folder path or None (save nothing), got {config.out_dir!r}")


def _check_comparisons(config: ExperimentConfig) -> None:
    """The comparison settings, checked by the classes that use them (same messages, one set of rules)."""
    from .backbones import check_backbone

    check_backbone(config.backbone)
    if config.teacher_residual_projection is True and config.backbone != "swin_unetr":
        raise ValueError(f"teacher_residual_projection is for backbone 'swin_unetr', got {config.backbone!r}")
    if config.backbone == "swin_unetr" and config.base_channels % 12:
        raise ValueError(f"backbone 'swin_unetr' needs base_channels divisible by 12 (e.g. 24 or 36), got "
                         f"{config.base_channels}")
    TrainConfig(role="student", distill_method=config.distill_method, kd_temperature=config.kd_temperature,
                distill_layer=config.distill_layer, teacher_input=config.teacher_input, device="cpu")


def preset_config(preset: str, task: str, **overrides) -> ExperimentConfig:
    """The :class:`ExperimentConfig` of a named preset (:mod:`sikd_utils.presets`) for ``task``."""
    from .presets import preset_settings

    s = preset_settings(preset)
    volumes = get_task(task).spatial_dims == 3
    counts = s["n_volumes"] if volumes else s["n_images"]
    teacher_epochs = (s.get("teacher_epochs_3d") if volumes else None) or s["teacher_epochs"]
    values = dict(task=task, image_size=s["image_size"], base_channels=s["base_channels"], epochs=s["epochs"],
                  teacher_epochs=teacher_epochs, batch_size=s["batch_size"], seeds=tuple(s["seeds"]),
                  severities=tuple(float(v) for v in s["severities"]),
                  **dict(zip(COUNT_FIELDS, counts)))
    return ExperimentConfig(**{**values, **overrides})
