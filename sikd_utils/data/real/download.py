"""Getting the data: download + verify + unpack where a public archive exists, instructions otherwise.

Only Kvasir-SEG is fetched automatically. Its publisher gives no checksum, so ``fetch`` checks what a
checksum would protect -- that the archive is a readable zip holding exactly the 1000 images and 1000
masks with matching names -- prints the archive's SHA-256 and MD5 so a reader can record them, and
enforces a checksum only when one is passed in (or added to ``ARCHIVES``). Unpacking goes to a
temporary folder inside ``root`` and is moved into place with one rename, so an interrupted or
rejected download never leaves a half-filled dataset folder behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .layouts import LAYOUTS, describe

__all__ = ["Archive", "ARCHIVES", "fetch", "DOWNLOAD_DEADLINE_S"]

#: Overall time a download may take (the per-read socket timeout alone lets a trickling server hang forever).
DOWNLOAD_DEADLINE_S = 3600.0


@dataclass(frozen=True)
class Archive:
    """A public archive: where it is, what it must contain, and what checksum (if any) is known."""

    url: str
    filename: str
    top: str  # the folder the dataset lives in once unpacked
    counts: dict = field(default_factory=dict)  # subfolder -> expected number of files
    suffixes: tuple = (".jpg",)
    paired: tuple = ()  # subfolders whose file names must match one to one
    sha256: str | None = None  # published by the data's owner; enforced
    md5: str | None = None
    third_party_md5: str | None = None  # seen elsewhere; reported, never enforced
    checksum_note: str = ""
    max_bytes: int = 1 << 30  # size cap: a server sending more is not serving this archive


ARCHIVES: dict[str, Archive] = {
    "kvasir": Archive(
        url="https://datasets.simula.no/downloads/kvasir-seg.zip",
        filename="kvasir-seg.zip",
        top="Kvasir-SEG",
        counts={"images": 1000, "masks": 1000},
        suffixes=(".jpg",),
        paired=("images", "masks"),
        third_party_md5="6323d9094df93b35d43069a566ee1ca3",
        max_bytes=256 << 20,  # the archive is about 46 MB
        checksum_note=(
            "Simula publishes no checksum for kvasir-seg.zip, so the archive's content was verified "
            "instead (1000 images + 1000 masks, names matching). The MD5 6323d9094df93b35d43069a566ee1ca3 "
            "appears in third-party code for the older URL https://datasets.simula.no/kvasir-seg/Kvasir-SEG.zip; "
            "it is shown for comparison only and not enforced."
        ),
    ),
}


class TooLargeError(ValueError):
    """The server sends more bytes than the archive's size cap."""


def _download(url: str, dest: Path, desc: str, max_bytes: int = 1 << 30,
              deadline_s: float = DOWNLOAD_DEADLINE_S) -> None:
    """Stream ``url`` to ``dest`` with a progress bar, within a size cap and an overall deadline.

    Raises ``TimeoutError`` (an OSError) past ``deadline_s`` and :class:`TooLargeError` (a ValueError)
    as soon as the announced or received size exceeds ``max_bytes``. (Tests replace this function.)
    """
    from tqdm.auto import tqdm

    start = time.monotonic()
    request = urllib.request.Request(url, headers={"User-Agent": "sikd-utils (the SIKD Book)"})
    with urllib.request.urlopen(request, timeout=min(60.0, deadline_s)) as response, open(dest, "wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        if total is not None and total > max_bytes:
            raise TooLargeError(f"{url} announces {total} bytes, more than the {max_bytes}-byte cap for this "
                                "archive; refusing to download it")
        received = 0
        with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc) as bar:
            while True:
                if time.monotonic() - start > deadline_s:
                    raise TimeoutError(f"download of {url} did not finish within {deadline_s:.0f} s "
                                       f"({received} bytes received)")
                chunk = response.read(1 << 20)
                if not chunk:
                    break
                received += len(chunk)
                if received > max_bytes:
                    raise TooLargeError(f"{url} sent more than the {max_bytes}-byte cap for this archive; "
                                        "download stopped")
                out.write(chunk)
                bar.update(len(chunk))


def _digests(path: Path) -> tuple[str, str]:
    sha, md5 = hashlib.sha256(), hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def _members(zf: zipfile.ZipFile, archive: Archive, name: str) -> tuple[str, list[PurePosixPath]]:
    """Check the archive's content; return the prefix above the dataset folder and the files to unpack."""
    files = []
    for info in zf.infolist():
        path = PurePosixPath(info.filename)
        if info.is_dir() or "__MACOSX" in path.parts or path.name.startswith("._"):
            continue
        if path.is_absolute() or ".." in path.parts or ":" in info.filename:
            raise ValueError(f"{name}: refusing unsafe member path {info.filename!r}")
        files.append(path)
    first = next(iter(archive.counts))
    prefixes = {p.parts[: p.parts.index(first)] for p in files if first in p.parts[:-1]}
    if len(prefixes) != 1:
        raise ValueError(f"{name}: expected one '{first}/' folder in the archive, found {len(prefixes)}; "
                         f"this is not the {archive.filename} the loader knows")
    prefix = prefixes.pop()
    inside = [p for p in files if p.parts[: len(prefix)] == prefix]
    stems = {}
    problems = []
    for sub, expected in archive.counts.items():
        chosen = [p for p in inside if len(p.parts) == len(prefix) + 2 and p.parts[len(prefix)] == sub
                  and p.suffix.lower() in archive.suffixes]
        stems[sub] = {p.stem for p in chosen}
        if len(chosen) != expected:
            problems.append(f"'{sub}/' holds {len(chosen)} {'/'.join(archive.suffixes)} files, expected {expected}")
    if archive.paired:
        a, b = archive.paired
        unmatched = sorted(stems[a] ^ stems[b])
        if unmatched:
            problems.append(f"{len(unmatched)} names in '{a}/' and '{b}/' do not match (e.g. {unmatched[0]!r})")
    if problems:
        raise ValueError(f"{name}: archive content is not what {archive.url} should serve: "
                         + "; ".join(problems) + ". Nothing was unpacked.")
    return "/".join(prefix), inside


def _existing(dataset: str, root: Path):
    """How many cases load() already finds under root, or None."""
    from . import _DATASETS

    try:
        return len(_DATASETS[dataset].index(root))
    except (FileNotFoundError, ValueError):
        return None


def fetch(dataset: str, root, *, url: str | None = None, sha256: str | None = None,
          md5: str | None = None, quiet: bool = False, deadline_s: float = DOWNLOAD_DEADLINE_S):
    """Make ``dataset`` available under ``root`` so that ``load(dataset, root)`` finds it.

    Public archives (Kvasir-SEG) are downloaded, verified and unpacked; the unpacked dataset folder
    is returned. For registration-gated sets, prints where to register, what to download and the
    folder tree to build, and returns None. ``sha256``/``md5`` enforce a checksum you trust (a
    mismatch raises ValueError and leaves ``root`` untouched); ``url`` overrides a moved download.
    A download must finish within ``deadline_s`` seconds and stay under the archive's ``max_bytes``.
    """
    from . import _check_dataset

    from ...checks import check_float

    dataset = _check_dataset(dataset)
    deadline_s = check_float("deadline_s", deadline_s, 0.0, strict_minimum=True)
    root = Path(root).expanduser()
    say = (lambda *a: None) if quiet else print
    if dataset not in ARCHIVES:
        present = _existing(dataset, root) if root.is_dir() else None
        status = (f"Already present: load({dataset!r}, {str(root)!r}) finds {present} cases."
                  if present else f"Nothing usable under {str(root)!r} yet ({'it exists' if root.exists() else 'it does not exist'}).")
        say(f"{LAYOUTS[dataset].title} cannot be downloaded automatically "
            f"({LAYOUTS[dataset].access}).\n{describe(dataset)}\n"
            f"Unpack it under {str(root)!r} as shown, then check with "
            f"sikd_utils.data.real.load({dataset!r}, {str(root)!r}).\n{status}")
        return None

    archive = ARCHIVES[dataset]
    target = root / archive.top
    if target.exists():
        present = _existing(dataset, root)
        if present:
            say(f"{target} already holds {present} cases; nothing downloaded.")
            return target
        raise FileExistsError(f"{target} exists but load({dataset!r}) cannot use it; move it away "
                              f"(fetch never overwrites your files) and call fetch again")
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".sikd-fetch-{dataset}-", dir=root))
    try:
        archive_path = work / archive.filename
        source = url or archive.url
        say(f"Downloading {source}")
        try:
            _download(source, archive_path, desc=archive.filename, max_bytes=archive.max_bytes,
                      deadline_s=deadline_s)
        except OSError as err:  # URLError, timeouts, refused connections are all OSErrors
            raise ConnectionError(f"downloading {source} failed ({err}). Without network access, download "
                                  f"{archive.filename} elsewhere and unzip it into {root} so that it holds "
                                  f"{archive.top}/ as shown by describe({dataset!r})") from err
        size = archive_path.stat().st_size
        if size > archive.max_bytes:
            raise TooLargeError(f"{source} served {size} bytes, more than the {archive.max_bytes}-byte cap for "
                                f"{archive.filename}; nothing was unpacked into {root}")
        got_sha, got_md5 = _digests(archive_path)
        for kind, expected, got in (("SHA-256", sha256 or archive.sha256, got_sha),
                                    ("MD5", md5 or archive.md5, got_md5)):
            if expected and expected.lower() != got:
                raise ValueError(f"{archive.filename}: {kind} checksum mismatch: expected {expected.lower()}, "
                                 f"got {got}. The download is corrupt or the file changed upstream; "
                                 f"nothing was unpacked into {root}")
        if not zipfile.is_zipfile(archive_path):
            raise ValueError(f"{source} did not serve a zip archive (got {archive_path.stat().st_size} bytes); "
                             f"nothing was unpacked into {root}")
        staged = work / "unpacked" / archive.top
        with zipfile.ZipFile(archive_path) as zf:
            prefix, members = _members(zf, archive, archive.filename)
            n_prefix = len(PurePosixPath(prefix).parts) if prefix else 0
            for member in members:
                dest = staged.joinpath(*member.parts[n_prefix:])
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(str(member)) as src, open(dest, "wb") as out:
                    shutil.copyfileobj(src, out)
        os.replace(staged, target)  # one rename: the dataset folder appears complete or not at all
    finally:
        shutil.rmtree(work, ignore_errors=True)
    note = archive.checksum_note
    if archive.third_party_md5:
        note += (" This download's MD5 matches it." if got_md5 == archive.third_party_md5
                 else " This download's MD5 differs from it (expected if the file was re-packaged).")
    say(f"Unpacked into {target}\nSHA-256 {got_sha}\nMD5     {got_md5}\n{note}")
    return target
