"""Moving columns into and out of Rust through the Arrow C data interface (PyCapsules).

Anything exposing ``__arrow_c_stream__`` or ``__arrow_c_array__`` (polars Series, pyarrow arrays
and chunked arrays, arro3, nanoarrow) crosses without per-row Python objects. Plain Python lists
go through polars when it is installed (fastest), and otherwise need no other package:
:class:`ListArray` lays a list out as an Arrow array in Python and exports it through the same
interface, and results come back as lists through the returned array's ``to_pylist``.
"""

from __future__ import annotations

import ctypes
import itertools
import threading
from array import array
from collections.abc import Sequence
from typing import Any

# --- the Arrow C data interface, in ctypes ---------------------------------------------------
# https://arrow.apache.org/docs/format/CDataInterface.html. The release callbacks are typed as
# plain pointers so that they can be set to NULL; the CFUNCTYPE objects below live as long as
# the module.


class _ArrowSchema(ctypes.Structure):
    _fields_ = [
        ("format", ctypes.c_char_p),
        ("name", ctypes.c_char_p),
        ("metadata", ctypes.c_char_p),
        ("flags", ctypes.c_int64),
        ("n_children", ctypes.c_int64),
        ("children", ctypes.c_void_p),
        ("dictionary", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
    ]


class _ArrowArray(ctypes.Structure):
    _fields_ = [
        ("length", ctypes.c_int64),
        ("null_count", ctypes.c_int64),
        ("offset", ctypes.c_int64),
        ("n_buffers", ctypes.c_int64),
        ("n_children", ctypes.c_int64),
        ("buffers", ctypes.c_void_p),
        ("children", ctypes.c_void_p),
        ("dictionary", ctypes.c_void_p),
        ("release", ctypes.c_void_p),
        ("private_data", ctypes.c_void_p),
    ]


_ARROW_FLAG_NULLABLE = 2
_SCHEMA_NAME = b"arrow_schema"
_ARRAY_NAME = b"arrow_array"

# What an exported struct keeps alive (its strings and buffers), by the key in its private_data,
# until the consumer calls its release callback; and the exported structs themselves, by address,
# until their capsule is destroyed.
_owned: dict[int, Any] = {}
_structs: dict[int, Any] = {}
_keys = itertools.count(1)
_lock = threading.Lock()

_RELEASE_SCHEMA = ctypes.CFUNCTYPE(None, ctypes.POINTER(_ArrowSchema))
_RELEASE_ARRAY = ctypes.CFUNCTYPE(None, ctypes.POINTER(_ArrowArray))
_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _release(ptr: Any) -> None:
    # Called by the consumer on its own (moved) copy of the struct, perhaps from another thread
    # (ctypes takes the GIL): drop what the struct kept alive and mark it released.
    struct = ptr.contents
    with _lock:
        _owned.pop(struct.private_data or 0, None)
    struct.release = None


_release_schema = _RELEASE_SCHEMA(_release)
_release_array = _RELEASE_ARRAY(_release)

# Own function objects, not the shared ``ctypes.pythonapi.PyCapsule_*`` attributes, whose
# argtypes other packages (dill) set to their own.
_capsule_new = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p)(
    ("PyCapsule_New", ctypes.pythonapi)
)
_capsule_pointer = ctypes.PYFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)(
    ("PyCapsule_GetPointer", ctypes.pythonapi)
)


def _destroy(kind: Any, name: bytes) -> Any:
    def destroy(capsule: int | None) -> None:
        # A struct the consumer never moved out is released here; then its memory goes.
        address = _capsule_pointer(capsule, name)
        if not address:
            return
        struct = kind.from_address(address)
        if struct.release:
            ctypes.cast(struct.release, ctypes.CFUNCTYPE(None, ctypes.c_void_p))(address)
        with _lock:
            _structs.pop(address, None)

    return _DESTRUCTOR(destroy)


_destroy_schema = _destroy(_ArrowSchema, _SCHEMA_NAME)
_destroy_array = _destroy(_ArrowArray, _ARRAY_NAME)


def _export(struct: Any, keep: Any, release: Any, name: bytes, destructor: Any) -> Any:
    key = next(_keys)
    struct.private_data = key
    struct.release = ctypes.cast(release, ctypes.c_void_p).value
    address = ctypes.addressof(struct)
    with _lock:
        _owned[key] = keep
        _structs[address] = struct
    return _capsule_new(address, name, ctypes.cast(destructor, ctypes.c_void_p).value)


class ListArray:
    """One Arrow array built in Python from a list: ``"utf8"`` (str, format ``u``, or ``U`` with
    64-bit offsets past 2 GiB of text) or ``"float64"`` (format ``g``); ``None`` is null.

    It exposes ``__arrow_c_array__``, which the Rust core (and pyarrow, polars, arro3) imports;
    the buffers are kept until the importer releases them."""

    def __init__(self, items: Sequence[Any], kind: str, what: str = "values") -> None:
        items = list(items)
        self.length = len(items)
        self.null_count = 0
        validity: bytes | None = None
        if None in items:
            valid = bytearray((self.length + 7) // 8)
            for i, v in enumerate(items):
                if v is None:
                    self.null_count += 1
                else:
                    valid[i >> 3] |= 1 << (i & 7)
            validity = bytes(valid)
        if kind == "utf8":
            if not all(v is None or isinstance(v, str) for v in items):
                i, v = next((i, v) for i, v in enumerate(items) if not (v is None or isinstance(v, str)))
                raise TypeError(f"{what}[{i}] is {type(v).__name__}, not str")
            encoded = [b"" if v is None else v.encode() for v in items]
            data = b"".join(encoded)
            large = len(data) >= 2**31
            offsets = array("q" if large else "i", [0])  # malloc'd: aligned
            offsets.extend(itertools.accumulate(map(len, encoded)))
            self.format = b"U" if large else b"u"
            self.buffers: list[Any] = [validity, offsets, data]
        elif kind == "float64":
            _check_numbers(items, what)
            # Kept as an array: its buffer is malloc'd, hence 8-byte aligned; [0.0] for no rows
            # gives a valid pointer.
            values = array("d", [0.0 if v is None else float(v) for v in items] or [0.0])
            self.format = b"g"
            self.buffers = [validity, values]
        else:
            raise ValueError(f"unknown kind {kind!r}")

    def __len__(self) -> int:
        return self.length

    def __arrow_c_schema__(self) -> Any:
        schema = _ArrowSchema()
        name = ctypes.create_string_buffer(b"")
        fmt = ctypes.create_string_buffer(self.format)
        schema.format = ctypes.addressof(fmt)  # type: ignore[assignment]
        schema.name = ctypes.addressof(name)  # type: ignore[assignment]
        schema.flags = _ARROW_FLAG_NULLABLE
        return _export(schema, (fmt, name), _release_schema, _SCHEMA_NAME, _destroy_schema)

    def __arrow_c_array__(self, requested_schema: Any = None) -> tuple[Any, Any]:
        # The buffers (bytes, and arrays never resized again) stay where they are while the
        # tuple below is kept (in _owned), until the importer releases the array.
        pointers = (ctypes.c_void_p * len(self.buffers))(*[_address(b) for b in self.buffers])
        arr = _ArrowArray()
        arr.length = self.length
        arr.null_count = self.null_count
        arr.n_buffers = len(self.buffers)
        arr.buffers = ctypes.addressof(pointers)
        keep = (tuple(self.buffers), pointers)
        return self.__arrow_c_schema__(), _export(arr, keep, _release_array, _ARRAY_NAME, _destroy_array)


def _address(buffer: bytes | array | None) -> int | None:
    if buffer is None:
        return None
    if isinstance(buffer, array):
        return buffer.buffer_info()[0]
    return ctypes.cast(ctypes.c_char_p(buffer), ctypes.c_void_p).value


def _check_numbers(items: list[Any], what: str) -> None:
    for i, v in enumerate(items):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise TypeError(f"{what}[{i}] is {type(v).__name__}, not a number")


def _polars() -> Any:
    """The polars module, or ``None`` where it is not installed."""
    try:
        import polars as pl
    except ImportError:
        return None
    return pl


def _is_list(values: Any) -> bool:
    return isinstance(values, Sequence) and not isinstance(values, (str, bytes))


def to_arrow(values: Any) -> Any:
    """Return an object exposing the Arrow PyCapsule interface for ``values`` (a list of str: a
    polars Series, or a :class:`ListArray` where polars is not installed)."""
    if hasattr(values, "__arrow_c_stream__") or hasattr(values, "__arrow_c_array__"):
        return values
    if _is_list(values):
        pl = _polars()
        if pl is None:
            return ListArray(values, "utf8", "texts")
        return pl.Series(values=list(values), dtype=pl.String)
    raise TypeError(
        f"expected an Arrow string array, a polars Series or a list of str, got {type(values).__name__}"
    )


def to_arrow_numbers(values: Any) -> Any:
    """Like :func:`to_arrow` for a numeric column (``None``: missing). A value that is not a
    number (a bool, a str) is refused with its index, as the Rust core refuses such a field."""
    if hasattr(values, "__arrow_c_stream__") or hasattr(values, "__arrow_c_array__"):
        return values
    if _is_list(values):
        items = list(values)
        pl = _polars()
        if pl is None:
            return ListArray(items, "float64", "values")
        _check_numbers(items, "values")
        return pl.Series(values=[None if v is None else float(v) for v in items], dtype=pl.Float64)
    raise TypeError(
        f"expected a numeric Arrow array, a polars Series or a list of numbers, got {type(values).__name__}"
    )


def like_input(result: Any, original: Any) -> Any:
    """Convert an Arrow result back to the caller's kind of column (a list for a list)."""
    module = type(original).__module__.split(".")[0]
    if module == "polars":
        import polars as pl

        return pl.Series(result).alias(getattr(original, "name", ""))
    if module == "pyarrow":
        import pyarrow as pa

        return pa.chunked_array(result)
    pl = _polars()
    if pl is not None:
        return pl.Series(result).to_list()
    return result.to_pylist()
