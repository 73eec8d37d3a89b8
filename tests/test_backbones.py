"""Every backbone (issue 13): student and skip-free teacher shapes, sizes, the absence of skips,
MONAI parity, checkpoints and training through train()."""

import pytest
import torch

from sikd_utils.backbones import BACKBONES, build_backbone, from_architecture
from sikd_utils.models import architecture_of, count_parameters
from sikd_utils.train import CHECKPOINT_FORMAT, TrainConfig, build_model, load_model, load_teacher, train

try:  # tests/ may or may not be a package
    from .conftest import ToySlices
except ImportError:  # pragma: no cover - depends on how pytest imports tests/
    from conftest import ToySlices

# the smallest settings each backbone allows: SwinUNETR needs widths divisible by 12 and (instance norm at
# its 1/32 bottleneck) inputs of at least 64 px
TINY = {"unet": (4, 32), "basic_unet": (4, 32), "swin_unetr": (12, 64)}
# the block whose output is the bottleneck (the only way into a teacher's decoder)
BOTTLENECK = {"unet": lambda m: m.encoders[-1], "basic_unet": lambda m: m.down_4, "swin_unetr": lambda m: m.encoder10}


def _pair(backbone, in_channels=1, num_classes=3):
    base, size = TINY[backbone]
    torch.manual_seed(0)
    student = build_backbone(backbone, in_channels, num_classes, base, skip_connections=True).eval()
    teacher = build_backbone(backbone, in_channels, num_classes, base, skip_connections=False).eval()
    return student, teacher, base, size


def test_backbone_names_are_complete():
    assert BACKBONES == ("unet", "swin_unetr", "basic_unet") and set(TINY) == set(BACKBONES)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_shapes_of_student_and_teacher(backbone):
    student, teacher, base, size = _pair(backbone, in_channels=2, num_classes=3)
    x = torch.rand(2, 2, size, size)
    (ls, fs), (lt, ft) = student(x), teacher(x)
    assert ls.shape == lt.shape == (2, 3, size, size)
    assert fs.shape == ft.shape == (2, base, size, size)  # the last decoder block, at input resolution
    (_, bs), (_, bt) = student(x, features_at="bottleneck"), teacher(x, features_at="bottleneck")
    assert bs.shape == bt.shape and bs.shape[-1] < size
    # any size works: padded inside, cropped back
    odd = torch.rand(1, 2, size - 5, size + 3)
    assert student(odd)[0].shape[-2:] == teacher(odd)[1].shape[-2:] == (size - 5, size + 3)
    with pytest.raises(ValueError, match=r"\(batch, 2, height, width\)"):
        student(torch.rand(1, 3, size, size))


@pytest.mark.parametrize("backbone", BACKBONES)
def test_teacher_has_fewer_parameters(backbone):
    student, teacher, *_ = _pair(backbone)
    assert 0 < count_parameters(teacher) < count_parameters(student)
    assert teacher.skip_connections is False and student.skip_connections is True
    assert student.backbone == teacher.backbone == backbone


@pytest.mark.parametrize("backbone,base", [("unet", 32), ("basic_unet", 32), ("swin_unetr", 24), ("swin_unetr", 36)])
def test_parameter_counts_in_the_docstrings_are_current(backbone, base):
    # the book quotes these docstrings; counts at 1 input channel and 4 classes (the image size does not matter)
    for skip, role in ((True, "student"), (False, "teacher")):
        net = build_backbone(backbone, 1, 4, base, skip_connections=skip)
        assert f"{role} {count_parameters(net):,}" in " ".join(type(net).__doc__.split()), (backbone, base, role)


@pytest.mark.parametrize("backbone", BACKBONES)
def test_teacher_decoder_sees_the_image_only_through_the_bottleneck(backbone):
    # pin the bottleneck block's output: the teacher's prediction must then ignore the image entirely,
    # while the student's still follows it through its skips
    student, teacher, _, size = _pair(backbone)
    a, b = torch.rand(1, 1, size, size), torch.rand(1, 1, size, size)
    for net, has_skips in ((teacher, False), (student, True)):
        block = BOTTLENECK[backbone](net)
        with torch.no_grad():
            pinned = {}
            handle = block.register_forward_hook(lambda m, i, o: pinned.setdefault("value", o))
            out_a = net(a)[0]
            handle.remove()
            handle = block.register_forward_hook(lambda m, i, o: pinned["value"])
            out_b = net(b)[0]
            handle.remove()
        assert torch.equal(out_a, out_b) is not has_skips, (backbone, has_skips)


@pytest.mark.parametrize("backbone", ["basic_unet", "swin_unetr"])
def test_student_is_monais_network(backbone):
    from monai.networks.nets import BasicUNet, SwinUNETR

    student, _, base, size = _pair(backbone)
    if backbone == "basic_unet":
        reference = BasicUNet(spatial_dims=2, in_channels=1, out_channels=3,
                              features=(base, base, 2 * base, 4 * base, 8 * base, base))
    else:
        reference = SwinUNETR(in_channels=1, out_channels=3, feature_size=base, spatial_dims=2)
    reference.load_state_dict(student.state_dict())  # same modules, same names
    x = torch.rand(2, 1, size, size)
    with torch.no_grad():
        assert torch.equal(reference.eval()(x), student(x)[0])


def test_swin_width_must_be_a_multiple_of_12():
    with pytest.raises(ValueError, match="divisible by 12.*got 32.*24.*36"):
        build_backbone("swin_unetr", 1, 4, 32)


def test_unknown_backbone_names_the_choices():
    with pytest.raises(ValueError, match=r"backbone must be one of \('unet', 'swin_unetr', 'basic_unet'\), got 'vit'"):
        build_model("student", 1, 3, 4, backbone="vit")
    with pytest.raises(ValueError, match="features_at must be one of"):
        build_backbone("basic_unet", 1, 3, 4)(torch.rand(1, 1, 16, 16), features_at="middle")


@pytest.mark.parametrize("backbone", BACKBONES)
def test_checkpoint_round_trip(backbone, tmp_path):
    student, teacher, base, size = _pair(backbone)
    for net, name in ((student, "student.pt"), (teacher, "teacher.pt")):
        torch.save({"format": CHECKPOINT_FORMAT, "architecture": architecture_of(net), "model": net.state_dict()},
                   tmp_path / name)
        again = load_model(tmp_path / name).eval()
        assert type(again) is type(net) and architecture_of(again) == architecture_of(net)
        x = torch.rand(1, 1, size, size)
        with torch.no_grad():
            assert torch.equal(again(x)[0], net(x)[0])
    assert load_teacher(tmp_path / "teacher.pt", student).backbone == backbone
    with pytest.raises(ValueError, match="skip_connections"):
        load_teacher(tmp_path / "student.pt", student)
    other = "unet" if backbone != "unet" else "basic_unet"
    with pytest.raises(ValueError, match=f"backbone: checkpoint has '{backbone}', expected '{other}'"):
        load_model(tmp_path / "teacher.pt", expect={"backbone": other})
    assert from_architecture(architecture_of(teacher)).skip_connections is False


def test_checkpoints_without_a_backbone_hold_our_unet(tmp_path):
    net = build_model("teacher", 1, 3, 4, seed=0)
    arch = {k: v for k, v in architecture_of(net).items() if k != "backbone"}
    torch.save({"format": CHECKPOINT_FORMAT, "architecture": arch, "model": net.state_dict()}, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").backbone == "unet"
    assert load_teacher(tmp_path / "old.pt", build_model("student", 1, 3, 4)).backbone == "unet"


@pytest.mark.parametrize("backbone", ["basic_unet", "swin_unetr"])
def test_train_teacher_then_student_on_another_backbone(backbone, tmp_path):
    base, size = TINY[backbone]
    data = ToySlices(n=4, size=size, seed=0)
    cfg = dict(epochs=1, batch_size=4, seed=3, progress=False)
    teacher = train(build_model("teacher", 1, 3, base, seed=0, backbone=backbone), data,
                    TrainConfig(role="teacher", **cfg), data, checkpoint_dir=tmp_path / "teacher")
    student = train(build_model("student", 1, 3, base, seed=0, backbone=backbone), data,
                    TrainConfig(role="student", **cfg), teacher=tmp_path / "teacher", checkpoint_dir=tmp_path / "s")
    assert student.history[0]["mse"] > 0 and teacher.model.backbone == backbone
    assert load_model(tmp_path / "s").backbone == backbone
    # a teacher of another backbone cannot supervise it
    with pytest.raises(ValueError, match="teacher backbone=unet does not match student backbone"):
        train(build_model("student", 1, 3, base, backbone=backbone), data, TrainConfig(role="student", **cfg),
              teacher=build_model("teacher", 1, 3, base))


def test_the_command_line_picks_the_backbone():
    """``run``/``gap``/``train --backbone``: every role's network, the default ours."""
    import argparse

    from sikd_utils.__main__ import _configs, _experiment_args

    parser = argparse.ArgumentParser()
    _experiment_args(parser, test_sets=False)
    config = _configs(parser.parse_args(["--backbone", "swin_unetr", "--base-channels", "24"]))[0]
    assert config.backbone == "swin_unetr" and config.build_model("teacher").skip_connections is False
    assert _configs(parser.parse_args([]))[0].backbone == "unet"


def test_the_projected_swin_teacher_is_bounded_counted_and_round_trips(tmp_path):
    """The ablation swin_unetr_projected: the skip-free SwinUNETR teacher with its student's residual projections."""
    from sikd_utils.feature_scale import SWIN_STUDENT_BOUND, channel_mean_square

    for base in (24, 36):
        net = build_backbone("swin_unetr", 1, 4, base, skip_connections=False, residual_projection=True)
        plain = build_backbone("swin_unetr", 1, 4, base, skip_connections=False)
        assert f"{count_parameters(net):,}" in type(net).__doc__  # the docstring's count
        assert count_parameters(plain) < count_parameters(net) < count_parameters(build_backbone("swin_unetr", 1, 4, base))
    teacher = build_model("teacher", 1, 3, 12, seed=0, backbone="swin_unetr", teacher_residual_projection=True)
    assert teacher.residual_projection and not teacher.skip_connections and "residual_projection=True" in repr(teacher)
    with torch.no_grad():
        for weight in teacher.parameters():
            weight.mul_(10)
        logits, features = teacher(torch.randn(2, 1, 64, 64))
    assert logits.shape == (2, 3, 64, 64) and features.shape == (2, 12, 64, 64)
    assert float(channel_mean_square(features).max()) <= SWIN_STUDENT_BOUND * (1 + 1e-4)
    # a checkpoint records the option and rebuilds it; the student's teacher check accepts it
    torch.save({"format": CHECKPOINT_FORMAT, "architecture": architecture_of(teacher), "model": teacher.state_dict()},
               tmp_path / "teacher.pt")
    assert architecture_of(teacher)["residual_projection"] is True
    assert "residual_projection" not in architecture_of(build_model("teacher", 1, 3, 12, backbone="swin_unetr"))
    student = build_model("student", 1, 3, 12, backbone="swin_unetr", teacher_residual_projection=True)
    assert not getattr(student, "residual_projection")  # a role with skips ignores it
    again = load_teacher(tmp_path / "teacher.pt", student)
    assert again.residual_projection and torch.equal(again.state_dict()["out.conv.conv.weight"],
                                                     teacher.state_dict()["out.conv.conv.weight"])


def test_the_residual_projection_is_refused_where_it_means_nothing():
    from sikd_utils.configuration import ExperimentConfig
    from sikd_utils.monai_backbones import SwinUNETR2D

    with pytest.raises(ValueError, match="teacher_residual_projection is for backbone 'swin_unetr', got 'unet'"):
        build_model("teacher", 1, 3, 8, teacher_residual_projection=True)
    with pytest.raises(ValueError, match="skip-free teacher"):
        SwinUNETR2D(1, 3, 12, skip_connections=True, residual_projection=True)
    with pytest.raises(ValueError, match="got 'basic_unet'"):
        ExperimentConfig(backbone="basic_unet", teacher_residual_projection=True)
    with pytest.raises((TypeError, ValueError), match="teacher_residual_projection"):
        ExperimentConfig(backbone="swin_unetr", base_channels=24, teacher_residual_projection="yes")
