"""examples/ziptie_chinese.py at toy size: every initialization is built, evaluated, trained and
evaluated again, and the numbers obey what must hold whatever the scale."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Used only where Debian's manpages-zh is not installed (CI installs it). Written for this test.
FALLBACK_ZH = {
    "ls.1": "列出目錄中的檔案。預設依照名稱排序，並且不顯示以點開頭的隱藏檔案。\n"
    "選項 -l 以長格式顯示每個檔案的權限、擁有者、大小與修改時間。\n"
    "選項 -a 顯示所有檔案，包括隱藏檔案。結束狀態為零表示成功。",
    "cp.1": "複製檔案與目錄。當目標是一個已存在的目錄時，來源檔案會被複製到該目錄中。\n"
    "選項 -r 遞迴複製整個目錄。選項 -i 在覆寫已存在的檔案之前先詢問使用者。",
    "mv.1": "移動或重新命名檔案。如果目標檔案已經存在，預設會直接覆寫它。\n"
    "選項 -n 不覆寫已存在的檔案。選項 -v 說明正在執行的每一個動作。",
    "rm.1": "刪除檔案。預設不刪除目錄；使用選項 -r 可以遞迴刪除目錄及其內容。\n"
    "請小心使用，被刪除的檔案通常無法復原。選項 -f 忽略不存在的檔案，從不詢問。",
    "cat.1": "連接檔案並輸出到標準輸出。沒有指定檔案時，從標準輸入讀取資料。\n"
    "選項 -n 為所有輸出行加上行號。選項 -s 把連續的空白行壓縮成一行。",
    "grep.1": "在檔案中搜尋符合模式的行，並把符合的行輸出到標準輸出。\n"
    "選項 -i 忽略大小寫的差異。選項 -v 輸出不符合模式的行。選項 -c 只顯示符合的行數。",
    "mkdir.1": "建立目錄。如果目錄已經存在，預設會回報錯誤。\n"
    "選項 -p 需要時建立上層目錄，目錄已存在時也不回報錯誤。選項 -m 設定新目錄的權限。",
    "date.1": "顯示或設定系統的日期與時間。預設以目前的地區設定顯示日期。\n"
    "可以使用格式字串控制輸出，例如年份、月份、日期、小時與分鐘。",
    "passwd.5": "使用者帳號的資料檔案。每一行描述一個使用者，欄位之間以冒號分隔。\n"
    "欄位包括使用者名稱、使用者編號、群組編號、家目錄與登入時執行的程式。",
}

TINY = [
    "--steps", "12", "--continue-steps", "6", "--batch", "4", "--zh-rows", "3", "--seq-len", "64",
    "--vocab-size", "400", "--new-tokens", "150", "--hidden", "32", "--layers", "1", "--heads", "2",
    "--lr", "1e-2", "--continue-lr", "3e-3", "--english-bytes", "0", "--chinese-bytes", "150000",
    "--heldout-bytes", "6000",
]  # fmt: skip


def _example():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("ziptie_chinese", ROOT / "examples" / "ziptie_chinese.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


def test_ziptie_chinese_example_tiny(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    ex = _example()
    installed = any(Path("/usr/share/man/zh_TW").glob("man1/*.gz"))
    printed: list[str] = []
    result = ex.main(
        [*TINY, "--out", str(tmp_path)],
        zh_pages=None if installed else FALLBACK_ZH,
        log=printed.append,
    )
    rows = result["rows"]
    labels = [r["init"] for r in rows]
    assert labels == [ex.REFERENCE] + [m[0] for m in ex.METHODS]
    for r in rows:
        for key in ("zh_before", "en_before", "zh_after", "en_after"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["init"], key, r[key])
        # Training on Chinese lowers the Chinese loss, whatever the start.
        assert r["zh_after"] < r["zh_before"], r
    by = {r["init"]: r for r in rows}
    ref = by[ex.REFERENCE]
    # New rows only add softmax mass: where the English ids did not change, no initialization can
    # make the original model better on English before training.
    if result["en_heldout_pages_unchanged"] == result["en_heldout_pages"]:
        for r in rows[1:]:
            assert r["en_before"] >= ref["en_before"] - 1e-4, r
    # mean-resizing samples N(mean, 1e-9 * var): indistinguishable from the mean.
    assert by["mean-resizing"]["zh_before"] == pytest.approx(by["mean"]["zh_before"], abs=1e-3)
    # The extension makes Chinese text shorter in tokens.
    bpt = result["zh_heldout_bytes_per_token"]
    assert bpt["new"] > bpt["old"]
    assert result["extension"]["new_tokens"] == 150
    saved = json.loads((tmp_path / "results.json").read_text())
    assert [r["init"] for r in saved["rows"]] == labels
    table = printed[-1]
    assert table.startswith("| initialization | zh bpb before |")
    assert all(f"| {label} |" in table for label in labels)
    assert all(r["frozen_old_rows"] == 0 for r in rows)
    assert printed[-2] == "continued training: every parameter trains (no --freeze-old-rows)"


def test_ziptie_chinese_example_freeze_old_rows(tmp_path):
    """--freeze-old-rows, one method, a smaller extension (a few seconds): the old rows of the
    extended model stay as they were, the new ones still learn Chinese."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    pytest.importorskip("tokenizers")
    ex = _example()
    installed = any(Path("/usr/share/man/zh_TW").glob("man1/*.gz"))
    args = list(TINY)
    args[args.index("--chinese-bytes") + 1] = "40000"
    args[args.index("--new-tokens") + 1] = "60"
    printed: list[str] = []
    result = ex.main(
        [*args, "--out", str(tmp_path), "--methods", "ziptie, output mean", "--freeze-old-rows"],
        zh_pages=None if installed else FALLBACK_ZH,
        log=printed.append,
    )
    assert result["settings"]["freeze_old_rows"] is True
    n = result["old_vocab_size"]
    assert 0 < n < result["extension"]["embedding_rows"]
    ref, zt = result["rows"]
    assert ref["init"] == ex.REFERENCE and ref["frozen_old_rows"] == 0 and "old_rows_unchanged" not in ref
    assert zt["init"] == "ziptie, output mean"
    assert zt["frozen_old_rows"] == n and zt["old_rows_unchanged"] is True
    for r in (ref, zt):
        assert r["zh_after"] < r["zh_before"], r
    assert printed[-2].startswith("continued training: --freeze-old-rows:"), printed[-2]
    assert f"rows of the {n} old ids stay fixed" in printed[-2]
