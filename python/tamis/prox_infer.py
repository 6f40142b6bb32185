"""ProX refining-model inference: run the doc and chunk refining LMs over documents and hand
their programs to the Rust executor (see ``docs/prox.md``).

Prompts, chunking and token ids come from the Rust formatter (:mod:`tamis.prox`); programs are
parsed and run in Rust, never evaluated. torch and transformers are imported only when a
transformers model is loaded (``pip install 'tamis[prox]'``).

Backends: ``transformers`` (default; greedy decoding with a hand-written KV-cache loop over
length-bucketed, left-padded batches under a token budget, per-sequence stop at EOS, optional
grammar-constrained chunk programs), ``vllm`` (offline engine, when installed) and ``openai`` (an
OpenAI-compatible ``/v1/completions`` server such as ``vllm serve`` or SGLang, stdlib HTTP).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from tamis import _core
from tamis._options import default
from tamis.errors import ProxModelError
from tamis.prox import DEFAULT, LLAMA2, PLAIN, Acceptance, ChunkOptions, Mode, PromptTemplate
from tamis.prox_grammar import ProgramAutomaton, Vocabulary

DEFAULT_DOC_MODEL = "gair-prox/web-doc-refining-lm"
DEFAULT_CHUNK_MODEL = "gair-prox/web-chunk-refining-lm"

Stage = Literal["doc", "chunk", "both"]
BackendName = Literal["transformers", "vllm", "openai"]


@dataclass(frozen=True)
class ProxModelOptions:
    """A ProX refining-model stage, ``prox_doc`` or ``prox_chunk``
    (``tamis_core::refine::ProxModelOptions``): ``model`` (a local directory, or ``"auto"``:
    ``$TAMIS_PROX_DOC_MODEL`` / ``$TAMIS_PROX_CHUNK_MODEL`` or the released model already in the
    Hugging Face cache), the executor ``mode``, the inference ``backend`` (``base_url`` for
    ``openai``), ``device``, ``dtype``, ``batch_tokens`` per generation batch, ``window``
    documents per call, ``raw_key`` (the original text of edited documents; ``""`` for none),
    ``doc_fast_tokens`` (``prox_doc`` only), ``constrain`` (``prox_chunk`` only) and
    ``max_new_tokens`` (default: the reference's)."""

    model: str = default("prox_model", "model")
    mode: Mode = default("prox_model", "mode")
    backend: BackendName = default("prox_model", "backend")
    base_url: str | None = default("prox_model", "base_url")
    device: str | None = default("prox_model", "device")
    dtype: str | None = default("prox_model", "dtype")
    batch_tokens: int = default("prox_model", "batch_tokens")
    window: int = default("prox_model", "window")
    raw_key: str = default("prox_model", "raw_key")
    doc_fast_tokens: int | None = default("prox_model", "doc_fast_tokens")
    constrain: bool | None = default("prox_model", "constrain")
    max_new_tokens: int | None = default("prox_model", "max_new_tokens")


_HF_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_model(name: str | os.PathLike[str]) -> Path:
    """The local directory of a refining model: ``name`` itself, or a Hugging Face id looked up
    (and fetched, where there is network) with ``huggingface_hub``. It must hold ``config.json``
    and ``*.safetensors`` weights (pickled ``.bin`` weights are never loaded)."""
    path = Path(name)
    if not path.exists():
        text = os.fspath(name)
        if not _HF_ID.match(text):
            raise ProxModelError(f"refining model {text!r}: no such directory")
        try:
            from huggingface_hub import snapshot_download

            path = Path(
                snapshot_download(text, allow_patterns=["*.json", "*.safetensors", "tokenizer.model"])
            )
        except Exception as e:
            raise ProxModelError(
                f"refining model {text!r} is neither a local directory nor reachable on the Hugging "
                f"Face Hub ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). Download it "
                f"where there is network, e.g. `huggingface-cli download {text} --local-dir DIR`, "
                "and pass the directory (--doc-model DIR / --chunk-model DIR, or "
                "Refiner(doc_model=DIR, chunk_model=DIR))"
            ) from e
    if not path.is_dir():
        raise ProxModelError(f"refining model {os.fspath(path)!r} is not a directory")
    if not (path / "config.json").is_file():
        raise ProxModelError(f"refining model {os.fspath(path)!r}: no config.json")
    if not any(path.glob("*.safetensors")):
        raise ProxModelError(
            f"refining model {os.fspath(path)!r}: no *.safetensors weights (only safetensors are "
            "loaded; convert pickled .bin weights first)"
        )
    return path


def tokenizer_json(path: Path) -> str:
    """The model's tokenizer as ``tokenizer.json`` text (converted by transformers from a
    SentencePiece ``tokenizer.model`` when the directory has no ``tokenizer.json``)."""
    tj = path / "tokenizer.json"
    if tj.is_file():
        return tj.read_text(encoding="utf-8")
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(
            path, use_fast=True, trust_remote_code=False, local_files_only=True
        )
        return str(tok.backend_tokenizer.to_str())
    except Exception as e:
        raise ProxModelError(
            f"refining model {os.fspath(path)!r}: no tokenizer.json, and it could not be converted "
            f"({type(e).__name__}: {e})"
        ) from e


def _special_id(tokenizer_text: str, content: str) -> int | None:
    for t in json.loads(tokenizer_text).get("added_tokens", []):
        if t["content"] == content:
            return int(t["id"])
    return None


# --------------------------------------------------------------------------------------------
# Backends


@dataclass
class Generation:
    """Generated texts (in prompt order) and the number of tokens generated for each."""

    texts: list[str]
    tokens: list[int]


class Backend(Protocol):
    """Greedy generation from token ids."""

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: Sequence[int],
        constraints: Sequence[ProgramAutomaton | None] | None = None,
    ) -> Generation: ...


def plan_batches(
    lengths: Sequence[int], max_new: Sequence[int], batch_tokens: int, max_batch: int = 1024
) -> list[list[int]]:
    """Length-bucketed batches: prompts sorted by length (longest first, ties in input order),
    cut so that ``rows * (longest prompt + most new tokens) <= batch_tokens`` (at least one row)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    cur: list[int] = []
    width = 0
    for i in order:
        w = max(width, lengths[i] + max_new[i])
        if cur and ((len(cur) + 1) * w > batch_tokens or len(cur) >= max_batch):
            batches.append(cur)
            cur, w = [], lengths[i] + max_new[i]
        cur.append(i)
        width = w
    if cur:
        batches.append(cur)
    return batches


class TransformersBackend:
    """A causal LM loaded with transformers (safetensors only, ``trust_remote_code`` off): bf16
    (fp16 where bf16 is unsupported) on GPU, fp32 on CPU, unless ``dtype`` says otherwise."""

    def __init__(
        self,
        path: Path,
        tokenizer_text: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        batch_tokens: int = 65536,
        attn_implementation: str | None = None,
    ) -> None:
        try:
            import torch
            import transformers
            from transformers import AutoModelForCausalLM
        except ImportError as e:
            raise ProxModelError(
                "the transformers backend needs torch and transformers: pip install 'tamis[prox]'"
            ) from e
        from tokenizers import Tokenizer

        self.torch = torch
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        if dtype is None:
            if self.device.type == "cuda":
                dt = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            else:
                dt = torch.float32
        else:
            dt = {
                "bf16": torch.bfloat16,
                "bfloat16": torch.bfloat16,
                "fp16": torch.float16,
                "float16": torch.float16,
                "fp32": torch.float32,
                "float32": torch.float32,
            }[dtype]
        major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
        dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"
        kwargs: dict[str, Any] = {
            dtype_kw: dt,
            "use_safetensors": True,
            "trust_remote_code": False,
            "local_files_only": True,
        }
        if attn_implementation:
            kwargs["attn_implementation"] = attn_implementation
        try:
            model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        except Exception as e:
            raise ProxModelError(
                f"refining model {os.fspath(path)!r} cannot be loaded: {type(e).__name__}: {e}"
            ) from e
        self.model: Any = model.to(self.device).eval()  # type: ignore[arg-type]
        self.tokenizer = Tokenizer.from_str(tokenizer_text)
        eos = self.model.config.eos_token_id
        if isinstance(eos, list):
            eos = eos[0]
        if eos is None:
            eos = _special_id(tokenizer_text, "</s>")
        if eos is None:
            raise ProxModelError(f"refining model {os.fspath(path)!r}: no eos_token_id")
        self.eos = int(eos)
        pad = self.model.config.pad_token_id
        self.pad = int(pad) if isinstance(pad, int) else self.eos
        self.batch_tokens = batch_tokens
        import inspect

        params = inspect.signature(self.model.forward).parameters
        self._keep_kw = next((k for k in ("logits_to_keep", "num_logits_to_keep") if k in params), None)
        # transformers 5 renamed past_key_values to cache.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    def _forward(self, cache: Any = None, **kw: Any) -> tuple[Any, Any]:
        """(logits of the last position, KV cache)."""
        if self._keep_kw:
            kw[self._keep_kw] = 1
        if cache is not None:
            kw[self._cache_kw] = cache
        out = self.model(**kw, use_cache=True)
        cache = out.cache if self._cache_kw == "cache" else out.past_key_values
        return out.logits[:, -1, :], cache

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: Sequence[int],
        constraints: Sequence[ProgramAutomaton | None] | None = None,
    ) -> Generation:
        out_ids: list[list[int]] = [[] for _ in prompts]
        live = [i for i, n in enumerate(max_new_tokens) if n > 0 and prompts[i]]
        batches = plan_batches(
            [len(prompts[i]) for i in live], [max_new_tokens[i] for i in live], self.batch_tokens
        )
        for b in batches:
            rows = [live[j] for j in b]
            cons = [constraints[r] for r in rows] if constraints is not None else None
            for r, ids in zip(
                rows,
                self._batch([prompts[r] for r in rows], [max_new_tokens[r] for r in rows], cons),
                strict=True,
            ):
                out_ids[r] = ids
        texts = self.tokenizer.decode_batch(out_ids, skip_special_tokens=True) if out_ids else []
        return Generation(texts=list(texts), tokens=[len(x) for x in out_ids])

    def _batch(
        self, prompts: list[Sequence[int]], max_new: list[int], cons: list[ProgramAutomaton | None] | None
    ) -> list[list[int]]:
        """Greedy decoding of one left-padded batch with a KV cache. Finished rows are dropped
        from the batch (and its cache) as soon as at least a quarter of the rows are done."""
        torch = self.torch
        dev = self.device
        n, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((n, width), self.pad, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(list(p), dtype=torch.long)
            mask[i, width - len(p) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits, cache = self._forward(input_ids=ids, attention_mask=mask, position_ids=pos)
            pos = pos[:, -1:]
            rows = list(range(n))  # batch row -> prompt index
            limit = torch.tensor(max_new, device=dev)
            results: list[list[int]] = [[] for _ in range(n)]
            gen = torch.empty((n, max(max_new)), dtype=torch.long, device=dev)
            done = torch.zeros(n, dtype=torch.bool, device=dev)
            steps = torch.zeros(n, dtype=torch.long, device=dev)
            step = 0
            while True:
                active = ~done[rows]
                # Rows that are done stay in the batch until compaction; their automata rest.
                live_cons = None
                if cons is not None:
                    flags = active.tolist()
                    live_cons = [cons[r] if f else None for r, f in zip(rows, flags, strict=True)]
                    logits = self._constrain(logits, live_cons, [max_new[r] - step for r in rows])
                nxt = logits.argmax(-1)
                gen[rows, step] = nxt
                if live_cons is not None:
                    for j, c in enumerate(live_cons):
                        if c is not None:
                            c.advance(int(nxt[j]))
                steps[rows] += active.long()
                done[rows] |= (nxt == self.eos) | (steps[rows] >= limit[rows])
                step += 1
                fin = done[rows].tolist()
                if all(fin):
                    break
                if sum(fin) * 4 >= len(rows):
                    keep = [j for j, f in enumerate(fin) if not f]
                    idx = torch.tensor(keep, device=dev)
                    cache.batch_select_indices(idx)
                    mask, nxt, pos = mask[idx], nxt[idx], pos[idx]
                    rows = [rows[j] for j in keep]
                mask = torch.cat([mask, torch.ones((len(rows), 1), dtype=mask.dtype, device=dev)], dim=1)
                pos = pos + 1
                logits, cache = self._forward(
                    cache, input_ids=nxt[:, None], attention_mask=mask, position_ids=pos
                )
            gen_cpu = gen.cpu().tolist()
            counts = steps.cpu().tolist()
        for i in range(n):
            seq = gen_cpu[i][: counts[i]]
            if seq and seq[-1] == self.eos:
                seq = seq[:-1]
            results[i] = seq
        return results

    def _constrain(self, logits: Any, cons: list[ProgramAutomaton | None], budgets: list[int]) -> Any:
        torch = self.torch
        masked = torch.full_like(logits, float("-inf"))
        for j, c in enumerate(cons):
            if c is None:
                masked[j] = logits[j]
                continue
            ids, strings = c.allowed(budgets[j])
            if strings:
                sid = self._string_ids(c.vocab)
                masked[j, sid] = logits[j, sid]
            if ids:
                t = torch.tensor(ids, device=logits.device)
                masked[j, t] = logits[j, t]
        return masked

    def _string_ids(self, vocab: Vocabulary) -> Any:
        cached = getattr(self, "_sid", None)
        if cached is None or cached[0] is not vocab:
            cached = (vocab, self.torch.tensor(vocab.string_ids, device=self.device))
            self._sid = cached
        return cached[1]


class OpenAIBackend:
    """An OpenAI-compatible completions server (``vllm serve``, SGLang, …) reached over HTTP
    with the standard library: prompts are sent as token ids, greedily (``temperature=0``)."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        concurrency: int = 16,
        timeout: float = 600.0,
        api_key: str | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/completions"
        self.model, self.concurrency, self.timeout = model, concurrency, timeout
        self.api_key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")

    def _one(self, prompt: Sequence[int], max_tokens: int) -> tuple[str, int]:
        if max_tokens <= 0 or not prompt:
            return "", 0
        body = json.dumps(
            {"model": self.model, "prompt": list(prompt), "max_tokens": max_tokens, "temperature": 0.0}
        ).encode()
        req = urllib.request.Request(self.url, data=body, headers={"Content-Type": "application/json"})
        if self.api_key:
            req.add_header("Authorization", f"Bearer {self.api_key}")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read())
        except urllib.error.HTTPError as e:
            raise ProxModelError(f"{self.url}: HTTP {e.code}: {e.read()[:500]!r}") from e
        except urllib.error.URLError as e:
            raise ProxModelError(f"{self.url}: {e.reason}") from e
        text = data["choices"][0]["text"]
        usage = data.get("usage") or {}
        return text, int(usage.get("completion_tokens", 0))

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: Sequence[int],
        constraints: Sequence[ProgramAutomaton | None] | None = None,
    ) -> Generation:
        with ThreadPoolExecutor(self.concurrency) as pool:
            res = list(pool.map(self._one, prompts, max_new_tokens))
        return Generation([r[0] for r in res], [r[1] for r in res])


class VllmBackend:
    """vLLM's offline engine (continuous batching inside one ``generate`` call)."""

    def __init__(
        self,
        path: Path,
        *,
        dtype: str | None = None,
        max_model_len: int = 2048,
        gpu_memory_utilization: float = 0.9,
    ) -> None:
        try:
            from vllm import LLM, SamplingParams
        except ImportError as e:
            raise ProxModelError("the vllm backend needs vLLM: pip install vllm") from e
        self._params = SamplingParams
        self.llm = LLM(
            model=os.fspath(path),
            dtype=dtype or "auto",
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            trust_remote_code=False,
        )

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        max_new_tokens: Sequence[int],
        constraints: Sequence[ProgramAutomaton | None] | None = None,
    ) -> Generation:
        live = [i for i, n in enumerate(max_new_tokens) if n > 0 and prompts[i]]
        texts, tokens = [""] * len(prompts), [0] * len(prompts)
        if live:
            reqs = [{"prompt_token_ids": list(prompts[i])} for i in live]
            params = [self._params(temperature=0.0, max_tokens=max_new_tokens[i]) for i in live]
            outs = self.llm.generate(reqs, params, use_tqdm=False)
            for i, o in zip(live, outs, strict=True):
                texts[i], tokens[i] = o.outputs[0].text, len(o.outputs[0].token_ids)
        return Generation(texts, tokens)


# --------------------------------------------------------------------------------------------
# The refiner


@dataclass
class StageStats:
    """Counters of one stage."""

    documents: int = 0
    kept: int = 0
    dropped: int = 0
    edited: int = 0
    programs_with_errors: int = 0
    programs_discarded: int = 0
    prompts: int = 0
    truncated_prompts: int = 0
    skipped_prompts: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)

    def add(self, other: StageStats) -> None:
        for k, v in vars(other).items():
            if k == "reasons":
                for r, n in v.items():
                    self.reasons[r] = self.reasons.get(r, 0) + n
            else:
                setattr(self, k, getattr(self, k) + v)

    def as_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["reasons"] = dict(sorted(self.reasons.items()))
        d["token_share_kept"] = self.tokens_out / self.tokens_in if self.tokens_in else None
        d["seconds"] = round(self.seconds, 3)
        return d


@dataclass
class RefineResult:
    """Per document: the refined ``texts`` (``""`` = dropped), the programs (``None`` where a
    stage did not run), and the stats of this call."""

    texts: list[str]
    doc_programs: list[str | None]
    chunk_programs: list[str | None]
    stats: dict[str, StageStats]


class Refiner:
    """Run ProX's doc and chunk refining models over documents.

    ``doc_model`` / ``chunk_model``: local directories (or Hugging Face ids, fetched only where
    there is network). ``stage``: ``doc``, ``chunk`` or ``both``. ``mode``: the executor
    (``compat`` or ``strict``); in strict mode chunk programs are decoded under the program
    grammar (``constrain``, transformers backend) so that every one parses.
    ``doc_fast_tokens``: decide keep/drop from that many decoding steps instead of a full greedy
    generation (off by default). Budgets default to the reference: doc prompts truncated at 2000
    tokens, chunks of at most 1500 tokens, 2000/256 new tokens, context 2048.
    """

    def __init__(
        self,
        doc_model: str | os.PathLike[str] | None = DEFAULT_DOC_MODEL,
        chunk_model: str | os.PathLike[str] | None = DEFAULT_CHUNK_MODEL,
        *,
        stage: Stage = "both",
        mode: Mode = "compat",
        accept: Acceptance = DEFAULT,
        backend: BackendName = "transformers",
        device: str | None = None,
        dtype: str | None = None,
        batch_tokens: int = 65536,
        doc_max_tokens: int = 2000,
        chunk_max_tokens: int = 1500,
        doc_max_new_tokens: int = 2000,
        chunk_max_new_tokens: int = 256,
        max_model_len: int = 2048,
        doc_fast_tokens: int | None = None,
        constrain: bool | None = None,
        chunk_extra_bos: bool = True,
        template: PromptTemplate = LLAMA2,
        base_url: str | None = None,
        threads: int = 0,
    ) -> None:
        if stage not in ("doc", "chunk", "both"):
            raise ValueError(f"stage must be doc, chunk or both, got {stage!r}")
        if mode not in ("compat", "strict"):
            raise ValueError(f"mode must be compat or strict, got {mode!r}")
        if backend not in ("transformers", "vllm", "openai"):
            raise ValueError(f"backend must be transformers, vllm or openai, got {backend!r}")
        if batch_tokens < 1:
            raise ValueError("batch_tokens must be >= 1")
        self.stage, self.mode, self.accept, self.threads = stage, mode, accept, threads
        self.template = template
        self.doc_max_tokens, self.chunk_max_tokens = doc_max_tokens, chunk_max_tokens
        self.doc_max_new_tokens = doc_fast_tokens if doc_fast_tokens else doc_max_new_tokens
        self.chunk_max_new_tokens, self.max_model_len = chunk_max_new_tokens, max_model_len
        self.constrain = (mode == "strict") if constrain is None else constrain
        self.chunk_extra_bos = chunk_extra_bos
        self.stats = {"doc": StageStats(), "chunk": StageStats()}

        def load(name: str | os.PathLike[str] | None, what: str) -> tuple[Backend, str] | None:
            if name is None:
                raise ValueError(f"stage {stage!r} needs a {what} model")
            if backend == "openai":
                if not base_url:
                    raise ValueError("the openai backend needs base_url (e.g. http://localhost:8000/v1)")
                # The server holds the weights; the tokenizer comes from a local directory.
                return OpenAIBackend(base_url, os.fspath(name)), tokenizer_json(resolve_model(name))
            path = resolve_model(name)
            tok = tokenizer_json(path)
            if backend == "vllm":
                return VllmBackend(path, dtype=dtype, max_model_len=max_model_len), tok
            return TransformersBackend(path, tok, device=device, dtype=dtype, batch_tokens=batch_tokens), tok

        self._doc = load(doc_model, "doc") if stage in ("doc", "both") else None
        self._chunk = load(chunk_model, "chunk") if stage in ("chunk", "both") else None
        self._vocab: Vocabulary | None = None
        if self._chunk is not None and self.constrain:
            if backend != "transformers":
                raise ValueError("constrained decoding needs the transformers backend")
            self._vocab = Vocabulary(self._chunk[1])

    # The Rust formatter reads the tokenizer from its JSON text.
    def _doc_stage(self, texts: list[str], st: StageStats) -> tuple[list[str], list[str | None]]:
        assert self._doc is not None
        backend, tok = self._doc
        st.documents += len(texts)
        live = [i for i, t in enumerate(texts) if t]
        prompts = _core.prox_doc_prompts(
            [texts[i] for i in live], tok, True, self.doc_max_tokens, self.template._args(), self.threads
        )
        ids = [p[0] for p in prompts]
        st.prompts += len(ids)
        st.truncated_prompts += sum(1 for p in prompts if p[2])
        st.prompt_tokens += sum(len(x) for x in ids)
        budgets = [min(self.doc_max_new_tokens, self.max_model_len - len(x)) for x in ids]
        st.skipped_prompts += sum(1 for b in budgets if b <= 0)
        gen = backend.generate(ids, budgets)
        st.generated_tokens += sum(gen.tokens)
        programs: list[str | None] = [""] * len(texts)
        for i, text in zip(live, gen.texts, strict=True):
            programs[i] = text.strip(" ")
        outs = _core.prox_outcomes(
            "doc", texts, [p or "" for p in programs], self.mode, self.accept._args(), self.threads
        )
        results = []
        for text, (out, _outcome, reason, errors) in zip(texts, outs, strict=True):
            dropped = not out
            reason = reason if text else "empty"
            st.dropped += dropped
            st.kept += not dropped
            st.programs_with_errors += errors > 0
            if dropped:
                st.reasons[reason] = st.reasons.get(reason, 0) + 1
            results.append(out if not dropped else "")
        return results, programs

    def _chunk_stage(self, texts: list[str], st: StageStats) -> tuple[list[str], list[str | None]]:
        assert self._chunk is not None
        backend, tok = self._chunk
        st.documents += len(texts)
        chunk_args = ChunkOptions(max_tokens=self.chunk_max_tokens)._args()
        per_doc = _core.prox_chunks(texts, tok, True, chunk_args, self.template._args(), self.threads)
        flat = [p for ps in per_doc for p in ps]
        enc = _core.prox_doc_prompts(flat, tok, True, 1 << 62, PLAIN._args(), self.threads)
        bos = _special_id(tok, "<s>")
        # The reference hands the rendered prompt (which holds "<s>") to vLLM, whose encode adds
        # another BOS: keep that double BOS unless asked not to.
        ids = [([bos] if self.chunk_extra_bos and bos is not None else []) + list(e[0]) for e in enc]
        st.prompts += len(ids)
        st.prompt_tokens += sum(len(x) for x in ids)
        budgets = [min(self.chunk_max_new_tokens, self.max_model_len - len(x)) for x in ids]
        # Like vLLM 0.4, a prompt that leaves no room is skipped: its chunk gets no program.
        st.skipped_prompts += sum(1 for b in budgets if b <= 0)
        constraints: list[ProgramAutomaton | None] | None = None
        if self._vocab is not None:
            bare = ChunkOptions(max_tokens=self.chunk_max_tokens, open="", close="")._args()
            bodies = _core.prox_chunks(texts, tok, True, bare, None, self.threads)
            eos = _special_id(tok, "</s>")
            constraints = []
            for chunks in bodies:
                first = 0
                for body in chunks:
                    n = body.count("\n") + 1
                    constraints.append(ProgramAutomaton(self._vocab, first, first + n - 1, eos or 2))
                    first += n
        gen = backend.generate(ids, budgets, constraints)
        st.generated_tokens += sum(gen.tokens)
        programs: list[str | None] = []
        k = 0
        for ps in per_doc:
            outs = gen.texts[k : k + len(ps)]
            k += len(ps)
            programs.append("\n".join(o.strip(" ") for o in outs))
        res = _core.prox_outcomes(
            "chunk", texts, [p or "" for p in programs], self.mode, self.accept._args(), self.threads
        )
        results = []
        for out, outcome, reason, errors in res:
            st.programs_with_errors += errors > 0
            st.programs_discarded += reason == "too_many_errors"
            if outcome == "dropped":
                st.dropped += 1
                st.reasons[reason] = st.reasons.get(reason, 0) + 1
            else:
                st.kept += 1
                st.edited += outcome == "edited"
            results.append(out)
        return results, programs

    def _count(self, texts: list[str], tok: str) -> int:
        return sum(_core.prox_token_counts(texts, tok, True, self.threads))

    def refine(self, texts: Sequence[str]) -> RefineResult:
        """Refine ``texts``: the doc stage on every document, the chunk stage on those kept."""
        texts = list(texts)
        result = list(texts)
        doc_programs: list[str | None] = [None] * len(texts)
        chunk_programs: list[str | None] = [None] * len(texts)
        stats = {"doc": StageStats(), "chunk": StageStats()}
        if self._doc is not None:
            t0 = time.perf_counter()
            st = stats["doc"]
            result, doc_programs = self._doc_stage(texts, st)
            st.tokens_in = self._count(texts, self._doc[1])
            st.tokens_out = self._count(result, self._doc[1])
            st.seconds = time.perf_counter() - t0
        if self._chunk is not None:
            t0 = time.perf_counter()
            st = stats["chunk"]
            live = [i for i, t in enumerate(result) if t]
            if self._doc is None:  # empty documents never reach the model
                st.documents += len(texts) - len(live)
                st.dropped += len(texts) - len(live)
                if len(live) < len(texts):
                    st.reasons["empty"] = len(texts) - len(live)
            sub = [result[i] for i in live]
            refined, progs = self._chunk_stage(sub, st)
            st.tokens_in = self._count(sub, self._chunk[1])
            st.tokens_out = self._count(refined, self._chunk[1])
            for i, r, p in zip(live, refined, progs, strict=True):
                result[i], chunk_programs[i] = r, p
            st.seconds = time.perf_counter() - t0
        for k in stats:
            self.stats[k].add(stats[k])
        return RefineResult(result, doc_programs, chunk_programs, stats)

    def stats_dict(self) -> dict[str, Any]:
        """Accumulated stats of every :meth:`refine` call so far."""
        return {k: v.as_dict() for k, v in self.stats.items() if v.documents}
