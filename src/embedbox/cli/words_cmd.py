"""`embedbox words similar|similarity|analogy|odd-one-out|eval|train`: static word vectors."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table
from rich.text import Text

from embedbox.catalog import DEFAULT_TEXT_MODEL, DEFAULT_WORD_MODEL
from embedbox.cli.common import JsonOpt, app, console, err_console, print_json, progress_bar
from embedbox.errors import InputError

if TYPE_CHECKING:
    pass

words_app = typer.Typer(
    help="Word vectors (GloVe by default): similar words, analogies, odd-one-out, eval, train.",
    no_args_is_help=True,
)
app.add_typer(words_app, name="words")

WordModelOpt = typer.Option(
    DEFAULT_WORD_MODEL, "--model", "-m", help="glove-6b-50d, or a word2vec / GloVe / FastText file."
)
PickleOpt = typer.Option(
    False, "--allow-pickle", help="Allow gensim .kv/.model files (pickles: trusted files only)."
)
KOpt = typer.Option(10, "--k", "-k", help="How many answers.")
_cache: dict[tuple[str, bool], Any] = {}


def _load(model: str, allow_pickle: bool = False) -> Any:
    key = (model, allow_pickle)
    if key not in _cache:
        from embedbox.words import load_words

        status = err_console.status(f"loading {model}…") if err_console.is_terminal else None
        if status is not None:
            with status:
                _cache[key] = load_words(model, allow_pickle=allow_pickle)
        else:
            _cache[key] = load_words(model, allow_pickle=allow_pickle)
    return _cache[key]


def _show(title: str, answers: list[Any], as_json: bool) -> None:
    if as_json:
        print_json([{"word": a.word, "score": round(a.score, 6)} for a in answers])
        return
    table = Table(title=Text(title))
    table.add_column("word", overflow="fold")
    table.add_column("score", justify="right", no_wrap=True)
    for a in answers:
        table.add_row(Text(a.word), f"{a.score:.4f}")
    console.print(table)


@words_app.command()
def similar(
    words: list[str] = typer.Argument(..., help="A word or phrase (several words are averaged)."),
    k: int = KOpt,
    model: str = WordModelOpt,
    allow_pickle: bool = PickleOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Nearest words to a word or phrase."""
    phrase = " ".join(words)
    _show(f"words similar to {phrase!r}", _load(model, allow_pickle).similar(phrase, k), as_json)


@words_app.command()
def similarity(
    a: str = typer.Argument(..., help="First word or phrase."),
    b: str = typer.Argument(..., help="Second word or phrase."),
    model: str = WordModelOpt,
    allow_pickle: bool = PickleOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Cosine similarity of two words or phrases."""
    score = _load(model, allow_pickle).similarity(a, b)
    if as_json:
        print_json({"a": a, "b": b, "score": round(score, 6)})
    else:
        console.print(f"{score:.4f}")


@words_app.command()
def analogy(
    a: str = typer.Argument(..., help="a (as in: a is to b as c is to ?)."),
    b: str = typer.Argument(..., help="b"),
    c: str = typer.Argument(..., help="c"),
    k: int = KOpt,
    method: str = typer.Option("3cosadd", "--method", help="3cosadd | 3cosmul."),
    model: str = WordModelOpt,
    allow_pickle: bool = PickleOpt,
    as_json: bool = JsonOpt,
) -> None:
    """ "a is to b as c is to ?": `embedbox words analogy man king woman` -> queen."""
    answers = _load(model, allow_pickle).analogy(a, b, c, k=k, method=method)
    _show(f"{a} is to {b} as {c} is to ?", answers, as_json)


@words_app.command("odd-one-out")
def odd_one_out(
    words: list[str] = typer.Argument(..., help="Three or more words."),
    model: str = WordModelOpt,
    allow_pickle: bool = PickleOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The word that does not fit with the others."""
    odd = _load(model, allow_pickle).odd_one_out(words)
    if as_json:
        print_json({"word": odd.word, "score": round(odd.score, 6)})
    else:
        console.print(f"{odd.word}  (similarity to the rest {odd.score:.3f})")


@words_app.command("eval")
def evaluate(
    model: str = WordModelOpt,
    method: str = typer.Option("3cosadd", "--method", help="3cosadd | 3cosmul."),
    analogies: Path | None = typer.Option(
        None, "--analogies", help="Analogy file (default: gensim's questions-words.txt)."
    ),
    section: list[str] = typer.Option(None, "--section", help="Only these analogy sections."),
    restrict_vocab: int = typer.Option(300_000, "--restrict-vocab", help="Answers among top N."),
    allow_pickle: bool = PickleOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Google analogy accuracy (per section, semantic, syntactic, overall) and WordSim-353 /
    SimLex-999 Spearman."""
    wv = _load(model, allow_pickle)
    with progress_bar("analogies") as update:
        report = wv.evaluate_analogies(
            analogies,
            method=method,  # type: ignore[arg-type]
            restrict_vocab=restrict_vocab,
            sections=section or None,
            progress=update,
        )
    sims = [wv.evaluate_similarity(dataset=d) for d in ("wordsim353", "simlex999")]
    rows = [*report.sections, report.part(True), report.part(False), report.overall]
    if as_json:
        print_json(
            {
                "model": wv.name,
                "method": report.method,
                "restrict_vocab": report.restrict_vocab,
                "analogies": [
                    {
                        "section": s.section,
                        "accuracy": round(s.accuracy, 4),
                        "correct": s.correct,
                        "total": s.total,
                        "skipped": s.skipped,
                    }
                    for s in rows
                ],
                "similarity": [
                    {"dataset": r.dataset, "spearman": round(r.spearman, 4), "pairs": r.pairs}
                    for r in sims
                ],
            }
        )
        return
    table = Table(title=f"{wv.name}: analogies ({report.method}, top {report.restrict_vocab})")
    for col in ("section", "accuracy", "correct", "questions", "skipped"):
        table.add_column(col, justify="left" if col == "section" else "right")
    for s in rows:
        table.add_row(s.section, f"{s.accuracy:.3f}", str(s.correct), str(s.total), str(s.skipped))
    console.print(table)
    for r in sims:
        console.print(f"{r.dataset}: Spearman {r.spearman:.3f} on {r.pairs} pairs")


@words_app.command()
def train(
    corpus: Path = typer.Argument(..., help="Text file, one sentence or document per line."),
    output: Path = typer.Option(
        ..., "--output", "-o", help="word2vec: folder (npy), .txt/.vec or .bin; fasttext: .bin."
    ),
    kind: str = typer.Option("word2vec", "--kind", help="word2vec | fasttext."),
    dim: int = typer.Option(100, "--dim", help="Vector size."),
    window: int = typer.Option(5, "--window", help="Context window."),
    min_count: int = typer.Option(2, "--min-count", help="Ignore rarer words."),
    epochs: int = typer.Option(10, "--epochs", help="Passes over the corpus."),
    skipgram: bool = typer.Option(False, "--skipgram", help="Skip-gram instead of CBOW."),
    as_json: bool = JsonOpt,
) -> None:
    """Train Word2Vec or FastText on your corpus and save it (no pickle)."""
    from embedbox.models.words import save
    from embedbox.models.words import train as train_words

    if kind not in ("word2vec", "fasttext"):
        raise InputError(f"--kind must be word2vec or fasttext, not {kind!r}")
    if kind == "fasttext" and output.suffix != ".bin":
        raise InputError("a FastText model is saved as a .bin file; pass --output NAME.bin")
    with progress_bar("epochs") as update:
        wv, model = train_words(
            corpus, kind=kind, dim=dim, window=window, min_count=min_count,  # type: ignore[arg-type]
            epochs=epochs, sg=skipgram, progress=update,
        )  # fmt: skip
    saved = save(model, output)
    summary = {
        "kind": kind,
        "words": len(wv),
        "dim": wv.dim,
        "epochs": epochs,
        "output": str(saved),
    }
    if as_json:
        print_json(summary)
    else:
        console.print(f"trained {kind}: {len(wv)} words x {wv.dim} dims -> {saved}")


@app.command()
def tokens(
    text: str = typer.Argument(..., help="The text whose tokens to embed."),
    words: bool = typer.Option(False, "--words", help="One vector per word (pieces averaged)."),
    model: str = typer.Option(DEFAULT_TEXT_MODEL, "--model", "-m", help="Transformer model."),
    normalize: bool = typer.Option(False, "--normalize", help="L2-normalise each vector."),
    truncate: bool = typer.Option(
        False, "--truncate", help="Keep the first tokens of a text longer than the model takes."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Contextual vectors for each token (or word) of a text, with character offsets."""
    from embedbox.cli.common import get_embedder
    from embedbox.tasks.tokens import embed_tokens

    tv = embed_tokens(
        text,
        get_embedder(model, "fp32"),
        level="word" if words else "token",
        normalize=normalize,
        truncate=truncate,
    )
    if as_json:
        print_json(
            {
                "model": model,
                "level": tv.level,
                "tokens": [
                    {"token": t, "start": s, "end": e, "vector": v}
                    for t, (s, e), v in zip(tv.tokens, tv.offsets, tv.vectors, strict=True)
                ],
            }
        )
        return
    table = Table(title=f"{tv.level} vectors ({model}, dim {tv.vectors.shape[1]})")
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column(tv.level, overflow="fold")
    table.add_column("span", no_wrap=True)
    table.add_column("norm", justify="right", no_wrap=True)
    table.add_column("vector (first 5)", no_wrap=True)
    for i, (t, (s, e), v) in enumerate(zip(tv.tokens, tv.offsets, tv.vectors, strict=True)):
        first = " ".join(f"{x:+.3f}" for x in v[:5].tolist())
        table.add_row(str(i), Text(t), f"{s}-{e}", f"{float((v @ v) ** 0.5):.2f}", first)
    console.print(table)
