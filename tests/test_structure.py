"""The package's shape: no import cycles, a frozen public face, a light `import embedbox`."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import embedbox

SRC = Path(embedbox.__file__).parent
# Kept for one release so code written against the old layout still runs (with a warning).
DEPRECATED = {"collection", "ingest", "recommend", "tokens"}
# `embedbox.images` still hands out the image-collection names that moved to the store (with a
# DeprecationWarning): an edge up, removed with the alias in the next release.
DEPRECATED_EDGES = {("embedbox.images", "embedbox.store.images")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """embedbox modules `path` imports, anywhere in the file: module level, inside functions
    and under `TYPE_CHECKING` (a type-only cycle is still a design cycle)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in SRC.rglob("*.py")}
    modules = set(files)
    graph = {name: _imports(path, name, modules) for name, path in files.items()}
    # A package's __init__ re-exporting its own modules is its face, not a dependency; and
    # `embedbox/__init__.py` names every layer lazily for users.
    for name, deps in graph.items():
        if name == "embedbox" or files[name].name == "__init__.py":
            deps = {d for d in deps if not d.startswith(name + ".")}
        graph[name] = {d for d in deps if (name, d) not in DEPRECATED_EDGES}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)) is not None:
            return found
    return None


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert len(graph) > 60  # the walk found the package
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_layers_point_down() -> None:
    """Foundations never import a layer above them; models never import the facades,
    collections, tasks or the faces (CLI, server, jobs)."""
    graph = import_graph()
    foundations = {"errors", "types", "catalog", "inputs", "io", "similarity", "quantize"}
    upper = (
        "embedbox.store",
        "embedbox.tasks",
        "embedbox.cli",
        "embedbox.server",
        "embedbox.scale",
    )
    for name, deps in graph.items():
        short = name.removeprefix("embedbox.")
        if short in foundations:
            assert not {
                d for d in deps if d.startswith(upper) or d.startswith("embedbox.models")
            }, name
        if name.startswith("embedbox.models"):
            bad = {
                d for d in deps if d.startswith(upper) or d in ("embedbox.embed", "embedbox.words")
            }
            assert not bad, f"{name} imports {bad}"
        if name.startswith("embedbox.store"):
            bad = {
                d
                for d in deps
                if d.startswith(("embedbox.tasks", "embedbox.cli", "embedbox.server"))
            }
            assert not bad, f"{name} imports {bad}"


FACE = [
    "Collection",
    "Conflict",
    "DimensionsWarning",
    "EmbedResult",
    "EvalReport",
    "EmbedboxError",
    "EmbedboxWarning",
    "Embedder",
    "EmbedderOptions",
    "Hit",
    "InputError",
    "Item",
    "MissingDependency",
    "ModelNotFound",
    "NotFound",
    "OutOfVocabulary",
    "Overloaded",
    "RequestTimeout",
    "StorageError",
    "TruncationError",
    "TruncationWarning",
    "Unavailable",
    "WordVectors",
    "__version__",
    "add_images",
    "drop_collection",
    "embed_images",
    "embed_tokens",
    "evaluate",
    "evaluate_collection",
    "list_collections",
    "load_words",
    "open_image_collection",
    "similar_images",
    "train",
]


def test_public_names_are_frozen() -> None:
    """Adding or removing a public name is a decision: update this list with it."""
    assert sorted(embedbox.__all__) == sorted(FACE)
    for name in embedbox.__all__:
        assert getattr(embedbox, name) is not None, name
    with pytest.raises(AttributeError):
        embedbox.no_such_name  # noqa: B018
    assert set(embedbox.__all__) <= set(dir(embedbox))


def test_every_error_is_in_the_tree() -> None:
    """Every exception class embedbox defines derives from EmbedboxError, so one except clause
    catches them all."""
    from embedbox import errors

    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, Exception)]
    assert len(classes) >= 12
    for cls in classes:
        if not issubclass(cls, Warning):
            assert issubclass(cls, errors.EmbedboxError), cls
    for path in SRC.rglob("*.py"):
        if path.name == "errors.py" and path.parent == SRC:
            continue  # the tree's own root
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b) for b in node.bases}
                assert not bases & {"Exception", "ValueError", "RuntimeError", "KeyError"}, (
                    f"{path.name}: {node.name} is outside the error tree"
                )


def test_no_asserts_guard_library_code() -> None:
    """`python -O` strips asserts, so they cannot check what users hand in."""
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            assert not isinstance(node, ast.Assert), f"{path.relative_to(SRC)}:{node.lineno}"


def test_missing_dependency_names_the_extra() -> None:
    from embedbox.errors import MissingDependency, require

    with pytest.raises(MissingDependency, match=r"pip install 'embedbox\[tasks\]'"):
        require("sklearn_not_installed_here", "tasks", "clustering")
    assert require("json", "core").dumps([1]) == "[1]"


@pytest.mark.parametrize(
    "code",
    [
        "import embedbox",
        "import embedbox.cli",
        "from embedbox import Collection, InputError",  # collections open without a model
    ],
)
def test_light_imports_do_not_load_torch(code: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}; import sys; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "False", out.stderr


@pytest.mark.parametrize("old", sorted(DEPRECATED))
def test_old_module_paths_warn_and_work(old: str) -> None:
    sys.modules.pop(f"embedbox.{old}", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = __import__(f"embedbox.{old}", fromlist=["x"])
    assert any(issubclass(w.category, DeprecationWarning) for w in caught)
    assert module.__all__ and all(hasattr(module, n) for n in module.__all__)


def test_old_image_collection_names_warn() -> None:
    import embedbox.images
    from embedbox.store import images

    with pytest.warns(DeprecationWarning, match="embedbox.store.images"):
        assert embedbox.images.add_images is images.add_images
