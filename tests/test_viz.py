import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from sikd_utils import viz  # noqa: E402
from sikd_utils.data import Case  # noqa: E402
from sikd_utils.models import UNet  # noqa: E402


def _case(three_d=True, case_id="c0"):
    label = np.zeros((16, 16, 4) if three_d else (16, 16), np.int64)
    label[4:10, 4:10] = 1
    label[6:8, 6:8] = 3
    if three_d:
        label[..., 0] = 0
        label[2:14, 2:14, 2] = 2
    image = (0.1 + 0.2 * label)[None].astype(np.float32)
    spacing = (1.0, 1.0, 5.0) if three_d else (1.0, 1.0)
    return Case(image, label, spacing, case_id)


def test_label_overlay_tints_only_foreground_with_task_colours():
    image = np.zeros((1, 4, 4), np.float32)
    label = np.zeros((4, 4), np.int64)
    label[0, 0] = 1  # cardiac class 1 = RV, red
    rgb = viz.label_overlay(image, label, "cardiac", alpha=1.0)
    assert rgb.shape == (4, 4, 3)
    assert np.allclose(rgb[0, 0], [0xE4 / 255, 0x1A / 255, 0x1C / 255])
    assert np.all(rgb[1:, 1:] == 0)


def test_middle_and_busiest_slice():
    case = _case()
    assert viz.busiest_slice(case) == 2
    image, label = viz.middle_slice(case, 2)
    assert image.shape == (1, 16, 16) and label.max() == 2
    assert viz.busiest_slice(_case(three_d=False)) is None


def test_feature_pca_shares_one_projection():
    rng = np.random.default_rng(0)
    a = rng.random((6, 8, 8))
    pictures = viz.feature_pca_rgb([a, a.copy()])
    assert pictures[0].shape == (8, 8, 3)
    assert np.allclose(pictures[0], pictures[1])  # same input, same colours
    assert pictures[0].min() >= 0 and pictures[0].max() <= 1


def test_last_decoder_features_feeds_the_teacher_mean_images():
    torch.manual_seed(0)
    teacher = UNet(1, 4, 4, skip_connections=False)
    images = torch.rand(2, 1, 16, 16)
    labels = torch.zeros(2, 16, 16, dtype=torch.long)
    labels[:, 4:12, 4:12] = 1
    feats = viz.last_decoder_features({"t": (teacher, True), "raw": (teacher, False)}, images, labels, "cardiac")
    assert len(feats["t"]) == 2 and feats["t"][0].shape == (4, 16, 16)
    from sikd_utils.averaging import class_wise_mean

    with torch.no_grad():
        expected = teacher.eval()(class_wise_mean(images, labels, 4))[1]
        raw = teacher(images)[1]
    assert np.allclose(feats["t"][1], expected[1].numpy())
    assert np.allclose(feats["raw"][1], raw[1].numpy())


def test_figures_and_widgets_build():
    case = _case()
    for fig in (viz.show_cases([case, _case(case_id="c1")], "cardiac"),
                viz.show_domains({"source": [case], "target": [case]}, "cardiac", n=1),
                viz.show_mean_image(case, "cardiac"),
                viz.plot_histories({"a": [{"epoch": 1, "loss": 1.0, "ce": 1.0, "mse": 0.0, "val_dice": 0.5}]})):
        assert fig.axes
    browser = viz.case_browser({"source": [case], "target": [case]}, "cardiac")
    picture = browser.children[-1]
    assert picture.value[:4] == b"\x89PNG"
    noisy = Case(case.image + 0.05 * np.random.default_rng(0).random(case.image.shape, dtype=np.float32),
                 case.label, case.spacing, "noisy")
    toggle = viz.class_toggle(noisy, "cardiac")
    before = bytes(toggle.children[-1].value)
    toggle.children[0].children[2].value = False  # untick MYO (the class on that slice): redrawn, raw there
    assert bytes(toggle.children[-1].value) != before


def test_show_worst_cases_orders_by_score():
    cases = [_case(case_id=f"c{i}") for i in range(3)]
    preds = {"A": {c.case_id: c.label for c in cases}}
    scores = pd.DataFrame({"A": [0.9, 0.1, 0.5]}, index=["c0", "c1", "c2"])
    fig = viz.show_worst_cases(cases, preds, scores, "cardiac", sort_by="A", n=2)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "c1" and "c2" in titles


def test_dumbbell_and_severity_curves():
    table = pd.DataFrame({"label": ["x", "y"], "baseline": [0.5, 0.6], "sikd": [0.6, 0.5],
                          "baseline_ci": [0.01, np.nan], "sikd_ci": [0.02, 0.01]})
    assert viz.dumbbell(table).axes
    curves = pd.DataFrame({"task": ["t"] * 2, "severity": [0.0, 1.0], "baseline": [0.9, 0.7], "sikd": [0.9, 0.8],
                           "baseline_ci": [0.01, 0.02], "sikd_ci": [0.01, 0.02]})
    assert viz.severity_curves(curves).axes


def test_glue_falls_back_to_display(monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_myst(name, *args, **kwargs):
        if name == "myst_nb":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_myst)
    viz.glue("key", "shown value")
    assert "shown value" in capsys.readouterr().out


def test_fingerprint_heatmap_marks_significant_cells():
    import matplotlib.pyplot as plt
    import pandas as pd

    from sikd_utils import viz

    deltas = pd.DataFrame({"family": ["clean", "blur", "blur"], "severity": [0, 1, 2], "delta": [0.01, 0.05, -0.02],
                           "significant": [False, True, False]})
    fig = viz.fingerprint_heatmap(deltas, title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["clean", "blur"]
    bold = [t.get_text() for t in ax.texts if t.get_fontweight() == "bold"]
    assert bold == ["+5.0"] and len(ax.patches) == 1
    plt.close(fig)


def test_delta_vs_paper_clips_intervals_and_keeps_legend_off_the_axes():
    import matplotlib.pyplot as plt
    import pandas as pd

    from sikd_utils import viz
    from sikd_utils.paper import fig1_table

    ours = pd.DataFrame({"task": ["polyp"], "intra_delta": [0.01], "intra_ci": [0.5], "cross_delta": [0.02],
                         "cross_ci": [0.01]})
    fig = viz.delta_vs_paper(ours, fig1_table(), limit=20, flags={"polyp": "(gate)"})
    intra = fig.axes[0]
    assert intra.get_xlim() == (-20, 20)
    assert max(max(abs(x) for x in line.get_xdata()) for line in intra.lines if len(line.get_xdata())) <= 20
    assert fig.legends and not intra.get_legend()
    assert "polyp (gate)" in [t.get_text() for t in intra.get_yticklabels()]
    plt.close(fig)


def test_table_drops_the_positional_index_and_passes_other_values_through():
    import pandas as pd

    frame = pd.DataFrame({"task": ["cardiac", "polyp"], "dice": [0.9, 0.8]})
    html = viz.table(frame).data
    assert "<th>task</th>" in html and "cardiac" in html
    assert "<th>0</th>" not in html and "<th>1</th>" not in html  # no row numbers
    marker = object()
    assert viz.table(marker) is marker


def test_bullets_html_keeps_bold_and_escapes_the_rest():
    html = viz.bullets_html(["- **Cardiac** — Δ <1 point", "plain"]).data
    assert html == "<ul><li><strong>Cardiac</strong> — Δ &lt;1 point</li><li>plain</li></ul>"
    assert viz.bullets_html(["`sikd` − `a<b`: +1"]).data == "<ul><li><code>sikd</code> − <code>a&lt;b</code>: +1</li></ul>"


def test_teacher_length_figure_places_each_run_by_its_teacher_margin():
    import matplotlib.pyplot as plt
    import pandas as pd

    effect = pd.DataFrame({"task": ["cardiac", "cardiac", "polyp"], "teacher epochs": [40, 80, 80],
                           "teacher": [0.96, 0.98, 0.95], "baseline": [0.99, 0.99, 0.94],
                           "passes": ["0/5", "5/5", "3/5"], "Δ clean": [-1.0, -0.5, 0.2], "± clean": [0.2, 0.1, 0.3],
                           "Δ target": [-5.0, -1.0, 2.0], "± target": [3.0, 2.0, 1.0]})
    fig = viz.teacher_length_figure(effect)
    clean = fig.axes[0]
    markers = [(round(line.get_xdata()[0], 6), line.get_ydata()[0], line.get_markerfacecolor() == "white")
               for line in clean.lines if line.get_marker() == "o"]
    assert markers == [(-3.0, -1.0, True), (-1.0, -0.5, False), (1.0, 0.2, True)]  # hollow: a seed missed the gate
    assert -2.0 in [line.get_xdata()[0] for line in clean.lines if line.get_linestyle() == "--"]  # the gate
    assert fig.legends and not clean.get_legend()
    assert [t.get_text() for t in clean.texts] == ["40", "80"]  # lengths labelled where a task has several
    plt.close(fig)
