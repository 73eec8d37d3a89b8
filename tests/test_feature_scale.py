"""sikd_utils.feature_scale: the SwinUNETR student's bound, the teacher's lack of one, the probe and the losses."""

import numpy as np
import pandas as pd
import pytest
import torch

from sikd_utils import feature_scale as fs


def _scaled(model, factor):
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(factor)
    return model


@pytest.mark.parametrize("factor", [1.0, 10.0])
def test_no_swin_unetr_student_passes_the_bound_but_its_teacher_can(factor):
    from sikd_utils.monai_backbones import SwinUNETR2D

    torch.manual_seed(0)
    x = torch.randn(2, 1, 64, 64) * 3
    student = _scaled(SwinUNETR2D(1, 3, 12, skip_connections=True), factor)
    teacher = _scaled(SwinUNETR2D(1, 3, 12, skip_connections=False), factor)
    for mode in ("train", "eval"):
        getattr(student, mode)()
        getattr(teacher, mode)()
        with torch.no_grad():
            student_ms = fs.channel_mean_square(student(x)[1])
            teacher_ms = fs.channel_mean_square(teacher(x)[1])
        assert student_ms.shape == (2, 12)
        assert float(student_ms.max()) <= fs.SWIN_STUDENT_BOUND * (1 + 1e-4)  # whatever its weights
        if factor > 1:  # the teacher's residual path is unnormalised: its weights set its scale
            assert float(teacher_ms.max()) > 100 * fs.SWIN_STUDENT_BOUND


def test_channel_mean_square_refuses_flat_features():
    with pytest.raises(ValueError, match=r"\(batch, channels"):
        fs.channel_mean_square(torch.zeros(4, 8))


def test_the_probe_measures_a_training_teacher_and_round_trips(tmp_path):
    frame = fs.probe(backbones=("unet",), epochs=2, every=1, preset="tiny", out_dir=str(tmp_path / "runs"),
                     log=lambda *_: None)
    assert list(frame.columns) == fs.PROBE_COLUMNS
    assert list(frame["epoch"]) == [0, 1, 2] and set(frame["role"]) == {"teacher"}
    assert frame["val_dice"].iloc[1:].between(0, 1).all() and (frame["mean_square"] > 0).all()
    assert (frame["largest_channel"] >= frame["mean_square"]).all()
    path = fs.write_probe(frame, tmp_path / "probe.csv", {"commit": "abc", "command": "test"})
    back, prov = fs.read_probe(path)
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert prov == {"commit": "abc", "command": "test"}
    (line,) = fs.probe_sentences(back)
    assert line.startswith("unet: the teacher's last-decoder features") and "after 2 epochs" in line
    assert fs.probe_figure(back) is not None
    with pytest.raises(RuntimeError, match="reused"):  # a finished run would be reloaded and measure nothing
        fs.probe(backbones=("unet",), epochs=2, every=1, preset="tiny", out_dir=str(tmp_path / "runs"),
                 log=lambda *_: None)
    assert fs.read_probe(tmp_path / "missing.csv")[0].empty


def test_the_swin_sentence_says_when_the_teacher_passed_the_bound():
    frame = pd.DataFrame({"backbone": "swin_unetr", "role": "teacher", "epoch": [0, 10, 20],
                          "val_dice": [np.nan, 0.1, 0.2], "mean_square": [0.5, 2.0, 6.0],
                          "largest_channel": [0.9, 3.0, 9.0]})
    (line,) = fs.probe_sentences(frame)
    assert "passed it at epoch 20" in line and "0.50 at initialisation and 6.00 after 20 epochs" in line


def test_student_losses_give_the_fall_and_where_kept_the_distillation_share():
    rows = []
    for seed, (first, last) in enumerate([(40.0, 38.0), (60.0, 57.0)]):
        rows += [{"task": "abdomen", "method": "swin", "seed": seed, "role": "student", "epoch": e, "loss": loss,
                  "ce": np.nan, "mse": np.nan} for e, loss in ((1, first), (2, last))]
    rows += [{"task": "abdomen", "method": "unet", "seed": 0, "role": "student", "epoch": e, "loss": loss,
              "ce": ce, "mse": (loss - ce) / 2} for e, loss, ce in ((1, 2.0, 1.0), (2, 0.2, 0.15))]
    rows += [{"task": "abdomen", "method": "unet", "seed": 0, "role": "teacher", "epoch": 1, "loss": 9.0,
              "ce": 9.0, "mse": 0.0}]
    losses = fs.student_losses(pd.DataFrame(rows)).set_index("method")
    # each seed's first epoch is paired with its own last, whatever order the rows come in
    shuffled = fs.student_losses(pd.DataFrame(rows).sample(frac=1, random_state=3)).set_index("method")
    pd.testing.assert_frame_equal(shuffled.loc[losses.index], losses)
    assert losses.loc["swin", "fall"] == pytest.approx(1 - (38 / 40 + 57 / 60) / 2)
    assert np.isnan(losses.loc["swin", "distillation share"])
    assert losses.loc["unet", "distillation share"] == pytest.approx(0.05 / 0.2)
    lines = fs.student_loss_sentences(losses.reset_index())
    assert lines[0] == ("abdomen, `swin` students (2 seeds): training loss 40.00–60.00 at their first epoch and "
                        "38.00–57.00 at their last, 5 % lower.")
    assert lines[1].endswith("90 % lower; λ·MSE was 25 % of the last.")
