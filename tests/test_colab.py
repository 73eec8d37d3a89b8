"""Each notebook alone, the way Colab runs it: a release wheel, a fresh runtime, an empty folder.

One slow test (``make slow-test``, run by ``.ci/run``):

1. builds the release wheel from a copy of the repository (so the wheel is what a tag would ship);
2. makes a fresh virtual environment (not ``--system-site-packages``) holding what a Colab runtime has
   before the book: torch at a version we can install here (2.13.0, the CPU wheel of our machines; Colab's
   2.11 is not obtainable offline), numpy 2.0.x, ipywidgets 7.7.x, ipykernel, pandas, scipy, matplotlib --
   and no papermill;
3. copies each notebook, alone, into an empty folder and executes it with nbclient in that runtime. The
   notebook's own install cell installs the wheel (``SIKD_INSTALL_FROM``; a stand-in for GitHub serves it
   the release's installer), and the package is uninstalled again before the next notebook, so every
   notebook installs it as on a fresh Colab runtime;
4. checks that 01, 06 and 07 show the committed numbers (recomputed here from ``book/results``), that the
   results came from inside the installed package, that nothing trained at the evidence scale, and that
   the kept torch, numpy and ipywidgets were not touched.

Fast parameters come from tests/test_notebooks.py (06 and 07 keep their defaults: the default must be
"show the committed results").
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# Colab's kept libraries, at versions this machine can install (see the module docstring)
RUNTIME = ["torch==2.13.0", "numpy==2.0.*", "ipywidgets==7.7.*", "ipykernel", "pandas", "scipy", "matplotlib"]
KEPT = ("torch", "numpy", "ipywidgets")
PROBE_MARK = "SIKD-COLAB-PROBE "
PROBES = {
    "01_five_tasks": 'domain_gap_table.to_dict("records")',
    "06_five_tasks": '{"source": str(source), "rerun": bool(rerun), "done": done, '
                     '"verdicts": _json.loads(tables["verdicts"].to_json(orient="records"))}',
    "07_why_sikd_works": '{"source": str(source), "evidence_source": str(evidence_source), "done": done, '
                         '"pending": pending}',
}
# The stand-in for GitHub, the only cell the test puts before a notebook's own: the install cell fetches the
# tagged release's installer from raw.githubusercontent.com, which this machine cannot reach; it is served
# from the wheel under test instead, and any other address fails as it would offline.
STAND_IN = '''\
import io as _io, urllib.request as _request, zipfile as _zipfile
def _urlopen(url, *args, **kwargs):
    if url == {url!r}:
        return _io.BytesIO(_zipfile.ZipFile({wheel!r}).read("sikd_utils/install.py"))
    raise OSError(f"the Colab-like test reaches no network: {{url}}")
_request.urlopen = _urlopen'''


def _copy_source(target: Path) -> Path:
    """The repository without its environments and build outputs (what a release is built from)."""
    ignore = shutil.ignore_patterns(".git", ".venv", "_build", "build", "*.egg-info", "__pycache__", "runs",
                                    ".whl", ".gl", ".pytest_cache", "node_modules")
    return Path(shutil.copytree(ROOT, target, ignore=ignore))


def _has_setuptools(major: int) -> bool:
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0]) >= major
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return False


def _run(command, **kwargs):
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def _versions(python: Path) -> dict:
    code = ("import importlib.metadata as m, json; print(json.dumps({n: m.version(n) for n in %r}))" % (KEPT,))
    return json.loads(_run([str(python), "-c", code]))


def _text(cells) -> str:
    parts = []
    for cell in cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out["text"])
            for mime in ("text/markdown", "text/plain"):
                if mime in out.get("data", {}):
                    parts.append(out["data"][mime])
    return "\n".join(parts)


def _prepare(name: str, folder: Path, wheel: Path, parameters: dict) -> Path:
    """Notebook ``name`` alone in ``folder``, with the stand-in cell first, ``parameters`` set and a probe."""
    from sikd_utils._project import REPOSITORY, TAG

    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    url = f"https://raw.githubusercontent.com/{REPOSITORY}/{TAG}/sikd_utils/install.py"
    nb.cells.insert(0, nbformat.v4.new_code_cell(STAND_IN.format(url=url, wheel=str(wheel))))
    parameters_cell = nb.cells[3]
    assert "parameters" in parameters_cell.metadata.get("tags", []), name
    # as papermill would: the injected values come after the defaults
    parameters_cell.source += "\n" + "\n".join(f"{k} = {v!r}" for k, v in parameters.items())
    if name in PROBES:
        nb.cells.append(nbformat.v4.new_code_cell(
            f"import json as _json\nprint({PROBE_MARK!r} + _json.dumps({PROBES[name]}, default=str))"))
    folder.mkdir()
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, path)
    return path


def _probe(executed) -> object:
    line = next(ln for ln in _text(executed.cells[-1:]).splitlines() if ln.startswith(PROBE_MARK))
    return json.loads(line[len(PROBE_MARK):])


def _expected_01() -> dict:
    """Notebook 01's gap table: each task's baseline clean Dice from the committed evidence."""
    from sikd_utils import stats
    from sikd_utils.reproduce import load_results

    scores, _, _ = load_results(ROOT / "book" / "results")
    dice = stats.method_summary(scores[scores.method == "baseline"]).set_index(["task", "family", "severity"])["dice"]
    return {task: f"{dice[(task, 'clean', 0)]:.3f}" for task in sorted(set(scores.task))}


def _expected_07() -> tuple[list[str], list[str]]:
    """Notebook 07's finished tasks and the sentences its section 6 shows, from the committed ablations."""
    import pandas as pd

    from sikd_utils import why
    from sikd_utils.ablate import ABLATION_TASKS

    source, tasks = ROOT / "book" / "results" / "ablations", list(ABLATION_TASKS)
    scores, training, prov = why.load_results(source)
    scores = scores[scores["task"].isin(tasks)]
    done = why.complete_tasks(prov, [t for t in tasks if t in set(scores["task"])])
    scores = scores[scores["task"].isin(done)]
    partial = why.interim([t for t in tasks if t not in done], source / "parts")
    if partial.notes:
        scores = pd.concat([scores, partial.scores], ignore_index=True)
    shown = done + list(partial.notes)
    table = why.comparisons(scores)
    return done, [f"- {line}" for line in why.conclusions(table, scores, tasks=shown, notes=partial.notes)]


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_each_notebook_alone_in_a_colab_like_runtime(tmp_path, monkeypatch):
    import nbclient

    sys.path.insert(0, str(Path(__file__).parent))
    from test_notebooks import FAST

    clock = {"start": time.time()}
    # 1. the release wheel, built from a copy so no build output lands in the repository
    source = _copy_source(tmp_path / "src")
    # this environment's setuptools where it has one new enough (offline, seconds), else pip's isolated build
    isolation = ["--no-build-isolation"] if _has_setuptools(64) else []
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-q", str(source),
          "-w", str(tmp_path / "wheel")])
    (wheel,) = (tmp_path / "wheel").glob("sikd_utils-*.whl")
    shipped = [n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("sikd_utils/_book/results/")]
    committed = [p for p in (ROOT / "book" / "results").rglob("*") if p.is_file()]
    assert len(shipped) == len(committed), "the wheel ships every committed results file"
    clock["wheel"] = time.time()

    # 2. a fresh runtime with Colab's kind of versions, and no papermill
    venv = tmp_path / "runtime"
    _run([sys.executable, "-m", "venv", str(venv)])  # built on the base interpreter, without this one's packages
    python = venv / "bin" / "python"
    _run([str(python), "-m", "pip", "install", "-q", *RUNTIME])
    kept = _versions(python)
    assert _run([str(python), "-c", "import importlib.util as u; print(u.find_spec('papermill') is None)"]).strip() == "True"
    _run([str(python), "-m", "ipykernel", "install", "--prefix", str(tmp_path / "jupyter"), "--name", "colab-like"])
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter" / "share" / "jupyter"))
    monkeypatch.setenv("SIKD_INSTALL_FROM", str(wheel))
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    for name in ("PYTHONPATH", "VIRTUAL_ENV"):  # the kernel must import the installed package, not this clone
        monkeypatch.delenv(name, raising=False)
    clock["runtime"] = time.time()

    # 3. each notebook alone, installing the package with its own first cell
    executed, seconds = {}, {}
    for path in NOTEBOOKS:
        name = path.stem
        start = time.time()
        if name != NOTEBOOKS[0].stem:  # a fresh Colab runtime per notebook: the package is not there yet
            _run([str(python), "-m", "pip", "uninstall", "-y", "-q", "sikd-utils"])
        parameters = {} if name in ("06_five_tasks", "07_why_sikd_works") else FAST[name]
        folder = tmp_path / f"alone-{name}"
        nb = nbformat.read(_prepare(name, folder, wheel, parameters), as_version=4)
        client = nbclient.NotebookClient(nb, kernel_name="colab-like", timeout=300,
                                         resources={"metadata": {"path": str(folder)}})
        client.execute()
        executed[name] = nb
        seconds[name] = round(time.time() - start, 1)
        text = _text(nb.cells)
        assert f"installing sikd-utils (from {wheel})" in _text(nb.cells[2:3]), f"{name}: its own cell installed it"
        assert "not committed" not in text, name
        # nothing trained at the evidence scale: no evidence or ablation results, and 00-02, 06, 07 train nothing
        runs = folder / "runs"
        assert not list(runs.glob("**/provenance.json")), f"{name} ran the evidence or the ablations"
        if name not in ("03_teacher", "04_distillation", "05_evaluation"):
            assert not [p for p in runs.rglob("*") if p.suffix in (".pt", ".pth")], f"{name} trained a network"
    assert _versions(python) == kept, "the install kept torch, numpy and ipywidgets as they were"

    # 4. the committed numbers, from the results shipped inside the installed package
    from sikd_utils.data import TASKS

    gap = {row["task"]: row["clean Dice"] for row in _probe(executed["01_five_tasks"])}
    expected_gap = _expected_01()
    assert set(gap) == set(TASKS) and expected_gap and all(gap[t] == v for t, v in expected_gap.items()), gap

    from sikd_utils import evidence

    rec = _probe(executed["06_five_tasks"])
    assert rec["rerun"] is False and "/site-packages/sikd_utils/_book/results" in rec["source"]
    scores, training, _ = evidence.load_results(ROOT / "book" / "results")
    expected = evidence.page_tables(scores, training)["verdicts"]
    assert sorted(rec["done"]) == sorted(expected["task"]) and len(expected) == len(TASKS)
    got = {r["task"]: r for r in rec["verdicts"]}
    for row in expected.itertuples():
        assert got[row.task]["intra_delta"] == pytest.approx(row.intra_delta)
        assert got[row.task]["cross_delta"] == pytest.approx(row.cross_delta)
        assert got[row.task]["cross_verdict"] == row.cross_verdict
    assert "Showing the committed results" in _text(executed["06_five_tasks"].cells)

    rec = _probe(executed["07_why_sikd_works"])
    assert rec["source"].endswith("/site-packages/sikd_utils/_book/results/ablations")
    done, lines = _expected_07()
    text = _text(executed["07_why_sikd_works"].cells)
    assert rec["done"] == done and rec["pending"] == [] and lines
    assert all(line in text for line in lines), "section 6 says what the committed ablations say"
    assert "Showing the committed ablations" in text

    total = time.time() - clock["start"]
    print(f"\n[colab-like] wheel {clock['wheel'] - clock['start']:.0f} s, runtime {clock['runtime'] - clock['wheel']:.0f} s, "
          f"notebooks {seconds}, total {total:.0f} s")
