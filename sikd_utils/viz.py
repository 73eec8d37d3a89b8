"""Pictures for the book: overlays, domain grids, mean images, training curves, feature maps, result
charts, and small ipywidgets browsers.

Widgets here are plain ``ipywidgets`` controls whose callbacks redraw a ``widgets.Image`` (PNG bytes).
They deliberately avoid ``interact`` and ``widgets.Output``, which can stall headless notebook runs.
"""

from __future__ import annotations

import io
from typing import Mapping, Sequence

import numpy as np

from .data.case import Case
from .data.tasks import TaskSpec, get_task

__all__ = [
    "display_image", "label_overlay", "middle_slice", "show_cases", "show_domains", "show_mean_image",
    "plot_histories", "feature_pca_rgb", "show_feature_maps", "dumbbell", "severity_curves",
    "case_browser", "class_toggle", "figure_png", "glue", "last_decoder_features", "busiest_slice",
    "show_worst_cases", "shift_gallery", "table", "bullets_html", "shift_grid", "shift_browser",
]


#: The width of a book figure in inches (the content column's 680 px at 100 dpi), so that a figure is
#: shown at the size it was drawn and its text keeps the size it was given.
FIGURE_WIDTH = 7.0
#: Smallest font size (points) in a book figure; at :data:`FIGURE_WIDTH` it is what the reader gets.
MIN_FONT = 9


def _hex_to_rgb(color: str) -> np.ndarray:
    color = color.lstrip("#")
    return np.array([int(color[i : i + 2], 16) / 255 for i in (0, 2, 4)])


def middle_slice(case: Case, index: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(image (C,H,W), label (H,W)) of a 2D case, or of slice ``index`` (default: the middle) of a 3D one."""
    if case.spatial_dims == 2:
        return case.image, case.label
    depth = case.label.shape[-1]
    if index is None:
        fg = np.flatnonzero(case.label.reshape(-1, depth).any(0))
        index = int(fg[len(fg) // 2]) if fg.size else depth // 2
    return case.image[..., index], case.label[..., index]


def display_image(image: np.ndarray) -> np.ndarray:
    """(C,H,W) → (H,W) grey or (H,W,3) RGB in [0, 1] for imshow."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        return np.clip(image, 0, 1)
    if image.shape[0] == 1:
        return np.clip(image[0], 0, 1)
    return np.clip(np.moveaxis(image[:3], 0, -1), 0, 1)


def label_overlay(image: np.ndarray, label: np.ndarray, task: str | TaskSpec, alpha: float = 0.45) -> np.ndarray:
    """RGB picture of ``image`` with the foreground classes tinted in the task's colours."""
    spec = get_task(task)
    shown = display_image(image)
    rgb = np.repeat(shown[..., None], 3, axis=-1) if shown.ndim == 2 else shown.copy()
    for k in range(1, spec.num_classes):
        mask = label == k
        rgb[mask] = (1 - alpha) * rgb[mask] + alpha * _hex_to_rgb(spec.colors[k])
    return rgb


def _axes_grid(rows: int, cols: int, size: float = 2.2):
    """Image panels of ``size`` inches, narrowed so ``cols`` of them fit :data:`FIGURE_WIDTH`."""
    import matplotlib.pyplot as plt

    size = min(size, FIGURE_WIDTH / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(size * cols, size * rows), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return fig, axes


def show_cases(cases: Sequence[Case], task: str | TaskSpec, overlay: bool = True, title: str | None = None):
    """One column per case: the image, and below it the label overlay."""
    fig, axes = _axes_grid(2 if overlay else 1, len(cases))
    for j, case in enumerate(cases):
        image, label = middle_slice(case)
        axes[0, j].imshow(display_image(image), cmap="gray", vmin=0, vmax=1)
        axes[0, j].set_title(case.case_id, fontsize=MIN_FONT)
        if overlay:
            axes[1, j].imshow(label_overlay(image, label, task))
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def show_domains(domains: Mapping[str, Sequence[Case]], task: str | TaskSpec, n: int = 3, overlay: bool = False):
    """Rows = domains, columns = the first ``n`` cases of each (overlay optional)."""
    spec = get_task(task)
    fig, axes = _axes_grid(len(domains), n)
    for i, (name, cases) in enumerate(domains.items()):
        for j, case in enumerate(cases[:n]):
            image, label = middle_slice(case)
            shown = label_overlay(image, label, spec) if overlay else display_image(image)
            axes[i, j].imshow(shown, cmap="gray", vmin=0, vmax=1)
        axes[i, 0].set_ylabel(name, fontsize=10)
    fig.suptitle(spec.title)
    fig.tight_layout()
    return fig


def shift_gallery(task: str | TaskSpec, image_size: int = 96, severities: Sequence[int] = (1, 3, 5),
                  families: Sequence[str] | None = None, case_index: int = 0, seed: int = 0):
    """One benchmark case under every shift family (rows) at ``severities`` (columns), clean first.

    Shape families are drawn with the label outline so the anatomy change is visible; each row carries
    the family's kind and the real-world cause it models.
    """
    import textwrap

    from .data.shifts import shift_cases, shift_families

    spec = get_task(task)
    registry = shift_families(spec.key)
    names = list(families) if families is not None else list(registry)
    clean = shift_cases(spec.key, "clean", 0, case_index + 1, image_size, seed=seed)[case_index]
    size = 1.1
    fig, axes = _axes_grid(len(names), len(severities) + 1, size=size)
    fig.set_size_inches(FIGURE_WIDTH, size * len(names))
    for row, name in zip(axes, names):
        shown = [clean] + [shift_cases(spec.key, name, s, case_index + 1, image_size, seed=seed)[case_index]
                           for s in severities]
        kind = registry[name].kind if name in registry else "compound"
        for ax, case in zip(row, shown):
            index = None if case.spatial_dims == 2 else min(busiest_slice(clean), case.label.shape[-1] - 1)
            image, label = middle_slice(case, index)
            ax.imshow(display_image(image), cmap="gray", vmin=0, vmax=1)
            if kind == "shape":
                ax.contour(label > 0, levels=[0.5], colors=["#ffcc00"], linewidths=0.6)
        row[0].set_ylabel(name, fontsize=MIN_FONT)
        description = registry[name].description if name in registry else name.replace("+", " + ")
        row[-1].text(1.06, 0.5, textwrap.fill(f"[{kind}] {description}", 34), transform=row[-1].transAxes,
                     fontsize=MIN_FONT, va="center", ha="left")
    for ax, title in zip(axes[0], ["clean"] + [f"severity {s}" for s in severities]):
        ax.set_title(title, fontsize=MIN_FONT)
    fig.suptitle(f"{spec.title}: the shift benchmark", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1 - 2.4 / FIGURE_WIDTH, 1))  # the right 2.4 in hold the descriptions
    return fig


def show_mean_image(case: Case, task: str | TaskSpec, classes: Sequence[int] | None = None, axes=None):
    """Image | label | class-wise mean image of one (middle) slice. ``classes`` limits the averaging."""
    import torch

    from .averaging import class_wise_mean

    spec = get_task(task)
    image, label = middle_slice(case)
    mean = class_wise_mean(torch.from_numpy(image)[None], torch.from_numpy(label)[None], spec.num_classes)[0].numpy()
    if classes is not None:
        keep = np.isin(label, list(classes))
        mean = np.where(keep[None], mean, image)
    if axes is None:
        fig, axes = _axes_grid(1, 3)
        axes = axes[0]
    else:
        fig = axes[0].figure
    for ax, picture, name in zip(axes, (display_image(image), label_overlay(image, label, spec), display_image(mean)),
                                 ("image", "label", "class-wise mean")):
        ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
        ax.set_title(name, fontsize=9)
    return fig


def plot_histories(histories: Mapping[str, Sequence[dict]], keys: Sequence[str] = ("loss", "ce", "mse", "val_dice"),
                   ncols: int | None = None):
    """One panel per logged quantity, one line per run (e.g. teacher / baseline / student).

    Panels fill rows of ``ncols`` (default: all in one row); four curves read best as a 2 × 2 grid.
    """
    import matplotlib.pyplot as plt

    keys = [k for k in keys if any(k in r and np.isfinite(r[k]) and (k != "mse" or r[k] > 0)
                                   for h in histories.values() for r in h)]
    ncols = max(1, min(ncols or len(keys), len(keys)))
    nrows = -(-len(keys) // ncols)
    width = min(3.4 * ncols, FIGURE_WIDTH)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, 2.8 * nrows * width / (3.4 * ncols)), squeeze=False)
    for ax in axes.flat[len(keys):]:
        ax.set_visible(False)
    for ax, key in zip(axes.flat, keys):
        for name, history in histories.items():
            xs = [r["epoch"] for r in history if np.isfinite(r.get(key, np.nan)) and (key != "mse" or r[key] > 0)]
            ys = [r[key] for r in history if np.isfinite(r.get(key, np.nan)) and (key != "mse" or r[key] > 0)]
            if xs:
                ax.plot(xs, ys, marker=".", label=name)
        ax.set_title({"loss": "total loss", "ce": "cross-entropy", "mse": "feature MSE",
                      "val_dice": "validation Dice"}.get(key, key), fontsize=10)
        ax.set_xlabel("epoch")
        if key in ("loss", "ce", "mse"):
            ax.set_yscale("log")
    axes.flat[0].legend(fontsize=MIN_FONT)
    fig.tight_layout()
    return fig


def feature_pca_rgb(features: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Project (C,H,W) feature maps onto their 3 joint principal components → RGB images in [0, 1].

    All maps share one projection, so colours mean the same thing across networks and inputs.
    """
    flat = [np.asarray(f, dtype=np.float64).reshape(f.shape[0], -1).T for f in features]
    stacked = np.concatenate(flat)
    centre = stacked.mean(0)
    _, _, vt = np.linalg.svd(stacked - centre, full_matrices=False)
    proj = [(x - centre) @ vt[:3].T for x in flat]
    allp = np.concatenate(proj)
    lo, hi = np.percentile(allp, 1, axis=0), np.percentile(allp, 99, axis=0)
    out = []
    for p, f in zip(proj, features):
        rgb = np.clip((p - lo) / np.maximum(hi - lo, 1e-8), 0, 1)
        out.append(rgb.reshape(f.shape[1], f.shape[2], 3))
    return out


def show_feature_maps(rows: Mapping[str, Sequence[np.ndarray]], column_titles: Sequence[str] | None = None,
                      inputs: Sequence[np.ndarray] | None = None):
    """Grid of PCA-coloured feature maps: rows = networks, columns = inputs (one shared projection).

    ``inputs`` (optional) are pictures (H,W) or (H,W,3) drawn as a first row, e.g. label overlays.
    """
    names = list(rows)
    cols = len(rows[names[0]])
    pictures = feature_pca_rgb([f for name in names for f in rows[name]])
    offset = 1 if inputs is not None else 0
    fig, axes = _axes_grid(len(names) + offset, cols)
    if inputs is not None:
        for j, picture in enumerate(inputs):
            axes[0, j].imshow(picture, cmap="gray", vmin=0, vmax=1)
        axes[0, 0].set_ylabel("input")
    for i, name in enumerate(names):
        for j in range(cols):
            axes[i + offset, j].imshow(pictures[i * cols + j])
        axes[i + offset, 0].set_ylabel(name)
    if column_titles:
        for j, title in enumerate(column_titles):
            axes[0, j].set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def dumbbell(table, label_col: str = "label", left: str = "baseline", right: str = "sikd",
             left_ci: str | None = "baseline_ci", right_ci: str | None = "sikd_ci", ax=None,
             reference: tuple[str, str] | None = None, title: str | None = None):
    """Dumbbell chart: one row per line of ``table``, a grey dot (baseline) joined to a coloured dot (SIKD).

    ``reference`` = (left, right) column names of a second pair (e.g. the paper's numbers), drawn hollow.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 0.45 * len(table) + 1.2))
    else:
        fig = ax.figure
    ys = np.arange(len(table))[::-1]
    for y, (_, row) in zip(ys, table.iterrows()):
        a, b = row[left], row[right]
        color = "tab:green" if b >= a else "tab:red"
        ax.plot([a, b], [y, y], color=color, lw=2, alpha=0.7)
        ax.errorbar(a, y, xerr=row[left_ci] if left_ci and np.isfinite(row[left_ci]) else None, fmt="o",
                    color="0.45", capsize=3)
        ax.errorbar(b, y, xerr=row[right_ci] if right_ci and np.isfinite(row[right_ci]) else None, fmt="o",
                    color=color, capsize=3)
        if reference is not None:
            ra, rb = row[reference[0]], row[reference[1]]
            if np.isfinite(ra) and np.isfinite(rb):
                ax.plot([ra, rb], [y - 0.25, y - 0.25], color="0.6", lw=1, ls=":")
                ax.plot([ra], [y - 0.25], "o", mfc="none", color="0.45")
                ax.plot([rb], [y - 0.25], "o", mfc="none", color="tab:blue")
    ax.set_yticks(ys)
    ax.set_yticklabels(table[label_col])
    ax.set_xlabel("Dice")
    ax.grid(axis="x", alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", ls="", color="0.45", label="baseline U-Net"),
               plt.Line2D([], [], marker="o", ls="", color="tab:green", label="+ SIKD (ours, mean ± 95 % CI)")]
    if reference is not None:
        handles += [plt.Line2D([], [], marker="o", ls="", mfc="none", color="0.45", label="paper baseline"),
                    plt.Line2D([], [], marker="o", ls="", mfc="none", color="tab:blue", label="paper + SIKD")]
    ax.legend(handles=handles, fontsize=MIN_FONT, loc="lower left")
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return fig


def severity_curves(comparison, x: str = "severity", by: str | None = "task", ax=None):
    """Baseline vs SIKD Dice over shift severity (one panel line-pair per group)."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
    else:
        fig = ax.figure
    groups = comparison.groupby(by, sort=False) if by else [("", comparison)]
    for i, (name, group) in enumerate(groups):
        group = group.sort_values(x)
        color = f"C{i}"
        for method, style in (("baseline", "--"), ("sikd", "-")):
            ax.plot(group[x], group[method], style, marker="o", color=color,
                    label=f"{name} {'SIKD' if method == 'sikd' else 'baseline'}".strip())
            ci = group.get(f"{method}_ci")
            if ci is not None and np.all(np.isfinite(ci)):
                ax.fill_between(group[x], group[method] - ci, group[method] + ci, color=color, alpha=0.1)
    ax.set_xlabel("shift severity")
    ax.set_ylabel("Dice")
    ax.legend(fontsize=MIN_FONT, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def figure_png(fig, dpi: int = 90) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it (for widgets.Image)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def case_browser(domains: Mapping[str, Sequence[Case]], task: str | TaskSpec):
    """Dropdown (domain) + sliders (case, slice) + overlay toggle, redrawing a PNG image widget."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    spec = get_task(task)
    names = list(domains)
    domain = widgets.Dropdown(options=names, value=names[0], description="domain")
    case_i = widgets.IntSlider(0, 0, len(domains[names[0]]) - 1, description="case")
    depth = domains[names[0]][0].label.shape[-1] if spec.spatial_dims == 3 else 1
    slice_i = widgets.IntSlider(depth // 2, 0, max(depth - 1, 0), description="slice",
                                disabled=spec.spatial_dims == 2)
    overlay = widgets.Checkbox(value=True, description="show label")
    picture = widgets.Image(format="png")

    def redraw(*_):
        cases = domains[domain.value]
        case_i.max = len(cases) - 1
        case = cases[case_i.value]
        if spec.spatial_dims == 3:
            slice_i.max = case.label.shape[-1] - 1
        image, label = middle_slice(case, slice_i.value if spec.spatial_dims == 3 else None)
        fig, ax = plt.subplots(figsize=(3.2, 3.2))
        shown = label_overlay(image, label, spec) if overlay.value else display_image(image)
        ax.imshow(shown, cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{case.case_id}", fontsize=MIN_FONT)
        ax.axis("off")
        picture.value = figure_png(fig)

    for control in (domain, case_i, slice_i, overlay):
        control.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([domain, overlay]), widgets.HBox([case_i, slice_i]), picture])


def class_toggle(case: Case, task: str | TaskSpec):
    """Checkboxes choose which classes are replaced by their mean; the picture redraws."""
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    spec = get_task(task)
    boxes = [widgets.Checkbox(value=True, description=name, indent=False) for name in spec.class_names]
    picture = widgets.Image(format="png")

    def redraw(*_):
        chosen = [k for k, box in enumerate(boxes) if box.value]
        fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.6))
        for ax in axes:
            ax.axis("off")
        show_mean_image(case, spec, classes=chosen, axes=axes)
        picture.value = figure_png(fig)

    for box in boxes:
        box.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox(boxes), picture])


#: Column names of the package's tables (:mod:`sikd_utils.stats`, :mod:`sikd_utils.evidence`,
#: :mod:`sikd_utils.paper`) in words, for the reader; code keeps the short names.
COLUMN_LABELS = {
    "title": "task",
    "intra_delta": "in-domain Δ (points)", "intra_ci": "in-domain ± 95 % CI", "intra_verdict": "in-domain verdict",
    "cross_delta": "cross-domain Δ (points)", "cross_ci": "cross-domain ± 95 % CI",
    "cross_gains": "shifted sets: gains", "cross_losses": "shifted sets: losses", "cross_n": "shifted sets",
    "cross_verdict": "cross-domain verdict",
    "intra_baseline": "in-domain baseline", "intra_sikd": "in-domain + SIKD",
    "cross_baseline": "cross-domain baseline", "cross_sikd": "cross-domain + SIKD",
    "kind": "test", "delta": "Δ (points)", "ci": "± 95 % CI", "paper_delta": "paper's Δ (points)",
    "n_seeds": "seeds", "baseline_val": "baseline validation Dice", "teacher_val": "teacher validation Dice",
    "raw_teacher_val": "raw teacher validation Dice", "teacher_passes": "teachers passing",
    "teacher_gated": "teachers gated", "raw_teacher_passes": "raw teachers passing",
    "raw_teacher_gated": "raw teachers gated",
    "degradation_ci": "degradation ± 95 % CI", "delta_vs_baseline": "Δ degradation vs baseline",
    "delta_vs_baseline_ci": "Δ degradation ± 95 % CI", "dice": "Dice", "dice_ci": "Dice ± 95 % CI",
    "best_val_dice": "best validation Dice", "best_epoch": "best epoch", "hd95_mm": "HD95 (mm)",
    "hd95_vox": "HD95 (voxels)", "n_hd95_undefined": "cases with HD95 undefined", "test_set": "test set",
    "class_index": "class index", "base_channels": "base channels", "image_size": "image size",
    "gathered_on": "gathered on",
}


def readable(frame):
    """``frame`` with the package's short column names (:data:`COLUMN_LABELS`) in words; others kept."""
    return frame.rename(columns=lambda c: COLUMN_LABELS.get(c, c) if isinstance(c, str) else c)


def table(frame, **to_html):
    """A DataFrame as an HTML table without its 0, 1, 2 ... row numbers, its columns named in words
    (:func:`readable`); anything else is returned as is.

    Readers need the columns, not pandas' positional index; a meaningful index (e.g. task names) is
    kept as a column by ``reset_index`` before calling this. The table sits in a box that scrolls
    sideways on its own, so a wide table never makes the whole page scroll.
    """
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        return frame
    from IPython.display import HTML

    html = readable(frame).to_html(index=False, **to_html)
    return HTML(f'<div class="sikd-table" style="overflow-x: auto; max-width: 100%">{html}</div>')


def bullets_html(lines):
    """Markdown bullet lines (``- text`` with ``**bold**`` and ```code```) as an HTML list.

    A book page can paste another document's glued HTML but not its Markdown (MyST-NB's ``glue:md``
    works within one document only), so generated sentences travel to the results page as HTML.
    """
    import html
    import re

    from IPython.display import HTML

    items = []
    for line in lines:
        text = html.escape(re.sub(r"^\s*-\s+", "", line))
        text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
        items.append("<li>" + re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text) + "</li>")
    return HTML("<ul>" + "".join(items) + "</ul>")


def glue(name: str, value, display: bool = True):
    """``myst_nb.glue`` when the book is being built; otherwise just display ``value`` (e.g. on Colab)."""
    try:
        from myst_nb import glue as myst_glue
    except ImportError:
        if display:
            from IPython.display import display as show

            show(value)
        return
    myst_glue(name, value, display=display)


def last_decoder_features(networks: Mapping[str, tuple], images, labels, task: str | TaskSpec) -> dict:
    """Last-decoder feature maps of several networks on the same batch, as numpy (C,H,W) lists.

    ``networks`` maps a row name to ``(model, sees_mean_image)``: a teacher gets the class-wise mean
    image of ``images`` (built from ``labels``), the others the raw images. Runs on the CPU, eval mode.
    """
    import torch

    from .averaging import class_wise_mean

    spec = get_task(task)
    images, labels = torch.as_tensor(images).float(), torch.as_tensor(labels).long()
    out = {}
    with torch.no_grad():
        for name, (model, sees_mean) in networks.items():
            model = model.cpu().eval()
            x = class_wise_mean(images, labels, spec.num_classes) if sees_mean else images
            out[name] = [f.numpy() for f in model(x)[1]]
    return out


def busiest_slice(case: Case) -> int | None:
    """Index of the slice with the most foreground (None for 2D cases)."""
    if case.spatial_dims == 2:
        return None
    return int(np.argmax((case.label > 0).reshape(-1, case.label.shape[-1]).sum(0)))


def show_worst_cases(cases: Sequence[Case], predictions: Mapping[str, Mapping[str, np.ndarray]], scores,
                     task: str | TaskSpec, sort_by: str, n: int = 3):
    """The ``n`` cases with the lowest ``scores[sort_by]``: image, truth and each method's prediction.

    ``predictions`` maps method → case_id → label map; ``scores`` is a DataFrame indexed by case_id with
    one column per method. Each row shows the case's busiest slice.
    """
    spec = get_task(task)
    by_id = {c.case_id: c for c in cases}
    worst = scores.sort_values(sort_by).head(n)
    methods = list(predictions)
    fig, axes = _axes_grid(len(worst), 2 + len(methods))
    for i, (case_id, row) in enumerate(worst.iterrows()):
        case = by_id[case_id]
        index = busiest_slice(case)
        image, label = middle_slice(case, index)
        pick = (lambda a: a[..., index]) if index is not None else (lambda a: a)
        panels = [(display_image(image), case_id), (label_overlay(image, label, spec), "truth")]
        panels += [(label_overlay(image, pick(predictions[m][case_id]), spec), f"{m} {row[m]:.2f}") for m in methods]
        for ax, (picture, title) in zip(axes[i], panels):
            ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=MIN_FONT)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- evidence figures
METHOD_STYLE = {"baseline": ("0.35", "--", "baseline U-Net"), "sikd": ("tab:green", "-", "SIKD student"),
                "control": ("tab:purple", ":", "control (raw-image teacher)")}


def _cell_number(value: float) -> str:
    """A heat-map cell's Δ: one decimal below 10 points, none above, so a 9-point number fits its cell."""
    return f"{value:+.0f}" if abs(value) >= 9.95 else f"{value:+.1f}"


def _families(deltas) -> list[str]:
    """``clean`` and ``target`` first, then the shift families in the order ``deltas`` lists them."""
    order = ["clean", "target"]
    present = list(dict.fromkeys(deltas["family"]))
    return [f for f in order if f in present] + [f for f in present if f not in order]


def fingerprint_heatmap(deltas, title: str | None = None, ax=None, families: Sequence[str] | None = None,
                        limit: float | None = None, colorbar: bool = True):
    """Robustness fingerprint of one task: families × severities, cell = Δ Dice points (method − baseline).

    ``deltas`` is :func:`sikd_utils.stats.paired_deltas` for one task. Cells whose 95 % CI excludes 0 are
    outlined and their number is bold; missing cells are grey. ``limit`` fixes the symmetric colour range
    (points); by default the largest absolute Δ.
    """
    import matplotlib.pyplot as plt

    if families is None:
        families = _families(deltas)
    severities = sorted({int(s) if float(s).is_integer() else s for s in deltas["severity"]})
    grid = np.full((len(families), len(severities)), np.nan)
    sig = np.zeros_like(grid, dtype=bool)
    for _, row in deltas.iterrows():
        if row["family"] in families:
            i, j = families.index(row["family"]), severities.index(row["severity"])
            grid[i, j], sig[i, j] = 100 * row["delta"], bool(row["significant"])
    limit = limit or (float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0) or 1.0
    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(1.6 + 0.75 * len(severities), 1.1 + 0.36 * len(families)))
    else:
        fig = ax.figure
    cmap = plt.get_cmap("RdBu").with_extremes(bad="0.85")
    image = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=-limit, vmax=limit, aspect="auto")
    for i in range(len(families)):
        for j in range(len(severities)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, _cell_number(grid[i, j]), ha="center", va="center", fontsize=MIN_FONT,
                        fontweight="bold" if sig[i, j] else "normal",
                        color="white" if abs(grid[i, j]) > 0.6 * limit else "black")
                if sig[i, j]:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5, color="black"))
    ax.set_xticks(range(len(severities)), [str(s) for s in severities])
    ax.set_yticks(range(len(families)), families)
    ax.set_xlabel("severity")
    beyond = np.isfinite(grid).any() and float(np.nanmax(np.abs(grid))) > limit  # clipped: say so on the bar
    if colorbar:
        fig.colorbar(image, ax=ax, label="Δ Dice (points)", fraction=0.05, pad=0.02,
                     extend="both" if beyond else "neither")
    if title:
        ax.set_title(title, fontsize=9)
    if own:
        fig.tight_layout()
    return fig


def fingerprint_grid(panels: Mapping[str, object], limit: float | None = None, cols: int = 2):
    """Several fingerprints (``title -> deltas`` of :func:`fingerprint_heatmap`) in one figure
    :data:`FIGURE_WIDTH` wide with one colour bar, so every cell keeps room for its number at
    :data:`MIN_FONT`. Panels with the same families (variants of one task) share the family axis, ``cols``
    a row; panels with different families (tasks) take a row each — side by side, their long family names
    would leave no room for the cells."""
    import matplotlib.pyplot as plt
    import pandas as pd

    titles = list(panels)
    if not titles:
        raise ValueError("fingerprint_grid: no panels")
    families = {t: _families(panels[t]) for t in titles}
    shared = len({tuple(f) for f in families.values()}) == 1
    if limit is None:
        values = 100 * np.abs(pd.to_numeric(pd.concat([panels[t] for t in titles])["delta"], errors="coerce"))
        limit = (float(np.nanmax(values)) if np.isfinite(values).any() else 1.0) or 1.0
    cols = max(1, min(cols, len(titles))) if shared else 1
    rows = -(-len(titles) // cols)
    heights = [max(len(families[t]) for t in titles[r * cols:(r + 1) * cols]) for r in range(rows)]
    inches = [0.22 * h + 0.75 for h in heights]
    legend = 0.75  # the colour bar under the panels
    total = sum(inches) + legend
    fig, axes = plt.subplots(rows, cols, figsize=(FIGURE_WIDTH, total), squeeze=False, sharey=shared,
                             gridspec_kw={"height_ratios": inches})
    for ax, title in zip(axes.flat, titles):
        fingerprint_heatmap(panels[title], title=title, ax=ax, families=families[title], limit=limit, colorbar=False)
    for ax in list(axes.flat)[len(titles):]:
        ax.remove()
    fig.tight_layout(rect=(0, legend / total, 1, 1))
    bar = fig.add_axes((0.25, 0.3 / total, 0.5, 0.12 / total))
    values = 100 * np.abs(pd.to_numeric(pd.concat([panels[t] for t in titles])["delta"], errors="coerce"))
    beyond = bool(np.isfinite(values).any() and float(np.nanmax(values)) > limit)  # clipped: the bar says so
    fig.colorbar(axes.flat[0].images[0], cax=bar, orientation="horizontal", extend="both" if beyond else "neither",
                 label="Δ Dice (points); blue: better than the baseline")
    return fig


def method_curves_grid(curves, tasks: Sequence[str], notes: Mapping[str, str] | None = None, cols: int = 2):
    """:func:`method_curves` of every task in ``tasks`` (``curves``: :func:`sikd_utils.stats.method_summary`
    rows), ``cols`` panels a row within :data:`FIGURE_WIDTH`, one legend for all; ``notes`` maps a task to a
    remark shown under its title (e.g. a failed gate)."""
    import matplotlib.pyplot as plt

    from .data.tasks import TASKS

    notes = notes or {}
    cols = max(1, min(cols, len(tasks)))
    rows = -(-len(tasks) // cols) + (1 if len(tasks) % cols == 0 else 0)  # a free panel holds the legend
    fig, axes = plt.subplots(rows, cols, figsize=(FIGURE_WIDTH, 2.7 * rows), squeeze=False, sharex=True)
    for ax, task in zip(axes.flat, tasks):
        title = TASKS[task].title if task in TASKS else task
        if notes.get(task):
            title += "\n" + notes[task]
        method_curves(curves[curves["task"] == task], title=title, ax=ax)
        ax.get_legend().remove()
    spare = list(axes.flat)[len(tasks):]
    for ax in spare:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if spare:
        spare[0].legend(handles, labels, loc="center", fontsize=MIN_FONT + 1, frameon=False)
    for ax in axes.flat[: len(tasks)]:
        ax.tick_params(labelbottom=True)
    fig.tight_layout()
    return fig


def delta_vs_paper(ours, paper, kinds: Sequence[str] = ("intra", "cross"), limit: float = 25.0, flags=None):
    """Δ (SIKD − baseline, Dice points) per task: ours (mean ± 95 % CI) beside the paper's, one panel per kind.

    ``ours`` has columns ``task``, ``<kind>_delta`` and ``<kind>_ci`` in Dice fractions (see
    :func:`sikd_utils.stats.verdicts`); ``paper`` has ``task`` and ``<kind>_delta`` in points (see
    ``sikd_utils.paper.fig1_table``). Intervals running past ±``limit`` are clipped to the axis and
    end in an arrow. ``flags`` maps a task to a note (e.g. a failed teacher gate) shown by its name.
    """
    import matplotlib.pyplot as plt

    flags = flags or {}
    tasks = list(ours["task"])
    fig, axes = plt.subplots(1, len(kinds), figsize=(FIGURE_WIDTH, 0.5 * len(tasks) + 1.8), sharey=True,
                             squeeze=False)
    ys = np.arange(len(tasks))[::-1]
    paper = paper.set_index("task")
    for ax, kind in zip(axes[0], kinds):
        for y, (_, row) in zip(ys, ours.iterrows()):
            mean, half = 100 * row[f"{kind}_delta"], 100 * row[f"{kind}_ci"]
            if np.isfinite(mean):
                lo, hi = (mean - half, mean + half) if np.isfinite(half) else (mean, mean)
                ax.plot([max(lo, -limit), min(hi, limit)], [y, y], color="tab:green", lw=2)
                ax.plot([np.clip(mean, -limit, limit)], [y], "o", color="tab:green")
                for end, side in ((lo, -1), (hi, 1)):
                    if side * end > limit:
                        ax.plot([side * limit], [y], marker=">" if side > 0 else "<", color="tab:green")
            if row["task"] in paper.index:
                ax.plot([paper.loc[row["task"], f"{kind}_delta"]], [y - 0.2], "D", mfc="none", color="tab:blue")
        ax.axvline(0, color="0.3", lw=0.8)
        ax.set_xlim(-limit, limit)
        ax.set_title(f"{kind}-domain", fontsize=9)
        ax.set_xlabel("Δ Dice (points)")
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(ys, [f"{t} {flags[t]}" if t in flags else t for t in tasks])
    handles = [plt.Line2D([], [], marker="o", color="tab:green", label="ours: mean ± 95 % CI over seeds"),
               plt.Line2D([], [], marker="D", ls="", mfc="none", color="tab:blue", label="paper (Fig. 1)")]
    fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=MIN_FONT, frameon=False)
    fig.suptitle("SIKD − baseline", fontsize=10)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def _all_passed(passes: str) -> bool:
    """Whether a gate count such as "5/5" (seeds passing / seeds gated) has every seed passing."""
    passed, gated = str(passes).split("/")
    return passed == gated


def teacher_length_figure(effect):
    """SIKD − baseline (Dice points, mean ± 95 % CI) against how far the teacher is from its baseline
    (validation Dice, points; the gate stands at −2), one line per task through its evidence runs at each
    teacher length; a filled marker where every seed's teacher passed the gate. ``effect``:
    :func:`sikd_utils.evidence.teacher_length_effect`. Two panels: clean source and target."""
    import matplotlib.pyplot as plt

    from .stats import GATE_MARGIN

    fig, axes = plt.subplots(1, 2, figsize=(FIGURE_WIDTH, 3.9), sharey=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for (task, runs), color in zip(effect.groupby("task", sort=False), colors * 3):
        runs = runs.sort_values("teacher epochs")
        passed = [_all_passed(p) for p in runs["passes"]]
        for ax, kind in zip(axes[0], ("clean", "target")):
            x = 100 * (runs["teacher"] - runs["baseline"]).to_numpy()
            y, h = runs[f"Δ {kind}"].to_numpy(), runs[f"± {kind}"].to_numpy()
            ax.plot(x, y, "-", color=color, lw=1, alpha=0.6)
            ax.errorbar(x, y, yerr=h, fmt="none", ecolor=color, elinewidth=1, capsize=2)
            for xi, yi, ok, epochs in zip(x, y, passed, runs["teacher epochs"]):
                ax.plot([xi], [yi], "o", color=color, mfc=color if ok else "white")
                if len(runs) > 1:
                    ax.annotate(str(epochs), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=MIN_FONT,
                                color=color)
    for ax, kind in zip(axes[0], ("clean source", "realistic target, mean over severities")):
        ax.axhline(0, color="0.3", lw=0.8)
        ax.axvline(-100 * GATE_MARGIN, color="0.5", lw=0.8, ls="--")
        ax.set_xlabel("teacher − baseline (points; gate --)")
        ax.set_title(kind, fontsize=9)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("SIKD − baseline (Dice points)")
    handles = [plt.Line2D([], [], marker="o", ls="-", color=color, label=task)
               for task, color in zip(effect["task"].drop_duplicates(), colors * 3)]
    handles += [plt.Line2D([], [], marker="o", ls="", color="0.3", label="gate passed (all seeds)"),
                plt.Line2D([], [], marker="o", ls="", color="0.3", mfc="white", label="gate missed")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=MIN_FONT, frameon=False)
    fig.suptitle("Does a better teacher close the gap? (labels: teacher epochs)", fontsize=10)
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    return fig


def teacher_student_figure(pairs):
    """Does the student follow its teacher? One point per (task, variant): the teacher's margin over the
    baseline on validation Dice (x) against the student's Δ over the baseline on the clean test set
    (y, mean ± 95 % CI), in points; colour by task, circle for the evidence run and square for the
    ablations (column ``run``), hollow where the teacher missed the gate on some seed.
    ``pairs``: :func:`sikd_utils.why.teacher_and_student` rows with a ``run`` column."""
    import matplotlib.pyplot as plt

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    tasks = list(dict.fromkeys(pairs["task"]))
    fig, ax = plt.subplots(figsize=(FIGURE_WIDTH, 4.8))
    for _, r in pairs.iterrows():
        color = colors[tasks.index(r["task"]) % len(colors)]
        x, y = r["teacher margin"], r["delta"]
        ax.errorbar([x], [y], yerr=[r["ci"]], fmt="none", ecolor=color, elinewidth=1, capsize=2, alpha=0.7)
        ax.plot([x], [y], "o" if r["run"] == "evidence" else "s", color=color,
                mfc=color if _all_passed(r["gate passes"]) else "white", ms=6)
        ax.annotate(r["variant"], (x, y), textcoords="offset points", xytext=(4, 2), fontsize=MIN_FONT, color=color)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.axvline(0, color="0.6", lw=0.8, ls=":")
    ax.set_xlabel("teacher − baseline, validation Dice (points)")
    ax.set_ylabel("student − baseline, clean test Dice (points)")
    ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], marker="o", ls="", color=colors[i % len(colors)], label=t) for i, t in enumerate(tasks)]
    handles += [plt.Line2D([], [], marker="o", ls="", color="0.3", label="evidence run"),
                plt.Line2D([], [], marker="s", ls="", color="0.3", label="ablation"),
                plt.Line2D([], [], marker="o", ls="", color="0.3", mfc="white", label="gate missed (some seed)")]
    fig.legend(handles=handles, loc="lower center", ncol=4, fontsize=MIN_FONT, frameon=False)
    fig.suptitle("Does the student follow its teacher?", fontsize=10)
    fig.tight_layout(rect=(0, 0.16, 1, 1))
    return fig


def method_curves(summary, family: str = "target", title: str | None = None, ax=None):
    """Dice over severity for every method of ``summary`` (:func:`sikd_utils.stats.method_summary`, one
    task), from the clean test set (severity 0) through ``family``'s severities, with 95 % CI bands."""
    import matplotlib.pyplot as plt

    if ax is None:
        fig, ax = plt.subplots(figsize=(4.2, 3.0))
    else:
        fig = ax.figure
    rows = summary[(summary["family"] == family) | (summary["family"] == "clean")]
    for method in [m for m in METHOD_STYLE if m in set(rows["method"])]:
        color, style, label = METHOD_STYLE[method]
        r = rows[rows["method"] == method].sort_values("severity")
        ax.plot(r["severity"], r["dice"], style, marker="o", color=color, label=label)
        ci = r["dice_ci"].to_numpy(dtype=float)
        if np.isfinite(ci).all():
            ax.fill_between(r["severity"], r["dice"] - ci, r["dice"] + ci, color=color, alpha=0.12)
    ax.set_xlabel(f"{family} severity (0 = clean)")
    ax.set_ylabel("Dice")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=MIN_FONT)
    if title:
        ax.set_title(title, fontsize=9)


def _shift_panels(cases, predictions, scores, spec, test_set: str, index: int):
    """(picture, title) panels for case ``index`` of ``test_set``: image, truth, each method's prediction."""
    case = cases[test_set][min(index, len(cases[test_set]) - 1)]
    z = busiest_slice(case)
    image, label = middle_slice(case, z)
    pick = (lambda a: a[..., z]) if z is not None else (lambda a: a)
    panels = [(display_image(image), test_set), (label_overlay(image, label, spec), "truth")]
    for method, store in predictions[test_set].items():
        score = scores.get((test_set, method, case.case_id)) if scores else None
        title = method if score is None else f"{method} {score:.2f}"
        panels.append((label_overlay(image, pick(store[case.case_id]), spec), title))
    return panels


def shift_grid(cases: Mapping[str, Sequence[Case]], predictions: Mapping[str, Mapping[str, Mapping]],
               task: str | TaskSpec, index: int = 0, scores: Mapping | None = None):
    """Small multiples, one row per test set (e.g. source, then rising shift severity): image, truth and
    each method's prediction for case ``index`` of every set — the static twin of :func:`shift_browser`.

    ``predictions`` maps test set → method → case_id → label map (already computed: nothing is
    predicted here); ``scores`` optionally maps (test set, method, case_id) → Dice for the titles.
    """
    spec = get_task(task)
    names = list(cases)
    rows = [_shift_panels(cases, predictions, scores, spec, name, index) for name in names]
    fig, axes = _axes_grid(len(rows), len(rows[0]))
    for row_axes, panels in zip(axes, rows):
        for ax, (picture, title) in zip(row_axes, panels):
            ax.imshow(picture, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=MIN_FONT)
    fig.tight_layout()
    return fig


def shift_browser(cases: Mapping[str, Sequence[Case]], predictions: Mapping[str, Mapping[str, Mapping]],
                  task: str | TaskSpec, scores: Mapping | None = None):
    """A slider over the test sets (shift severity) and one over cases, showing precomputed predictions.

    Callbacks only redraw: every prediction was computed before (see :func:`shift_grid` for arguments).
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    spec = get_task(task)
    names = list(cases)
    shift = widgets.SelectionSlider(options=names, value=names[0], description="test set",
                                    layout=widgets.Layout(width="420px"))
    case_i = widgets.IntSlider(0, 0, max(len(v) for v in cases.values()) - 1, description="case")
    picture = widgets.Image(format="png")

    def redraw(*_):
        panels = _shift_panels(cases, predictions, scores, spec, shift.value, case_i.value)
        size = min(2.2, FIGURE_WIDTH / len(panels))
        fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size + 0.2), squeeze=False)
        for ax, (pic, title) in zip(axes[0], panels):
            ax.imshow(pic, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=MIN_FONT)
            ax.axis("off")
        fig.tight_layout()
        picture.value = figure_png(fig)

    shift.observe(redraw, names="value")
    case_i.observe(redraw, names="value")
    redraw()
    return widgets.VBox([widgets.HBox([shift, case_i]), picture])


__all__ += ["fingerprint_heatmap", "fingerprint_grid", "delta_vs_paper", "method_curves", "method_curves_grid",
            "METHOD_STYLE", "FIGURE_WIDTH", "MIN_FONT", "readable", "COLUMN_LABELS"]
