"""ProX refining models for a new language, end to end, on local text (docs/prox-train.md):

1. annotate the seed corpus with a large instruct model behind an OpenAI-compatible endpoint:
   document labels (educational and extraction-quality scores, the paper's keep rule) and chunk
   programs (one few-shot prompt per noise type, merged);
2. fine-tune a doc model and a chunk model from a base model on that SFT data (validation F1
   after every epoch, the best epoch kept);
3. evaluate the trained models next to the base model on the validation SFT records;
4. refine other documents with the trained models (``tamis prox refine``).

    python examples/prox_new_language.py --seed nl_seed.jsonl --refine nl_rest.jsonl --language Dutch \\
        --endpoint http://localhost:8000/v1 --annotator Qwen2.5-72B-Instruct \\
        --base ./base-0.3b --workdir ./prox-nl

Needs ``pip install 'tamis[annotate,prox]'``. Every step writes its files in ``--workdir`` and
is skipped when its output is already there, so a stopped run goes on where it was.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from tamis.prox_annotate import AnnotateOptions, annotate
from tamis.prox_eval import evaluate, split_fraction
from tamis.prox_train import TrainOptions, train


def split_lines(sft: Path, train_part: Path, val_part: Path, fraction: float) -> None:
    """Copy the SFT lines (unchanged) to a training and a validation file by a hash of the
    document id, so that every chunk of a document lands on the same side."""
    with open(sft, encoding="utf-8") as f, open(train_part, "w", encoding="utf-8") as t:
        with open(val_part, "w", encoding="utf-8") as v:
            for line in f:
                (v if split_fraction(str(json.loads(line)["id"])) < fraction else t).write(line)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", nargs="+", required=True, help="documents to annotate (JSONL/Parquet/.txt)")
    p.add_argument("--refine", nargs="+", required=True, help="documents to refine with the trained models")
    p.add_argument("--language", required=True, help="the corpus' language, e.g. Dutch")
    p.add_argument("--endpoint", required=True, help="OpenAI-compatible base URL of the annotator")
    p.add_argument("--annotator", required=True, help="the annotator model's name on the endpoint")
    p.add_argument("--base", required=True, help="base model directory (safetensors + tokenizer.json)")
    p.add_argument("--workdir", required=True)
    p.add_argument("--val-fraction", type=float, default=0.1, help="share of documents for validation")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--batch-tokens", type=int, default=65536)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--device", default=None)
    a = p.parse_args()
    work = Path(a.workdir)
    work.mkdir(parents=True, exist_ok=True)
    tokenizer = Path(a.base) / "tokenizer.json"

    models: dict[str, Path] = {}
    for stage in ("doc", "chunk"):
        sft = work / f"{stage}_sft.jsonl"
        if not sft.exists():
            o = AnnotateOptions(
                stage=stage,  # type: ignore[arg-type]
                endpoint=a.endpoint,
                model=a.annotator,
                tokenizer=str(tokenizer),
                language=a.language,
                concurrency=a.concurrency,
            )
            r = annotate(a.seed, sft, o)
            print(f"annotate {stage}: {r['records']} records, {r['requests']} requests, "
                  f"left out: {r['left_out']}")  # fmt: skip
        train_part, val = work / f"{stage}_train.jsonl", work / f"{stage}_val.jsonl"
        split_lines(sft, train_part, val, a.val_fraction)
        out = work / f"{stage}-model"
        if not (out / "train_log.json").exists():
            log = train(
                TrainOptions(
                    data=train_part,
                    val=val,
                    base=a.base,
                    output=out,
                    stage=stage,  # type: ignore[arg-type]
                    epochs=a.epochs,
                    lr=a.lr,
                    batch_tokens=a.batch_tokens,
                    device=a.device,
                )
            )
            print(f"train {stage}: kept epoch {log['kept_epoch']}")
        models[stage] = out
        for name, model in (("base", Path(a.base)), ("trained", out)):
            m = evaluate(model, val, device=a.device)
            key = "doc_f1" if stage == "doc" else "chunk_line_f1"
            print(f"eval {stage} {name}: {key} {m[key]}, malformed {m['malformed_rate']}, "
                  f"kept tokens {m['kept_token_ratio']}")  # fmt: skip

    refined = work / "refined.jsonl"
    cmd = [sys.executable, "-m", "tamis", "prox", "refine", *a.refine, "-o", str(refined)]
    cmd += ["--doc-model", str(models["doc"]), "--chunk-model", str(models["chunk"])]
    cmd += ["--stats-json", str(work / "refine_stats.json")]
    if a.device:
        cmd += ["--device", a.device]
    subprocess.run(cmd, check=True)
    stats = json.loads((work / "refine_stats.json").read_text())
    print(
        f"refine: {stats['documents_read']} documents, {stats['documents_kept']} kept, "
        f"{stats['documents_modified']} edited -> {refined}"
    )


if __name__ == "__main__":
    main()
