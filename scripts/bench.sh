#!/usr/bin/env bash
# The side-by-side benchmark in one command: Castellan and the pinned peer gateways (IBM ContextForge
# for MCP, the LiteLLM proxy for AI) in front of the same backends, under the same load generator,
# interleaved and repeated, into one Markdown table (default docs/benchmarks-side-by-side.md).
#
#   scripts/bench.sh [--smoke] [--peers contextforge,litellm|none] [--targets mcp,ai] [--repeat 2]
#                    [--seconds 10] [--connections 16] [--out FILE] [...]   (all: bench/compare.py --help)
#
# Before it runs bench/compare.py it makes sure of:
#   - the peers the selection needs: scripts/install-bench-peers.sh (pinned venvs in
#     ${CASTELLAN_TOOLS_DIR:-<repo>/.tools}/peers; a no-op when they are installed);
#   - oha 1.12.1: the one on PATH if it is that version, else $oha_root/bin/oha, installed there with
#     `cargo install oha --version 1.12.1 --locked --root $oha_root` when missing (oha_root:
#     $CASTELLAN_OHA_ROOT, default $tools/oha; CI keeps it beside its build cache);
#   - Castellan: $CASTELLAN_BENCH_BINARY if set (and FAKE_PROVIDER_BIN, default the fake-provider
#     beside it), else a release build: cargo build --release --locked -p castellan -p integration-tests --bins;
#   - PostgreSQL on 127.0.0.1:5432 when the selection has the PostgreSQL target (scripts/ensure-postgres.sh).
#
# --smoke: about 30 s in all (1 s measurements, 1 repetition, no peers unless --peers): checks that the
# tool runs. Load goes to loopback only, bounded in time.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${CASTELLAN_TOOLS_DIR:-$repo/.tools}"
mkdir -p "$tools"
tools="$(cd "$tools" && pwd)"
export CASTELLAN_TOOLS_DIR="$tools"
oha_version=1.12.1
oha_root="${CASTELLAN_OHA_ROOT:-$tools/oha}"

die() {
  echo "bench: $*" >&2
  exit 1
}

for argument in "$@"; do
  if [[ "$argument" == -h || "$argument" == --help ]]; then
    exec python3 "$repo/bench/compare.py" --help
  fi
done

# The selection, as bench/compare.py resolves it (it also rejects bad arguments here, before any install).
selection="$(python3 "$repo/bench/compare.py" --list-peers "$@")" || die "bad arguments (see bench/compare.py --help)"
peers=()
if [[ -n "$selection" ]]; then
  mapfile -t peers <<<"$selection"
fi
if ((${#peers[@]} > 0)); then
  "$repo/scripts/install-bench-peers.sh" "${peers[@]}"
fi

# oha, pinned.
oha_ok() { [[ "$("$1" --version 2>/dev/null)" == "oha $oha_version" ]]; }
if command -v oha >/dev/null 2>&1 && oha_ok oha; then
  :
elif [[ -x "$oha_root/bin/oha" ]] && oha_ok "$oha_root/bin/oha"; then
  export PATH="$oha_root/bin:$PATH"
else
  echo "bench: installing oha $oha_version into $oha_root" >&2
  cargo install oha --version "$oha_version" --locked --root "$oha_root" --quiet
  oha_ok "$oha_root/bin/oha" || die "$oha_root/bin/oha is not oha $oha_version"
  export PATH="$oha_root/bin:$PATH"
fi

# Castellan and the fake provider.
if [[ -z "${CASTELLAN_BENCH_BINARY:-}" ]]; then
  (cd "$repo" && cargo build --release --locked -p castellan -p integration-tests --bins)
  target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
  export CASTELLAN_BENCH_BINARY="$target_dir/release/castellan"
fi
[[ -x "$CASTELLAN_BENCH_BINARY" ]] || die "CASTELLAN_BENCH_BINARY=$CASTELLAN_BENCH_BINARY is not an executable"
export FAKE_PROVIDER_BIN="${FAKE_PROVIDER_BIN:-$(dirname "$CASTELLAN_BENCH_BINARY")/fake-provider}"

# PostgreSQL, when the PostgreSQL target runs (the default selection has it in the MCP group).
if [[ "$(python3 "$repo/bench/compare.py" --needs-postgres "$@")" == yes ]]; then
  "$repo/scripts/ensure-postgres.sh"
fi

exec python3 "$repo/bench/compare.py" "$@"
