"""Draw the book's explanatory figures into book/figures/ from the package's own code.

Run from the repository root after changing ``sikd_utils/diagrams.py``::

    python book/figures.py

and commit the SVG files it writes (the book includes them; tests/test_diagrams.py checks they are current).
"""

from __future__ import annotations

from pathlib import Path

FIGURES = Path(__file__).resolve().parent / "figures"


def draw(folder: Path = FIGURES) -> list[Path]:
    """Write pipeline.svg and unet_skips.svg into ``folder``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sikd_utils.diagrams import pipeline_figure, unet_figure

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context({"svg.fonttype": "none", "svg.hashsalt": "sikd-book", "font.family": "DejaVu Sans"}):
        for name, make in (("pipeline.svg", pipeline_figure), ("unet_skips.svg", unet_figure)):
            fig = make()
            path = folder / name
            fig.savefig(path, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None})
            plt.close(fig)
            written.append(path)
    return written


if __name__ == "__main__":
    for path in draw():
        print(f"wrote {path}")
