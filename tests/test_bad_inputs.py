"""The bad-input catalogue (issue 9): every wrong input gets a clear error, from our code, before any work.

Each entry gives a call, the exception type it must raise and the words its message must contain (the
thing, the value, what is expected). ``_raised_by_us`` checks that the last traceback frame lies in
``sikd_utils``: an IndexError from inside torch, or a numpy TypeError, would fail the catalogue. The
command-line entries check the one-line ``sikd: error: …`` form and the exit status instead, and with
``--debug`` the same origin rule.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import sikd_utils
from sikd_utils.data import Case
from sikd_utils.data import real
from sikd_utils.data.slices import SliceDataset
from sikd_utils.averaging import class_wise_mean
from sikd_utils.distill import sikd_loss
from sikd_utils.inference import predict_case
from sikd_utils.experiment import ExperimentConfig, Splits, real_splits, run_task, synthetic_splits
from sikd_utils.metrics import dice, hd95, mean_ci, score_case
from sikd_utils.models import UNet
from sikd_utils.train import TrainConfig, build_model, load_model, train

try:  # tests/ may or may not be a package
    from . import fake_datasets as fake
    from .conftest import ToySlices
except ImportError:  # pragma: no cover - depends on how pytest imports tests/
    import fake_datasets as fake
    from conftest import ToySlices

PACKAGE = Path(sikd_utils.__file__).resolve().parent
TESTS = Path(__file__).resolve().parent


def _raised_by_us(info) -> None:
    last = Path(str(info.traceback[-1].path)).resolve()
    assert PACKAGE in last.parents, f"{info.typename} was raised in {last}, not by sikd_utils"


# ------------------------------------------------------------------------------------------ helpers
def _case(**kw):
    base = dict(image=np.zeros((1, 8, 8), np.float32), label=np.zeros((8, 8), np.int64), spacing=(1.0, 1.0),
                case_id="c0")
    base.update(kw)
    return Case(**base)


def _fg_case(channels=1, case_id="c1", classes=3):
    label = np.zeros((16, 16), np.int64)
    label[4:10, 4:10] = 1
    label[11:14, 11:14] = classes - 1
    return Case(np.random.default_rng(0).random((channels, 16, 16)).astype(np.float32), label, (1.0, 1.0), case_id)


class _Items(torch.utils.data.Dataset):
    """A dataset of given (image, label) items, to feed train() wrong dtypes and values."""

    def __init__(self, image, label, n=4):
        self.image, self.label, self.n = image, label, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"image": self.image, "label": self.label}


def _toy():
    return ToySlices(n=8, seed=0)


def _float_labels():
    return _Items(torch.zeros(1, 16, 16), torch.zeros(16, 16, dtype=torch.float32))


def _labels_too_big():
    label = torch.zeros(16, 16, dtype=torch.int64)
    label[0, 0] = 3
    return _Items(torch.zeros(1, 16, 16), label)


def _logits(b=2, c=3, s=8):
    return torch.zeros(b, c, s, s), torch.zeros(b, 4, s, s), torch.zeros(b, 4, s, s)


def _a_file(tmp_path) -> Path:
    path = tmp_path / "a_file"
    path.write_text("not a folder")
    return path


def _trained_then_other_data(tmp_path):
    cfg = TrainConfig(epochs=1, batch_size=4, progress=False)
    train(build_model("baseline", 1, 3, 4, seed=0), ToySlices(n=8, seed=0), cfg, checkpoint_dir=tmp_path / "run",
          data_identity={"kind": "synthetic", "data_seed": 0})
    train(build_model("baseline", 1, 3, 4, seed=0), ToySlices(n=8, seed=0), cfg, checkpoint_dir=tmp_path / "run",
          data_identity={"kind": "synthetic", "data_seed": 1})


def _resumed_on_other_slices(tmp_path):
    cases = [_fg_case(case_id=f"c{i}") for i in range(2)]
    cfg = TrainConfig(epochs=1, batch_size=4, progress=False)
    train(build_model("baseline", 1, 3, 4, seed=0), SliceDataset(cases, 16), cfg, checkpoint_dir=tmp_path)
    other = [_fg_case(case_id=f"d{i}") for i in range(2)]
    train(build_model("baseline", 1, 3, 4, seed=0), SliceDataset(other, 16), cfg, checkpoint_dir=tmp_path)


def _student_with_skip_teacher():
    cfg = TrainConfig(role="student", epochs=1, batch_size=4, progress=False)
    train(build_model("student", 1, 3, 4), _toy(), cfg, teacher=UNet(1, 3, 4, skip_connections=True))


def _fetch_too_large(tmp_path, monkeypatch):
    from sikd_utils.data.real import download

    small = dataclasses.replace(download.ARCHIVES["kvasir"], max_bytes=100)
    monkeypatch.setitem(download.ARCHIVES, "kvasir", small)
    monkeypatch.setattr(download, "_download", lambda url, dest, desc, **kw: Path(dest).write_bytes(b"x" * 500))
    real.fetch("kvasir", tmp_path, quiet=True)


class _Response:
    """A fake HTTP response: announces ``length`` bytes and trickles chunks slowly."""

    def __init__(self, length=None, delay=0.0):
        self.headers = {"Content-Length": str(length)} if length else {}
        self.delay = delay

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, n):
        import time

        time.sleep(self.delay)
        return b"x" * 10


def _download_with(monkeypatch, tmp_path, response, **limits):
    from sikd_utils.data.real import download

    monkeypatch.setattr(download.urllib.request, "urlopen", lambda *a, **k: response)
    download._download("https://example.invalid/a.zip", tmp_path / "a.zip", "a.zip", **limits)


# ------------------------------------------------------------------------------------ the catalogue
# (id, call taking (tmp_path, monkeypatch), exception type, words the message must contain)
CATALOGUE = [
    # Case
    ("case-image-2d", lambda t, m: _case(image=np.zeros((8, 8))), ValueError, ["image must be (C, H, W)", "(8, 8)"]),
    ("case-label-shape", lambda t, m: _case(label=np.zeros((8, 7), int)), ValueError, ["label shape (8, 7)", "(8, 8)"]),
    ("case-label-fraction", lambda t, m: _case(label=np.full((8, 8), 0.5)), ValueError, ["'c0'", "non-integer"]),
    ("case-label-nan", lambda t, m: _case(label=np.full((8, 8), np.nan)), ValueError, ["'c0'", "non-integer"]),
    ("case-label-negative", lambda t, m: _case(label=np.full((8, 8), -1)), ValueError, ["negative", "-1"]),
    ("case-image-nan", lambda t, m: _case(image=np.full((1, 8, 8), np.nan)), ValueError, ["'c0'", "NaN"]),
    ("case-spacing-negative", lambda t, m: _case(spacing=(-1.0, 1.0)), ValueError, ["spacing", "positive", "-1.0"]),
    ("case-spacing-length", lambda t, m: _case(spacing=(1.0,)), ValueError, ["spacing must be 2", "(1.0,)"]),
    ("case-spacing-string", lambda t, m: _case(spacing="11"), TypeError, ["spacing", "'11'"]),
    ("case-id-not-str", lambda t, m: _case(case_id=7), TypeError, ["case_id", "str", "7"]),
    ("case-image-strings", lambda t, m: _case(image=np.full((1, 8, 8), "a")), TypeError, ["image", "dtype <U1"]),
    ("case-image-empty", lambda t, m: _case(image=np.zeros((1, 0, 8)), label=np.zeros((0, 8), int)), ValueError,
     ["empty", "(1, 0, 8)"]),
    ("case-classes", lambda t, m: _case(label=np.full((8, 8), 5)).check_classes(3), ValueError, ["[5]", "[0, 3)"]),
    # SliceDataset
    ("slices-no-cases", lambda t, m: SliceDataset([], 16), ValueError, ["at least one case"]),
    ("slices-not-cases", lambda t, m: SliceDataset(["c.png"], 16), TypeError, ["Case objects", "item 0", "str"]),
    ("slices-one-case", lambda t, m: SliceDataset(_fg_case(), 16), TypeError, ["iterable of Case", "Case"]),
    ("slices-image-size", lambda t, m: SliceDataset([_fg_case()], 0), ValueError, ["image_size", "0"]),
    ("slices-seed-negative", lambda t, m: SliceDataset([_fg_case()], 16, seed=-1), ValueError, ["seed", "-1"]),
    ("slices-seed-fraction", lambda t, m: SliceDataset([_fg_case()], 16, seed=1.5), ValueError, ["seed", "1.5"]),
    ("slices-channels", lambda t, m: SliceDataset([_fg_case(1, "a"), _fg_case(3, "b")], 16), ValueError,
     ["different channel counts", "'a'", "'b'"]),
    ("slices-all-empty", lambda t, m: SliceDataset([_case()], 16), ValueError, ["no slices", "foreground_only=False"]),
    # TrainConfig
    ("train-epochs-fraction", lambda t, m: TrainConfig(epochs=2.5), ValueError, ["epochs", "2.5", "whole number"]),
    ("train-epochs-zero", lambda t, m: TrainConfig(epochs=0), ValueError, ["epochs", "[1, inf]", "0"]),
    ("train-batch-str", lambda t, m: TrainConfig(batch_size="8"), TypeError, ["batch_size", "'8'"]),
    ("train-lr-nan", lambda t, m: TrainConfig(lr=math.nan), ValueError, ["lr", "finite", "nan"]),
    ("train-lr-negative", lambda t, m: TrainConfig(lr=-1e-3), ValueError, ["lr", "(0.0, inf]", "-0.001"]),
    ("train-gamma-negative", lambda t, m: TrainConfig(gamma=-0.5), ValueError, ["gamma", "(0.0, 1.0]", "-0.5"]),
    ("train-weight-nan", lambda t, m: TrainConfig(distill_weight=math.nan), ValueError, ["distill_weight", "nan"]),
    ("train-weight-negative", lambda t, m: TrainConfig(distill_weight=-1.0), ValueError, ["distill_weight", "-1.0"]),
    ("train-weight-decay", lambda t, m: TrainConfig(weight_decay=-1e-4), ValueError, ["weight_decay", "-0.0001"]),
    ("train-device", lambda t, m: TrainConfig(device="gpu"), ValueError, ["device 'gpu'", "'cpu'"]),
    ("train-role", lambda t, m: TrainConfig(role="teacher2"), ValueError, ["role must be one of", "'teacher2'"]),
    ("train-seed", lambda t, m: TrainConfig(seed=-3), ValueError, ["seed", "-3"]),
    ("train-milestones", lambda t, m: TrainConfig(milestones="60"), TypeError, ["milestones", "'60'"]),
    ("train-compile", lambda t, m: TrainConfig(compile="yes"), TypeError, ["compile", "True or False", "'yes'"]),
    # ExperimentConfig
    ("exp-task", lambda t, m: ExperimentConfig(task="brain"), ValueError, ["unknown task 'brain'", "cardiac"]),
    ("exp-image-size", lambda t, m: ExperimentConfig(image_size=8), ValueError, ["image_size", "[16, inf]", "8"]),
    ("exp-epochs-fraction", lambda t, m: ExperimentConfig(epochs=1.5), ValueError, ["epochs", "1.5"]),
    ("exp-teacher-epochs", lambda t, m: ExperimentConfig(teacher_epochs=0), ValueError, ["teacher_epochs", "0"]),
    ("exp-teacher-lr", lambda t, m: ExperimentConfig(teacher_lr=0.0), ValueError, ["teacher_lr", "0.0"]),
    ("exp-seeds-negative", lambda t, m: ExperimentConfig(seeds=(0, -1)), ValueError, ["seeds entry", "-1"]),
    ("exp-seeds-int", lambda t, m: ExperimentConfig(seeds=3), TypeError, ["seeds must be a sequence", "3"]),
    ("exp-severity-nan", lambda t, m: ExperimentConfig(severities=(math.nan,)), ValueError, ["severities", "nan"]),
    ("exp-severity-negative", lambda t, m: ExperimentConfig(severities=(-1.0,)), ValueError, ["severities", "-1.0"]),
    ("exp-data-seed", lambda t, m: ExperimentConfig(data_seed=-1), ValueError, ["data_seed", "-1"]),
    ("exp-distill-weight", lambda t, m: ExperimentConfig(distill_weight=-2.0), ValueError, ["distill_weight", "-2.0"]),
    ("exp-out-dir-type", lambda t, m: ExperimentConfig(out_dir=5), TypeError, ["out_dir", "5"]),
    ("exp-n-train", lambda t, m: ExperimentConfig(n_train="4"), ValueError, ["n_train", "'4'"]),
    ("exp-device", lambda t, m: ExperimentConfig(device="cuda:x"), ValueError, ["device 'cuda:x'"]),
    ("exp-augment", lambda t, m: ExperimentConfig(augment="no"), TypeError, ["augment", "'no'"]),
    # train()
    ("fit-float-labels", lambda t, m: train(build_model("baseline", 1, 3, 4), _float_labels(),
                                            TrainConfig(epochs=1, progress=False)), TypeError,
     ["train_data[0]", "integer class indices", "torch.float32"]),
    ("fit-labels-range", lambda t, m: train(build_model("baseline", 1, 3, 4), _labels_too_big(),
                                            TrainConfig(epochs=1, progress=False)), ValueError,
     ["train_data[0]", "[0, 3)", "num_classes=3", "[0, 3]"]),
    ("fit-val-labels-range", lambda t, m: train(build_model("baseline", 1, 3, 4), _toy(),
                                                TrainConfig(epochs=1, progress=False), _labels_too_big()),
     ValueError, ["val_data[0]", "[0, 3)"]),
    ("fit-slices-labels-range", lambda t, m: train(build_model("baseline", 1, 2, 4), SliceDataset([_fg_case()], 16),
                                                   TrainConfig(epochs=1, progress=False)), ValueError,
     ["[0, 2)", "found [0, 2]"]),
    ("fit-channels", lambda t, m: train(build_model("baseline", 3, 3, 4), _toy(), TrainConfig(epochs=1, progress=False)),
     ValueError, ["(C=3, H, W)", "(1, 16, 16)"]),
    ("fit-skip-teacher", lambda t, m: _student_with_skip_teacher(), ValueError, ["teacher", "skip connections",
                                                                                 "skip-free"]),
    ("fit-teacher-type", lambda t, m: train(build_model("student", 1, 3, 4), _toy(),
                                            TrainConfig(role="student", epochs=1, progress=False), teacher=5),
     TypeError, ["teacher", "checkpoint path", "5"]),
    ("fit-teacher-unused", lambda t, m: train(build_model("baseline", 1, 3, 4), _toy(),
                                              TrainConfig(epochs=1, progress=False), teacher=build_model("teacher", 1, 3, 4)),
     ValueError, ["only used by roles ('student', 'control')", "'baseline'"]),
    ("fit-checkpoint-is-file", lambda t, m: train(build_model("baseline", 1, 3, 4), _toy(),
                                                  TrainConfig(epochs=1, progress=False), checkpoint_dir=_a_file(t)),
     NotADirectoryError, ["checkpoint_dir", "a_file", "is a file"]),
    ("fit-cuda-without-gpu", lambda t, m: (m.setattr(torch.cuda, "is_available", lambda: False),
                                           train(build_model("baseline", 1, 3, 4), _toy(),
                                                 TrainConfig(epochs=1, device="cuda", progress=False))),
     ValueError, ["device 'cuda'", "no CUDA GPU", "'cpu'"]),
    ("fit-model-type", lambda t, m: train(torch.nn.Conv2d(1, 3, 1), _toy(), TrainConfig(epochs=1, progress=False)),
     TypeError, ["model must be a sikd_utils UNet", "Conv2d"]),
    ("fit-config-type", lambda t, m: train(build_model("baseline", 1, 3, 4), _toy(), {"epochs": 1}), TypeError,
     ["config must be a TrainConfig", "dict"]),
    ("fit-empty", lambda t, m: train(build_model("baseline", 1, 3, 4), _Items(None, None, n=0),
                                     TrainConfig(epochs=1, progress=False)), ValueError, ["train_data is empty"]),
    ("fit-resume-other-identity", lambda t, m: _trained_then_other_data(t), ValueError,
     ["other settings", "data data.data_seed: checkpoint 0, now 1", "resume=False"]),
    ("fit-resume-other-slices", lambda t, m: _resumed_on_other_slices(t), ValueError,
     ["data train.digest", "resume=False"]),
    # loss and metrics
    ("loss-float-target", lambda t, m: sikd_loss(*_logits(), torch.zeros(2, 8, 8)), TypeError,
     ["target", "integer class indices", "torch.float32"]),
    ("loss-target-range", lambda t, m: sikd_loss(*_logits(), torch.full((2, 8, 8), 3)), ValueError,
     ["target values", "[0, 3)", "[3, 3]"]),
    ("loss-weight-nan", lambda t, m: sikd_loss(*_logits(), torch.zeros(2, 8, 8, dtype=torch.long), math.nan),
     ValueError, ["weight", "nan"]),
    ("loss-weight-negative", lambda t, m: sikd_loss(*_logits(), torch.zeros(2, 8, 8, dtype=torch.long), -2.0),
     ValueError, ["weight", "-2.0"]),
    ("loss-feature-shapes", lambda t, m: sikd_loss(torch.zeros(2, 3, 8, 8), torch.zeros(2, 4, 8, 8),
                                                   torch.zeros(2, 8, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)),
     ValueError, ["(2, 4, 8, 8)", "(2, 8, 8, 8)", "same shape"]),
    ("loss-not-tensor", lambda t, m: sikd_loss(np.zeros((2, 3, 8, 8)), *_logits()[1:], torch.zeros(2, 8, 8)),
     TypeError, ["student_logits", "ndarray"]),
    ("dice-shapes", lambda t, m: dice(np.ones((4, 4)), np.ones((4, 5))), ValueError, ["(4, 4)", "(4, 5)"]),
    ("hd95-spacing", lambda t, m: hd95(np.zeros((4, 4)), np.zeros((4, 4)), (-1.0, 1.0)), ValueError,
     ["spacing", "-1.0", "positive"]),
    ("score-float-pred", lambda t, m: score_case(np.zeros((4, 4)), np.zeros((4, 4), int), 2), TypeError,
     ["prediction", "integer", "float64"]),
    ("score-label-range", lambda t, m: score_case(np.zeros((4, 4), int), np.full((4, 4), 2), 2), ValueError,
     ["label values", "[0, 2)", "[2, 2]"]),
    ("score-num-classes", lambda t, m: score_case(np.zeros((4, 4), int), np.zeros((4, 4), int), 1), ValueError,
     ["num_classes", "[2, inf]", "1"]),
    ("mean-ci-confidence", lambda t, m: mean_ci([1.0, 2.0], confidence=1.5), ValueError, ["confidence", "1.5"]),
    # models, averaging, inference, checkpoints
    ("unet-num-classes", lambda t, m: UNet(1, 1, 4), ValueError, ["num_classes", "at least 2", "1"]),
    ("unet-width", lambda t, m: UNet(1, 3, 4.5), ValueError, ["base_channels", "4.5"]),
    ("unet-input-channels", lambda t, m: UNet(1, 3, 4)(torch.zeros(1, 3, 16, 16)), ValueError,
     ["(batch, 1, height, width)", "(1, 3, 16, 16)"]),
    ("build-model-role", lambda t, m: build_model("student2", 1, 3, 4), ValueError, ["role", "'student2'"]),
    ("mean-image-float-label", lambda t, m: class_wise_mean(torch.zeros(1, 1, 4, 4), torch.zeros(1, 4, 4), 2),
     TypeError, ["label", "integer", "torch.float32"]),
    ("mean-image-label-range", lambda t, m: class_wise_mean(torch.zeros(1, 1, 4, 4),
                                                            torch.full((1, 4, 4), 2), 2), ValueError,
     ["[0, 2)", "max 2"]),
    ("predict-channels", lambda t, m: predict_case(UNet(3, 3, 4), _fg_case(), 16), ValueError,
     ["'c1'", "1", "3"]),
    ("predict-batch-size", lambda t, m: predict_case(UNet(1, 3, 4), _fg_case(), 16, batch_size=0), ValueError,
     ["batch_size", "0"]),
    ("load-model-garbage", lambda t, m: (t / "x.pt").write_bytes(b"junk") and load_model(t / "x.pt"), ValueError,
     ["cannot read checkpoint", "x.pt"]),
    ("load-model-missing", lambda t, m: load_model(t / "none.pt"), FileNotFoundError, ["no checkpoint", "none.pt"]),
    # loaders and real data
    ("load-dataset", lambda t, m: real.load("kvasr", t), ValueError, ["unknown dataset 'kvasr'", "kvasir"]),
    ("load-dataset-type", lambda t, m: real.load(3, t), TypeError, ["dataset", "3"]),
    ("load-missing-root", lambda t, m: real.load("udiat", t / "nowhere"), FileNotFoundError,
     ["UDIAT", "nowhere", "does not exist"]),
    ("load-split", lambda t, m: real.load("acdc", t, split="training"), ValueError, ["'training'", "'train'"]),
    ("splits-target-of-other-task", lambda t, m: real_splits("cardiac", t, {"kvasir": t}), ValueError,
     ["'kvasir'", "task 'polyp'", "'cardiac'", "mnms"]),
    ("run-task-splits-type", lambda t, m: run_task(ExperimentConfig(out_dir=None), splits=[1, 2]), TypeError,
     ["splits must be a Splits", "list"]),
    ("run-task-out-dir-file", lambda t, m: run_task(ExperimentConfig(out_dir=str(_a_file(t)))), NotADirectoryError,
     ["out_dir", "a_file", "is a file"]),
    ("fetch-deadline", lambda t, m: real.fetch("kvasir", t, deadline_s=0), ValueError, ["deadline_s", "0"]),
    ("fetch-size-cap", _fetch_too_large, ValueError, ["500 bytes", "100-byte cap", "nothing was unpacked"]),
    ("download-announced-too-large", lambda t, m: _download_with(m, t, _Response(length=10_000), max_bytes=100),
     ValueError, ["announces 10000 bytes", "100-byte cap"]),
    ("download-sent-too-much", lambda t, m: _download_with(m, t, _Response(), max_bytes=55), ValueError,
     ["more than the 55-byte cap"]),
    ("download-deadline", lambda t, m: _download_with(m, t, _Response(delay=0.02), deadline_s=0.1), TimeoutError,
     ["did not finish within", "bytes received"]),
]


@pytest.mark.parametrize("name, call, kind, words", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_bad_input_is_a_clear_error_from_our_code(name, call, kind, words, tmp_path, monkeypatch):
    with pytest.raises(kind) as info:
        call(tmp_path, monkeypatch)
    _raised_by_us(info)
    message = str(info.value)
    for word in words:
        assert word in message, f"{name}: {word!r} not in {message!r}"


def test_the_catalogue_is_large_enough():
    assert len(CATALOGUE) + len(CLI_CATALOGUE) >= 40
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE)


def test_unknown_keys_are_both_key_and_value_errors():
    with pytest.raises(KeyError):
        ExperimentConfig(task="brain")
    with pytest.raises(ValueError):
        real.load("nope", ".")


# ------------------------------------------------------------------------------------------- the CLI
def _cli_fixture(tmp):
    """Folders and files the command-line entries point at."""
    (tmp / "file").write_text("x")
    fake.write_busi(tmp / "busi")
    return tmp


# (id, argv with {tmp} placeholders, exit status, words of the one error line)
CLI_CATALOGUE = [
    ("cli-prefix-flag", ["run", "--epoch", "3"], 2, ["unrecognized arguments: --epoch"]),
    ("cli-epochs-zero", ["run", "--epochs", "0"], 2, ["epochs", "0"]),
    ("cli-epochs-fraction", ["run", "--epochs", "2.5"], 2, ["--epochs", "'2.5'"]),
    ("cli-severity-nan", ["run", "--severities", "nan"], 2, ["severities", "nan"]),
    ("cli-weight-negative", ["run", "--distill-weight", "-1"], 2, ["distill_weight", "-1.0"]),
    ("cli-device", ["run", "--device", "gpu"], 2, ["device 'gpu'"]),
    ("cli-teacher-lr-zero", ["train", "--teacher-lr", "0"], 2, ["teacher_lr", "0.0"]),
    ("cli-backbone-unknown", ["train", "--backbone", "swin"], 2, ["--backbone", "'swin'", "swin_unetr"]),
    ("cli-swin-width", ["train", "--backbone", "swin_unetr", "--base-channels", "32"], 2,
     ["swin_unetr", "divisible by 12", "32"]),
    ("cli-unknown-task", ["run", "--task", "brain"], 2, ["--task", "'brain'"]),
    ("cli-out-dir-file", ["run", "--out-dir", "{tmp}/file"], 1, ["--out-dir", "file", "is a file"]),
    ("cli-summary-folder-missing", ["run", "--summary-csv", "{tmp}/missing/s.csv", "--out-dir", "{tmp}/runs"], 1,
     ["--summary-csv", "missing", "does not exist"]),
    ("cli-summary-is-folder", ["run", "--summary-csv", "{tmp}", "--out-dir", "{tmp}/runs"], 1,
     ["--summary-csv", "is a folder"]),
    ("cli-target-of-other-task", ["run", "--task", "breast_us", "--source-root", "{tmp}/busi", "--target",
                                  "kvasir={tmp}"], 2, ["'kvasir'", "task 'polyp'", "'breast_us'", "udiat"]),
    ("cli-target-format", ["run", "--task", "breast_us", "--source-root", "{tmp}/busi", "--target", "udiat"], 2,
     ["DATASET=FOLDER", "'udiat'"]),
    ("cli-target-unknown", ["run", "--task", "breast_us", "--source-root", "{tmp}/busi", "--target", "udiatt={tmp}"],
     2, ["unknown dataset 'udiatt'"]),
    ("cli-target-without-source", ["run", "--task", "breast_us", "--target", "udiat={tmp}"], 2, ["--source-root"]),
    ("cli-source-for-all", ["run", "--task", "all", "--source-root", "{tmp}/busi"], 2, ["single --task"]),
    ("cli-source-missing", ["run", "--task", "breast_us", "--source-root", "{tmp}/nowhere", "--out-dir",
                            "{tmp}/runs"], 1, ["BUSI", "nowhere", "does not exist", "(more with --debug)"]),
    ("cli-fetch-unknown", ["fetch", "kvasr", "{tmp}"], 2, ["unknown dataset 'kvasr'"]),
    ("cli-reproduce-out-dir-file", ["reproduce", "--out-dir", "{tmp}/file"], 1, ["--out-dir", "file", "is a file"]),
    ("cli-reproduce-results-file", ["reproduce", "--out-dir", "{tmp}/runs", "--results-dir", "{tmp}/file"], 1,
     ["--results-dir", "is a file"]),
]


@pytest.fixture(scope="module")
def cli_tmp(tmp_path_factory):
    return _cli_fixture(tmp_path_factory.mktemp("cli"))


def _argv(argv, tmp):
    return [a.replace("{tmp}", str(tmp)) for a in argv]


@pytest.mark.parametrize("name, argv, status, words", CLI_CATALOGUE, ids=[c[0] for c in CLI_CATALOGUE])
def test_cli_error_is_one_line_with_the_right_status(name, argv, status, words, cli_tmp, capsys):
    from sikd_utils.__main__ import main

    assert main(_argv(argv, cli_tmp)) == status
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("sikd: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert set(err.splitlines()) - set(lines) <= {line for line in err.splitlines() if line.startswith("usage:")
                                                  or line.startswith(" ")}, err
    for word in words:
        assert word in lines[0], f"{name}: {word!r} not in {lines[0]!r}"
    assert not list(Path(cli_tmp).rglob("*.pt")), "an error must come before any training"


@pytest.mark.parametrize("name, argv, status, words", [c for c in CLI_CATALOGUE if c[2] == 1],
                         ids=[c[0] for c in CLI_CATALOGUE if c[2] == 1])
def test_cli_debug_shows_our_exception(name, argv, status, words, cli_tmp):
    from sikd_utils.__main__ import main

    with pytest.raises(OSError) as info:
        main(["--debug", *_argv(argv, cli_tmp)])
    _raised_by_us(info)


def test_cli_conventions(capsys):
    from sikd_utils import __version__
    from sikd_utils.__main__ import build_parser, main

    assert main(["--version"]) == 0
    assert __version__ in capsys.readouterr().out
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
    for name, sub in subparsers.choices.items():
        assert sub.allow_abbrev is False
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    assert main(["run", "--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: 20)" in text and "--epochs" in text


def test_cli_prog_follows_how_it_was_started(monkeypatch):
    from sikd_utils.__main__ import build_parser

    monkeypatch.setattr(sys, "argv", ["/venv/bin/sikd"])
    assert build_parser().format_usage().startswith("usage: sikd ")
    monkeypatch.setattr(sys, "argv", ["/repo/sikd_utils/__main__.py"])
    assert build_parser().format_usage().startswith("usage: python -m sikd_utils ")


# ------------------------------------------------------------------------ silent failures made right
@pytest.mark.parametrize("levels", [(0, 1), (0, 2), (0, 100), (0, 127), (0, 255)])
@pytest.mark.parametrize("dataset", ["udiat", "busi"])
def test_lesion_stored_with_low_grey_levels_is_kept(tmp_path, dataset, levels):
    """A UDIAT/BUSI mask whose lesion is stored below grey 128 loads as a lesion, not as an empty label."""
    expected = fake.write_udiat(tmp_path, n=1) if dataset == "udiat" else fake.write_busi(tmp_path)
    for mask in [p for p in tmp_path.rglob("*.png") if p.parent.name == "GT" or "_mask" in p.stem]:
        from PIL import Image

        binary = np.asarray(Image.open(mask)) > 0
        fake._save(mask, np.where(binary, levels[1], levels[0]).astype(np.uint8))
    for case in real.load(dataset, tmp_path):
        np.testing.assert_array_equal(case.label, expected[case.case_id]["label"])
        if expected[case.case_id]["label"].any():
            assert case.label.any()


def test_reuse_says_what_it_reused(toy_data, tmp_path, capsys):
    cfg = TrainConfig(epochs=1, batch_size=4, progress=False)
    identity = {"kind": "synthetic", "task": "cardiac", "data_seed": 0, "n_train": 3, "n_val": 1, "image_size": 16,
                "content": "abc"}
    train(build_model("baseline", 1, 3, 4, seed=0), toy_data[0], cfg, toy_data[1], checkpoint_dir=tmp_path,
          data_identity=identity)
    assert "reused" not in capsys.readouterr().out
    train(build_model("baseline", 1, 3, 4, seed=0), toy_data[0], cfg, toy_data[1], checkpoint_dir=tmp_path,
          data_identity=identity)
    out = capsys.readouterr().out
    assert "reused finished baseline run" in out and str(tmp_path) in out and "data_seed 0" in out


def test_data_identity_changes_the_run_key():
    base = ExperimentConfig(task="polyp", image_size=32, n_train=2, n_val=1, n_test=1, n_target=1, out_dir=None)
    tags = {synthetic_splits(c).tag for c in (base, dataclasses.replace(base, data_seed=1),
                                             dataclasses.replace(base, n_train=3))}
    assert len(tags) == 3
    assert len({base.run_key(t) for t in tags}) == 3
    assert synthetic_splits(base).tag == synthetic_splits(base).tag  # and it is stable


def test_real_identity_names_root_and_files(tmp_path):
    for name in ("a", "b"):
        fake.write_busi(tmp_path / name)
    first, second = real_splits("breast_us", tmp_path / "a"), real_splits("breast_us", tmp_path / "b")
    assert first.identity["root"] == str((tmp_path / "a").resolve())
    assert first.tag != second.tag  # same counts, other folder: another run
    image = next((tmp_path / "a").rglob("*.png"))
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    assert real_splits("breast_us", tmp_path / "a").tag != first.tag  # an edited file: another run


def test_custom_splits_get_a_content_identity():
    cases = [_fg_case(case_id=f"c{i}") for i in range(3)]
    a = Splits(cases[:2], cases[2:], {"source": cases[2:]}, tag="mine")
    b = Splits(cases[1:], cases[:1], {"source": cases[:1]}, tag="mine")
    assert a.tag.startswith("mine|cases:") and a.tag != b.tag


# -------------------------------------------------------------------------------- crash hygiene
def test_killed_checkpoint_write_leaves_no_tmp_after_restart(toy_data, tmp_path):
    """SIGKILL in the middle of a checkpoint write, then a restart: the .tmp is gone and the weights match."""
    folder = tmp_path / "run"
    script = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(TESTS)!r})
        import torch
        from conftest import ToySlices
        from sikd_utils.train import TrainConfig, build_model, load_model, train

        real_save = torch.save

        def dying_save(obj, fh, *args, **kwargs):
            if obj.get("epoch") == 2:  # half of epoch 2's checkpoint reaches the disk, then the process dies
                fh.write(b"half a checkpoint")
                fh.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, fh, *args, **kwargs)

        torch.save = dying_save
        train(build_model("baseline", 1, 3, 4, seed=0), ToySlices(n=12, seed=0),
              TrainConfig(epochs=3, batch_size=4, seed=3, progress=False), ToySlices(n=4, seed=1),
              checkpoint_dir={str(folder)!r})
    """)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == -signal.SIGKILL, done.stderr
    assert list(folder.glob(".*.tmp")), "the kill should have left a temporary file behind"
    # Bit-exact resume needs the thread count the killed run had: CPU reductions sum in a per-thread
    # order, so epoch 3 on two threads differs from epoch 3 on one in the last bits (this test failed
    # outside pytest-xdist, whose workers run on one thread, for that reason alone).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _resume_and_compare(folder, toy_data, tmp_path)
    finally:
        torch.set_num_threads(threads)


def _resume_and_compare(folder, toy_data, tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=4, seed=3, progress=False)
    resumed = train(build_model("baseline", 1, 3, 4, seed=99), toy_data[0], cfg, toy_data[1], checkpoint_dir=folder)
    assert not list(folder.glob("*.tmp")) and not list(folder.glob(".*.tmp"))
    full = train(build_model("baseline", 1, 3, 4, seed=0), toy_data[0], cfg, toy_data[1])
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    last = torch.load(folder / "last.pt", weights_only=True)["model"]
    uninterrupted = train(build_model("baseline", 1, 3, 4, seed=0), toy_data[0], cfg, toy_data[1],
                          checkpoint_dir=tmp_path / "full")
    for key, value in torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"].items():
        assert torch.equal(last[key], value), key
    assert full.best_epoch == uninterrupted.best_epoch == resumed.best_epoch
