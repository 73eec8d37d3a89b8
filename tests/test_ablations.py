"""The ablations of issue 13: the comparison settings of ExperimentConfig, the teacher-with-skips switch and
the variant registry (which networks the variants share)."""

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from sikd_utils import ablations as ab
from sikd_utils.configuration import COMPARISON_DEFAULTS, ExperimentConfig, preset_config
from sikd_utils.reproduce import _data_tag
from sikd_utils.train import TrainConfig, build_model, train

try:  # tests/ may or may not be a package
    from .conftest import ToySlices  # noqa: F401
except ImportError:  # pragma: no cover - depends on how pytest imports tests/
    from conftest import ToySlices  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- run keys
def test_default_run_keys_are_unchanged():
    # computed on main before the comparison settings existed
    assert ExperimentConfig().run_key("synthetic|x") == "004539a25e"
    committed = json.loads((ROOT / "book" / "results" / "provenance.json").read_text())["tasks"]
    for task in ("fundus", "polyp"):  # the evidence run's keys at the current gpu preset
        config = preset_config("gpu", task)
        assert config.run_key(_data_tag(config)) == committed[task]["run_key"]


@pytest.mark.parametrize("name,value", [("backbone", "basic_unet"), ("distill_method", "logit_kd"),
                                        ("kd_temperature", 2.0), ("distill_layer", "bottleneck"),
                                        ("teacher_input", "label_onehot"), ("teacher_skips", True)])
def test_each_comparison_setting_changes_the_key(name, value):
    assert set(COMPARISON_DEFAULTS) >= {name}
    assert ExperimentConfig(**{name: value}).run_key("x") != ExperimentConfig().run_key("x")
    # naming the default explicitly is the same run
    assert ExperimentConfig(**{name: COMPARISON_DEFAULTS[name]}).run_key("x") == ExperimentConfig().run_key("x")


def test_settings_reach_train_config_and_build_model():
    config = ExperimentConfig(distill_method="attention_transfer", distill_layer="bottleneck", kd_temperature=3.0,
                              teacher_input="label_onehot", teacher_skips=True, base_channels=4)
    student = config.train_config("student", 0)
    assert (student.distill_method, student.distill_layer, student.kd_temperature, student.teacher_input,
            student.teacher_skips) == ("attention_transfer", "bottleneck", 3.0, "label_onehot", True)
    assert config.train_config("baseline", 0).teacher_input is None
    assert not config.train_config("baseline", 0).teacher_skips
    assert config.train_config("control", 0).teacher_input is None  # the control's is raw by definition
    teacher = config.build_model("teacher", seed=0)
    assert teacher.skip_connections and teacher.in_channels == 4  # cardiac: 4 classes
    assert ExperimentConfig(backbone="basic_unet", base_channels=4).build_model("teacher").backbone == "basic_unet"
    assert not ExperimentConfig().build_model("teacher").skip_connections


@pytest.mark.parametrize("settings,words", [
    ({"backbone": "resnet"}, ["backbone must be one of", "'swin_unetr'"]),
    ({"backbone": "swin_unetr", "base_channels": 8}, ["divisible by 12"]),
    ({"distill_method": "fitnet"}, ["distill_method must be one of", "'logit_kd'"]),
    ({"distill_method": "logit_kd", "distill_layer": "bottleneck"}, ["does not apply to logit_kd"]),
    ({"teacher_input": "edges"}, ["teacher_input must be one of"]),
])
def test_bad_comparison_settings_fail_at_once(settings, words):
    with pytest.raises(ValueError) as info:
        ExperimentConfig(**settings)
    assert all(w in str(info.value) for w in words), str(info.value)


# --------------------------------------------------------------------------- a teacher with skips
def _cfg(role, **kw):
    return TrainConfig(**{"role": role, "epochs": 1, "batch_size": 4, "seed": 3, "progress": False, **kw})


def test_teacher_with_skips_trains_and_teaches(toy_data, tmp_path):
    train_ds, val_ds = toy_data
    teacher = build_model("teacher", 1, 3, 4, seed=0, teacher_skips=True)
    assert teacher.skip_connections
    train(teacher, train_ds, _cfg("teacher", teacher_skips=True), val_ds, checkpoint_dir=tmp_path / "t")
    for source in (teacher, tmp_path / "t"):  # in memory and from its checkpoint
        run = train(build_model("student", 1, 3, 4, seed=0), train_ds, _cfg("student", teacher_skips=True),
                    teacher=source)
        assert run.history[0]["mse"] > 0
    # the paper's recipe still refuses it, and the switch refuses a skip-free teacher
    with pytest.raises(ValueError, match="must be skip-free"):
        train(build_model("student", 1, 3, 4), train_ds, _cfg("student"), teacher=teacher)
    with pytest.raises(ValueError, match="skip_connections"):
        train(build_model("student", 1, 3, 4), train_ds, _cfg("student"), teacher=tmp_path / "t")
    with pytest.raises(ValueError, match="asks for a teacher with skip connections"):
        train(build_model("student", 1, 3, 4), train_ds, _cfg("student", teacher_skips=True),
              teacher=build_model("teacher", 1, 3, 4))
    with pytest.raises(ValueError, match="teacher_skips=True keeps the skips"):
        train(build_model("teacher", 1, 3, 4, teacher_skips=True), train_ds, _cfg("teacher"))
    with pytest.raises(ValueError, match="ordinary UNet"):
        train(build_model("teacher", 1, 3, 4), train_ds, _cfg("teacher", teacher_skips=True))
    with pytest.raises(ValueError, match="'baseline' has no teacher"):
        _cfg("baseline", teacher_skips=True)


def test_resuming_a_teacher_with_other_skips_is_refused(toy_data, tmp_path):
    train_ds, _ = toy_data
    train(build_model("teacher", 1, 3, 4, seed=0), train_ds, _cfg("teacher"), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="teacher_skips: checkpoint False, now True"):
        train(build_model("teacher", 1, 3, 4, teacher_skips=True), train_ds, _cfg("teacher", teacher_skips=True),
              checkpoint_dir=tmp_path)
    # a checkpoint written before the switch existed resumes as skip-free
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    del ckpt["config"]["teacher_skips"]
    torch.save(ckpt, tmp_path / "last.pt")
    assert train(build_model("teacher", 1, 3, 4), train_ds, _cfg("teacher"), checkpoint_dir=tmp_path).history


# --------------------------------------------------------------------------- the registry
def test_unknown_variant_names_the_valid_ones():
    with pytest.raises(ValueError) as info:
        ab.check_variants(["lambda_3"])
    assert "lambda_3" in str(info.value) and all(name in str(info.value) for name in ab.VARIANTS)
    with pytest.raises(ValueError, match="choose from"):
        ab.check_variants([])


def test_every_variant_is_well_formed():
    config = preset_config("gpu", "fundus")
    assert {"sikd", "lambda_0.5", "lambda_1", "lambda_4", "bottleneck", "teacher_skips", "teacher_onehot",
            "teacher_raw", "logit_kd", "attention_transfer", "swin_unetr", "basic_unet"} <= set(ab.VARIANTS)
    for name, variant in ab.VARIANTS.items():
        assert variant.question in ab.QUESTIONS
        assert variant.baseline in ab.BASELINES and variant.reference in (None, "sikd")
        assert {"better", "worse", "tie"} <= set(variant.answers), name
        for role, overrides in ab.units(name):  # every network of every variant can be configured
            ab.role_config(config, role, overrides).train_config(role, 0)


def test_methods_bring_sikd_and_their_baselines():
    assert ab.methods_for(["lambda_4"]) == ["baseline", "sikd", "lambda_4"]
    assert ab.methods_for(["swin_unetr"]) == ["baseline", "baseline_swin_unetr", "sikd", "swin_unetr"]
    assert ab.methods_for(None)[:3] == list(ab.BASELINES)


def test_equal_networks_share_one_run_folder():
    config = preset_config("gpu", "fundus")

    def key(method, index):
        role, overrides = ab.units(method)[index]
        return role, ab.role_config(config, role, overrides).run_key("x")

    default = config.run_key("x")
    # one teacher for SIKD and every variant that changes only how it is distilled
    for method in ("sikd", "lambda_0.5", "lambda_1", "lambda_4", "bottleneck", "logit_kd", "attention_transfer"):
        assert key(method, 0) == ("teacher", default)
    assert key("sikd", 1) == ("student", default) and key("baseline", 0) == ("baseline", default)
    assert key("teacher_raw", 0) == ("raw_teacher", default)  # the evidence run's control, same folders
    students = {key(m, -1) for m in ab.VARIANTS}
    assert len(students) == len(ab.VARIANTS)  # but every student is its own network
    for method in ("teacher_skips", "teacher_onehot", "swin_unetr", "basic_unet"):
        assert key(method, 0)[1] != default
    assert key("swin_unetr", 0)[1] == key("baseline_swin_unetr", 0)[1]  # backbone: its own folder, shared
    # the teacher's own lr: a teacher and student of their own, the SwinUNETR baseline shared
    slow = {key("swin_unetr_lr3e-4", i) for i in (0, 1)}
    assert slow.isdisjoint({key("swin_unetr", i) for i in (0, 1)})
    assert ab.role_config(config, "baseline", ab.VARIANTS["swin_unetr_lr3e-4"].overrides).run_key("x") == \
        key("baseline_swin_unetr", 0)[1]
    assert dataclasses.replace(config, distill_weight=4.0).run_key("x") == key("lambda_4", 1)[1]


def test_teacher_lr_changes_only_the_teachers_learning_rate():
    """``teacher_lr`` is the teachers' Adam rate (SIKD's and the control's); the student and baseline keep ``lr``,
    and leaving it unset keeps every run key of the runs made before it existed."""
    config = ExperimentConfig(lr=1e-3, teacher_lr=3e-4)
    assert config.train_config("teacher", 0).lr == config.train_config("raw_teacher", 0).lr == 3e-4
    assert config.train_config("student", 0).lr == config.train_config("baseline", 0).lr == 1e-3
    assert ExperimentConfig().train_config("teacher", 0).lr == 1e-3
    assert ExperimentConfig(teacher_lr=None).run_key("x") == ExperimentConfig().run_key("x")
    assert config.run_key("x") != ExperimentConfig().run_key("x")
