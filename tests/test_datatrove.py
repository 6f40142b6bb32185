"""tamis.datatrove: two datatrove pipelines keep exactly what `tamis dedup exact` keeps."""

from __future__ import annotations

import gzip
import json
import pickle
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("datatrove")

from datatrove.executor import LocalPipelineExecutor  # noqa: E402
from datatrove.pipeline.readers import JsonlReader  # noqa: E402
from datatrove.pipeline.writers import JsonlWriter  # noqa: E402
from tamis.datatrove import (  # noqa: E402
    ExactDedupFilter,
    ExactDedupSignature,
    read_signature_header,
)

# Files in the order the command line reads them: Rust sorts paths component by component, so
# the directory part/ comes before part.jsonl.gz although a plain string sort puts it after.
FILES = [
    "a-b/c.jsonl",
    "a.jsonl.gz",
    "b/d.jsonl",
    "b/e/f.jsonl.gz",
    "part/x.jsonl",
    "part.jsonl.gz",
    "z.jsonl",
]
WORDS = "sieve corpus token shard hash crab river stone grain flour mill wheel".split()


def _variants(text: str) -> list[str]:
    """The text and white-space variants of it (equal under normalize="whitespace")."""
    return [text, text, f"  {text}", f"{text}\n", text.replace(" ", "  ", 1), text.replace(" ", "\t")]


def _make_corpus(root: Path) -> dict[str, tuple[int, int]]:
    """Write FILES with planted duplicates; returns id -> (file position in FILES, line)."""
    rng = random.Random(7)
    bases = [" ".join(rng.choices(WORDS, k=rng.randint(3, 9))) for _ in range(45)]
    order: dict[str, tuple[int, int]] = {}
    for fi, name in enumerate(FILES):
        lines = []
        for li in range(rng.randint(40, 90)):
            text = rng.choice(_variants(rng.choice(bases)))
            doc_id = f"f{fi}-l{li}"
            order[doc_id] = (fi, li)
            lines.append(json.dumps({"id": doc_id, "text": text, "source": name}))
            if li == 5:
                lines.append("")  # blank lines are not records, for either tool
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = ("\n".join(lines) + "\n").encode()
        path.write_bytes(gzip.compress(payload) if name.endswith(".gz") else payload)
    return order


def _reference(root: Path, normalize: str) -> list[str]:
    """Ids of the first occurrence of each normalized text, files in FILES order."""
    seen: set[str] = set()
    kept = []
    for name in FILES:
        raw = (root / name).read_bytes()
        text = gzip.decompress(raw) if name.endswith(".gz") else raw
        for line in text.decode().splitlines():
            if not line:
                continue
            record = json.loads(line)
            key = record["text"] if normalize == "none" else " ".join(record["text"].split())
            if key not in seen:
                seen.add(key)
                kept.append(record["id"])
    return kept


def _cli(root: Path, out_dir: Path, normalize: str) -> tuple[list[str], int]:
    """Run `tamis dedup exact`; returns the kept ids in output order and the duplicates count."""
    out, stats = out_dir / "cli.jsonl", out_dir / "cli-stats.json"
    subprocess.run(
        [sys.executable, "-m", "tamis", "-q", "dedup", "exact", str(root), "-o", str(out)]
        + ["--normalize", normalize, "--stats-json", str(stats)],
        check=True,
    )
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    return ids, json.loads(stats.read_text())["documents_removed"].get("duplicate", 0)


def _signatures(data: Path, sigs: Path, logs: Path, normalize: str, tasks: int, workers: int) -> None:
    LocalPipelineExecutor(
        [JsonlReader(str(data)), ExactDedupSignature(str(sigs), normalize=normalize, batch_size=32)],
        tasks=tasks,
        workers=workers,
        logging_dir=str(logs),
    ).run()


def _read_ids(folder: Path) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob("*.jsonl")) for line in f.read_text().splitlines()]


def _filter(data: Path, sigs: Path, out: Path, logs: Path, normalize: str | None, tasks: int, workers: int):
    """Run stage 2; returns the kept records, the dropped records and the filter's merged stats."""
    stats = LocalPipelineExecutor(
        [
            JsonlReader(str(data)),
            ExactDedupFilter(
                str(sigs),
                normalize=normalize,
                batch_size=50,
                exclusion_writer=JsonlWriter(str(out / "dropped"), compression=None),
            ),
            JsonlWriter(str(out / "kept"), compression=None),
        ],
        tasks=tasks,
        workers=workers,
        logging_dir=str(logs),
    ).run()
    (filter_stats,) = [s for s in stats.stats if "tamis exact dedup: filter" in s.name]
    return _read_ids(out / "kept"), _read_ids(out / "dropped"), filter_stats


def test_path_order_is_the_command_lines(tmp_path):
    data, sigs = tmp_path / "data", tmp_path / "sigs"
    _make_corpus(data)
    _signatures(data, sigs, tmp_path / "logs", "none", 3, 1)
    table = ExactDedupFilter(str(sigs)).table()
    assert [Path(p).relative_to(data).as_posix() for p in table.files] == FILES
    assert sorted(FILES) != FILES  # datatrove's own (string) order differs: the order matters


@pytest.mark.parametrize(
    ("normalize", "sig_tasks", "filter_tasks", "workers"),
    [
        ("none", 3, 3, 1),
        ("whitespace", 3, 3, 2),
        ("whitespace", 9, 2, 1),  # more tasks than files; stage 2 with another task count
    ],
)
def test_kept_set_equals_cli(tmp_path, normalize, sig_tasks, filter_tasks, workers):
    data = tmp_path / "data"
    order = _make_corpus(data)
    expected = _reference(data, normalize)
    cli_ids, cli_duplicates = _cli(data, tmp_path, normalize)
    assert cli_ids == expected
    assert cli_duplicates == len(order) - len(expected) > 50

    sigs = tmp_path / "sigs"
    _signatures(data, sigs, tmp_path / "logs1", normalize, sig_tasks, workers)
    assert sorted(p.name for p in sigs.iterdir()) == [f"{r:05d}.sig" for r in range(sig_tasks)]

    kept, dropped, stats = _filter(
        data, sigs, tmp_path / "out", tmp_path / "logs2", normalize, filter_tasks, workers
    )
    ids = [record["id"] for record in kept]
    assert len(ids) == len(set(ids))
    assert set(ids) == set(cli_ids)
    assert sorted(ids, key=order.__getitem__) == cli_ids
    assert stats["total"].total == len(order)
    assert stats["forwarded"].total == len(cli_ids)
    assert stats["dropped"].total == stats["dropped_duplicate"].total == cli_duplicates
    assert {record["id"] for record in dropped} == set(order) - set(ids)
    assert {record["metadata"]["filter_reason"] for record in dropped} == {"duplicate"}


def test_signature_file_contents(tmp_path):
    data, sigs = tmp_path / "data", tmp_path / "sigs"
    order = _make_corpus(data)
    _signatures(data, sigs, tmp_path / "logs", "none", 3, 1)
    seen = 0
    for rank in range(3):
        header = read_signature_header(str(sigs), f"{rank:05d}.sig")
        assert (header["rank"], header["world_size"], header["normalize"]) == (rank, 3, "none")
        assert header["hash"] == "xxh3-128" and header["score"] is False
        # datatrove deals files round-robin in its (string) order
        assert [Path(p).relative_to(data).as_posix() for p in header["files"]] == sorted(FILES)[rank::3]
        assert sum(header["counts"]) == header["records"]
        # 16 bytes of preamble, the header, then 28 bytes per document
        raw = (sigs / f"{rank:05d}.sig").read_bytes()
        assert raw[:8] == b"TAMISSIG" and int.from_bytes(raw[8:12], "little") == 2
        header_len = int.from_bytes(raw[12:16], "little")
        assert len(raw) == 16 + header_len + 28 * header["records"]
        seen += header["records"]
    assert seen == len(order)
    # a damaged file is refused, naming it
    path = sigs / "00001.sig"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"00001\.sig: truncated"):
        read_signature_header(str(sigs), "00001.sig")
    with pytest.raises(ValueError, match=r"00001\.sig: truncated"):
        list(ExactDedupFilter(str(sigs))(JsonlReader(str(data))()))


def test_stale_signatures_are_rejected(tmp_path):
    data, sigs = tmp_path / "data", tmp_path / "sigs"
    _make_corpus(data)
    _signatures(data, sigs, tmp_path / "logs4", "none", 4, 1)
    _signatures(data, sigs, tmp_path / "logs3", "none", 3, 1)  # leaves 00003.sig of the 4-task run
    with pytest.raises(ValueError, match="different numbers of tasks"):
        list(ExactDedupFilter(str(sigs))(JsonlReader(str(data))(), rank=0, world_size=1))
    (sigs / "00003.sig").unlink()
    (sigs / "00001.sig").unlink()  # a task that never finished
    with pytest.raises(ValueError, match=r"missing \[1\]"):
        list(ExactDedupFilter(str(sigs))(JsonlReader(str(data))(), rank=0, world_size=1))
    # a file of another run, with other options
    other = tmp_path / "other"
    _signatures(data, other, tmp_path / "logs5", "whitespace", 3, 1)
    (sigs / "00001.sig").write_bytes((other / "00001.sig").read_bytes())
    with pytest.raises(ValueError, match="mix normalize values"):
        list(ExactDedupFilter(str(sigs))(JsonlReader(str(data))(), rank=0, world_size=1))
    for p in sigs.iterdir():
        p.unlink()
    with pytest.raises(FileNotFoundError, match="run ExactDedupSignature first"):
        list(ExactDedupFilter(str(sigs))(JsonlReader(str(data))(), rank=0, world_size=1))


def test_format_1_files_are_read(tmp_path):
    """Signature files written by earlier tamis versions (format 1, no scores) still work."""
    import struct

    from tamis.text import hash as text_hash

    data, sigs = tmp_path / "data", tmp_path / "sigs"
    order = _make_corpus(data)
    sigs.mkdir()
    for rank in range(2):  # as the numpy writer of tamis 0.1 wrote them
        files, counts, records = [], [], b""
        for name in sorted(FILES)[rank::2]:
            raw = (data / name).read_bytes()
            lines = (gzip.decompress(raw) if name.endswith(".gz") else raw).decode().splitlines()
            texts = [json.loads(line)["text"] for line in lines if line]
            for i, h in enumerate(text_hash(texts)):
                records += h + struct.pack("<IQ", len(files), i)
            files.append(str(data / name))
            counts.append(len(texts))
        header = {"rank": rank, "world_size": 2, "normalize": "none", "hash": "xxh3-128"}
        header |= {"files": files, "counts": counts, "records": sum(counts)}
        blob = json.dumps(header).encode()
        (sigs / f"{rank:05d}.sig").write_bytes(
            struct.pack("<8sII", b"TAMISSIG", 1, len(blob)) + blob + records
        )
    kept, _, _ = _filter(data, sigs, tmp_path / "out", tmp_path / "logs", None, 2, 1)
    assert sorted((r["id"] for r in kept), key=order.__getitem__) == _reference(data, "none")


def test_mismatches_fail_loudly(tmp_path):
    data, sigs = tmp_path / "data", tmp_path / "sigs"
    _make_corpus(data)
    _signatures(data, sigs, tmp_path / "logs", "whitespace", 2, 1)
    with pytest.raises(ValueError, match="normalize"):
        list(ExactDedupFilter(str(sigs), normalize="none")(JsonlReader(str(data))(), rank=0, world_size=1))

    # stage 2 reads other data than stage 1 hashed
    path = data / "z.jsonl"
    original = path.read_text()
    lines = original.splitlines()
    record = json.loads(lines[0])
    lines[0] = json.dumps(record | {"text": record["text"] + " changed"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="not the one stage 1 hashed"):
        for rank in range(2):
            list(ExactDedupFilter(str(sigs))(JsonlReader(str(data))(rank=rank, world_size=2), rank, 2))
    path.write_text(original)

    # a file stage 1 never saw
    (data / "zz.jsonl").write_text('{"text": "new"}\n')
    with pytest.raises(ValueError, match="not in the signatures"):
        for rank in range(2):
            list(ExactDedupFilter(str(sigs))(JsonlReader(str(data))(rank=rank, world_size=2), rank, 2))


def test_steps_pickle_as_configuration(tmp_path):
    data, sigs = tmp_path / "data", tmp_path / "sigs"
    _make_corpus(data)
    _signatures(data, sigs, tmp_path / "logs", "none", 1, 1)
    step = ExactDedupFilter(str(sigs))
    assert sum(1 for _ in step(JsonlReader(str(data))())) > 0
    assert step._table is not None
    clone = pickle.loads(pickle.dumps(step))
    assert clone._table is None and clone.signatures_folder.path == step.signatures_folder.path
    sig = pickle.loads(pickle.dumps(ExactDedupSignature(str(sigs), normalize="simple")))
    assert sig.normalize == "simple"
    with pytest.raises(ValueError, match="normalize"):
        ExactDedupSignature(str(sigs), normalize="lower")  # type: ignore[arg-type]


def test_module_imports_without_datatrove():
    code = (
        "import sys; sys.modules['datatrove'] = None\n"
        "import tamis.datatrove as d\n"
        "try:\n"
        "    d.ExactDedupSignature('x')\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'tamis[datatrove]'" in result.stdout


def _drop_file_path(self, data, path, id_in_file):
    """Reader adapter (docs/datatrove.md): ignore a file_path carried by the data itself."""
    document = self._default_adapter(data, path, id_in_file)
    document["metadata"].pop("file_path", None)
    return document


def test_file_path_carried_by_the_data(tmp_path):
    data, sigs = tmp_path / "data", tmp_path / "sigs"
    order = _make_corpus(data)
    for name in FILES[-3:]:  # as if written by an earlier datatrove pipeline
        path = data / name
        raw = gzip.decompress(path.read_bytes()) if name.endswith(".gz") else path.read_bytes()
        records = [json.loads(line) for line in raw.decode().splitlines() if line]
        lines = [
            json.dumps(r | {"metadata": {"file_path": f"/orig/{i % 2}.jsonl"}}) for i, r in enumerate(records)
        ]
        payload = ("\n".join(lines) + "\n").encode()
        path.write_bytes(gzip.compress(payload) if name.endswith(".gz") else payload)
    with pytest.raises(ValueError, match="not contiguous"):
        ExactDedupSignature(str(sigs))(JsonlReader(str(data))())

    cli_ids, cli_duplicates = _cli(data, tmp_path, "none")
    LocalPipelineExecutor(
        [JsonlReader(str(data), adapter=_drop_file_path), ExactDedupSignature(str(sigs))],
        tasks=2,
        workers=1,
        logging_dir=str(tmp_path / "logs1"),
    ).run()
    stats = LocalPipelineExecutor(
        [
            JsonlReader(str(data), adapter=_drop_file_path),
            ExactDedupFilter(str(sigs)),
            JsonlWriter(str(tmp_path / "out"), compression=None),
        ],
        tasks=2,
        workers=1,
        logging_dir=str(tmp_path / "logs2"),
    ).run()
    ids = [record["id"] for record in _read_ids(tmp_path / "out")]
    assert sorted(ids, key=order.__getitem__) == cli_ids
    (filter_stats,) = [s for s in stats.stats if "tamis exact dedup: filter" in s.name]
    assert filter_stats["dropped"].total == cli_duplicates
