"""The compiled part of tamis (Rust, PyO3). Every function releases the GIL while it works."""

from typing import Any, Final, final

__all__ = [
    "RECORD_ERROR_KINDS",
    "NearSignatureWriter",
    "TOKENIZER_ERROR_KINDS",
    "TamisError",
    "U64Matrix",
    "__version__",
    "dedup_exact",
    "dedup_lines",
    "dedup_near",
    "EMBED_ERROR_KINDS",
    "embed_init_checkpoint",
    "embed_rows",
    "exact_keep_mask_arrow",
    "hash_texts",
    "line_hashes",
    "main",
    "minhash",
    "minhash_hashes",
    "near_bands_rows",
    "near_buckets",
    "near_cluster",
    "near_clusters_arrow",
    "near_filter",
    "near_keep_mask_arrow",
    "near_shard_decisions",
    "near_shards",
    "near_signatures",
    "shingle_hashes",
    "shingle_words",
    "prox_chunks",
    "prox_doc_prompts",
    "prox_execute_arrow",
    "prox_execute_list",
    "prox_explain",
    "prox_outcomes",
    "prox_render",
    "prox_token_counts",
    "token_counts_arrow",
    "vocab_extend",
    "vocab_stats",
]

__version__: Final[str]
RECORD_ERROR_KINDS: Final[list[str]]
TOKENIZER_ERROR_KINDS: Final[list[str]]
EMBED_ERROR_KINDS: Final[list[str]]

class TamisError(ValueError):
    """A tamis error; ``kind`` is a stable snake_case slug (``invalid_json``, ``io``, ...).

    Record errors also carry ``path`` (the file) and ``location`` (``"line 3"`` or ``"row 3"``).
    """

    kind: str
    path: str
    location: str

def main(argv: list[str]) -> int:
    """Run the ``tamis`` command line with ``argv`` (program name first); returns the exit code."""

def dedup_exact(
    inputs: list[str],
    output: str,
    *,
    normalize: str = "none",
    key: str | None = None,
    text_key: str = "text",
    id_key: str = "id",
    on_error: str = "fail",
    rejects: str | None = None,
    threads: int = 0,
) -> str:
    """Exact dedup over files; returns the run statistics as JSON."""

def dedup_lines(
    inputs: list[str],
    output: str,
    *,
    max_occurrences: int = 1,
    min_line_chars: int = 0,
    normalize: str = "none",
    text_key: str = "text",
    id_key: str = "id",
    on_error: str = "fail",
    rejects: str | None = None,
    threads: int = 0,
) -> str:
    """Line dedup over files; returns the run statistics as JSON."""

def hash_texts(texts: Any, *, normalize: str = "none", threads: int = 0) -> Any:
    """16-byte big-endian XXH3-128 hashes of an Arrow string array or stream (Arrow chunked array)."""

def line_hashes(
    texts: Any, *, normalize: str = "none", min_line_chars: int = 0, threads: int = 0
) -> tuple[bytes, U64Matrix]:
    """Line-dedup hashes: per line of every text (split on ``\n``) a byte, 1 when eligible for
    removal; and the XXH3-128 hashes of the eligible lines as an ``m x 2`` (high, low) matrix."""

def exact_keep_mask_arrow(texts: Any, *, normalize: str = "none", threads: int = 0) -> Any:
    """Keep mask of exact dedup (first occurrences true, nulls kept) as an Arrow chunked array."""

def near_bands_rows(
    *,
    num_perm: int = 112,
    bands: int | None = None,
    rows: int | None = None,
    threshold: float | None = None,
    recall_weight: float | None = None,
) -> tuple[int, int, str]:
    """Resolved (bands, rows) for the given options, and the S-curve as text."""

def dedup_near(
    inputs: list[str],
    output: str,
    *,
    threshold: float | None = None,
    recall_weight: float | None = None,
    ngram: int = 5,
    shingle: str = "words",
    num_perm: int = 112,
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 1,
    sketch: str = "kperm",
    verify: bool = False,
    annotate: bool = False,
    priority: str | None = None,
    clusters: str | None = None,
    memory_limit: int | None = None,
    spill_dir: str | None = None,
    text_key: str = "text",
    id_key: str = "id",
    on_error: str = "fail",
    rejects: str | None = None,
    threads: int = 0,
) -> str:
    """Near-duplicate dedup over files; returns the run statistics as JSON."""

def near_signatures(
    inputs: list[str],
    workdir: str,
    *,
    rank: int = 0,
    world_size: int = 1,
    threshold: float | None = None,
    recall_weight: float | None = None,
    ngram: int = 5,
    shingle: str = "words",
    num_perm: int = 112,
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 1,
    sketch: str = "kperm",
    priority: str | None = None,
    memory_limit: int | None = None,
    text_key: str = "text",
    on_error: str = "fail",
    threads: int = 0,
) -> str:
    """Stage 1 over files (task ``rank`` of ``world_size``); returns the stats as JSON."""

def near_buckets(workdir: str, *, rank: int = 0, world_size: int = 1) -> str:
    """Stage 2 (task ``rank`` of ``world_size``); returns the stats as JSON."""

def near_cluster(workdir: str) -> str:
    """Stage 3 (single task); returns the stats as JSON."""

def near_filter(
    inputs: list[str],
    workdir: str,
    output: str,
    *,
    rank: int = 0,
    world_size: int = 1,
    annotate: bool = False,
    clusters: str | None = None,
    text_key: str = "text",
    id_key: str = "id",
    on_error: str = "fail",
    rejects: str | None = None,
    threads: int = 0,
) -> str:
    """Stage 4 over files (task ``rank`` of ``world_size``); returns the stats as JSON."""

def near_shards(workdir: str) -> list[tuple[str, int, int]]:
    """(source name, shard id, documents) of every shard in a work directory's manifests."""

def near_shard_decisions(workdir: str, shard: int) -> tuple[list[int], list[int], list[int], int]:
    """(ordinals, representatives, cluster sizes) of a shard's documents in clusters of two or
    more, and the shard's first dense index."""

@final
class NearSignatureWriter:
    """Signatures of one datatrove task, pushed from Python file by file."""

    def __new__(
        cls,
        workdir: str,
        *,
        rank: int,
        world_size: int,
        threshold: float | None = None,
        recall_weight: float | None = None,
        ngram: int = 5,
        shingle: str = "words",
        num_perm: int = 112,
        bands: int | None = None,
        rows: int | None = None,
        seed: int = 1,
        sketch: str = "kperm",
        priority: bool = False,
        memory_limit: int | None = None,
        threads: int = 0,
    ) -> NearSignatureWriter: ...
    def add(self, path: str, texts: Any, priorities: list[float] | None = None) -> None:
        """Add the next documents of source file ``path``."""
    def finish(self) -> str:
        """Write the remaining files and the manifest; returns the stats as JSON."""

@final
class U64Matrix:
    """A row-major uint64 matrix: ``numpy.asarray(m)`` views it, ``m.to_arrow()`` shares it."""

    @property
    def shape(self) -> tuple[int, int]: ...
    @property
    def __array_interface__(self) -> dict[str, Any]: ...
    def __len__(self) -> int: ...
    def to_arrow(self) -> Any:
        """The rows as an Arrow ``FixedSizeList<UInt64>`` array."""

def minhash(
    texts: Any,
    *,
    num_perm: int = 112,
    ngram: int = 5,
    shingle: str = "words",
    seed: int = 1,
    sketch: str = "kperm",
    threads: int = 0,
) -> U64Matrix:
    """MinHash signatures of an Arrow string array."""

def near_clusters_arrow(
    texts: Any,
    *,
    threshold: float | None = None,
    recall_weight: float | None = None,
    ngram: int = 5,
    shingle: str = "words",
    num_perm: int = 112,
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 1,
    sketch: str = "kperm",
    verify: bool = False,
    threads: int = 0,
) -> tuple[Any, Any]:
    """(representative index, cluster size) per row, as Arrow chunked arrays."""

def shingle_hashes(text: str, *, ngram: int = 5, shingle: str = "words") -> list[int]:
    """The 64-bit shingle hashes of one text, in order."""

def shingle_words(text: str) -> list[str]:
    """The words of one text as near-dedup sees them."""

def near_keep_mask_arrow(
    texts: Any,
    *,
    threshold: float | None = None,
    recall_weight: float | None = None,
    ngram: int = 5,
    shingle: str = "words",
    num_perm: int = 112,
    bands: int | None = None,
    rows: int | None = None,
    seed: int = 1,
    sketch: str = "kperm",
    verify: bool = False,
    threads: int = 0,
) -> Any:
    """Keep mask of in-memory near-dedup (each cluster's first text true, nulls kept)."""

def minhash_hashes(
    values: Any,
    offsets: Any,
    *,
    num_perm: int = 112,
    seed: int = 1,
    sketch: str = "kperm",
    threads: int = 0,
) -> U64Matrix:
    """MinHash signatures of pre-shingled documents (UInt64 values cut by n + 1 offsets)."""
def prox_execute_list(
    level: str,
    texts: list[str],
    programs: list[str],
    mode: str,
    accept: tuple[int, float, float, int],
    threads: int = 0,
) -> list[str]:
    """Run ProX programs (``level`` ``doc`` or ``chunk``) over lists; ``accept`` is
    ``(min_words, min_keep_ratio, min_edit_ratio, max_errors)``."""

def prox_execute_arrow(
    level: str,
    texts: Any,
    programs: Any,
    mode: str,
    accept: tuple[int, float, float, int],
    threads: int = 0,
) -> Any:
    """Run ProX programs over Arrow string arrays (Arrow chunked array; nulls give nulls)."""

def prox_explain(
    level: str, text: str, program: str, mode: str, accept: tuple[int, float, float, int]
) -> str:
    """What a program did, as JSON."""

def prox_chunks(
    texts: list[str],
    tokenizer_source: str,
    is_json: bool,
    chunk: tuple[int, int, bool, str, str],
    prompt_template: tuple[str, str, str, str, bool] | None = None,
    threads: int = 0,
) -> list[list[str]]:
    """Numbered chunk bodies of each text, or their rendered prompts when a template is given."""

def prox_doc_prompts(
    texts: list[str],
    tokenizer_source: str,
    is_json: bool,
    max_tokens: int,
    prompt_template: tuple[str, str, str, str, bool],
    threads: int = 0,
) -> list[tuple[list[int], str, bool]]:
    """Document-stage prompts: ``(token ids, text, truncated)`` for each text."""

def prox_render(user: str, prompt_template: tuple[str, str, str, str, bool]) -> str:
    """Render one prompt with a template ``(prefix, content, suffix, system, strip_content)``."""

def prox_outcomes(
    level: str,
    texts: list[str],
    programs: list[str],
    mode: str,
    accept: tuple[int, float, float, int],
    threads: int = 0,
) -> list[tuple[str, str, str, int]]:
    """Run ProX programs over lists: ``(text, outcome, reason, program errors)`` for each."""

def prox_token_counts(
    texts: list[str], tokenizer_source: str, is_json: bool, threads: int = 0
) -> list[int]:
    """Number of tokens of each text (no special tokens added)."""
def vocab_extend(
    tokenizer: str,
    tokenizer_name: str,
    corpus: list[str],
    *,
    new_tokens: int | None = None,
    min_frequency: int = 2,
    char_coverage: float = 0.9995,
    merge_from: str | None = None,
    merge_from_name: str = "<merge_from>",
    protect: list[str] = ...,
    pad_to_multiple_of: int | None = None,
    report: bool = False,
    heldout: list[str] = ...,
    text_key: str = "text",
    on_error: str = "fail",
    threads: int = 0,
) -> tuple[str, str, str | None]:
    """Extend a BPE tokenizer (JSON text) by continued BPE; returns (new tokenizer JSON, summary
    JSON, report JSON or None)."""

def vocab_stats(
    tokenizer: str,
    tokenizer_name: str,
    corpus: list[str],
    *,
    baseline: str | None = None,
    baseline_name: str = "<baseline>",
    protect: list[str] = ...,
    examples: int = 20,
    text_key: str = "text",
    on_error: str = "fail",
    threads: int = 0,
) -> tuple[str, str]:
    """The tokenizer report; returns (report JSON, summary text)."""

def token_counts_arrow(texts: Any, tokenizer: str, *, threads: int = 0) -> Any:
    """Tokens per text of an Arrow string array or stream (UInt32; nulls stay null), with the
    tokenizer given as JSON text; no special tokens are added."""

def embed_init_checkpoint(
    model: str,
    old_tokenizer: str,
    old_name: str,
    new_tokenizer: str,
    new_name: str,
    output: str,
    *,
    method: str = "ziptie",
    output_init: str = "mean",
    pad_to_multiple_of: int = 64,
    seed: int = 0,
    rescale_norm: bool = False,
    embed_name: str | None = None,
    lm_head_name: str | None = None,
) -> str:
    """Resize a safetensors model directory's embeddings for an extended tokenizer (JSON texts);
    returns the summary JSON."""

def embed_rows(
    old_tokenizer: str,
    old_name: str,
    new_tokenizer: str,
    new_name: str,
    input: bytes,
    output: bytes | None,
    dtype: str,
    rows: int,
    cols: int,
    *,
    method: str = "ziptie",
    output_init: str = "mean",
    pad_to_multiple_of: int = 64,
    seed: int = 0,
    rescale_norm: bool = False,
) -> tuple[int, bytes, bytes | None, str]:
    """The resized embedding matrices (raw little-endian bytes of `dtype`, `[rows, cols]`) for an
    extended tokenizer; returns (rows after, input bytes, output bytes or None, summary JSON)."""
