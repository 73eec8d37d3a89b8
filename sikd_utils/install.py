"""The notebooks' install cell: put ``sikd_utils`` where it is missing, and change nothing else.

Three places a notebook runs, three outcomes of :func:`ensure`:

* ``"present"``  — the package is importable (a ``make`` environment, a second run on Colab): nothing
  is installed (a warning says so when its version is not the notebook's);
* ``"checkout"`` — the notebook sits in a clone of the repository: ``pip install -e`` of that clone;
* ``"release"``  — anywhere else (Colab): the tagged release ``v<version>`` from the repository.

pip runs with the torch, numpy and ipywidgets already present pinned as constraints, so it never
upgrades them (Colab's builds match its CUDA and its front end); if the book cannot use them, pip
fails and says why instead. Afterwards, a library that was already imported but now has another
version on disk raises :class:`RestartNeeded` — the only case where a restart helps.

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
import warnings
from pathlib import Path

__all__ = ["KEEP", "ensure", "find_checkout", "pins", "changed_since_import", "RestartNeeded",
           "InstallError"]

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
           run=subprocess.run, modules=None, version_of=importlib.metadata.version) -> str:
    """Make ``package`` importable; returns ``"present"``, ``"checkout"`` or ``"release"`` (see above).

    ``repository`` is ``"owner/name"`` on GitHub and ``version`` the release (tag ``v<version>``);
    ``cwd`` is where the notebook runs (default: the current folder). ``run`` runs pip (tests pass
    a fake). Raises :class:`InstallError` when pip fails and :class:`RestartNeeded` when an imported
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
    if checkout is not None:
        action, target = "checkout", ["-e", str(checkout)]
    else:
        url = f"git+https://github.com/{repository}@v{version}"
        action, target = "release", [f"{distribution} @ {url}"]
    with tempfile.TemporaryDirectory() as tmp:
        constraints = Path(tmp) / "keep.txt"
        kept = pins(keep)
        constraints.write_text("".join(line + "\n" for line in kept))
        command = [sys.executable, "-m", "pip", "install", "-q", "-c", str(constraints), *target]
        print(f"installing {distribution} ({'from ' + str(checkout) if checkout else 'v' + version}), "
              f"keeping {', '.join(kept) or 'nothing'}", flush=True)
        # no terminal prompt for credentials: a repository that is not (yet) public fails at once
        done = run(command, env={**os.environ, "GIT_TERMINAL_PROMPT": "0"})
    if done.returncode != 0:
        source = str(checkout) if checkout else f"https://github.com/{repository} (tag v{version})"
        raise InstallError(
            f"pip could not install {distribution} from {source} (exit status {done.returncode}; its "
            f"message is above). It keeps {', '.join(kept) or 'nothing'} as they are: if pip reports a "
            "conflict with one of them, that version is older than the book supports. If the repository "
            "or tag does not exist, clone the book and open the notebooks from the clone."
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
