"""Key loading, loopback rules and the `embedbox serve` refusal, without starting a model."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedbox.cli import main
from embedbox.cli.serve_cmd import startup_line
from embedbox.errors import InputError
from embedbox.server.auth import load_keys, match_key
from embedbox.server.settings import ApiKey, ServerSettings, is_loopback


def test_key_file_env_and_flags(tmp_path: Path) -> None:
    f = tmp_path / "keys"
    f.write_text("# comment\nreadwrite-key-1\n\nreadonly-key-22 ro\n")
    keys = load_keys(["flag-key-0001"], f, env="env-key-00001 ro, env-key-00002")
    assert [(k.key, k.read_only) for k in keys] == [
        ("flag-key-0001", False),
        ("env-key-00001", True),
        ("env-key-00002", False),
        ("readwrite-key-1", False),
        ("readonly-key-22", True),
    ]
    assert "readonly" not in repr(keys)  # secrets never printed
    assert match_key(keys, "readonly-key-22") == ApiKey("readonly-key-22", True)
    assert match_key(keys, "readonly-key-2") is None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("k1-long-enough extra words\n", "keys:1"),
        ("short\n", "at least 8"),
        ("# none\n", "no keys"),
    ],
)
def test_bad_key_files(tmp_path: Path, content: str, message: str) -> None:
    f = tmp_path / "keys"
    f.write_text(content)
    with pytest.raises(InputError, match=message):
        load_keys(key_file=f, env="")


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load_keys(key_file=tmp_path / "nope", env="")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("example.com", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_open_bind_needs_keys_or_explicit_flag() -> None:
    with pytest.raises(ValueError, match="without API keys"):
        ServerSettings(host="0.0.0.0").check()
    ServerSettings(host="0.0.0.0", api_keys=(ApiKey("a-long-key-1"),)).check()
    ServerSettings(host="0.0.0.0", insecure_no_auth=True).check()
    with pytest.raises(ValueError, match="max_inputs"):
        ServerSettings(max_inputs=0).check()


def test_cli_refuses_open_bind(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "--host", "0.0.0.0", "--port", "0"])
    assert exit_.value.code != 0
    assert "refusing to listen on 0.0.0.0 without API keys" in capsys.readouterr().err


def test_startup_line() -> None:
    keys = (ApiKey("k" * 10), ApiKey("r" * 10, read_only=True))
    line = startup_line(ServerSettings(port=8123, api_keys=keys))
    assert "http://127.0.0.1:8123" in line
    assert "all-MiniLM-L6-v2" in line
    assert "auth: on (2 key(s), 1 read-only)" in line
    assert "auth: OFF" in startup_line(ServerSettings(batching=False))
    assert "batching: off" in startup_line(ServerSettings(batching=False))
