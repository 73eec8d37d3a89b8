"""Packed training (sikd_utils.packed) equals training each network alone with train(), seeds, data order,
learning-rate schedule and batch-norm statistics included.

Why float64: Adam divides each gradient by its own running size, so a weight whose gradient is near zero
(every conv bias that a batch norm follows has a true gradient of exactly 0) moves by ±lr whatever the
sign of its rounding noise. In float32 that turns rounding into lr-sized differences within a step or two,
and a few steps later the repository's own channels-last switch moves the weights as far as a 10 % change
of learning rate does. In float64 the same noise (~1e-16) stays far below Adam's eps (1e-8), so float
rounding stays at ~1e-9 after several steps while any real difference moves weights by ~1e-2: BOUND sits
between the two, with margin on both sides, and each test shows a deliberate mistake lands far beyond it.
"""

from __future__ import annotations

import pytest
import torch

from sikd_utils.data.slices import SliceDataset
from sikd_utils.data.synthetic import make_cases
from sikd_utils.packed import PackedNetworks, packed_validation_dice, train_packed
from sikd_utils.train import TrainConfig, build_model, train, validation_dice

CLASSES, BASE, SIZE = 3, 4, 32
#: largest |packed - alone| allowed in any weight or batch-norm statistic (measured: <= 4e-9 after 9 steps)
BOUND = 1e-7
#: a deliberate mistake must land at least this far (measured: >= 4e-2)
MISTAKE = 1e-3


class Float64Slices(SliceDataset):
    """SliceDataset whose batches come in float64 (train() takes the batched path's dtype as it is)."""

    def batch(self, *args, **kwargs):
        images, labels = super().batch(*args, **kwargs)
        return images.double(), labels


@pytest.fixture(scope="module")
def data():
    train_ds = Float64Slices(make_cases("fundus", n_cases=12, image_size=SIZE, seed=0), SIZE, augment=True, seed=0)
    val_ds = Float64Slices(make_cases("fundus", n_cases=4, image_size=SIZE, seed=1), SIZE)
    return train_ds, val_ds


def net(role, seed):
    return build_model(role, 3, CLASSES, BASE, seed=seed).double()


def config(role, seed, **changes):
    # 3 epochs of 3 steps; the scaled milestones (1, 2, 3) change the learning rate at every epoch
    return TrainConfig(**{"role": role, "epochs": 3, "batch_size": 4, "seed": seed, "device": "cpu",
                          "progress": False, "batched_augmentation": True, **changes})


def largest_difference(a, b) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


def test_packed_baselines_equal_training_alone_and_mistakes_land_far_beyond(data):
    train_ds, _ = data
    packed = train_packed([net("baseline", 0), net("baseline", 1)], train_ds,
                          [config("baseline", 0), config("baseline", 1)])
    alone = [train(net("baseline", s), train_ds, config("baseline", s)) for s in (0, 1)]
    for p, a in zip(packed, alone):
        assert largest_difference(p.model, a.model) < BOUND
        assert [r["lr"] for r in p.history] == [r["lr"] for r in a.history] == [1e-3, 5e-4, 2.5e-4]
        assert [r["loss"] for r in p.history] == pytest.approx([r["loss"] for r in a.history], rel=1e-9)
    # the same mistakes a packed trainer could make, made on purpose in a run alone:
    other_order = train(net("baseline", 0), train_ds, config("baseline", 1)).model  # data order of another seed
    other_init = train(net("baseline", 1), train_ds, config("baseline", 0)).model  # weights of another seed
    other_rate = train(net("baseline", 0), train_ds, config("baseline", 0, lr=0.99e-3)).model  # lr 1 % off
    for wrong in (other_order, other_init, other_rate):
        assert largest_difference(wrong, alone[0].model) > MISTAKE


def test_packed_students_control_and_baseline_equal_training_alone(data):
    """SIKD students (frozen teacher on mean images, CE + λ·MSE on last-decoder features), the control (raw
    teacher) and a baseline in one pack: each as train() gives it with its own teacher."""
    train_ds, _ = data
    teachers = {("student", 0): build_model("teacher", 3, CLASSES, BASE, seed=10).double(),
                ("student", 1): build_model("teacher", 3, CLASSES, BASE, seed=11).double(),
                ("control", 0): build_model("raw_teacher", 3, CLASSES, BASE, seed=12).double(),
                ("baseline", 2): None}
    runs = list(teachers)
    packed = train_packed([net(r, s) for r, s in runs], train_ds, [config(r, s) for r, s in runs],
                          teachers=list(teachers.values()))
    for (role, seed), p in zip(runs, packed):
        alone = train(net(role, seed), train_ds, config(role, seed), teacher=teachers[(role, seed)])
        assert p.config.role == role
        assert largest_difference(p.model, alone.model) < BOUND
        assert [r["mse"] for r in p.history] == pytest.approx([r["mse"] for r in alone.history], rel=1e-9, abs=1e-12)
    # the student distilled with a 1 % larger λ lands far away: the distillation term counts
    heavier = train(net("student", 0), train_ds, config("student", 0, distill_weight=2.02),
                    teacher=teachers[("student", 0)]).model
    assert largest_difference(heavier, packed[0].model) > MISTAKE


def test_packed_teachers_validate_and_pick_their_best_epoch_as_alone(data):
    """A teacher (trained and validated on class-wise mean images) and a raw-image teacher in one pack."""
    train_ds, val_ds = data
    runs = [("teacher", 0), ("raw_teacher", 1)]
    packed = train_packed([net(r, s) for r, s in runs], train_ds, [config(r, s) for r, s in runs], val_ds)
    for (role, seed), p in zip(runs, packed):
        alone = train(net(role, seed), train_ds, config(role, seed), val_ds)
        assert [r["val_dice"] for r in p.history] == pytest.approx([r["val_dice"] for r in alone.history], abs=1e-12)
        assert p.best_epoch == alone.best_epoch
        assert largest_difference(p.model, alone.model) < BOUND
    pack = PackedNetworks([p.model for p in packed])
    scores = packed_validation_dice(pack, val_ds, [lambda x, y, k: x, None], batch_size=3, device="cpu")
    assert scores == pytest.approx([validation_dice(p.model, val_ds, device="cpu") for p in packed], abs=1e-12)


def test_float32_on_the_per_item_loader_path_runs_and_matches_the_first_step():
    """The default CPU path (per-item DataLoader, float32): one step, whose losses are computed before any
    update, agree to float32 rounding."""
    ds = SliceDataset(make_cases("fundus", n_cases=4, image_size=SIZE, seed=0), SIZE, augment=True, seed=0)
    settings = {"epochs": 1, "batch_size": 4, "batched_augmentation": None}
    packed = train_packed([build_model("baseline", 3, CLASSES, BASE, seed=s) for s in (0, 1)], ds,
                          [config("baseline", s, **settings) for s in (0, 1)])
    for seed, p in zip((0, 1), packed):
        alone = train(build_model("baseline", 3, CLASSES, BASE, seed=seed), ds, config("baseline", seed, **settings))
        assert p.history[0]["loss"] == pytest.approx(alone.history[0]["loss"], rel=1e-5)
        assert p.model.head.weight.dtype == torch.float32


def test_bad_packs_are_refused_with_the_reason(data):
    train_ds, _ = data
    with pytest.raises(ValueError, match="different architectures"):
        PackedNetworks([net("baseline", 0), build_model("baseline", 3, CLASSES, 8, seed=1).double()])
    with pytest.raises(ValueError, match="different architectures"):
        train_packed([net("baseline", 0), net("teacher", 1)], train_ds, [config("baseline", 0), config("teacher", 1)])
    with pytest.raises(ValueError, match="share one epochs"):
        train_packed([net("baseline", 0), net("baseline", 1)], train_ds,
                     [config("baseline", 0), config("baseline", 1, epochs=4)])
    with pytest.raises(ValueError, match="one TrainConfig per network"):
        train_packed([net("baseline", 0), net("baseline", 1)], train_ds, [config("baseline", 0)])
    with pytest.raises(ValueError, match="fp16"):
        train_packed([net("baseline", 0)], train_ds, [config("baseline", 0, precision="fp16")])
    with pytest.raises(ValueError, match="has no teacher"):
        train_packed([net("baseline", 0)], train_ds, [config("baseline", 0)], teachers=[net("teacher", 1)])
    with pytest.raises(ValueError, match="need a trained teacher"):
        train_packed([net("student", 0)], train_ds, [config("student", 0)], teachers=[None])
    with pytest.raises(ValueError, match="expect inputs"):
        PackedNetworks([net("baseline", 0)])(torch.zeros(2, 4, 3, SIZE, SIZE, dtype=torch.float64))


def test_train_roles_packed_trains_teachers_first_then_packs_the_rest(monkeypatch):
    """Every (seed, role) of the evidence comes back; teachers pack apart from (and before) their students."""
    from sikd_utils import packed as packed_module
    from sikd_utils.configuration import preset_config, synthetic_splits
    from sikd_utils.reproduce import ROLES

    config = preset_config("tiny", "fundus", device="cpu", out_dir=None, progress=False, seeds=(0, 1))
    splits = synthetic_splits(config)
    packs = []
    original = packed_module.train_packed

    def recording(models, data, configs, *args, **kwargs):
        packs.append(sorted((c.role, c.seed) for c in configs))
        return original(models, data, configs, *args, **kwargs)

    monkeypatch.setattr(packed_module, "train_packed", recording)
    results = packed_module.train_roles_packed(config, splits, ROLES, (0, 1))
    assert packs == [[("raw_teacher", 0), ("raw_teacher", 1), ("teacher", 0), ("teacher", 1)],
                     [("baseline", 0), ("baseline", 1), ("control", 0), ("control", 1), ("student", 0), ("student", 1)]]
    assert sorted(results) == sorted((s, r) for s in (0, 1) for r in ROLES)
    assert all(r.config.role == role and r.config.seed == seed for (seed, role), r in results.items())
    with pytest.raises(ValueError, match="need their teachers"):
        packed_module.train_roles_packed(config, splits, ("student",), (0,))
    with pytest.raises(ValueError, match="pack_size"):
        packed_module.train_roles_packed(config, splits, ROLES, (0,), pack_size=0)
