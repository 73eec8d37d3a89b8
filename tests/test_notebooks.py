"""Every notebook: its structure (skeleton, badge, parameters, no outputs), and a papermill run in
fast mode of its *student copy* (solutions removed) with assertions on what the run produced.

What a run produced is read from the executed notebook itself: the test appends one probe cell to its
private copy, evaluating an expression in the notebook's namespace and printing it as JSON, and can
search the executed notebook's outputs. Notebooks carry no test hooks.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from sikd_utils.ablate import ABLATION_TASKS
from sikd_utils.data.tasks import TASKS

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "book"))
from student_notebooks import is_solution, student_copy  # noqa: E402
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
EXPECTED = ["00_welcome", "01_five_tasks", "02_class_wise_mean", "03_teacher", "04_distillation",
            "05_evaluation", "06_five_tasks", "07_why_sikd_works"]

# Tiny values injected into each notebook's `parameters` cell: the same code paths, seconds of work.
TINY_TRAINING = dict(image_size=32, base_channels=4, epochs=2, batch_size=8, device="cpu")
# notebooks 03-05 take a preset and single-setting overrides
TINY_PRESET = dict(preset="cpu", device="cpu",
                   overrides=dict(image_size=32, base_channels=4, epochs=2, teacher_epochs=None, batch_size=8,
                                  n_train=3, n_val=2, n_test=2, n_target=2))
FAST = {
    "00_welcome": {},
    "01_five_tasks": dict(image_size=48, n_cases=2, gallery_size=32),  # the gallery: ~220 panels
    "02_class_wise_mean": dict(image_size=48, n_cases=2),
    "03_teacher": TINY_PRESET,
    "04_distillation": TINY_PRESET,
    "05_evaluation": dict(TINY_PRESET, severities=[1.0, 2.0]),
    "06_five_tasks": dict(rerun=False),  # loads the committed results: no training
    "07_why_sikd_works": {},  # loads the committed ablations: no training
}
PRESET_NOTEBOOKS = ("03_teacher", "04_distillation", "05_evaluation")


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
    _check_reader_conventions(path.stem, cells)
    # no interact/Output widgets: they can stall headless runs (nbclient#312)
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "interact(" not in code and "widgets.Output" not in code


@pytest.mark.parametrize("name", ["06_five_tasks", "07_why_sikd_works"])
def test_reruns_happen_only_when_asked_for_with_a_time_limit(name):
    """Training the evidence or the ablations is hours of GPU: never the default, on a GPU runtime neither."""
    cells = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4).cells
    parameters = cells[2].source
    assert re.search(r"^rerun = False\b", parameters, re.M), "rerun defaults to False"
    assert re.search(r"^max_minutes = \d+", parameters, re.M), "a rerun has a time limit by default"
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    assert "cuda.is_available()" not in code, "whether to train is the reader's choice, not the runtime's"
    assert "results as committed" in code and "committed.locate(" in code  # one way to find the results


MYST_ROLE = re.compile(r"\{[a-z][\w:-]*\}`")  # {mod}`x`, {doc}`x`, {ref}`x`, {glue:text}`x` ...


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_markdown_has_no_myst_roles(path):
    """Colab and Jupyter show a MyST role as raw text: notebooks link with plain Markdown (book pages may use roles)."""
    cells = nbformat.read(path, as_version=4).cells
    found = [m.group(0) for c in cells if c.cell_type == "markdown" for m in MYST_ROLE.finditer(c.source)]
    assert not found, f"MyST roles in {path.name}: {found}; use [text](06_five_tasks.ipynb) or `code`"
    assert MYST_ROLE.search("see {doc}`06_five_tasks`") and not MYST_ROLE.search("a set {1, 2} and `code`")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_says_what_it_needs(path):
    """On Colab every notebook runs alone: its first cell says what it needs from the ones before it."""
    title = nbformat.read(path, as_version=4).cells[0].source
    assert "**Needs.**" in title, f"{path.name}: add a **Needs.** paragraph to the title cell"
    assert "reloaded by notebooks 04" not in "\n".join(c.source for c in nbformat.read(path, as_version=4).cells)


def _check_reader_conventions(name: str, cells) -> None:
    tags = [c.get("metadata", {}).get("tags", []) for c in cells]
    # solutions: cells tagged `solution` after the exercises, collapsed everywhere (a <details> block)
    exercises = next(i for i, c in enumerate(cells) if c.cell_type == "markdown" and "## Exercises" in c.source)
    solutions = [i for i, c in enumerate(cells) if is_solution(c)]
    assert solutions and min(solutions) > exercises, "exercise solutions belong in cells tagged `solution`"
    for i in solutions:
        body = cells[i].source.strip()
        assert body.startswith("<details>") and body.endswith("</details>") and "<summary>" in body, (
            "a solution cell must be one <details> block, collapsed on Colab, Jupyter and in the book")
    assert not any("{admonition} Solutions" in c.source for c in cells), "solutions outside a `solution` cell"
    # the install cell and the environment report do not open the rendered page
    assert "remove-cell" in tags[1], "the install cell is hidden in the book (kept on Colab)"
    report = [i for i, c in enumerate(cells) if c.cell_type == "code" and "su.env.report()" in c.source]
    assert report and all("hide-output" in tags[i] for i in report)
    # no test hook: the tests read the executed notebook instead
    code = "\n".join(c.source for c in cells if c.cell_type == "code")
    # (reading a JSON file is fine: notebook 06 reads the committed provenance)
    assert not re.search(r"write_text\(\s*json|json\.dump\(|\.json[\"']\)\.(write_text|open)\(", code), (
        "notebooks carry no test hooks")
    if name in PRESET_NOTEBOOKS:
        assert re.search(r"^preset = \"cpu\"", cells[2].source, re.M), "03-05 share a `preset` parameter"
        assert "n_test=1" not in code and "n_target=1" not in code, "no placeholder configuration values"


PROBE_MARK = "SIKD-TEST-PROBE "


def _run(name: str, tmp_path: Path, probe: str, **extra):
    """Execute the student copy of notebook ``name`` in fast mode; return ``(value, executed notebook)``.

    ``probe`` is a Python expression over the notebook's variables: a cell printing its value as JSON
    (``json`` is there as ``_json``) is appended to the test's private copy and its output read back.
    """
    import papermill as pm

    out_dir = tmp_path / "runs"
    params = {**FAST[name], **extra, "output_dir": str(out_dir)}
    nb = student_copy(nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4))
    assert not any(is_solution(c) for c in nb.cells)
    nb.cells.append(nbformat.v4.new_code_cell(f"import json as _json\nprint({PROBE_MARK!r} + _json.dumps({probe}, default=float))"))
    source = tmp_path / f"{name}.student.ipynb"
    nbformat.write(nb, source)
    env_threads = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = "1"  # two notebooks run side by side under xdist: no oversubscription
    try:
        pm.execute_notebook(str(source), str(tmp_path / f"{name}.ipynb"),
                            parameters=params, kernel_name="python3", cwd=str(tmp_path), progress_bar=False,
                            execution_timeout=300)
    finally:
        if env_threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = env_threads
    executed = nbformat.read(tmp_path / f"{name}.ipynb", as_version=4)
    printed = _outputs_text(executed.cells[-1:])
    line = next(line for line in printed.splitlines() if line.startswith(PROBE_MARK))
    return json.loads(line[len(PROBE_MARK):]), executed


def _outputs_text(cells) -> str:
    """Everything the cells printed or displayed as text or Markdown."""
    parts = []
    for cell in cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out["text"])
            for mime in ("text/markdown", "text/plain"):
                if mime in out.get("data", {}):
                    parts.append(out["data"][mime])
    return "\n".join(parts)


def _glued(executed) -> set[str]:
    """The names the executed notebook glued (myst_nb.glue marks its outputs with them)."""
    return {out.get("metadata", {}).get("scrapbook", {}).get("name")
            for cell in executed.cells for out in cell.get("outputs", [])} - {None}


def _pasted(name: str) -> set[str]:
    """The glue keys the book's pages paste from notebook ``name`` (``{glue}`` directives and roles)."""
    keys = set()
    for page in (ROOT / "book").glob("*.md"):
        text = page.read_text()
        keys |= set(re.findall(r"```\{glue\}\s*(\S+)\s*\n:doc:\s*/notebooks/" + re.escape(name) + r"\.ipynb", text))
        keys |= set(re.findall(r"\{glue(?::\w+)?\}`/notebooks/" + re.escape(name) + r"\.ipynb::([\w-]+)", text))
    return keys


PROBE_06 = ('{"source": str(source), "rerun": bool(rerun), "tasks": tasks, "done": done, "pending": pending, '
            '"verdict_lines": lines, "tables": {name: _json.loads(t.to_json(orient="records")) '
            'for name, t in tables.items()}, "provenance": provenance_text}')


@pytest.mark.notebook
@pytest.mark.timeout(480)
@pytest.mark.flaky(reruns=1)
class TestNotebookRuns:
    def test_00_welcome(self, tmp_path):
        rec, _ = _run("00_welcome", tmp_path, probe='{"device": info["device"], "paper_rows": len(paper), '
                                                    '"tasks": list(TASKS)}')
        assert rec["paper_rows"] == 5 and len(rec["tasks"]) == 5
        assert rec["device"] in ("cpu", "cuda")

    def test_01_five_tasks(self, tmp_path):
        rec, executed = _run("01_five_tasks", tmp_path, probe=(
            '{"tasks": list(TASKS), "order_preserved": {t: bool(v) for t, v in zip(order_table["task"], '
            'order_table["same order in target"])}, "shapes": {t: list(domains[t]["source"][0].image.shape) '
            'for t in TASKS}, "image_range": [float(min(c.image.min() for t in TASKS for d in domains[t].values() '
            'for c in d)), float(max(c.image.max() for t in TASKS for d in domains[t].values() for c in d))], '
            '"gap_rows": len(domain_gap_table), "shift_families": {t: family_table[family_table.task == t]'
            '["kind"].value_counts().to_dict() for t in TASKS}}'))
        assert rec["tasks"] == list(TASKS)
        assert set(rec["order_preserved"]) == set(rec["tasks"])
        assert rec["shapes"]["fundus"][0] == 3 and len(rec["shapes"]["cardiac"]) == 4
        assert 0.0 <= rec["image_range"][0] and rec["image_range"][1] <= 1.0
        for task in rec["tasks"]:  # the shift gallery section tabulated every task's registry
            kinds = rec["shift_families"][task]
            assert kinds["appearance"] >= 9 and kinds["shape"] >= 2  # 8+ families plus "target"
        assert rec["gap_rows"] == len(rec["tasks"])  # one row per task, done or pending
        pasted = _pasted("01_five_tasks")
        assert "domain_gap_table" in pasted and pasted <= _glued(executed), "book/data.md pastes what 01 glues"

    def test_02_class_wise_mean(self, tmp_path):
        rec, _ = _run("02_class_wise_mean", tmp_path, probe=(
            '{"tasks": list(TASKS), "raw_texture": {t: {d: float(stats.loc[t, ("raw texture", d)]) '
            'for d in ("source", "target")} for t in TASKS}, "mean_texture": {t: {d: float(stats.loc[t, '
            '("mean-image texture", d)]) for d in ("source", "target")} for t in TASKS}}'))
        for task in rec["tasks"]:
            # averaging inside classes removes most texture in both domains
            for domain in ("source", "target"):
                assert rec["mean_texture"][task][domain] < rec["raw_texture"][task][domain]

    def test_03_teacher(self, tmp_path):
        rec, executed = _run("03_teacher", tmp_path, probe=(
            '{"teacher_skip_connections": teacher.skip_connections, "history": teacher_run.history, '
            '"dice_mean_images": dice_mean_images, "dice_raw_images": dice_raw_images}'))
        assert rec["teacher_skip_connections"] is False
        assert len(rec["history"]) == 2
        assert rec["history"][-1]["loss"] < rec["history"][0]["loss"]
        assert 0.0 <= rec["dice_mean_images"] <= 1.0 and 0.0 <= rec["dice_raw_images"] <= 1.0
        text = _outputs_text(executed.cells)
        # the run is labelled and its claims are computed: the sentence quotes the curve's best value
        assert "Mechanics demo" in text and "teacher: trained now" in text
        best = max(r["val_dice"] for r in rec["history"])
        assert f"a best of {best:.2f}" in text

    def test_04_distillation(self, tmp_path):
        rec, executed = _run("04_distillation", tmp_path, probe=(
            '{"distill_weight": config.distill_weight, "baseline_history": runs["baseline"].history, '
            '"student_history": runs["student"].history, "calls": calls, "step_loss": float(loss.total)}'))
        # the step printed in the notebook is the one train() calls
        assert rec["calls"] and all(c.startswith("loss = sikd_step(") for c in rec["calls"])
        text = _outputs_text(executed.cells)
        assert "def sikd_step(" in text and "teacher: reloaded from" in text and "Teacher gate" in text
        if "Teacher gate fails" in text:  # a CPU demo's failure is labelled as expected
            assert "expected at preset `cpu`, not an error" in text
        assert len(rec["baseline_history"]) == len(rec["student_history"]) == 2
        for r in rec["student_history"]:
            assert r["mse"] > 0 and r["loss"] == pytest.approx(r["ce"] + rec["distill_weight"] * r["mse"], rel=1e-3)
        assert all(r["mse"] == 0 for r in rec["baseline_history"])

    def test_05_evaluation(self, tmp_path):
        rec, executed = _run("05_evaluation", tmp_path, probe=(
            '{"test_sets": list(splits.tests), "n_rows": len(per_case), "overall_dice": {f"{m}|{s}": '
            'float(overall.loc[s, m]) for s in overall.index for m in overall.columns}, '
            '"unlearned": list(map(str, unlearned))}'))
        text = _outputs_text(executed.cells)
        assert "baseline: trained now" in text and "Teacher gate" in text
        # a class neither model learned is named as such, never left as an unexplained 0
        for name in rec["unlearned"]:
            assert "Neither model learned" in text and name in text
            assert "expected at preset `cpu`, not an error" in text
        assert rec["test_sets"] == ["source", "target@1", "target@2", "shape_shift@1"]
        # 2 methods x 4 test sets x 2 cases x 3 foreground classes (cardiac)
        assert rec["n_rows"] == 2 * 4 * 2 * 3
        assert all(0.0 <= v <= 1.0 for v in rec["overall_dice"].values())

    def test_06_five_tasks(self, tmp_path):
        """On a CPU notebook 06 loads the committed evidence (trains nothing) and renders what is there."""
        rec, executed = _run("06_five_tasks", tmp_path, probe=PROBE_06)
        assert rec["rerun"] is False
        assert rec["source"] == str(ROOT / "book" / "results")
        text = _outputs_text(executed.cells)  # the cost of a rerun is said before anything could train
        assert "Showing the committed results" in text and "GPU-hours" in text
        assert sorted(rec["done"] + rec["pending"]) == sorted(rec["tasks"])
        assert not list((tmp_path / "runs").glob("*/*/seed*")), "notebook 06 must not train on a CPU"
        assert len(rec["verdict_lines"]) == len(rec["tasks"])
        for task in rec["pending"]:
            assert any("pending" in line and TASKS[task].title in line for line in rec["verdict_lines"])
        if rec["done"]:
            assert {r["task"] for r in rec["tables"]["verdicts"]} == set(rec["done"])
            assert rec["provenance"].startswith(f"Computed from results/ ({len(rec['done'])} task(s)) by: ")
        else:
            assert rec["provenance"] == f"No evidence-run results in {rec['source']}."
        assert rec["provenance"] in _outputs_text(executed.cells)
        pasted = _pasted("06_five_tasks")
        assert "evidence_verdicts" in pasted and pasted <= _glued(executed), "book/results.md pastes what 06 glues"

    def test_06_five_tasks_reruns_only_when_asked_and_says_the_cost_first(self, tmp_path):
        """rerun=True at the tiny preset: the cost is printed before the run, whose results the notebook then shows."""
        rec, executed = _run("06_five_tasks", tmp_path, probe=PROBE_06, rerun=True, preset="tiny",
                             tasks=["cardiac"], seeds=[0], max_minutes=5, device="cpu")
        assert rec["rerun"] is True and rec["source"] == str(tmp_path / "runs" / "results")
        assert rec["done"] == ["cardiac"]
        text = _outputs_text(executed.cells)
        cost = text.index("Rerunning the evidence into")
        assert "cardiac: 1 seed(s) x (teacher" in text[cost:] and "stops cleanly after 5 minutes" in text[cost:]
        assert text.index("DONE") > cost, "the cost is said before the run starts"

    def test_06_five_tasks_renders_results(self, tmp_path):
        """Given a results folder, every section renders and its numbers are those of evidence.page_tables."""
        from fake_results import write_fake_results
        from sikd_utils import evidence

        folder = write_fake_results(tmp_path / "results")
        rec, executed = _run("06_five_tasks", tmp_path, probe=PROBE_06, results_dir=str(folder))
        assert rec["done"] == ["cardiac", "polyp"] and rec["pending"] == ["abdomen", "fundus", "breast_us"]
        scores, training, _ = evidence.load_results(folder)
        expected = evidence.page_tables(scores, training)
        for name, table in expected.items():
            assert len(rec["tables"][name]) == len(table), name
        got = {r["task"]: r for r in rec["tables"]["verdicts"]}
        for r in expected["verdicts"].itertuples():
            assert got[r.task]["intra_delta"] == pytest.approx(r.intra_delta)
            assert got[r.task]["cross_verdict"] == r.cross_verdict
        assert any("teacher gate" in line or "teachers pass" in line for line in rec["verdict_lines"])
        assert rec["provenance"] == "Computed from results/ (2 task(s)) by: fake"
        assert _pasted("06_five_tasks") <= _glued(executed)

    def test_07_why_sikd_works_pending(self, tmp_path):
        """Without committed ablations every section says they are pending and gives the command."""
        from sikd_utils import why

        empty = tmp_path / "no_results"
        empty.mkdir()
        rec, executed = _run("07_why_sikd_works", tmp_path, probe='{"done": done, "pending": pending}',
                             results_dir=str(empty), evidence_dir=str(empty))
        assert rec == {"done": [], "pending": list(ABLATION_TASKS)}
        text = _outputs_text(executed.cells)
        assert why.COMMAND in text and text.count("**Pending.**") >= 6  # the evidence section too
        html = [o["data"]["text/html"] for c in executed.cells for o in c.get("outputs", []) if "text/html" in o.get("data", {})]
        assert any("teacher_onehot" in h for h in html)  # the registry is shown either way
        images = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(images) == 1  # and the variants' ingredient grid
        assert _pasted("07_why_sikd_works") <= _glued(executed)  # the results page's paste says pending too

    def test_07_why_sikd_works_renders_results(self, tmp_path):
        """Given ablation results, the table, heat-maps and sentences are those of sikd_utils.why."""
        from fake_results import write_fake_ablations
        from sikd_utils import why

        from fake_results import write_fake_results
        from sikd_utils import evidence

        folder = write_fake_ablations(tmp_path / "ablations")
        evidence_folder = write_fake_results(tmp_path / "evidence")
        rec, executed = _run("07_why_sikd_works", tmp_path, results_dir=str(folder), evidence_dir=str(evidence_folder),
                             probe='{"done": done, "pending": pending, "lines": lines, "rows": len(table), '
                                   '"evidence_lines": "\\n".join(evidence_lines)}')
        assert rec["done"] == list(ABLATION_TASKS) and rec["pending"] == []
        scores, _, _ = why.load_results(folder)
        table = why.comparisons(scores)
        assert rec["rows"] == len(table)
        assert rec["lines"] == [f"- {line}" for line in why.conclusions(table, scores, tasks=list(ABLATION_TASKS))]
        pasted = _pasted("07_why_sikd_works")
        assert {"ablation_conclusions", "ablation_headline"} <= pasted <= _glued(executed), "results.md pastes 07's glue"
        assert why.headline(table, scores, tasks=list(ABLATION_TASKS)) in _outputs_text(executed.cells)
        # section 2: the evidence run's control judged as the teacher_raw variant
        ev_scores, _, ev_prov = why.load_results(evidence_folder)
        ev_scores = why.from_evidence(ev_scores)
        expected = why.conclusions(why.comparisons(ev_scores), ev_scores, questions=why.EVIDENCE_QUESTIONS,
                                   notes=evidence.earlier_preset_notes(ev_prov))
        assert rec["evidence_lines"] == "\n".join(expected) and "teacher_raw" in rec["evidence_lines"]
        text = _outputs_text(executed.cells)
        assert "Pending" not in text
        images = [o for c in executed.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        # the ingredient grid, one fingerprint figure per task, the λ curve, students beside teachers
        assert len(images) == 5
        for line in why.lambda_sentences(why.lambda_slopes(why.lambda_curve(scores))):
            assert line in text
        assert "(task, variant) pairs" in text  # the sentence beside the students-and-teachers figure
        import re  # the bound shown by scaling SwinUNETR's weights: the student stays within it, the teacher not
        scaled = dict(re.findall(r"SwinUNETR (student|teacher): largest per-channel mean square [^:]*: (\S+)", text))
        assert float(scaled["student"]) <= 4.0 < float(scaled["teacher"]), scaled
        assert "No feature-scale probe" in text  # the fake results hold none
        _, training, _ = why.load_results(folder)
        for line in why.teacher_rate_sentences(training, scores):  # what the SwinUNETR teacher's rate changed
            assert line.split(": the teachers")[0] in text and "paired by" in text
