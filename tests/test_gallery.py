"""The difficulty gallery and table of notebook 01 and the data page (sikd_utils.gallery)."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from sikd_utils import gallery  # noqa: E402
from sikd_utils.data import TASKS  # noqa: E402
from sikd_utils.data.synthetic import DIFFICULTY_LEVELS, task_module  # noqa: E402


def test_gallery_shows_every_task_at_every_level():
    import matplotlib.pyplot as plt

    fig = gallery.difficulty_gallery(["cardiac", "polyp"], image_size=32)
    axes = np.array(fig.axes).reshape(2, len(DIFFICULTY_LEVELS))
    assert [ax.get_title() for ax in axes[0]][0] == "level 0 (original)"
    assert axes[1, -1].get_title() == "" and axes[0, -1].get_title() == f"level {DIFFICULTY_LEVELS[-1]}"
    for row in axes:
        pictures = [ax.get_images()[0].get_array() for ax in row]
        assert all(p.shape[:2] == (32, 32) for p in pictures)
        assert not np.allclose(pictures[0], pictures[-1])  # the levels differ
        assert all(ax.collections for ax in row)  # the label is outlined
    plt.close(fig)


def test_table_lists_every_hardening_of_every_task():
    table = gallery.difficulty_table()
    assert list(table.columns) == ["task", "hardening", "at the top level", "why the real task is hard"]
    for task in TASKS:
        assert list(table[table.task == task]["hardening"]) == [h.name for h in task_module(task).DIFFICULTY]
    assert table.notna().all().all()


def test_unknown_task_is_named():
    with pytest.raises(ValueError, match="unknown task 'heart'"):
        gallery.difficulty_gallery(["heart"])
