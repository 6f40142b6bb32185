"""``tamis demo``: the main job (``tamis refine``) on an embedded default corpus.

The sample corpus is built on the fly by the Rust ``tamis demo --corpus-only`` from text found on
any machine (Python's documentation topics) with planted exact copies, white-space variants and
boilerplate lines; this module adds a few documents in other languages, splits it into shards
and runs the pipeline: exact dedup, language ID (English kept), line dedup, near dedup, and the
ProX stages when a refining model is configured or found locally (otherwise skipped, with a note
in the report).
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Documents in other languages, written for this demo, so that language ID has something to
# remove. Each is repeated with a small change to look like crawled pages.
OTHER_LANGUAGES = {
    "fr": "Une liste en Python garde ses éléments dans l'ordre où on les ajoute. On peut la "
    "parcourir avec une boucle, la trier, ou y chercher une valeur ; les dictionnaires, eux, "
    "associent une clé à chaque valeur et retrouvent celle-ci très rapidement.",
    "de": "Eine Funktion fasst Anweisungen zusammen, die man mehrfach ausführen möchte. Sie "
    "bekommt Argumente, gibt einen Wert zurück und kann Ausnahmen auslösen, wenn die Eingaben "
    "nicht stimmen. Gute Namen machen den Code leichter lesbar.",
    "es": "Los módulos permiten dividir un programa grande en archivos más pequeños. Cada módulo "
    "tiene su propio espacio de nombres, y la instrucción import los carga una sola vez aunque "
    "se importen desde muchos lugares distintos.",
    "it": "Le eccezioni segnalano che qualcosa è andato storto durante l'esecuzione. Un blocco try "
    "le intercetta, e la clausola finally viene eseguita in ogni caso, anche quando il "
    "programma termina con un errore inatteso.",
    "pt": "As classes descrevem objetos com atributos e métodos. Uma classe pode herdar de outra "
    "e redefinir apenas o comportamento que muda, o que evita repetir o mesmo código em vários "
    "lugares do programa.",
    "nl": "Een generator levert waarden één voor één op, pas wanneer ze nodig zijn. Daardoor "
    "kun je met zeer lange reeksen werken zonder ze eerst volledig in het geheugen te laden.",
}
SHARDS = 4


def _build_corpus(out_dir: Path, sources: Sequence[str], seed: int) -> tuple[list[Path], dict[str, Any]]:
    """Write the sample corpus as shards; return their paths and what was planted."""
    cmd = [sys.executable, "-m", "tamis", "demo", "--corpus-only", "--out-dir", os.fspath(out_dir)]
    cmd += ["--seed", str(seed)]
    for s in sources:
        cmd += ["--source", s]
    env = dict(os.environ, TAMIS_PYTHON=os.environ.get("TAMIS_PYTHON", sys.executable))
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"building the sample corpus failed: {done.stderr.strip()}")
    info: dict[str, Any] = json.loads(done.stdout)
    corpus = Path(info["corpus"])
    with gzip.open(corpus, "rt", encoding="utf-8") as f:
        records = [json.loads(line) for line in f if line.strip()]
    corpus.unlink()
    # Foreign-language documents spread through the corpus at fixed positions.
    step = max(1, len(records) // (2 * len(OTHER_LANGUAGES) + 1))
    at = step
    n_other = 0
    for lang, text in OTHER_LANGUAGES.items():
        for variant in (text, text.replace(". ", ".\n")):
            n_other += 1
            records.insert(
                min(at, len(records)),
                {
                    "id": f"other-{n_other:02d}",
                    "text": variant,
                    "source": f"demo:{lang}",
                    "planted": "language",
                },
            )
            at += step + 1
    info["other_language_documents"] = n_other
    info["documents"] = len(records)
    data = out_dir / "corpus"
    data.mkdir(parents=True, exist_ok=True)
    paths = []
    per = -(-len(records) // SHARDS)
    for i in range(SHARDS):
        p = data / f"part-{i:04d}.jsonl.gz"
        with gzip.GzipFile(p, "wb", mtime=0) as f:
            for r in records[i * per : (i + 1) * per]:
                f.write((json.dumps(r, ensure_ascii=False) + "\n").encode("utf-8"))
        paths.append(p)
    return paths, info


def demo_config(
    inputs: Sequence[Path],
    output: Path,
    *,
    quality_model: str | None = None,
    prox_doc_model: str | None = None,
    prox_chunk_model: str | None = None,
    threads: int = 0,
) -> dict[str, Any]:
    """The demo's pipeline configuration (what ``tamis refine`` would read from TOML)."""
    stages: list[dict[str, Any]] = [
        {"type": "dedup_exact", "normalize": "whitespace"},
        # Documentation pages hold code, which lowers language-ID scores: a lenient threshold.
        {"type": "language", "languages": ["en"], "min_score": 0.3, "if_available": True},
    ]
    if quality_model:
        stages.append({"type": "quality", "model": quality_model, "keep_label": "hq", "threshold": 0.5})
    stages += [
        {"type": "dedup_lines", "max_occurrences": 1, "min_line_chars": 10},
        {"type": "dedup_near"},
        {"type": "prox_doc", "model": prox_doc_model or "auto"},
        {"type": "prox_chunk", "model": prox_chunk_model or "auto"},
    ]
    return {
        "inputs": [os.fspath(p) for p in inputs],
        "output": os.fspath(output),
        "threads": threads,
        "stage": stages,
    }


def cli_demo(argv: Sequence[str]) -> int:
    """``tamis demo [--out-dir DIR] ...``; returns the exit code."""
    import argparse

    from tamis.pipeline import ConfigError, Pipeline, summary

    p = argparse.ArgumentParser(
        prog="tamis demo",
        description="Build a sample corpus from text on this machine (with planted duplicates, boilerplate "
        "and other-language documents) and run `tamis refine` on it.",
    )
    p.add_argument("--out-dir", default="tamis-demo", help="where the corpus, output and report go")
    p.add_argument("--source", action="append", default=[], help="plain-text files to build the corpus from")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument(
        "--quality-model", default=None, help="a fastText quality classifier: adds a quality stage"
    )
    p.add_argument("--prox-doc-model", default=None)
    p.add_argument("--prox-chunk-model", default=None)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args(list(argv))
    out = Path(a.out_dir).resolve()
    try:
        shards, info = _build_corpus(out, a.source, a.seed)
        cfg = demo_config(
            shards,
            out / "refined",
            quality_model=a.quality_model,
            prox_doc_model=a.prox_doc_model,
            prox_chunk_model=a.prox_chunk_model,
            threads=a.threads,
        )
        pipe = Pipeline.from_config(cfg, base_dir=Path.cwd())
        report = pipe.run(restart=True)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (ValueError, OSError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(
        f"tamis demo: a sample corpus built from {info['source']}: {info['documents']} documents in "
        f"{len(shards)} shards; planted {info['exact_copies']} exact copies, {info['whitespace_variants']} "
        f"white-space variants, {info['boilerplate_lines']} boilerplate lines and "
        f"{info['other_language_documents']} documents in other languages"
    )
    print(summary(report, pipe.out))
    shell = f"tamis refine {out / 'corpus'} -o DIR --languages en --min-score 0.3"
    print(f"  config         the same job from the shell: {shell}")
    return 0


__all__ = ["OTHER_LANGUAGES", "cli_demo", "demo_config"]
