"""The polars namespace and pipe function agree with the CLI and with polars' own unique()."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

pl = pytest.importorskip("polars")
import tamis  # noqa: E402
import tamis.polars  # noqa: E402,F401


def _texts(n: int, seed: int = 7) -> list[str | None]:
    rng = random.Random(seed)
    base = [
        f"Doc {i}: " + " ".join(rng.choice(["alpha", "beta", "γάμμα", "数据", "x1"]) for _ in range(8))
        for i in range(n)
    ]
    out: list[str | None] = []
    for i in range(n * 2):
        r = rng.random()
        if r < 0.05:
            out.append(None)
        elif r < 0.35 and out:
            src = rng.choice([t for t in out if t is not None] or base)
            out.append(rng.choice([src, "  " + src.upper() + "!", src.replace(" ", "\t")]))
        else:
            out.append(base[i % n] + f" #{i}")
    return out


def test_hash_is_elementwise_and_equal_for_equal_normalized_text():
    df = pl.DataFrame({"text": ["Hello, World 1", "hello world 2", None, "Hello,  World 1"]})
    out = df.with_columns(
        raw=pl.col("text").tamis.hash(),
        simple=pl.col("text").tamis.hash(normalize="simple"),
        ws=pl.col("text").tamis.hash(normalize="whitespace"),
    )
    assert out.schema["raw"] == pl.Binary
    raw, simple, ws = out["raw"].to_list(), out["simple"].to_list(), out["ws"].to_list()
    assert all(len(h) == 16 for h in raw if h is not None)
    assert raw[2] is None
    assert simple[0] == simple[1] == simple[3]
    assert raw[0] != raw[3] and ws[0] == ws[3]
    # Same digests as the plain Python API.
    assert raw == tamis.text.hash(df["text"].to_list())


@pytest.mark.parametrize("normalize", ["none", "whitespace", "simple"])
def test_exact_dedup_dataframe_lazyframe_and_pipe_agree(normalize):
    texts = _texts(400)
    df = pl.DataFrame({"id": list(range(len(texts))), "text": texts})
    eager = df.tamis.exact_dedup("text", normalize=normalize)
    lazy = df.lazy().tamis.exact_dedup("text", normalize=normalize).collect()
    piped = (
        df.lazy()
        .pipe(tamis.polars.exact_dedup, column="text", normalize=normalize)
        .collect(engine="streaming")
    )
    assert eager.equals(lazy) and eager.equals(piped)
    # Oracle: first occurrence of each hash, nulls kept.
    hashes = tamis.text.hash(texts, normalize=normalize)
    seen, expected = set(), []
    for i, h in enumerate(hashes):
        if h is None or h not in seen:
            expected.append(i)
            if h is not None:
                seen.add(h)
    assert eager["id"].to_list() == expected


def test_matches_polars_unique_without_normalization():
    texts = [t for t in _texts(300) if t is not None]
    df = pl.DataFrame({"text": texts})
    ours = df.tamis.exact_dedup("text")
    theirs = df.unique(subset="text", keep="first", maintain_order=True)
    assert ours.equals(theirs)


def test_same_kept_set_as_cli(tmp_path):
    texts = [t for t in _texts(500, seed=11) if t is not None]
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps({"id": str(i), "text": t}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "out.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "tamis",
        "dedup",
        "exact",
        str(path),
        "-o",
        str(out),
        "--normalize",
        "simple",
        "-q",
    ]
    subprocess.run(cmd, check=True)
    cli_ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    df = pl.read_ndjson(path)
    ids = df.pipe(tamis.polars.exact_dedup, column="text", normalize="simple")["id"].to_list()
    assert ids == cli_ids
    assert 0 < len(ids) < len(texts)


def test_non_string_column_is_a_clear_error():
    df = pl.DataFrame({"text": [1, 2, 3]})
    with pytest.raises(Exception, match="string column"):
        df.tamis.exact_dedup("text")
