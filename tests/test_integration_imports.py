"""The integrations are import-light: embedbox never imports a framework, and a missing one is a
`MissingDependency` naming the extra to install."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from embedbox import EmbedboxError
from embedbox.integrations import MissingDependency

PROBE = r"""
import importlib, json, sys
FRAMEWORKS = ("langchain_core", "langchain", "llama_index", "chromadb", "sentence_transformers")
import embedbox, embedbox.integrations, embedbox.integrations.st_compat
loaded = sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in FRAMEWORKS})
errors = {}
for module, blocked in [("langchain", "langchain_core"), ("llamaindex", "llama_index"),
                        ("chroma", "chromadb")]:
    sys.modules[blocked] = None  # as if not installed
    try:
        importlib.import_module("embedbox.integrations." + module)
    except ImportError as exc:
        errors[module] = [type(exc).__name__, str(exc)]
print(json.dumps({"loaded": loaded, "errors": errors}))
"""


@pytest.fixture(scope="module")
def probe() -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=300, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_importing_embedbox_imports_no_framework(probe: dict[str, object]) -> None:
    assert probe["loaded"] == []


@pytest.mark.parametrize(
    ("module", "package", "extra"),
    [
        ("langchain", "langchain-core", "langchain"),
        ("llamaindex", "llama-index-core", "llamaindex"),
        ("chroma", "chromadb", "chroma"),
    ],
)
def test_missing_framework_names_the_extra(
    probe: dict[str, object], module: str, package: str, extra: str
) -> None:
    errors = probe["errors"]
    assert isinstance(errors, dict)
    kind, message = errors[module]
    assert kind == "MissingDependency"
    assert package in message
    assert f"pip install 'embedbox[{extra}]'" in message


def test_missing_dependency_is_an_embedbox_error_and_an_import_error() -> None:
    assert issubclass(MissingDependency, EmbedboxError)
    assert issubclass(MissingDependency, ImportError)
