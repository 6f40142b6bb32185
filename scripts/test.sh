#!/usr/bin/env bash
# Runs every check and test of tamis on a fresh machine with a Rust toolchain and Python >= 3.10.
# Installs what it needs: Python packages into .venv (pip), crates through cargo.
set -euo pipefail
cd "$(dirname "$0")/.."
# Nothing here reads input; cargo's rustc probes must not inherit a caller's stdin.
exec </dev/null

# Real text in many languages, Debian's translated manual pages: Traditional Chinese and Dutch
# for the vocabulary tests and example, and 24 languages for the language-ID equality test.
MANPAGES="manpages-zh manpages-nl manpages-de manpages-fr manpages-es manpages-it manpages-pl
  manpages-pt-br manpages-ru manpages-uk manpages-ro manpages-cs manpages-da manpages-fi
  manpages-hu manpages-id manpages-mk manpages-nb manpages-sr manpages-sv manpages-vi
  manpages-el manpages-ja"
# shellcheck disable=SC2086
if ! dpkg -s $MANPAGES >/dev/null 2>&1 \
    && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    # shellcheck disable=SC2086
    apt-get update -qq && apt-get install -y -qq $MANPAGES >/dev/null
fi

python3 -m venv .venv
# shellcheck disable=SC1091
. .venv/bin/activate
python -m pip install -q --upgrade pip
# The dev profile shares compiled dependencies with `cargo test` below and builds much faster
# than release; speed is measured in benchmarks/, not here.
# The prox extra (torch, transformers) lets the refining-model tests run on CPU. PyPI's Linux torch
# wheel pulls its CUDA libraries too: about 1.5 min and 6 GB here (docs/prox.md).
MATURIN_PEP517_ARGS="--profile dev" python -m pip install -q --no-cache-dir -e ".[test,prox,filters]"
# Headless Chromium (Debian's package) for the report rendering test; tests/test_refine.py skips,
# saying why, where it cannot be installed.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; } || true
    elif sudo -n true 2>/dev/null; then sudo apt-get install -y -q chromium >/dev/null || true
    fi
fi

echo "== cargo fmt";    cargo fmt --all --check
echo "== cargo clippy"; cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo test";   cargo test --workspace
echo "== ruff";         ruff check python tests benchmarks examples
echo "== mypy";         mypy python/tamis
echo "== stubtest";     python -m mypy.stubtest tamis._core --allowlist .stubtest-allowlist
echo "== pytest";       pytest -q
