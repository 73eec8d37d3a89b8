"""The notebooks' install cell (sikd_utils/install.py) in its three places, and the one URL/version file.

pip is never really run here: a fake `run` records the command. What is checked: which of the three
cases is taken, what pip would be asked to install, that torch/numpy/ipywidgets are pinned to what is
installed, the errors, and that every copy of the URL and version agrees with sikd_utils/_project.py.
"""

from __future__ import annotations

import importlib.metadata
import runpy
import shutil
import subprocess
import sys
import types
from pathlib import Path

import pytest

from sikd_utils import _project, install

ROOT = Path(__file__).resolve().parents[1]
SYNC = ROOT / "scripts" / "sync_notebooks.py"
MISSING = "sikd_test_not_installed_pkg"


class FakePip:
    """Stands in for subprocess.run: records the pip command and the constraints it was given, and
    answers with ``returncode`` and ``output`` (what pip printed, stdout and stderr together)."""

    def __init__(self, returncode=0, output=""):
        self.returncode, self.output = returncode, output
        self.commands, self.constraints = [], []

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        self.constraints.append(Path(command[command.index("-c") + 1]).read_text())
        return subprocess.CompletedProcess(command, self.returncode, stdout=self.output)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """No test reaches GitHub: a release's pyproject.toml cannot be fetched (its floors are then left to pip)."""
    import urllib.request

    def offline(url, timeout=None):
        raise OSError(f"no network in tests ({url})")

    monkeypatch.setattr(urllib.request, "urlopen", offline)


def _fake_checkout(tmp_path: Path) -> Path:
    repo = tmp_path / "clone"
    (repo / "notebooks").mkdir(parents=True)
    (repo / "pyproject.toml").write_text('[project]\nname = "sikd-utils"\ndynamic = ["version"]\n')
    return repo


@pytest.fixture
def clean_path(monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))


def test_installed_package_means_nothing_to_do(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "sikd_fake_installed").mkdir(parents=True)
    (site / "sikd_fake_installed" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(site))
    pip = FakePip()
    # even inside a checkout: an importable package is left alone
    cwd = _fake_checkout(tmp_path) / "notebooks"
    assert install.ensure("o/r", "1.0", cwd=cwd, package="sikd_fake_installed", run=pip,
                          version_of=lambda name: "1.0") == "present"
    assert pip.commands == []
    # another installed version is used as it is, with a warning that names both
    with pytest.warns(UserWarning, match=r"sikd-utils 0.9 is installed, the notebook was written for 1.0"):
        assert install.ensure("o/r", "1.0", cwd=cwd, package="sikd_fake_installed", run=pip,
                              version_of=lambda name: "0.9") == "present"
    assert pip.commands == []


def test_clone_installs_the_checkout_editable_and_pins_kept_libraries(tmp_path, clean_path):
    repo = _fake_checkout(tmp_path)
    pip = FakePip()
    action = install.ensure("o/r", "1.0", cwd=repo / "notebooks", package=MISSING, run=pip, modules={})
    assert action == "checkout"
    (command,) = pip.commands
    assert command[:4] == [sys.executable, "-m", "pip", "install"]
    assert command[-2:] == ["-e", str(repo.resolve())]
    pins = pip.constraints[0].split()
    for name in install.KEEP:
        try:
            assert f"{name}=={importlib.metadata.version(name)}" in pins
        except importlib.metadata.PackageNotFoundError:
            assert not any(p.startswith(name + "==") for p in pins)
    assert "torch==" + importlib.metadata.version("torch") in pins  # torch is always here
    assert str(repo.resolve()) in sys.path  # importable without a restart


def test_elsewhere_installs_the_tagged_release(tmp_path):
    pip = FakePip()
    action = install.ensure("owner/name", "9.9.9", cwd=tmp_path, package=MISSING, run=pip, modules={})
    assert action == "release"
    assert pip.commands[0][-1] == "sikd-utils @ git+https://github.com/owner/name@v9.9.9"
    assert "torch==" in pip.constraints[0]


def test_pip_failure_is_a_clear_error(tmp_path):
    with pytest.raises(install.InstallError, match=r"https://github.com/owner/name \(tag v2.0\).*exit status 1"):
        install.ensure("owner/name", "2.0", cwd=tmp_path, package=MISSING, run=FakePip(returncode=1), modules={})


# --------------------------------------------------------------------------- floors and pip's reason
COLAB_OLD_TORCH = {"torch": "2.10.0+cu126", "numpy": "2.0.2", "ipywidgets": "7.7.1"}.__getitem__


def test_floors_are_read_from_the_package_declaration():
    import tomllib

    declared = install.requirements_of(ROOT)
    assert declared == tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = install.floors(declared)
    assert set(floors) == set(install.KEEP) and floors["torch"] == "2.11"


def test_floors_of_a_wheel_come_from_its_metadata(tmp_path):
    import zipfile

    wheel = tmp_path / "sikd_utils-9.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("sikd_utils-9.0.dist-info/METADATA", "Name: sikd-utils\nRequires-Dist: torch>=2.13\n"
                   "Requires-Dist: numpy>=1.24\nRequires-Dist: pytest>=7.0; extra == \"test\"\n")
    assert install.requirements_of(wheel) == ["torch>=2.13", "numpy>=1.24"]
    assert install.floors(install.requirements_of(wheel)) == {"torch": "2.13", "numpy": "1.24"}


def test_below_floor_compares_release_numbers():
    floors = {"torch": "2.11", "numpy": "1.24", "ipywidgets": "7.7"}
    assert install.below_floor({"torch": "2.10.0+cu126", "numpy": "2.0.2", "ipywidgets": "7.7.1"}, floors) == {
        "torch": ("2.10.0+cu126", "2.11")}
    assert install.below_floor({"torch": "2.11.0+cu130", "numpy": "1.24", "ipywidgets": "7.7"}, floors) == {}
    assert install.below_floor({"ipywidgets": "7.6.5", "scipy": "0.1"}, floors) == {"ipywidgets": ("7.6.5", "7.7")}


def test_a_kept_library_below_its_floor_is_named_before_pip_runs(tmp_path):
    pip = FakePip()
    with pytest.raises(install.InstallError) as info:
        install.ensure("owner/name", "2.0", cwd=tmp_path, package=MISSING, run=pip, modules={},
                       version_of=COLAB_OLD_TORCH, requirements=["torch>=2.11", "numpy>=1.24", "ipywidgets>=7.7"])
    message = str(info.value)
    assert "torch 2.10.0+cu126 is installed and kept, the book needs torch>=2.11" in message
    assert "numpy" not in message.split("The install never")[0]  # only the library that is too old
    assert "pip install 'torch>=2.11'" in message and "restart" in message
    assert pip.commands == []  # pip would only have said ResolutionImpossible


RESOLVER_OUTPUT = """Collecting sikd-utils@ git+https://github.com/owner/name@v2.0
  Cloning https://github.com/owner/name (to revision v2.0)
Collecting monai>=1.5
INFO: pip is looking at multiple versions of sikd-utils to determine which version is compatible.
ERROR: Cannot install sikd-utils==2.0 because these package versions have conflicting dependencies.

The conflict is caused by:
    sikd-utils 2.0 depends on torch>=2.11
    The user requested (constraint) torch==2.10.0

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip to attempt to solve the dependency conflict

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/"""


def test_pip_failure_shows_pips_own_reason(tmp_path):
    pip = FakePip(returncode=1, output=RESOLVER_OUTPUT)
    with pytest.raises(install.InstallError) as info:
        install.ensure("owner/name", "2.0", cwd=tmp_path, package=MISSING, run=pip, modules={})
    message = str(info.value)
    assert "-q" not in pip.commands[0]  # pip's output is captured whole, not silenced
    assert "The conflict is caused by:" in message and "sikd-utils 2.0 depends on torch>=2.11" in message
    assert "constraint) torch==2.10.0" in message and "ResolutionImpossible" in message
    assert "Cloning" not in message  # the reason, not the whole log
    assert install.pip_reason("a\nb\nc", lines=2) == "b\nc"  # no resolver lines: the tail
    assert install.pip_reason(None) == "(pip printed nothing)"


def test_a_chosen_release_is_installed_with_its_own_floors(tmp_path, monkeypatch):
    import zipfile

    wheel = tmp_path / "sikd_utils-2.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("sikd_utils-2.0.dist-info/METADATA", "Requires-Dist: torch>=2.11\n")
    monkeypatch.setenv("SIKD_INSTALL_FROM", str(wheel))
    pip = FakePip()
    assert install.ensure("owner/name", "2.0", cwd=tmp_path, package=MISSING, run=pip, modules={}) == "release"
    assert pip.commands[0][-1] == str(wheel)
    with pytest.raises(install.InstallError, match=r"torch 2.10.0\+cu126 is installed and kept, the book needs torch>=2.11"):
        install.ensure("owner/name", "2.0", cwd=tmp_path, package=MISSING, run=pip, modules={},
                       version_of=COLAB_OLD_TORCH)


def test_restart_is_asked_only_when_an_imported_library_changed(tmp_path):
    numpy_version = importlib.metadata.version("numpy")
    same = {"numpy": types.SimpleNamespace(__version__=numpy_version)}
    assert install.ensure("o/r", "1", cwd=tmp_path, package=MISSING, run=FakePip(), modules=same) == "release"
    old = {"numpy": types.SimpleNamespace(__version__="1.0.0")}
    with pytest.raises(install.RestartNeeded, match=rf"numpy 1.0.0 -> {numpy_version}.*restart"):
        install.ensure("o/r", "1", cwd=tmp_path, package=MISSING, run=FakePip(), modules=old)


def test_this_environment_has_nothing_stale():
    # every library imported here matches what is installed (torch's "+cpu" tag included)
    import numpy, torch  # noqa: E401,F401

    assert install.changed_since_import() == {}


def test_find_checkout_needs_this_project(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other-project"\n')
    assert install.find_checkout(tmp_path) is None
    assert install.find_checkout(ROOT / "notebooks") == ROOT


# --------------------------------------------------------------------------- the cell itself
def _cell() -> str:
    sync = runpy.run_path(str(SYNC))
    return sync["install_cell"](sync["project"](ROOT))


def _exec_cell(monkeypatch, cwd: Path, pip: FakePip, urlopen=None):
    import importlib.util
    import urllib.request

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sikd_utils" else real_find_spec(name, *a))
    monkeypatch.setattr(subprocess, "run", pip)  # the installer's default `run`
    if urlopen is not None:
        monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    monkeypatch.chdir(cwd)
    exec(compile(_cell(), "install-cell", "exec"), {})


def test_cell_in_a_clone_runs_the_checkouts_installer(tmp_path, monkeypatch, clean_path):
    repo = _fake_checkout(tmp_path)
    (repo / "sikd_utils").mkdir()
    shutil.copy(ROOT / "sikd_utils" / "install.py", repo / "sikd_utils" / "install.py")
    pip = FakePip()
    _exec_cell(monkeypatch, repo / "notebooks", pip, urlopen=lambda *a, **k: pytest.fail("no download in a clone"))
    assert pip.commands[0][-2:] == ["-e", str(repo.resolve())]


def test_cell_on_colab_fetches_the_installer_of_the_pinned_tag(tmp_path, monkeypatch, clean_path):
    fetched = []
    raw = f"https://raw.githubusercontent.com/{_project.REPOSITORY}/{_project.TAG}"
    served = {f"{raw}/sikd_utils/install.py": ROOT / "sikd_utils" / "install.py",  # the tag's installer
              f"{raw}/pyproject.toml": ROOT / "pyproject.toml"}  # and its floors

    def urlopen(url, timeout=None):
        fetched.append(url)
        return types.SimpleNamespace(read=lambda: served[url].read_bytes())

    pip = FakePip()
    _exec_cell(monkeypatch, tmp_path, pip, urlopen)
    assert fetched == list(served)
    assert pip.commands[0][-1] == f"sikd-utils @ git+{_project.URL}@{_project.TAG}"


def test_cell_names_the_address_when_the_installer_cannot_be_fetched(tmp_path, monkeypatch):
    def urlopen(url, timeout=None):
        raise OSError("HTTP Error 404: Not Found")

    with pytest.raises(RuntimeError, match=rf"raw.githubusercontent.com/{_project.REPOSITORY}/.*404.*published"):
        _exec_cell(monkeypatch, tmp_path, FakePip(), urlopen)


# --------------------------------------------------------------------------- one URL, one version
def test_notebooks_and_config_agree_with_the_project_file():
    result = subprocess.run([sys.executable, str(SYNC), "--check"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_sync_check_fails_on_a_disagreeing_copy_and_the_rewrite_fixes_it(tmp_path):
    for part in ("notebooks", "sikd_utils"):
        (tmp_path / part).mkdir()
    shutil.copy(ROOT / "sikd_utils" / "_project.py", tmp_path / "sikd_utils")
    shutil.copy(ROOT / "_config.yml", tmp_path)
    for nb in ("00_welcome.ipynb", "03_teacher.ipynb"):
        shutil.copy(ROOT / "notebooks" / nb, tmp_path / "notebooks")
    page = tmp_path / "notebooks" / "03_teacher.ipynb"
    page.write_text(page.read_text().replace(f"blob/{_project.TAG}/", "blob/main/"))
    config = tmp_path / "_config.yml"
    config.write_text(config.read_text().replace(_project.URL, "https://github.com/someone/else"))
    check = [sys.executable, str(SYNC), "--check", "--root", str(tmp_path)]
    result = subprocess.run(check, capture_output=True, text=True)
    assert result.returncode == 1
    assert "notebooks/03_teacher.ipynb" in result.stdout and "_config.yml" in result.stdout
    assert "00_welcome" not in result.stdout
    subprocess.run([sys.executable, str(SYNC), "--root", str(tmp_path)], check=True, capture_output=True)
    assert subprocess.run(check, capture_output=True, text=True).returncode == 0
    assert f"blob/{_project.TAG}/notebooks/03_teacher.ipynb" in page.read_text()


def test_version_lives_in_the_project_file():
    import tomllib

    import sikd_utils

    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and "version" in pyproject["project"]["dynamic"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sikd_utils._project.VERSION"}
    assert sikd_utils.__version__ == _project.VERSION
    assert _project.URL == f"https://github.com/{_project.REPOSITORY}" and _project.TAG == f"v{_project.VERSION}"


def test_floors_colab_can_meet():
    text = (ROOT / "requirements.txt").read_text() + (ROOT / "pyproject.toml").read_text()
    assert "ipywidgets>=7.7" in text and "ipywidgets>=8" not in text
