"""Book figures are drawn at the width the content column shows them (about 680 px), with text a reader
can read at that size: a figure drawn 16 inches wide is shrunk to 40 % and its 8-point labels to 3."""

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from sikd_utils import evidence, stats, viz, why  # noqa: E402
from sikd_utils.data.tasks import TASKS  # noqa: E402
from sikd_utils.paper import fig1_table  # noqa: E402

from fake_results import write_fake_results  # noqa: E402

#: what the book's content column shows without shrinking (px at the notebooks' 100 dpi), with the few
#: pixels that bbox_inches="tight" may add around the axes' labels
COLUMN_PX = 720


def drawn(fig) -> tuple[int, float]:
    """(width in px as the notebook's inline backend saves it, the smallest font in points) of ``fig``."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    fonts = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text().strip()]
    plt.close(fig)
    return Image.open(buffer).size[0], min(fonts)


def assert_fits_the_column(fig):
    width, font = drawn(fig)
    assert width <= COLUMN_PX, f"drawn {width} px wide: the {COLUMN_PX}-px column shows it at {COLUMN_PX / width:.0%}"
    assert font >= viz.MIN_FONT, f"text of {font} pt: below {viz.MIN_FONT} pt"


def test_the_check_fails_on_a_wide_figure_and_on_small_text():
    fig, ax = plt.subplots(figsize=(16, 3))
    ax.plot([0, 1])
    with pytest.raises(AssertionError, match="px wide"):
        assert_fits_the_column(fig)
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.set_title("small", fontsize=7)
    with pytest.raises(AssertionError, match="7.0 pt"):
        assert_fits_the_column(fig)


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("results")
    write_fake_results(folder)
    scores, training, prov = evidence.load_results(folder)
    return scores, training, evidence.page_tables(scores, training)


def test_results_figures_fit_the_column(results):
    scores, training, tables = results
    tasks = list(dict.fromkeys(scores["task"]))
    assert_fits_the_column(viz.delta_vs_paper(stats.verdicts(scores, training), fig1_table(),
                                              flags={tasks[0]: "(teacher gate failed on 1/3 seeds)"}))
    assert_fits_the_column(viz.method_curves_grid(tables["curves"], tasks, notes={tasks[0]: "(gate failed)"}))
    deltas = tables["fingerprint"]
    assert_fits_the_column(viz.fingerprint_grid({TASKS[t].title: deltas[deltas.task == t] for t in tasks}))


def test_a_heat_map_of_every_task_keeps_its_numbers_apart():
    """Five tasks of 18 families each (the committed evidence's shape), the longest names the suite has."""
    rows = []
    for task in TASKS:
        families = ["clean", "target"] + [f"{task}_family_{k}+transducer_frequency+noise" for k in range(16)]
        for family in families:
            for severity in ([0] if family == "clean" else range(1, 6)):
                rows.append({"task": task, "family": family, "severity": severity, "delta": -0.372,
                             "significant": severity % 2 == 0})
    deltas = pd.DataFrame(rows)
    fig = viz.fingerprint_grid({t: deltas[deltas.task == t] for t in TASKS})
    heat = [ax for ax in fig.axes if ax.images]
    assert len(heat) == 5 and all(len(ax.get_yticklabels()) == 18 for ax in heat)
    renderer = fig.canvas.get_renderer()
    for ax in heat:  # neighbouring cell numbers do not touch ("-30.2-37.1" on the old strip)
        boxes = sorted((t.get_window_extent(renderer) for t in ax.texts), key=lambda b: (round(b.y0), b.x0))
        for left, right in zip(boxes, boxes[1:]):
            if round(left.y0) == round(right.y0):
                assert left.x1 < right.x0
    assert_fits_the_column(fig)


def test_committed_results_figures_fit_the_column():
    from pathlib import Path

    folder = Path(evidence.__file__).resolve().parents[1] / "book" / "results"
    runs = evidence.load_teacher_length_runs(folder)
    if runs is None:
        pytest.skip("no committed teacher_length_runs.csv")
    assert_fits_the_column(viz.teacher_length_figure(evidence.teacher_length_effect(runs)))


def test_image_grids_and_curves_fit_the_column():
    rng = np.random.default_rng(0)
    features = {name: [rng.normal(size=(4, 16, 16)) for _ in range(4)] for name in ("baseline", "student", "teacher")}
    assert_fits_the_column(viz.show_feature_maps(features, column_titles=["a", "b", "c", "d"],
                                                 inputs=[rng.random((16, 16)) for _ in range(4)]))
    history = [{"epoch": e, "loss": 1 / e, "ce": 1 / e, "mse": 0.1 / e, "val_dice": 0.1 * e} for e in range(1, 6)]
    assert_fits_the_column(viz.plot_histories({"baseline": history, "student": history}))  # four in one row
    assert_fits_the_column(viz.shift_gallery("polyp", image_size=32, severities=(1, 3, 5)))


def test_notebook_07_figures_fit_the_column():
    assert_fits_the_column(why.ingredient_figure())
    cells = pd.DataFrame([{"task": "fundus", "method": method, "family": family, "severity": severity,
                           "delta": 0.01 * severity, "significant": False}
                          for method in ("sikd", "teacher_skips", "teacher_raw", "lambda_0.5", "lambda_4")
                          for family in ("clean", "target", "gamma", "noise") for severity in range(6)])
    assert_fits_the_column(why.fingerprint_figure(cells, "fundus"))
    probe = pd.DataFrame([{"lr": lr, "seed": s, "epoch": e, "val_dice": 0.1 * e}
                          for lr in (1e-3, 3e-4, 1e-4) for s in (1, 2) for e in range(1, 4)])
    assert_fits_the_column(why.lr_probe_figure(probe))
    from sikd_utils import feature_scale

    frame = pd.DataFrame([{"backbone": b, "role": "teacher", "epoch": e, "mean_square": 1.0 / e, "largest_channel": 2.0 / e}
                          for b in ("unet", "swin_unetr", "basic_unet") for e in range(1, 4)])
    assert_fits_the_column(feature_scale.probe_figure(frame))
