#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints, unit and property tests, and the end-to-end
# tests (real binary, SQLite and PostgreSQL, real MCP servers, the Python MCP SDK, the conformance suite).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-postgres.sh
# The end-to-end peers: pinned npm packages (server-everything, the conformance suite, Node 22) and
# the Python MCP SDKs; a no-op when they are installed already.
scripts/install-test-deps.sh

export CASTELLAN_TEST_POSTGRES_URL="${CASTELLAN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CASTELLAN_TOOLS_DIR="${CASTELLAN_TOOLS_DIR:-$PWD/.tools}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (the binaries the end-to-end tests start: castellan, and castellan-tickets with the reference extension)"
cargo build --locked -p castellan --bin castellan -p castellan-tickets --bin castellan-tickets
echo "== cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast "$@"
# The side-by-side benchmark runs end to end (about 30 s; it checks that the tool runs, not the
# figures): the debug binaries the tests used, no peers.
echo "== benchmark smoke (scripts/bench.sh --smoke)"
target_dir="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
CASTELLAN_BENCH_BINARY="$target_dir/debug/castellan" FAKE_PROVIDER_BIN="$target_dir/debug/fake-provider" \
  scripts/bench.sh --smoke
