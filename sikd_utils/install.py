"""The notebooks' install cell: put ``sikd_utils`` where it is missing, and change nothing else.

Three places a notebook runs, three outcomes of :func:`ensure`:

* ``"present"``  — the package is importable (a ``make`` environment, a second run on Colab): nothing
  is installed (a warning says so when its version is not the notebook's);
* ``"checkout"`` — the notebook sits in a clone of the repository: ``pip install -e`` of that clone;
* ``"release"``  — anywhere else (Colab): the tagged release ``v<version>`` from the repository.

pip runs with the torch, numpy and ipywidgets already present pinned as constraints, so it never
upgrades them (Colab's builds match its CUDA and its front end). Before pip runs, each kept version is
compared with the package's floor for it (its ``pyproject.toml``, or the wheel's metadata): one below
its floor stops the install with the library, the kept version and the floor named, since pip's own
answer would be a bare ``ResolutionImpossible``. If pip fails anyway, the tail of its output (the
resolver's "conflict is caused by" lines) is printed, not swallowed. Afterwards, a library that was
already imported but now has another version on disk raises :class:`RestartNeeded` — the only case
where a restart helps.

``SIKD_INSTALL_FROM`` (environment) names a pip target -- a wheel, a folder, a URL -- installed instead
of the tagged release: a release can be tried the way Colab will install it before it is published.

This file uses the standard library only: a notebook can run it before the package is installed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import urllib.request
import warnings
import zipfile
from pathlib import Path

__all__ = ["KEEP", "ensure", "find_checkout", "pins", "changed_since_import", "RestartNeeded",
           "InstallError", "floors", "requirements_of", "below_floor", "pip_reason"]

#: distributions pip must never upgrade or replace
KEEP = ("torch", "numpy", "ipywidgets")
# distribution -> module name, for the libraries the book imports whose versions can change on install
_MODULES = {"torch": "torch", "numpy": "numpy", "ipywidgets": "ipywidgets", "scipy": "scipy",
            "pandas": "pandas", "matplotlib": "matplotlib", "pillow": "PIL", "tqdm": "tqdm",
            "nibabel": "nibabel", "monai": "monai"}


class RestartNeeded(RuntimeError):
    """Raised when an imported library changed version on disk: restart the kernel and rerun."""


class InstallError(RuntimeError):
    """Raised when pip cannot install the package without touching the kept libraries."""


def find_checkout(start: str | os.PathLike, distribution: str = "sikd-utils") -> Path | None:
    """The clone of the repository that ``start`` lies in (``start`` itself or a parent), else None.

    A clone is recognised by a ``pyproject.toml`` that names ``distribution``.
    """
    start = Path(start).resolve()
    pattern = re.compile(r'^name\s*=\s*["\']' + re.escape(distribution) + r'["\']', re.M)
    for folder in (start, *start.parents):
        project = folder / "pyproject.toml"
        if project.is_file() and pattern.search(project.read_text(encoding="utf-8", errors="replace")):
            return folder
    return None


def pins(keep=KEEP, version_of=importlib.metadata.version) -> list[str]:
    """``name==version`` for each kept distribution that is installed (pip constraints)."""
    lines = []
    for name in keep:
        try:
            lines.append(f"{name}=={version_of(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass  # absent: pip may install it
    return lines


def requirements_of(target: str | os.PathLike, repository: str | None = None, version: str | None = None) -> list[str]:
    """The package's requirement strings as ``target`` declares them: a clone's ``pyproject.toml``, a wheel's
    ``Requires-Dist`` metadata, or (a release) the ``pyproject.toml`` of its tag, fetched. Empty when they
    cannot be read: the floors are then left to pip, whose reason is shown on failure."""
    path = Path(target)
    try:
        if path.suffix == ".whl" and path.is_file():
            with zipfile.ZipFile(path) as wheel:
                name = next(n for n in wheel.namelist() if n.endswith(".dist-info/METADATA"))
                metadata = wheel.read(name).decode("utf-8", "replace")
            return [line.split(":", 1)[1].strip() for line in metadata.splitlines()
                    if line.startswith("Requires-Dist:") and "extra ==" not in line]
        if (path / "pyproject.toml").is_file():
            text = (path / "pyproject.toml").read_text(encoding="utf-8")
        elif repository and version:
            url = f"https://raw.githubusercontent.com/{repository}/v{version}/pyproject.toml"
            text = urllib.request.urlopen(url, timeout=30).read().decode("utf-8")
        else:
            return []
    except (OSError, StopIteration, zipfile.BadZipFile, ValueError):
        return []
    block = re.search(r"^dependencies\s*=\s*\[(.*?)\]", text, re.S | re.M)  # [project] dependencies
    return re.findall(r"[\"']([^\"']+)[\"']", block.group(1)) if block else []


def floors(requirements, keep=KEEP) -> dict[str, str]:
    """``name -> lowest version`` of the ``keep`` distributions among ``requirements`` (``torch>=2.11``)."""
    found = {}
    for line in requirements:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[[^]]*\])?\s*([^;]*)", line)
        if not match or match.group(1).lower() not in keep:
            continue
        lowest = re.search(r">=\s*([0-9][^,\s]*)", match.group(2))
        if lowest:
            found[match.group(1).lower()] = lowest.group(1)
    return found


def _release(version: str) -> tuple[int, ...]:
    """The numeric release part of a version (``2.5.1+cu121`` -> (2, 5, 1)), for comparing with a floor."""
    match = re.match(r"\d+(?:\.\d+)*", str(version).strip())
    return tuple(int(part) for part in match.group(0).split(".")) if match else ()


def below_floor(kept: dict[str, str], floor: dict[str, str]) -> dict[str, tuple[str, str]]:
    """``name -> (kept version, floor)`` for each kept library older than the package's floor for it."""
    old = {}
    for name, have in kept.items():
        need = floor.get(name)
        if need is None:
            continue
        a, b = _release(have), _release(need)
        width = max(len(a), len(b))
        if a + (0,) * (width - len(a)) < b + (0,) * (width - len(b)):
            old[name] = (have, need)
    return old


def pip_reason(output: str | None, lines: int = 25) -> str:
    """The part of pip's output that says why it failed: from the resolver's "conflict is caused by" (or
    the first ``ERROR:`` line) to the end, else the last ``lines`` lines."""
    text = (output or "").rstrip()
    if not text:
        return "(pip printed nothing)"
    rows = text.splitlines()
    for marker in ("conflict is caused by", "ERROR:"):
        start = next((i for i, row in enumerate(rows) if marker in row), None)
        if start is not None:
            return "\n".join(rows[max(start - 1, 0):][-60:])
    return "\n".join(rows[-lines:])


def changed_since_import(modules=None, version_of=importlib.metadata.version) -> dict[str, tuple[str, str]]:
    """``distribution -> (loaded, installed)`` for imported libraries whose installed version differs."""
    modules = sys.modules if modules is None else modules
    changed = {}
    for dist, module_name in _MODULES.items():
        module = modules.get(module_name)
        loaded = getattr(module, "__version__", None) if module is not None else None
        if loaded is None:
            continue
        try:
            installed = version_of(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
        # torch reports "2.5.1+cu121" in both places; compare the public part so a local tag never differs
        if str(loaded).split("+")[0] != str(installed).split("+")[0]:
            changed[dist] = (str(loaded), str(installed))
    return changed


def ensure(repository: str, version: str, *, cwd: str | os.PathLike | None = None,
           package: str = "sikd_utils", distribution: str = "sikd-utils", keep=KEEP,
           run=subprocess.run, modules=None, version_of=importlib.metadata.version,
           requirements: list[str] | None = None) -> str:
    """Make ``package`` importable; returns ``"present"``, ``"checkout"`` or ``"release"`` (see above).

    ``repository`` is ``"owner/name"`` on GitHub and ``version`` the release (tag ``v<version>``);
    ``cwd`` is where the notebook runs (default: the current folder). ``run`` runs pip (tests pass
    a fake); ``requirements`` are the package's own (default: read from what is installed, see
    :func:`requirements_of`). Raises :class:`InstallError` when pip fails and :class:`RestartNeeded` when an imported
    library changed version.
    """
    if importlib.util.find_spec(package) is not None:
        try:
            installed = version_of(distribution)
        except importlib.metadata.PackageNotFoundError:
            installed = None  # importable from a folder on sys.path, not installed: nothing to compare
        if installed is not None and installed != version:
            warnings.warn(f"{distribution} {installed} is installed, the notebook was written for {version}; "
                          f"it is used as it is (pip install the version you want, then restart, to change it)",
                          stacklevel=2)
        return "present"
    checkout = find_checkout(cwd if cwd is not None else os.getcwd(), distribution)
    chosen = os.environ.get("SIKD_INSTALL_FROM")
    if checkout is not None:
        action, target, source = "checkout", ["-e", str(checkout)], str(checkout)
        declared = requirements_of(checkout) if requirements is None else requirements
    elif chosen:
        action, target, source = "release", [chosen], chosen
        declared = requirements_of(chosen) if requirements is None else requirements
    else:
        url = f"git+https://github.com/{repository}@v{version}"
        action, target = "release", [f"{distribution} @ {url}"]
        source = f"https://github.com/{repository} (tag v{version})"
        declared = requirements_of(url, repository, version) if requirements is None else requirements
    kept = pins(keep, version_of)
    too_old = below_floor(dict(line.split("==", 1) for line in kept), floors(declared, keep))
    if too_old:
        said = "; ".join(f"{name} {have} is installed and kept, the book needs {name}>={need}"
                         for name, (have, need) in too_old.items())
        upgrade = " ".join(f"'{name}>={need}'" for name, (_, need) in too_old.items())
        raise InstallError(
            f"cannot install {distribution} from {source} here: {said}. The install never changes "
            f"{', '.join(keep)} (Colab's builds match its GPU and its front end), so pip could only answer "
            f"ResolutionImpossible. Remedy: a runtime with newer versions, or `pip install {upgrade}`, then "
            "restart the kernel and run this cell again.")
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "keep.txt"
        constraints.write_text("".join(line + "\n" for line in kept))
        # not -q: on a failure pip's reason (the resolver's "conflict is caused by" lines) must be shown
        command = [sys.executable, "-m", "pip", "install", "-c", str(constraints), *target]
        print(f"installing {distribution} ({'from ' + source if action == 'checkout' or chosen else 'v' + version}), "
              f"keeping {', '.join(kept) or 'nothing'}", flush=True)
        # no terminal prompt for credentials: a repository that is not (yet) public fails at once
        done = run(command, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"},
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        reason = pip_reason(getattr(done, "stdout", None))
        raise InstallError(
            f"pip could not install {distribution} from {source} (exit status {done.returncode}). pip's reason:\n"
            f"{reason}\nIt keeps {', '.join(kept) or 'nothing'} as they are: a conflict with one of them means "
            "that version is older than the book supports. If the repository or tag does not exist, clone the "
            "book and open the notebooks from the clone."
        )
    if checkout is not None and str(checkout) not in sys.path:
        sys.path.insert(0, str(checkout))  # an editable install is only seen by new processes
    importlib.invalidate_caches()
    changed = changed_since_import(modules)
    if changed:
        detail = ", ".join(f"{d} {old} -> {new}" for d, (old, new) in changed.items())
        raise RestartNeeded(f"installing {distribution} changed libraries this kernel had already imported "
                            f"({detail}): restart the kernel (Colab: Runtime > Restart session), then run "
                            "the notebook again from the top")
    return action
