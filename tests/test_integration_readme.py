"""The README's "Frameworks" snippets run as written (in a temp folder, without network; the
OpenAIEmbeddings one against a real server, on a free port instead of 8000)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from pytest_socket import disable_socket, enable_socket

from embedbox import Embedder
from embedbox.server import ServerSettings, create_app
from embedbox.server.runner import ServerThread

README = Path(__file__).resolve().parents[1] / "README.md"


def snippets() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Frameworks\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


EXPECTED = {  # a line each snippet prints, in README order
    0: "Document(id='cat'",
    1: "384",
    2: "The cat sleeps on the mat.",
    3: "[['cat']]",
    4: "(2, 384) (384,)",
}


def test_readme_has_one_snippet_per_integration() -> None:
    blocks = snippets()
    assert len(blocks) == len(EXPECTED)
    for block, module in zip(
        blocks, ["langchain", "langchain_openai", "llamaindex", "chroma", "st_compat"], strict=True
    ):
        assert module in block


@pytest.fixture(scope="module")
def server(embedder: Embedder) -> Iterator[str]:
    app = create_app(ServerSettings(), preloaded={"all-MiniLM-L6-v2": embedder})
    with ServerThread(app) as url:
        yield url


@pytest.mark.model
@pytest.mark.parametrize("index", list(EXPECTED))
def test_readme_snippet_runs(
    index: int,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    request: pytest.FixtureRequest,
) -> None:
    code = snippets()[index]
    monkeypatch.chdir(tmp_path)
    if "http://127.0.0.1:8000" in code:
        code = code.replace("http://127.0.0.1:8000", request.getfixturevalue("server"))
    else:
        disable_socket(allow_unix_socket=True)
    try:
        exec(compile(code, f"README snippet {index}", "exec"), {"__name__": "__readme__"})
    finally:
        enable_socket()
    assert EXPECTED[index] in capsys.readouterr().out
