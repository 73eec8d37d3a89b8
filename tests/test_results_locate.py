"""sikd_utils.results: the one place that finds the committed results, and what a rerun would cost.

The three places are faked by pointing the module at a temporary package folder and working folder, so
each case (clone, installed wheel, notebook inside a clone, nowhere) is checked on its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sikd_utils import _project, results
from sikd_utils.reproduce import ReproduceSettings

ROOT = Path(__file__).resolve().parents[1]


def _results_folder(folder: Path) -> Path:
    (folder / "ablations").mkdir(parents=True)
    (folder / "provenance.json").write_text("{}")
    return folder


@pytest.fixture
def bare_package(tmp_path, monkeypatch):
    """An installed package with no results beside it or inside it, imported from tmp_path/site."""
    package = tmp_path / "site" / "sikd_utils"
    package.mkdir(parents=True)
    monkeypatch.setattr(results, "_PACKAGE", package)
    return package


def test_this_clone_finds_its_own_results():
    assert results.locate() == ROOT / "book" / "results"
    assert results.locate(ablations=True) == ROOT / "book" / "results" / "ablations"


def test_an_installed_package_finds_the_shipped_copy(bare_package, tmp_path):
    shipped = _results_folder(bare_package / results.SHIPPED)
    assert shipped.name == "results"  # notebooks print the folder's name: the same as in a clone
    assert results.locate(cwd=tmp_path) == shipped
    assert results.locate(ablations=True, cwd=tmp_path) == shipped / "ablations"


def test_a_notebook_inside_a_clone_finds_the_clones_results(bare_package, tmp_path):
    clone = tmp_path / "clone"
    (clone / "notebooks").mkdir(parents=True)
    (clone / "pyproject.toml").write_text('[project]\nname = "sikd-utils"\n')
    found = _results_folder(clone / "book" / "results")
    assert results.locate(cwd=clone / "notebooks") == found
    # the package's own copy comes first: it is the one that matches the code
    shipped = _results_folder(bare_package / results.SHIPPED)
    assert results.locate(cwd=clone / "notebooks") == shipped


def test_a_folder_without_provenance_does_not_count(bare_package, tmp_path):
    (bare_package / results.SHIPPED).mkdir(parents=True)  # e.g. a half-copied folder
    assert results.find_results(cwd=tmp_path) is None


def test_nowhere_names_every_place_and_the_remedy(bare_package, tmp_path):
    with pytest.raises(results.ResultsNotFound) as info:
        results.locate(cwd=tmp_path)
    message = str(info.value)
    for _, folder in results.candidates(cwd=tmp_path):
        assert str(folder) in message
    assert f"pip install \"sikd-utils @ git+{_project.URL}@{_project.TAG}\"" in message
    assert "results_dir=" in message and "committed" not in message.replace("the book's committed results", "")
    assert isinstance(info.value, FileNotFoundError)


def test_an_explicit_folder_is_used_as_it_is_but_must_exist(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert results.locate(empty) == empty  # "nothing yet" is a legitimate state of a given folder
    with pytest.raises(results.ResultsNotFound, match=r"does_not_exist does not exist \(it was passed as results_dir\)"):
        results.locate(tmp_path / "does_not_exist")


def test_rerun_cost_counts_epochs_and_quotes_the_committed_run():
    settings = ReproduceSettings(preset="gpu", tasks=("fundus", "cardiac"), seeds=(0, 1), max_minutes=20)
    provenance = {"tasks": {"fundus": {"preset": "gpu", "epochs": 20, "teacher_epochs": 80, "seeds": [0, 1, 2, 3],
                                       "wall_seconds": 4 * 600.0, "device": "NVIDIA H200"},
                            "cardiac": {"preset": "gpu", "epochs": 20, "teacher_epochs": 999, "seeds": [0],
                                        "wall_seconds": 60.0}}}
    lines = results.evidence_rerun_cost(settings, provenance, cuda=False)
    fundus, cardiac, total, cpu, limit = lines
    # 2 seeds x (two teachers at 80 + three students/baselines at 20)
    assert fundus.startswith("fundus: 2 seed(s)") and "= 440 epochs" in fundus
    assert "~20 GPU-minutes on NVIDIA H200" in fundus  # 40 min for 4 seeds, scaled to 2
    assert "GPU-minutes" not in cardiac  # committed at other lengths: not a time for this rerun
    assert "= 760 epochs" in cardiac and total.startswith("in all: 1200 epochs")
    assert "no CUDA GPU" in cpu and "20 minutes" in limit
    assert "no CUDA GPU" not in " ".join(results.evidence_rerun_cost(settings, provenance, cuda=True))


def test_the_committed_provenance_times_every_task():
    provenance = json.loads((ROOT / "book" / "results" / "provenance.json").read_text())
    lines = results.evidence_rerun_cost(ReproduceSettings(preset="gpu"), provenance, cuda=True)
    assert all("GPU-minutes" in line for line in lines[:-2]), lines
