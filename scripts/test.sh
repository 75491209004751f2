#!/usr/bin/env bash
# Runs every test of the workspace: formatting, lints, unit and property tests. The end-to-end tests
# (real binary, SQLite and PostgreSQL, real MCP servers, the Python MCP SDK) join with their crate;
# docs/status.md says which crates are members today.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/ensure-postgres.sh
# The end-to-end peers (npm and PyPI packages) are installed here once integration-tests joins the
# workspace; see docs/status.md.

export CASTELLAN_TEST_POSTGRES_URL="${CASTELLAN_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
export CASTELLAN_TOOLS_DIR="${CASTELLAN_TOOLS_DIR:-$PWD/.tools}"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo build (the binary the end-to-end tests start)"
cargo build --locked -p castellan --bin castellan
echo "== cargo nextest"
cargo nextest run --workspace --locked --no-fail-fast "$@"
