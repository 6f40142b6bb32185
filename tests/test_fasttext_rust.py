"""tamis' own fastText inference (``tamis._core.FastText``, Rust) against fastText's: the same
labels, in the same order, for held-out sentences in more than 20 languages (Debian's translated
manual pages, which ``scripts/test.sh`` installs), with the embedded ``lid.176.ftz``."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import pytest
from tamis import _core, filters

MAN = Path("/usr/share/man")
LANGUAGES = ["cs", "da", "de", "el", "es", "fi", "fr", "hu", "id", "it", "ja", "mk", "nb", "nl", "pl",
             "pt_BR", "ro", "ru", "sr", "sv", "uk", "vi", "zh_CN", "zh_TW"]  # fmt: skip
PER_LANGUAGE = 40
# Untranslated (English) lines are common in translated pages: in these scripts, keep lines that
# have letters outside ASCII.
NON_LATIN = {"el", "ja", "mk", "ru", "sr", "uk", "zh_CN", "zh_TW"}


def _sentences(lang: str) -> list[str]:
    """Prose lines of the language's manual pages (roff requests and escapes removed)."""
    out: list[str] = []
    for page in sorted((MAN / lang).glob("man*/*.gz")):
        try:
            text = gzip.decompress(page.read_bytes()).decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for line in text.splitlines():
            if line.startswith((".", "'")):
                continue
            line = re.sub(r"\\f[BIRP]|\\f\(..|\\[-&e(]..?|\\\*\(..|\\", " ", line).strip()
            if lang in NON_LATIN and sum(not c.isascii() for c in line) < len(line) // 4:
                continue
            if len(line) >= 40 and (len(line.split()) >= 4 or lang in NON_LATIN):
                out.append(line)
        if len(out) >= PER_LANGUAGE:
            break
    return out[:PER_LANGUAGE]


@pytest.fixture(scope="module")
def sentences() -> dict[str, list[str]]:
    from pydoc_data.topics import topics

    found = {lang: s for lang in LANGUAGES if len(s := _sentences(lang)) >= 10}
    if len(found) < 20:
        pytest.skip(f"manual pages in only {len(found)} languages here (scripts/test.sh installs them)")
    english = [line.strip() for t in list(topics.values())[:30] for line in t.splitlines()]
    found["en"] = [line for line in english if len(line) >= 40][:PER_LANGUAGE]
    return found


@pytest.fixture(scope="module")
def model_path() -> Path:
    """The file tamis builds in (the fastText package needs a path)."""
    return Path(__file__).resolve().parents[1] / "rust" / "core" / "assets" / "lid.176.ftz"


def test_the_built_in_model_is_the_file(sentences, model_path):
    builtin = filters.embedded_lid_model()
    from_file = _core.FastText(model_path)
    assert builtin.labels == from_file.labels
    lines = [line for lines in sentences.values() for line in lines[:5]]
    assert builtin.predict(lines, k=3) == from_file.predict(lines, k=3)


def test_same_labels_as_fasttext_in_more_than_twenty_languages(sentences, model_path):
    fasttext = pytest.importorskip("fasttext")
    ours = _core.FastText(model_path)
    theirs = fasttext.load_model(str(model_path))
    assert ours.labels == list(theirs.labels)
    top = set()
    for lang, lines in sentences.items():
        got = ours.predict(lines, k=3, threads=2)
        labels, probs = theirs.predict(lines, k=3)
        for line, g, ls, ps in zip(lines, got, labels, probs, strict=True):
            assert [label for label, _ in g] == list(ls), (lang, line)
            # Equal up to the last digit of a float (fastText's build may fuse multiply-adds).
            close = all(abs(p - float(q)) <= 2e-7 for (_, p), q in zip(g, ps, strict=True))
            assert close, (lang, line, g, ps)
        top |= {g[0][0] for g in got}
        # The sentences are in the language they are filed under, mostly.
        want = "__label__" + lang.split("_")[0].replace("nb", "no")
        assert sum(g[0][0] == want for g in got) >= 0.5 * len(got), (lang, [g[0] for g in got][:10])
    assert len(top) >= 20


def test_language_filter_needs_no_fasttext_package(sentences, model_path, monkeypatch):
    """Language ID runs in Rust: with the fasttext module unimportable it still works."""
    import sys

    monkeypatch.setitem(sys.modules, "fasttext", None)
    f = filters.LanguageFilter(["de", "fr"], min_score=0.5)
    keep, preds = f.apply(sentences["de"][:5] + sentences["ja"][:5])
    assert keep[:5] == [p[0] == "de" and p[1] >= 0.5 for p in preds[:5]] and not any(keep[5:])
    assert {p[0] for p in preds[5:]} == {"ja"}


def test_a_file_that_is_not_a_model_is_named(tmp_path):
    bad = tmp_path / "model.ftz"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(_core.TamisError, match="model.ftz: not a fastText model"):
        _core.FastText(bad)
