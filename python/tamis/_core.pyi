"""The compiled part of tamis (Rust, PyO3): conversion, GIL release and error mapping over
tamis-core. Every function releases the GIL while it works. Options cross as the JSON of their
core types (``*_json`` arguments; :mod:`tamis._options` makes it from the dataclasses)."""

import os
from collections.abc import Iterator
from typing import Any, ClassVar, Final, final

__all__ = [
    "Batch",
    "ConfigError",
    "EMBED_ERROR_KINDS",
    "ExactKeepTable",
    "ExactSignatureWriter",
    "FastText",
    "LanguageIdentifier",
    "LineKeepTable",
    "LineSignatureWriter",
    "NearPathFilter",
    "NearSignatureWriter",
    "NgramIndexes",
    "ProxPromptItems",
    "RECORD_ERROR_KINDS",
    "SubstringPathCutter",
    "SubstringSequenceWriter",
    "TOKENIZER_ERROR_KINDS",
    "TamisError",
    "TextBatches",
    "TextShardWriter",
    "U64Matrix",
    "__version__",
    "check_options",
    "decontaminate",
    "dedup_exact",
    "dedup_lines",
    "dedup_near",
    "dedup_substring",
    "embed_init_checkpoint",
    "embed_rows",
    "exact_keep_mask_arrow",
    "hash_texts",
    "index_add",
    "index_build",
    "index_info_json",
    "keep_field",
    "line_hashes",
    "main",
    "minhash",
    "minhash_hashes",
    "mix",
    "mix_to_shards",
    "near_bands_rows",
    "near_buckets",
    "near_cluster",
    "near_clusters_arrow",
    "near_filter",
    "near_keep_mask_arrow",
    "near_signatures",
    "option_defaults",
    "prox_chunks",
    "prox_doc_prompts",
    "prox_execute_arrow",
    "prox_execute_list",
    "prox_explain",
    "prox_outcomes",
    "prox_prompt_items",
    "prox_render",
    "prox_token_counts",
    "read_toml",
    "refine_check",
    "refine_config",
    "refine_config_file",
    "refine_quick_config",
    "refine_run",
    "refine_summary",
    "run_stages",
    "shingle_hashes",
    "shingle_words",
    "stage_types",
    "substring_find",
    "token_counts_arrow",
    "tokenize",
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
    fields: list[str]

class ConfigError(TamisError):
    """An invalid option or configuration, found before any work; ``fields`` names the options."""

# --- the command line, options and the stage registry ------------------------------------------

def main(argv: list[str], stages: Any = None) -> int:
    """Run the ``tamis`` command line with ``argv`` (program name first); ``stages`` runs the
    stages that live in Python. Returns the exit code."""

def stage_types() -> str:
    """The stage registry as JSON."""

def option_defaults() -> str:
    """The defaults of every options type, by capability, as JSON."""

def check_options(capability: str, options_json: str) -> str:
    """Options of ``capability`` checked, with every default, as JSON."""

# --- tamis refine -----------------------------------------------------------------------------

def refine_config(config: str, base_dir: str) -> str:
    """A configuration (JSON) checked without its stages' resources, as JSON."""

def refine_config_file(path: str, output: str | None = None) -> str:
    """A TOML configuration file read and checked, as JSON."""

def refine_quick_config(inputs: list[str], output: str, options: str) -> str:
    """The configuration of ``tamis refine INPUT... -o OUTDIR`` with ``options``, as JSON."""

def refine_check(config: str, base_dir: str, stages: Any, *, inputs: bool = True) -> str:
    """A configuration checked with its stages' resources (and its inputs), as JSON."""

def read_toml(path: str) -> str:
    """A TOML file as JSON."""

def refine_run(config: str, base_dir: str, stages: Any, *, restart: bool = False) -> str:
    """Run (or resume) a refinement; returns the report as JSON."""

def refine_summary(report: str) -> str:
    """A plain-text summary of a report."""

def run_stages(inputs: list[str], output: str, stages_json: str, io_json: str, stages: Any) -> str:
    """Run shard stages over files into one output; returns stats and per-stage counts (JSON)."""

@final
class Batch:
    """Documents handed to a Python stage."""

    @property
    def ids(self) -> list[str]: ...
    @property
    def texts(self) -> list[str]: ...
    def __len__(self) -> int: ...
    def field(self, name: str) -> list[Any]:
        """A record field the stage asked for, per document (``None`` where missing)."""
    def arrow(self) -> Any:
        """The batch as an Arrow record batch (``id``, ``text``)."""

# --- fastText ---------------------------------------------------------------------------------

@final
class FastText:
    """A fastText supervised model (``.bin`` or quantized ``.ftz``), read and run in Rust."""

    def __new__(cls, path: str | os.PathLike[str]) -> FastText: ...
    @staticmethod
    def embedded() -> FastText:
        """The built-in ``lid.176.ftz`` (176 languages)."""
    @property
    def labels(self) -> list[str]:
        """The labels, in the model's order."""
    def predict(
        self, texts: list[str], k: int = 1, threshold: float = 0.0, threads: int = ...
    ) -> list[list[tuple[str, float]]]:
        """The ``k`` most likely labels of each text with their probabilities, most likely first."""

@final
class LanguageIdentifier:
    """The ``language`` stage of ``tamis refine`` (options: ``LanguageOptions`` as JSON)."""

    def __new__(cls, options_json: str) -> LanguageIdentifier: ...
    def decide(self, texts: list[str], threads: int = ...) -> list[tuple[str, float, str]]:
        """Per text: language, probability, drop reason (``""`` when kept)."""
    def outcome(
        self, texts: list[str], threads: int = ...
    ) -> tuple[list[bool], list[str], list[str], list[float], list[str]]:
        """Keep, reasons, languages, scores rounded to 4 digits, details: as ``tamis refine``."""

# --- mixing ----------------------------------------------------------------------------------

def mix(options_json: str, io_json: str, output: str) -> str:
    """Mix sources to a token budget into ``output``; returns the manifest as JSON."""

def mix_to_shards(options_json: str, tokenize_json: str, io_json: str, outdir: str | os.PathLike[str]) -> str:
    """Mix sources straight into token shards; returns ``{"mix", "shards"}`` as JSON."""

# --- tokenization into shards ----------------------------------------------------------------

def tokenize(inputs: list[str], output: str, tokenizer: str, options_json: str, io_json: str) -> str:
    """Tokenize ``inputs`` into shards in the directory ``output``; returns the manifest as JSON."""

@final
class TextShardWriter:
    """Texts in, token shards ``{prefix}_NNNNN`` out, in ``output`` (as ``tokenize`` writes them)."""

    def __new__(
        cls,
        output: str | os.PathLike[str],
        tokenizer: str | os.PathLike[str],
        options_json: str,
        prefix: str,
        threads: int = ...,
    ) -> TextShardWriter: ...
    def add(self, texts: Any) -> None: ...
    def finish(self) -> str: ...
    @property
    def documents(self) -> int: ...

# --- persistent indexes and decontamination ------------------------------------------------------

def index_build(inputs: list[str], index: str, options_json: str, io_json: str) -> str:
    """Build a new index directory from inputs; returns the run statistics as JSON."""

def index_add(
    index: str,
    inputs: list[str],
    io_json: str,
    memory_limit: str | None = None,
    spill_dir: str | None = None,
) -> str:
    """Add inputs to an index as a new segment; returns the run statistics as JSON."""

def index_info_json(index: str) -> str:
    """What an index holds, as JSON, after checking every file."""

def decontaminate(inputs: list[str], output: str, options_json: str, io_json: str) -> str:
    """Decontaminate files against n-gram indexes; returns the run statistics as JSON."""

@final
class NgramIndexes:
    """The n-gram indexes of DecontOptions JSON, opened and checked once."""

    def __new__(cls, options_json: str) -> NgramIndexes: ...
    def contaminated(self, texts: Any, threads: int = ...) -> Any: ...
    def decide(self, texts: list[str], threads: int = ...) -> list[tuple[bool, str | None, list[str]]]: ...
    def hits(self, text: str) -> list[tuple[str, str, int, int]]: ...

# --- exact and line dedup ---------------------------------------------------------------------

def dedup_exact(inputs: list[str], output: str, options_json: str, io_json: str) -> str:
    """Exact dedup over files; returns the run statistics as JSON."""

def dedup_lines(inputs: list[str], output: str, options_json: str, io_json: str) -> str:
    """Line dedup over files; returns the run statistics as JSON."""

def dedup_substring(inputs: list[str], output: str, options_json: str, io_json: str) -> str:
    """Exact-substring dedup over files; returns the run statistics as JSON."""

def keep_field(capability: str, options_json: str) -> str | None:
    """The record field the keep policy of ``exact`` or ``near`` options reads, if any."""

def hash_texts(texts: Any, options_json: str, threads: int = ...) -> Any:
    """16-byte content hashes (Arrow binary) of an Arrow string array."""

def exact_keep_mask_arrow(texts: Any, options_json: str, threads: int = ..., values: Any = None) -> Any:
    """Arrow boolean array: the row each group keeps (``values``: the keep field's column)."""

def line_hashes(texts: Any, options_json: str, threads: int = ...) -> tuple[bytes, U64Matrix]:
    """Per line, 1 when eligible; and the (high, low) halves of the eligible lines' hashes."""

@final
class ExactSignatureWriter:
    """Stage 1 of two-stage exact dedup for one task."""

    SUFFIX: ClassVar[str]
    def __new__(cls, options_json: str, threads: int = ...) -> ExactSignatureWriter: ...
    def add(self, paths: list[str], texts: Any, values: list[float | None] | None = None) -> None: ...
    def finish(self, rank: int, world_size: int) -> bytes: ...
    @property
    def documents(self) -> int: ...
    @property
    def files(self) -> int: ...

@final
class ExactKeepTable:
    """Stage 2 of two-stage exact dedup: keep decisions from every task's signatures."""

    def __new__(
        cls,
        files: list[tuple[str, bytes]],
        normalize: str | None = None,
        threads: int = ...,
    ) -> ExactKeepTable: ...
    def against(self, against: list[str], annotate: bool = False) -> None: ...
    def keep(self, paths: list[str], texts: Any) -> list[bool]: ...
    def dup_of(self) -> list[list[str] | None]: ...
    def reset(self) -> None: ...
    @property
    def normalize(self) -> str: ...
    @property
    def documents(self) -> int: ...
    @property
    def duplicates(self) -> int: ...
    @property
    def files(self) -> list[str]: ...
    @staticmethod
    def read_header(name: str, data: bytes) -> str: ...

@final
class LineSignatureWriter:
    """Stage 1 of two-stage line dedup for one task."""

    SUFFIX: ClassVar[str]
    def __new__(cls, options_json: str, threads: int = ...) -> LineSignatureWriter: ...
    def add(self, paths: list[str], texts: Any) -> tuple[int, int]: ...
    def finish(self, rank: int, world_size: int) -> bytes: ...
    @property
    def documents(self) -> int: ...
    @property
    def eligible_lines(self) -> int: ...

@final
class LineKeepTable:
    """Stage 2 of two-stage line dedup: kept lines from every task's signatures."""

    def __new__(
        cls,
        files: list[tuple[str, bytes]],
        max_occurrences: int = 1,
        normalize: str | None = None,
        min_line_chars: int | None = None,
        threads: int = ...,
    ) -> LineKeepTable: ...
    def against(self, against: list[str], annotate: bool = False) -> None: ...
    def dup_of(self) -> list[list[str] | None]: ...
    def dedup(self, paths: list[str], texts: Any) -> tuple[list[bool], list[str | None], int, int]: ...
    def reset(self) -> None: ...
    @property
    def normalize(self) -> str: ...
    @property
    def min_line_chars(self) -> int: ...
    @property
    def max_occurrences(self) -> int: ...
    @property
    def eligible_lines(self) -> int: ...
    @property
    def distinct_lines(self) -> int: ...
    @property
    def lines_to_remove(self) -> int: ...
    @property
    def files(self) -> list[str]: ...
    @staticmethod
    def read_header(name: str, data: bytes) -> str: ...

# --- near-duplicate dedup ---------------------------------------------------------------------

def near_bands_rows(options_json: str) -> tuple[int, int, str]:
    """Resolved (bands, rows) and the S-curve as text."""

def dedup_near(inputs: list[str], output: str, options_json: str, io_json: str) -> str:
    """Near-duplicate dedup over files; returns the run statistics as JSON."""

def near_signatures(
    inputs: list[str], workdir: str, task_json: str, options_json: str, io_json: str
) -> str:
    """Stage 1 over files (task ``{"rank", "world_size"}`` as JSON); returns the stats as JSON."""

def near_buckets(workdir: str, task_json: str) -> str:
    """Stage 2; returns the stats as JSON."""

def near_cluster(workdir: str) -> str:
    """Stage 3 (single task); returns the stats as JSON."""

def near_filter(
    inputs: list[str], workdir: str, output: str, task_json: str, options_json: str, io_json: str
) -> str:
    """Stage 4 over files; returns the stats as JSON."""

@final
class NearSignatureWriter:
    """Stage 1 for a datatrove task: documents pushed file by file."""

    def __new__(
        cls,
        workdir: str,
        rank: int,
        world_size: int,
        options_json: str,
        *,
        threads: int = ...,
    ) -> NearSignatureWriter: ...
    def add(self, path: str, texts: Any, values: list[float | None] | None = None) -> None: ...
    def finish(self) -> str: ...

@final
class NearPathFilter:
    """Stage 4 for a datatrove task: decisions by source path, in order."""

    def __new__(cls, workdir: str) -> NearPathFilter: ...
    def decide(
        self, paths: list[str]
    ) -> tuple[list[bool], list[int], list[int], list[list[str] | None]]: ...

@final
class SubstringSequenceWriter:
    """Stage 1 of substring dedup for a datatrove task: texts by source file."""

    def __new__(cls, workdir: str, task_json: str) -> SubstringSequenceWriter: ...
    def add(self, path: str, texts: list[str]) -> None: ...
    def finish(self) -> str: ...

def substring_find(workdir: str, options_json: str, threads: int = ...) -> str:
    """Stage 2 of substring dedup (one task); returns the statistics as JSON."""

@final
class SubstringPathCutter:
    """Stage 3 of substring dedup for a datatrove task: each document's removed spans."""

    def __new__(cls, workdir: str, options_json: str) -> SubstringPathCutter: ...
    def cut(self, path: str, text: str) -> tuple[str, str | None, list[tuple[int, int]]]: ...

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

def minhash(texts: Any, options_json: str, threads: int = ...) -> U64Matrix:
    """MinHash signatures of an Arrow string array."""

def minhash_hashes(values: Any, offsets: Any, options_json: str, threads: int = ...) -> U64Matrix:
    """MinHash signatures of pre-shingled documents."""

def near_clusters_arrow(
    texts: Any, options_json: str, threads: int = ..., values: Any = None
) -> tuple[Any, Any]:
    """(representative, cluster size) per row, as Arrow UInt32 arrays."""

def near_keep_mask_arrow(texts: Any, options_json: str, threads: int = ..., values: Any = None) -> Any:
    """Arrow boolean array: true for each cluster's kept row."""

def shingle_hashes(text: str, options_json: str) -> list[int]:
    """The 64-bit shingle hashes of one text."""

def shingle_words(text: str) -> list[str]:
    """The words of one text as near-dedup sees them."""

# --- ProX -------------------------------------------------------------------------------------

def prox_execute_list(
    level: str, texts: list[str], programs: list[str], mode: str, accept_json: str, threads: int = ...
) -> list[str]:
    """Run programs over lists; ``""`` means dropped."""

def prox_execute_arrow(
    level: str, texts: Any, programs: Any, mode: str, accept_json: str, threads: int = ...
) -> Any:
    """Run programs over Arrow string arrays; nulls give nulls."""

def prox_explain(level: str, text: str, program: str, mode: str, accept_json: str) -> str:
    """What a program did, as JSON."""

def prox_chunks(
    texts: list[str],
    tokenizer_source: str,
    is_json: bool,
    chunk_json: str,
    template_json: str | None = None,
    threads: int = ...,
) -> list[list[str]]:
    """Numbered chunk bodies of each text, or their rendered prompts with a template."""

def prox_doc_prompts(
    texts: list[str],
    tokenizer_source: str,
    is_json: bool,
    max_tokens: int,
    template_json: str,
    threads: int = ...,
) -> list[tuple[list[int], str, bool]]:
    """Document-stage prompts: (token ids, text, truncated)."""

def prox_outcomes(
    level: str, texts: list[str], programs: list[str], mode: str, accept_json: str, threads: int = ...
) -> list[tuple[str, str, str, int]]:
    """(result, outcome, reason, program errors) per program."""

def prox_token_counts(
    texts: list[str], tokenizer_source: str, is_json: bool, threads: int = ...
) -> list[int]:
    """Tokens per text (no special tokens added)."""

def prox_render(user: str, template_json: str) -> str:
    """One prompt rendered with a template."""

def prox_prompt_items(
    ids: list[str], texts: list[str], options_json: str, threads: int = ...
) -> list[list[tuple[str, int, int, str, list[int], bool, str, str, int, int]]]:
    """The refining models' prompts of each document with their texts (PromptOptions JSON)."""

@final
class ProxPromptItems:
    """The prompt items of a corpus read in Rust, a batch per ``next()``."""

    def __new__(cls, inputs: list[str], options_json: str, io_json: str) -> ProxPromptItems: ...
    def __iter__(self) -> Iterator[list[tuple[str, int, int, str, list[int], bool, str, str, int, int]]]: ...
    def __next__(self) -> list[tuple[str, int, int, str, list[int], bool, str, str, int, int]]: ...
    def stats(self) -> str | None:
        """The reading statistics (JSON) once exhausted."""

# --- vocabulary and embeddings ----------------------------------------------------------------

def vocab_extend(
    tokenizer: tuple[str, str],
    corpus: list[str],
    options_json: str,
    merge_from: tuple[str, str] | None = None,
    heldout: list[str] | None = None,
) -> tuple[str, str, str | None]:
    """(new tokenizer JSON, summary JSON, report JSON or None)."""

def vocab_stats(
    tokenizer: tuple[str, str], corpus: list[str], options_json: str, baseline: tuple[str, str] | None = None
) -> tuple[str, str]:
    """(report JSON, summary text)."""

def token_counts_arrow(texts: Any, tokenizer: str, *, threads: int = ...) -> Any:
    """Tokens per text (Arrow UInt32)."""

@final
class TextBatches:
    """The texts of a corpus, batch by batch, read in Rust."""

    def __new__(cls, inputs: list[str], text_key: str = "text", on_error: str = "fail") -> TextBatches: ...
    def __iter__(self) -> Iterator[list[str]]: ...
    def __next__(self) -> list[str]: ...

def embed_init_checkpoint(
    model: str,
    old: tuple[str, str],
    new: tuple[str, str],
    output: str,
    init_json: str,
    names: tuple[str | None, str | None] = ...,
) -> str:
    """Resize a safetensors model's embeddings; returns the summary JSON."""

def embed_rows(
    old: tuple[str, str],
    new: tuple[str, str],
    matrices: tuple[bytes, bytes | None],
    shape: tuple[str, int, int],
    init_json: str,
) -> tuple[int, bytes, bytes | None, str]:
    """(rows after, input bytes, output bytes or None, summary JSON)."""
