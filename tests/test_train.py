import math

import pytest
import torch

from sikd_utils.models import UNet
from sikd_utils.train import (TrainConfig, build_model, learning_rate, load_model, load_teacher, train,
                              validation_dice)


class Stop(Exception):
    pass


def _cfg(role="baseline", **kw):
    base = dict(role=role, epochs=3, batch_size=4, seed=3, progress=False)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path):
    return torch.load(path, weights_only=True)["model"]


@pytest.fixture
def tiny_teacher(toy_data, tmp_path):
    train_ds, val_ds = toy_data
    result = train(build_model("teacher", 1, 3, 4, seed=0), train_ds, _cfg("teacher", epochs=2), val_ds,
                   checkpoint_dir=tmp_path / "teacher")
    return result


@pytest.mark.parametrize("role", ["baseline", "student"])
def test_interrupted_run_resumes_to_identical_weights(role, toy_data, tmp_path, tiny_teacher):
    train_ds, val_ds = toy_data
    teacher = tmp_path / "teacher" if role == "student" else None
    full = train(build_model(role, 1, 3, 4, seed=0), train_ds, _cfg(role), val_ds, teacher=teacher,
                 checkpoint_dir=tmp_path / "full")

    def stop_after_two(record):
        if record["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        train(build_model(role, 1, 3, 4, seed=0), train_ds, _cfg(role), val_ds, teacher=teacher,
              checkpoint_dir=tmp_path / "cut", callbacks=[stop_after_two])
    assert torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["epoch"] == 2
    # a different initialisation proves the weights really come from the checkpoint
    resumed = train(build_model(role, 1, 3, 4, seed=123), train_ds, _cfg(role), val_ds, teacher=teacher,
                    checkpoint_dir=tmp_path / "cut")
    a, b = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "cut" / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(full.history) == strip(resumed.history)
    assert full.best_epoch == resumed.best_epoch
    # and a different seed gives different weights (the comparison above can fail)
    other = train(build_model(role, 1, 3, 4, seed=0), train_ds, _cfg(role, seed=4), None, teacher=teacher)
    assert not torch.equal(other.model.state_dict()["head.weight"], a["head.weight"])


def test_history_best_checkpoint_and_finished_run_returns_at_once(toy_data, tmp_path):
    train_ds, val_ds = toy_data
    result = train(build_model("baseline", 1, 3, 4, seed=0), train_ds, _cfg(epochs=4), val_ds,
                   checkpoint_dir=tmp_path)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert set(result.history[0]) >= {"loss", "ce", "mse", "val_dice", "lr"}
    vals = [r["val_dice"] for r in result.history]
    assert result.best_epoch == 1 + max(range(4), key=lambda i: vals[i])
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == result.best_epoch
    assert validation_dice(result.model, val_ds) == pytest.approx(result.best_val_dice)
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    again = train(build_model("baseline", 1, 3, 4, seed=5), train_ds, _cfg(epochs=4), val_ds, checkpoint_dir=tmp_path)
    assert len(again.history) == 4
    for key, value in best["model"].items():
        assert torch.equal(again.model.state_dict()[key], value)


def test_student_loss_parts_logged(toy_data, tiny_teacher):
    train_ds, _ = toy_data
    result = train(build_model("student", 1, 3, 4, seed=0), train_ds, _cfg("student", epochs=1),
                   teacher=tiny_teacher.model)
    rec = result.history[0]
    assert rec["mse"] > 0
    assert rec["loss"] == pytest.approx(rec["ce"] + 2.0 * rec["mse"], rel=1e-4)


def test_teacher_is_frozen_during_distillation(toy_data, tiny_teacher):
    train_ds, _ = toy_data
    before = {k: v.clone() for k, v in tiny_teacher.model.state_dict().items()}
    train(build_model("student", 1, 3, 4, seed=0), train_ds, _cfg("student", epochs=1), teacher=tiny_teacher.model)
    for key, value in tiny_teacher.model.state_dict().items():
        assert torch.equal(value, before[key]), key  # BN running stats too: the teacher ran in eval mode


def test_learning_rate_schedule_scales_with_epochs():
    cfg = TrainConfig(epochs=200)
    assert [learning_rate(cfg, e) for e in (0, 59, 60, 99, 100, 150, 180, 199)] == pytest.approx(
        [1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 1.25e-4, 6.25e-5, 6.25e-5])
    short = TrainConfig(epochs=20)
    assert short.scaled_milestones() == [6, 10, 15, 18]


def test_mismatched_teacher_checkpoint_is_a_clear_error(tmp_path, tiny_teacher, toy_data):
    student = build_model("student", 1, 3, 8)
    with pytest.raises(ValueError, match="base_channels: checkpoint has 4, expected 8"):
        load_teacher(tmp_path / "teacher", student)
    with pytest.raises(ValueError, match="skip_connections"):
        load_model(tmp_path / "teacher", expect={"skip_connections": True})
    with pytest.raises(ValueError, match="base_channels=4 does not match student base_channels=8"):
        train(student, toy_data[0], _cfg("student", epochs=1), teacher=tiny_teacher.model)
    assert load_teacher(tmp_path / "teacher", build_model("student", 1, 3, 4)).skip_connections is False


def test_corrupt_and_foreign_checkpoints(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read checkpoint"):
        load_model(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match="not a SIKD Book checkpoint"):
        load_model(foreign)
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "missing.pt")


def test_resuming_with_other_settings_is_refused(toy_data, tmp_path):
    train_ds, _ = toy_data
    train(build_model("baseline", 1, 3, 4, seed=0), train_ds, _cfg(epochs=1), checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="lr: checkpoint 0.001, now 0.01"):
        train(build_model("baseline", 1, 3, 4), train_ds, _cfg(epochs=1, lr=0.01), checkpoint_dir=tmp_path)
    fresh = train(build_model("baseline", 1, 3, 4), train_ds, _cfg(epochs=1, lr=0.01), checkpoint_dir=tmp_path,
                  resume=False)
    assert fresh.history[0]["lr"] == 0.01


def test_role_and_model_must_agree(toy_data):
    with pytest.raises(ValueError, match="skip-free"):
        train(UNet(1, 3, 4), toy_data[0], _cfg("teacher"))
    with pytest.raises(ValueError, match="ordinary UNet"):
        train(UNet(1, 3, 4, skip_connections=False), toy_data[0], _cfg("baseline"))
    with pytest.raises(ValueError, match="need a trained teacher"):
        train(UNet(1, 3, 4), toy_data[0], _cfg("student"))
    with pytest.raises(ValueError, match="role must be"):
        TrainConfig(role="teacher2")


def test_nan_data_stops_with_a_clear_error(toy_data):
    train_ds, _ = toy_data
    train_ds.items[0]["image"][0, 0, 0] = math.nan
    with pytest.raises((FloatingPointError, ValueError), match="NaN"):  # on a CPU the network's input check speaks
        train(build_model("baseline", 1, 3, 4, seed=0), train_ds, _cfg(epochs=1, batch_size=12))


def test_student_with_zero_weight_is_the_baseline_bit_for_bit(toy_data, tiny_teacher):
    train_ds, val_ds = toy_data
    base = train(build_model("baseline", 1, 3, 4, seed=0), train_ds, _cfg("baseline", epochs=2), val_ds)
    student = train(build_model("student", 1, 3, 4, seed=0), train_ds, _cfg("student", epochs=2, distill_weight=0.0),
                    val_ds, teacher=tiny_teacher.model)
    for key, value in base.model.state_dict().items():
        assert torch.equal(student.model.state_dict()[key], value), key


def _slice_data():
    from sikd_utils.data.slices import SliceDataset
    from sikd_utils.data.synthetic import make_cases

    cases = make_cases("fundus", n_cases=6, image_size=32, seed=0)
    return SliceDataset(cases[:4], 32, augment=True, seed=1), SliceDataset(cases[4:], 32)


def test_batched_order_is_the_shuffling_dataloaders():
    """The batched path must see the items a DataLoader(dataset, shuffle=True, generator=g) gives."""
    from torch.utils.data import DataLoader

    from sikd_utils.train import _epoch_batches

    train_ds, _ = _slice_data()
    train_ds.set_epoch(2)
    config = _cfg(batch_size=3)
    loader = DataLoader(train_ds, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(7))
    expected = [(b["image"], b["label"]) for b in loader]
    got = list(_epoch_batches(train_ds, config, 2, torch.Generator().manual_seed(7), torch.device("cpu"),
                              False, batched=True))
    assert len(got) == len(expected) == 2
    for (a, la), (b, lb) in zip(expected, got):
        assert torch.equal(a, b) and torch.equal(la, lb)


def test_batched_augmentation_gives_the_same_run():
    train_ds, val_ds = _slice_data()
    runs = [train(build_model("baseline", 3, 3, 4, seed=0), train_ds,
                  _cfg(epochs=2, batched_augmentation=flag), val_ds) for flag in (False, True)]
    for (name, a), b in zip(runs[0].model.state_dict().items(), runs[1].model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6, msg=name)
    assert [h["val_dice"] for h in runs[0].history] == [h["val_dice"] for h in runs[1].history]


def test_batched_augmentation_needs_a_batching_dataset(toy_data):
    train_ds, _ = toy_data
    with pytest.raises(ValueError, match="batched_augmentation=True needs a dataset with a batch"):
        train(build_model("baseline", 1, 3, 4, seed=0), train_ds, _cfg(batched_augmentation=True))
    with pytest.raises(TypeError, match="batched_augmentation must be True or False"):
        _cfg(batched_augmentation="yes")
