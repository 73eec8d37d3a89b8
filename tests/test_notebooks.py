"""Every notebook: its structure (skeleton, badge, parameters, no outputs), and a papermill run in
fast mode with assertions on what the run produced (the JSON record each notebook writes)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["00_welcome", "01_five_tasks", "02_class_wise_mean", "03_teacher", "04_distillation",
            "05_evaluation", "06_five_tasks"]

# Tiny values injected into each notebook's `parameters` cell: the same code paths, seconds of work.
TINY_TRAINING = dict(image_size=32, base_channels=4, epochs=2, batch_size=8, device="cpu")
FAST = {
    "00_welcome": {},
    "01_five_tasks": dict(image_size=48, n_cases=2, gallery_size=48),
    "02_class_wise_mean": dict(image_size=48, n_cases=2),
    "03_teacher": dict(TINY_TRAINING, n_train=3, n_val=2),
    "04_distillation": dict(TINY_TRAINING, n_train=3, n_val=2),
    "05_evaluation": dict(TINY_TRAINING, n_train=3, n_val=2, n_test=2, n_target=2, severities=[1.0, 2.0]),
    "06_five_tasks": dict(TINY_TRAINING, seeds=[0, 1], n_volumes=[3, 2, 2, 2], n_images=[8, 4, 3, 3]),
}


def _repo() -> str:
    url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    return url.removeprefix("https://github.com/").strip("/")


def test_the_walkthrough_is_complete_and_ordered():
    assert [p.stem for p in NOTEBOOKS] == EXPECTED


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_structure(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = nb.cells
    # 1. title + badge pointing at this very file
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# ")
    from sikd_utils._project import TAG  # badges open the release the install cell installs

    badge = f"https://colab.research.google.com/github/{_repo()}/blob/{TAG}/notebooks/{path.name}"
    assert f"]({badge})" in cells[0].source, f"Colab badge must link to {badge}"
    assert "Time to run" in cells[0].source
    # 2. guarded install that never touches torch or numpy (tests/test_install.py checks the rest)
    install = cells[1].source
    assert cells[1].cell_type == "code" and "find_spec(\"sikd_utils\")" in install
    assert f'REPOSITORY, VERSION = "{_repo()}"' in install
    statements = "\n".join(line for line in install.splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"\b(torch|numpy)\b", statements), "the install cell must not install torch or numpy"
    # 3. exactly one parameters cell, a code cell, right after the install
    tagged = [i for i, c in enumerate(cells) if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert tagged == [2] and cells[2].cell_type == "code"
    # committed without outputs
    for cell in cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "strip outputs before committing"
    # 6. Summary and Exercises with hidden solutions at the end
    text = "\n".join(c.source for c in cells if c.cell_type == "markdown")
    assert "## Summary" in text and "## Exercises" in text
    assert ":class: dropdown" in text.split("## Exercises", 1)[1], "exercise solutions must be hidden"
    # no interact/Output widgets: they can stall headless runs (nbclient#312)
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "interact(" not in code and "widgets.Output" not in code


def _run(name: str, tmp_path: Path) -> dict:
    import papermill as pm

    out_dir = tmp_path / "runs"
    params = {**FAST[name], "output_dir": str(out_dir)}
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # two notebooks run side by side under xdist: no oversubscription
    try:
        pm.execute_notebook(str(ROOT / "notebooks" / f"{name}.ipynb"), str(tmp_path / f"{name}.ipynb"),
                            parameters=params, kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
                            execution_timeout=300)
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
    return json.loads((out_dir / f"{name}.json").read_text())




@pytest.mark.notebook
@pytest.mark.timeout(480)
@pytest.mark.flaky(reruns=1)
class TestNotebookRuns:
    def test_00_welcome(self, tmp_path):
        rec = _run("00_welcome", tmp_path)
        assert rec["paper_rows"] == 5 and len(rec["tasks"]) == 5
        assert rec["device"] in ("cpu", "cuda")

    def test_01_five_tasks(self, tmp_path):
        rec = _run("01_five_tasks", tmp_path)
        assert set(rec["order_preserved"]) == set(rec["tasks"])
        assert rec["shapes"]["fundus"][0] == 3 and len(rec["shapes"]["cardiac"]) == 4
        assert 0.0 <= rec["image_range"][0] and rec["image_range"][1] <= 1.0
        for task in rec["tasks"]:  # the shift gallery section tabulated every task's registry
            kinds = rec["shift_families"][task]
            assert kinds["appearance"] >= 9 and kinds["shape"] >= 2  # 8+ families plus "target"

    def test_02_class_wise_mean(self, tmp_path):
        rec = _run("02_class_wise_mean", tmp_path)
        for task in rec["tasks"]:
            # averaging inside classes removes most texture in both domains
            for domain in ("source", "target"):
                assert rec["mean_texture"][task][domain] < rec["raw_texture"][task][domain]

    def test_03_teacher(self, tmp_path):
        rec = _run("03_teacher", tmp_path)
        assert rec["teacher_skip_connections"] is False
        assert rec["epochs_trained"] == 2
        assert rec["last_loss"] < rec["first_loss"]
        assert 0.0 <= rec["dice_mean_images"] <= 1.0 and 0.0 <= rec["dice_raw_images"] <= 1.0

    def test_04_distillation(self, tmp_path):
        rec = _run("04_distillation", tmp_path)
        assert len(rec["baseline_history"]) == len(rec["student_history"]) == 2
        for r in rec["student_history"]:
            assert r["mse"] > 0 and r["loss"] == pytest.approx(r["ce"] + rec["distill_weight"] * r["mse"], rel=1e-3)
        assert all(r["mse"] == 0 for r in rec["baseline_history"])

    def test_05_evaluation(self, tmp_path):
        rec = _run("05_evaluation", tmp_path)
        assert rec["test_sets"] == ["source", "target@1", "target@2", "shape_shift@1"]
        # 2 methods x 4 test sets x 2 cases x 3 foreground classes (cardiac)
        assert rec["n_rows"] == 2 * 4 * 2 * 3
        assert all(0.0 <= v <= 1.0 for v in rec["overall_dice"].values())

    def test_06_five_tasks(self, tmp_path):
        rec = _run("06_five_tasks", tmp_path)
        assert rec["seeds"] == [0, 1]
        table = rec["table"]
        assert {r["task"] for r in table} == set(rec["tasks"])
        assert all(r["n_seeds"] == 2 for r in table)
        assert {r["test_set"] for r in table} == {"source", "target@1", "shape_shift@1"}
        assert "commit" in rec["provenance"] and len(rec["headline"]) == 2 * len(rec["tasks"])
