"""Schemathesis against the server's own OpenAPI schema over HTTP: no 5xx, no schema violations.

Bounded: a few examples per operation, small server limits so every call stays cheap.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.specs.openapi.checks import positive_data_acceptance

from embedbox import Embedder
from embedbox.server import ServerSettings, create_app
from embedbox.server.runner import ServerThread

# Schema-valid requests may still be refused with a documented 400: limits depend on the server's
# configuration and model (inputs per request, characters, `dimensions` <= the model's width,
# filter syntax, duplicate ids). Every other check runs, including response-schema conformance.
SKIP = [positive_data_acceptance]


@pytest.fixture(scope="module")
def fuzz_url(embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    data: Path = tmp_path_factory.mktemp("fuzz")
    config = ServerSettings(
        data_dir=data,
        max_inputs=8,
        max_input_chars=300,
        max_k=50,
        max_body_bytes=64_000,
        metrics_public=True,
    )
    with ServerThread(create_app(config, preloaded={"all-MiniLM-L6-v2": embedder})) as url:
        yield url


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_openapi_fuzz(fuzz_url: str, mode: str) -> None:
    """Every operation, valid and invalid inputs: responses conform, never a 5xx."""
    schema = schemathesis.openapi.from_url(fuzz_url + "/openapi.json")
    generation = schemathesis.GenerationMode(mode)
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy(generation))
        @settings(
            max_examples=8,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=fuzz_url, timeout=60, excluded_checks=SKIP)

        try:
            run()
        except Unsatisfiable:  # negative mode: nothing to break in an operation without inputs
            continue
        except Exception as exc:
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 15
    assert not failures, "\n\n".join(failures)
