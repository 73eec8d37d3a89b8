"""The distillation options of issue 13: methods, layer, teacher input — and that the defaults are SIKD's,
bit for bit."""

import contextlib
import copy
import math

import pytest
import torch
import torch.nn.functional as F

from sikd_utils.averaging import class_wise_mean
from sikd_utils.distill import (DISTILL_METHODS, NO_SCALING, attention_map, attention_transfer, check_finite,
                                label_one_hot, logit_kd, raw_images, sikd_loss, sikd_step, teacher_input_function)
from sikd_utils.train import TrainConfig, build_model, train, validation_dice

try:  # tests/ may or may not be a package
    from .conftest import ToySlices
except ImportError:  # pragma: no cover - depends on how pytest imports tests/
    from conftest import ToySlices


def _outputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 4, 4, generator=g)
    features = torch.randn(2, 5, 4, 4, generator=g)
    return logits, features, torch.randint(0, 3, (2, 4, 4), generator=g)


def _cfg(role, **kw):
    return TrainConfig(**{"role": role, "epochs": 1, "batch_size": 4, "seed": 3, "progress": False, **kw})


# --------------------------------------------------------------------------- the loss terms
@pytest.mark.parametrize("method", DISTILL_METHODS)
def test_term_is_zero_for_identical_outputs_and_positive_otherwise(method):
    logits, features, target = _outputs()
    same = sikd_loss(logits, features, features.clone(), target, method=method, teacher_logits=logits.clone())
    assert same.mse.item() == 0.0 and same.total.item() == same.ce.item()
    other_logits, other_features, _ = _outputs(seed=1)
    differ = sikd_loss(logits, features, other_features, target, method=method, teacher_logits=other_logits)
    assert differ.mse.item() > 0
    assert differ.total.item() == pytest.approx(differ.ce.item() + 2.0 * differ.mse.item(), rel=1e-6)


def test_logit_kd_against_hand_computation():
    # one pixel, two classes, T = 2: student logits (0, 0) -> q = (1/2, 1/2);
    # teacher logits (0, 2 ln 3) -> softmax(teacher / 2) = softmax(0, ln 3) = p = (1/4, 3/4)
    student = torch.zeros(1, 2, 1, 1)
    teacher = torch.tensor([0.0, 2 * math.log(3.0)]).reshape(1, 2, 1, 1)
    kl = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    assert logit_kd(student, teacher, 2.0).item() == pytest.approx(4 * kl, rel=1e-6)  # T² · KL(p ‖ q)
    # averaged over pixels: a second, identical pixel leaves it unchanged
    assert logit_kd(student.expand(1, 2, 1, 2), teacher.expand(1, 2, 1, 2), 2.0).item() == pytest.approx(4 * kl)


def test_attention_map_against_hand_computation():
    # two channels, two pixels: sums of squares (1 + 4, 9 + 0) = (5, 9) -> unit norm
    features = torch.tensor([[1.0, 3.0], [2.0, 0.0]]).reshape(1, 2, 1, 2)
    expected = torch.tensor([5.0, 9.0]) / math.sqrt(25 + 81)
    assert torch.allclose(attention_map(features)[0], expected)
    # only the pattern counts: scaling the features changes nothing, and channel counts may differ
    assert attention_transfer(3 * features, features).item() == pytest.approx(0.0, abs=1e-12)
    assert attention_transfer(features, features[:, :1]).item() > 0


@pytest.mark.parametrize("method", DISTILL_METHODS)
def test_gradient_reaches_the_student_only(method):
    logits, features, target = _outputs()
    logits.requires_grad_(True)
    features.requires_grad_(True)
    t_logits, t_features, _ = _outputs(seed=1)
    t_logits.requires_grad_(True)
    t_features.requires_grad_(True)
    sikd_loss(logits, features, t_features, target, method=method, teacher_logits=t_logits).total.backward()
    assert t_logits.grad is None and t_features.grad is None
    assert (logits.grad.abs().sum() > 0) and (method == "logit_kd" or features.grad.abs().sum() > 0)


def test_method_arguments_are_checked():
    logits, features, target = _outputs()
    with pytest.raises(ValueError, match=r"distillation method must be one of \('feature_mse', 'logit_kd', "
                                         r"'attention_transfer'\), got 'fitnet'"):
        sikd_loss(logits, features, features, target, method="fitnet")
    with pytest.raises(ValueError, match="logit_kd needs teacher_logits"):
        sikd_loss(logits, features, features, target, method="logit_kd")
    with pytest.raises(ValueError, match="kd temperature"):
        sikd_loss(logits, features, features, target, method="logit_kd", teacher_logits=logits, temperature=0)
    with pytest.raises(ValueError, match="same batch and spatial size"):
        sikd_loss(logits, features, features[..., :2], target, method="attention_transfer")
    with pytest.raises(ValueError, match="one pixel"):
        sikd_loss(logits, features[..., :1, :1], features[..., :1, :1], target, method="attention_transfer")


# --------------------------------------------------------------------------- teacher inputs
def test_teacher_inputs():
    images = torch.rand(2, 1, 3, 3)
    labels = torch.tensor([[[0, 1, 2]] * 3] * 2)
    one_hot = label_one_hot(images, labels, 3)
    assert one_hot.shape == (2, 3, 3, 3) and one_hot.dtype == images.dtype
    assert torch.equal(one_hot.argmax(1), labels) and torch.equal(one_hot.sum(1), torch.ones(2, 3, 3))
    assert torch.equal(label_one_hot(images, labels[:, None], 3), one_hot)
    assert teacher_input_function("mean_image") is class_wise_mean
    assert teacher_input_function("raw") is raw_images
    with pytest.raises(ValueError, match=r"teacher_input must be one of \('mean_image', 'label_onehot', 'raw'\)"):
        teacher_input_function("edges")


# --------------------------------------------------------------------------- defaults are SIKD's, bit for bit
def _sikd_step_before_issue_13(student, teacher, optimizer, images, labels, weight=2.0,
                               autocast=contextlib.nullcontext, teacher_input=class_wise_mean, scaler=NO_SCALING):
    """sikd_step and sikd_loss as they were before issue 13 (the loss without its argument checks)."""
    with autocast():
        with torch.no_grad():
            mean_images = teacher_input(images, labels, teacher.num_classes)
            _, teacher_features = teacher(mean_images)
        logits, student_features = student(images)
        ce = F.cross_entropy(logits.float(), labels.long())
        mse = F.mse_loss(student_features.float(), teacher_features.detach().float())
        total = ce + weight * mse
    check_finite(type("L", (), {"total": total})())
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(total).backward()
    scaler.step(optimizer)
    scaler.update()
    return total, ce, mse


@pytest.mark.parametrize("teacher_input", [class_wise_mean, raw_images])
def test_default_step_is_the_step_before_issue_13_bit_for_bit(teacher_input):
    teacher = build_model("teacher", 1, 3, 4, seed=0).eval()
    new = build_model("student", 1, 3, 4, seed=1)
    old = copy.deepcopy(new)
    opt_new, opt_old = (torch.optim.Adam(m.parameters(), lr=1e-3) for m in (new, old))
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        images, labels = torch.rand(2, 1, 16, 16, generator=g), torch.randint(0, 3, (2, 16, 16), generator=g)
        loss = sikd_step(new, teacher, opt_new, images, labels, 2.0, teacher_input=teacher_input)
        expected = _sikd_step_before_issue_13(old, teacher, opt_old, images, labels, 2.0, teacher_input=teacher_input)
        assert [v.item() for v in loss] == [v.item() for v in expected]
    for (key, a), b in zip(new.state_dict().items(), old.state_dict().values()):
        assert torch.equal(a, b), key


def test_explicit_defaults_change_nothing(toy_data):
    train_ds, _ = toy_data
    teacher = build_model("teacher", 1, 3, 4, seed=0)
    runs = [train(build_model("student", 1, 3, 4, seed=0), train_ds, _cfg("student", **kw), teacher=teacher)
            for kw in ({}, {"distill_method": "feature_mse", "distill_layer": "last_decoder",
                            "teacher_input": "mean_image"})]
    for key, value in runs[0].model.state_dict().items():
        assert torch.equal(runs[1].model.state_dict()[key], value), key


# --------------------------------------------------------------------------- through train()
@pytest.mark.parametrize("method,layer", [("logit_kd", "last_decoder"), ("attention_transfer", "last_decoder"),
                                          ("feature_mse", "bottleneck"), ("attention_transfer", "bottleneck")])
def test_other_methods_train_and_log_their_term(method, layer, monkeypatch):
    import sikd_utils.train as train_module

    train_ds = ToySlices(n=8, size=32, seed=0)  # 16 px would leave a bottleneck of one pixel
    teacher = build_model("teacher", 1, 3, 4, seed=0)
    seen = []

    def spy(*args, **kwargs):
        seen.append(args[9:12])
        return sikd_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "sikd_step", spy)
    result = train(build_model("student", 1, 3, 4, seed=0), train_ds,
                   _cfg("student", distill_method=method, distill_layer=layer, kd_temperature=2.0),
                   teacher=teacher)
    assert set(seen) == {(method, layer, 2.0)}
    rec = result.history[0]
    assert rec["mse"] > 0 and rec["loss"] == pytest.approx(rec["ce"] + 2.0 * rec["mse"], rel=1e-4)


def test_bottleneck_features_are_the_deepest_encoder_block():
    net = build_model("student", 1, 3, 4, seed=0).eval()
    x = torch.rand(1, 1, 20, 20)  # padded to 32 inside
    logits, bottleneck = net(x, features_at="bottleneck")
    assert bottleneck.shape == (1, 64, 2, 2) and torch.equal(logits, net(x)[0])


def test_label_onehot_teacher_and_its_student(toy_data, tmp_path):
    train_ds, val_ds = toy_data
    teacher = build_model("teacher", 1, 3, 4, seed=0, teacher_input="label_onehot")
    assert teacher.in_channels == 3
    result = train(teacher, train_ds, _cfg("teacher", teacher_input="label_onehot"), val_ds,
                   checkpoint_dir=tmp_path / "teacher")
    assert result.best_val_dice == pytest.approx(
        validation_dice(result.model, val_ds, teacher_input="label_onehot"))
    student = train(build_model("student", 1, 3, 4, seed=0), train_ds, _cfg("student", teacher_input="label_onehot"),
                    teacher=tmp_path / "teacher")
    assert student.history[0]["mse"] > 0
    # the default student (mean images) must not be handed that teacher, in memory or from disk
    with pytest.raises(ValueError, match="in_channels=3 does not match student in_channels=1"):
        train(build_model("student", 1, 3, 4), train_ds, _cfg("student"), teacher=result.model)
    with pytest.raises(ValueError, match="trained on teacher_input='label_onehot', but role 'student' would feed "
                                         "it 'mean_image'"):
        train(build_model("student", 1, 3, 4), train_ds, _cfg("student"), teacher=tmp_path / "teacher")
    # and a one-hot teacher needs in_channels = num_classes
    with pytest.raises(ValueError, match="needs in_channels = num_classes = 3"):
        train(build_model("teacher", 1, 3, 4), train_ds, _cfg("teacher", teacher_input="label_onehot"))


def test_teacher_checkpoint_trained_on_another_input_is_refused(toy_data, tmp_path):
    train_ds, _ = toy_data
    train(build_model("raw_teacher", 1, 3, 4, seed=0), train_ds, _cfg("raw_teacher"), checkpoint_dir=tmp_path / "raw")
    with pytest.raises(ValueError, match="trained on teacher_input='raw', but role 'student' would feed it "
                                         "'mean_image'"):
        train(build_model("student", 1, 3, 4), train_ds, _cfg("student"), teacher=tmp_path / "raw")
    # the ablation student fed raw images may use it, as the control does
    train(build_model("student", 1, 3, 4), train_ds, _cfg("student", teacher_input="raw"), teacher=tmp_path / "raw")
    train(build_model("control", 1, 3, 4), train_ds, _cfg("control"), teacher=tmp_path / "raw")


def test_resuming_with_another_method_is_refused_and_old_checkpoints_resume(toy_data, tmp_path):
    train_ds, _ = toy_data
    teacher = build_model("teacher", 1, 3, 4, seed=0)
    train(build_model("student", 1, 3, 4, seed=0), train_ds, _cfg("student"), teacher=teacher,
          checkpoint_dir=tmp_path)
    for changed, words in (
        ({"distill_method": "logit_kd"}, "distill_method: checkpoint 'feature_mse', now 'logit_kd'"),
        ({"distill_layer": "bottleneck"}, "distill_layer: checkpoint 'last_decoder', now 'bottleneck'"),
        ({"teacher_input": "raw"}, "teacher_input: checkpoint 'mean_image', now 'raw'"),
        ({"kd_temperature": 2.0}, "kd_temperature: checkpoint 4.0, now 2.0"),
    ):
        with pytest.raises(ValueError, match=words):
            train(build_model("student", 1, 3, 4, seed=0), train_ds, _cfg("student", **changed), teacher=teacher,
                  checkpoint_dir=tmp_path)
    # naming the student's own input explicitly is the same run
    train(build_model("student", 1, 3, 4, seed=0), train_ds, _cfg("student", teacher_input="mean_image"),
          teacher=teacher, checkpoint_dir=tmp_path)
    # a checkpoint written before these settings (and the backbone) existed resumes under the defaults
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    for key in ("distill_method", "kd_temperature", "distill_layer", "teacher_input"):
        del ckpt["config"][key]
    del ckpt["architecture"]["backbone"]
    torch.save(ckpt, tmp_path / "last.pt")
    again = train(build_model("student", 1, 3, 4, seed=5), train_ds, _cfg("student"), teacher=teacher,
                  checkpoint_dir=tmp_path)  # the finished run is reused, not refused
    assert [r["epoch"] for r in again.history] == [1]
    for key, value in ckpt["model"].items():
        assert torch.equal(again.model.state_dict()[key], value), key


# --------------------------------------------------------------------------- bad settings, before any work
@pytest.mark.parametrize("settings,words", [
    ({"distill_method": "fitnet"}, ["distill_method must be one of", "'logit_kd'", "'fitnet'"]),
    ({"distill_layer": "middle"}, ["distill_layer must be one of", "'bottleneck'", "'middle'"]),
    ({"teacher_input": "edges"}, ["teacher_input must be one of", "'label_onehot'", "'edges'"]),
    ({"distill_method": "logit_kd", "distill_layer": "bottleneck"}, ["does not apply to logit_kd"]),
    ({"kd_temperature": 0}, ["kd_temperature"]),
    ({"role": "baseline", "teacher_input": "raw"}, ["'baseline' has no teacher"]),
    ({"role": "control", "teacher_input": "mean_image"}, ["'control' feeds its teacher the 'raw' image"]),
])
def test_bad_settings_name_the_valid_choices(settings, words):
    with pytest.raises(ValueError) as info:
        TrainConfig(**{"role": "student", **settings})
    for word in words:
        assert word in str(info.value)
    TrainConfig(role="control", teacher_input="raw")  # repeating a role's own input is fine


def test_bad_build_settings_name_the_valid_choices():
    with pytest.raises(ValueError, match=r"backbone must be one of \('unet', 'swin_unetr', 'basic_unet'\)"):
        build_model("teacher", 1, 3, 4, backbone="resnet")
    with pytest.raises(ValueError, match=r"teacher_input must be one of .*'labels'"):
        build_model("teacher", 1, 3, 4, teacher_input="labels")


def test_validation_input_is_one_choice(toy_data):
    net = build_model("teacher", 1, 3, 4, seed=0)
    val_ds = toy_data[1]
    assert validation_dice(net, val_ds, mean_images=True) == validation_dice(net, val_ds, teacher_input="mean_image")
    with pytest.raises(ValueError, match="mean_images=True contradicts teacher_input='raw'"):
        validation_dice(net, val_ds, mean_images=True, teacher_input="raw")
    with pytest.raises(ValueError, match="teacher_input must be one of"):
        validation_dice(net, val_ds, teacher_input="mean")
