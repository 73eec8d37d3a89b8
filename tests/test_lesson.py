"""The helpers notebooks 03-05 share (presets to configurations, sentences from numbers), the one SIKD
step that train() runs, and the book's code-drawn figures."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

import sikd_utils.train as train_module
from sikd_utils.averaging import class_wise_mean
from sikd_utils.distill import sikd_loss, sikd_step
from sikd_utils.lesson import compare_sentence, learning_sentence, lesson_config, teacher_gate
from sikd_utils.presets import PRESETS
from sikd_utils.train import TrainConfig, build_model, train

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_lesson_config_takes_the_presets_counts_for_the_tasks_dimension(preset):
    volumes = lesson_config(preset, "cardiac")
    images = lesson_config(preset, "polyp")
    settings = PRESETS[preset]
    assert (volumes.n_train, volumes.n_val, volumes.n_test, volumes.n_target) == tuple(settings["n_volumes"])
    assert (images.n_train, images.n_val, images.n_test, images.n_target) == tuple(settings["n_images"])
    assert volumes.image_size == settings["image_size"] and volumes.epochs == settings["epochs"]


def test_lesson_config_overrides_and_names_unknown_settings():
    config = lesson_config("cpu", "cardiac", seed=3, epochs=2, n_train=1)
    assert config.epochs == 2 and config.n_train == 1 and config.seeds == (3,)
    with pytest.raises(ValueError, match="epoch"):
        lesson_config("cpu", "cardiac", epoch=2)
    with pytest.raises(ValueError, match="preset"):
        lesson_config("laptop", "cardiac")


def test_sentences_follow_the_numbers():
    assert teacher_gate(0.90, 0.91)[0] and not teacher_gate(0.55, 0.90)[0]
    assert "fails" in teacher_gate(0.55, 0.90)[1] and "0.550" in teacher_gate(0.55, 0.90)[1]
    # a demo's failure says it is expected, and why; the evidence scale's and a pass say nothing of the kind
    assert "expected at preset `cpu`, not an error" in teacher_gate(0.55, 0.90, preset="cpu")[1]
    assert "not an error" not in teacher_gate(0.55, 0.90, preset="gpu")[1]
    assert "not an error" not in teacher_gate(0.90, 0.91, preset="cpu")[1]
    assert "0.076 below" in compare_sentence(0.800, 0.876, "Dice")
    assert "noise" in compare_sentence(0.870, 0.876, "Dice")
    rising = [{"epoch": e, "val_dice": 0.1 * e} for e in range(1, 6)]
    flat = [{"epoch": e, "val_dice": min(0.9, 0.3 * e)} for e in range(1, 8)]
    assert "still rising" in learning_sentence(rising, "Dice") and "0.50" in learning_sentence(rising, "Dice")
    assert "levelled off" in learning_sentence(flat, "Dice")


def test_sikd_step_is_the_loss_then_one_update_of_the_student_only():
    torch.manual_seed(0)
    teacher = build_model("teacher", 1, 3, 4, seed=0).eval()
    student = build_model("student", 1, 3, 4, seed=1)
    images, labels = torch.rand(2, 1, 16, 16), torch.randint(0, 3, (2, 16, 16))
    reference = copy.deepcopy(student)
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    # by hand: the same loss and one Adam step on a copy
    with torch.no_grad():
        _, f_t = teacher(class_wise_mean(images, labels, 3))
    logits, f_s = reference(images)
    expected = sikd_loss(logits, f_s, f_t, labels, 2.0)
    opt_ref = torch.optim.Adam(reference.parameters(), lr=1e-3)
    opt_ref.zero_grad()
    expected.total.backward()
    opt_ref.step()

    loss = sikd_step(student, teacher, torch.optim.Adam(student.parameters(), lr=1e-3), images, labels, 2.0)
    assert loss.total.item() == expected.total.item()
    for (k, a), b in zip(student.state_dict().items(), reference.state_dict().values()):
        assert torch.equal(a, b), k
    for k, v in teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), f"the teacher changed: {k}"


def test_train_runs_that_very_step_for_the_student(toy_data, monkeypatch):
    train_ds, _ = toy_data
    teacher = build_model("teacher", 1, 3, 4, seed=0)
    calls = []

    def counting(*args, **kwargs):
        calls.append(1)
        return sikd_step(*args, **kwargs)

    monkeypatch.setattr(train_module, "sikd_step", counting)
    train(build_model("student", 1, 3, 4, seed=0), train_ds, TrainConfig(role="student", epochs=1, batch_size=4,
                                                                         progress=False), teacher=teacher)
    assert len(calls) == -(-len(train_ds) // 4)


def test_book_figures_are_drawn_by_the_package_and_committed():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sikd_utils.diagrams import pipeline_figure, unet_figure

    for make in (pipeline_figure, unet_figure):
        fig = make()
        assert fig.axes
        plt.close(fig)
    for name, page in (("pipeline.svg", "intro.md"), ("unet_skips.svg", "method.md")):
        assert (ROOT / "book" / "figures" / name).stat().st_size > 1000
        assert f"figures/{name}" in (ROOT / "book" / page).read_text()
