#!/usr/bin/env bash
# Runs the MCP conformance suite's server scenarios (@modelcontextprotocol/conformance, pinned in
# scripts/test-deps/npm) against a Streamable HTTP endpoint and exits with the suite's exit code
# (0: no check failed, warnings allowed; 1: some check failed; 124: the whole run timed out).
#
#   scripts/conformance.sh URL [CLI OPTIONS...]   e.g. http://127.0.0.1:8080/mcp/fixture
#   scripts/conformance.sh [CLI OPTIONS...]       no URL: starts integration-tests/fixtures/
#                                                 conformance_fixture.py on a free port and tests it
#
# CLI options are passed through: --scenario NAME, --suite active|all|pending,
# --expected-failures FILE, -o DIR, --spec-version VERSION, --verbose. Default: the active suite.
#
# CASTELLAN_CONFORMANCE_CLI picks the pinned CLI: `stable` (default, @modelcontextprotocol/conformance
# 0.1.16) or `next` (the npm alias conformance-next, a pre-release with the scenarios 0.1.16 lacks,
# e.g. the skills extension's sep-2640-*; they run on the stateless 2026-07-28 wire).
#
# The suite cannot send credentials in server mode, so URL must accept unauthenticated requests, and
# dns-rebinding-protection needs a localhost/127.0.0.1/[::1] URL. The 0.1.16 CLI has no per-scenario
# timeout (its client gives up on a request after 60 s); the whole run is bounded by
# CASTELLAN_CONFORMANCE_TIMEOUT seconds (default 900). If a pinned CLI offers --timeout, each scenario
# gets CASTELLAN_CONFORMANCE_SCENARIO_TIMEOUT_MS (default 240000).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
tools="${CASTELLAN_TOOLS_DIR:-$repo/.tools}"
"$repo/scripts/install-test-deps.sh" >&2

node="$tools/bin/node22"
case "${CASTELLAN_CONFORMANCE_CLI:-stable}" in
  stable) cli="$tools/npm/node_modules/@modelcontextprotocol/conformance/dist/index.js" ;;
  next) cli="$tools/npm/node_modules/conformance-next/dist/index.js" ;;
  *)
    echo "conformance: CASTELLAN_CONFORMANCE_CLI is stable or next, not ${CASTELLAN_CONFORMANCE_CLI}" >&2
    exit 2
    ;;
esac

url=""
if [[ $# -gt 0 && "$1" != -* ]]; then
  url="$1"
  shift
fi

fixture_pid=""
workdir="$(mktemp -d)"
cleanup() {
  if [[ -n "$fixture_pid" ]]; then
    kill "$fixture_pid" 2>/dev/null || true
    wait "$fixture_pid" 2>/dev/null || true
  fi
  rm -rf "$workdir"
}
trap cleanup EXIT

if [[ -z "$url" ]]; then
  "$tools/py2/bin/python" "$repo/integration-tests/fixtures/conformance_fixture.py" --http 0 \
    >"$workdir/fixture.out" 2>"$workdir/fixture.err" &
  fixture_pid=$!
  for _ in $(seq 1 300); do
    url="$(sed -n 's/^conformance-fixture listening on \(http:[^ ]*\)$/\1/p' "$workdir/fixture.err")"
    [[ -n "$url" ]] && break
    if ! kill -0 "$fixture_pid" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  if [[ -z "$url" ]]; then
    echo "conformance: the fixture did not start; its stderr:" >&2
    cat "$workdir/fixture.err" >&2
    exit 2
  fi
  echo "conformance: testing the fixture at $url" >&2
fi

args=(server --url "$url")
if "$node" "$cli" server --help 2>/dev/null | grep -q -- '--timeout'; then
  args+=(--timeout "${CASTELLAN_CONFORMANCE_SCENARIO_TIMEOUT_MS:-240000}")
fi

rc=0
timeout --foreground --kill-after=10 "${CASTELLAN_CONFORMANCE_TIMEOUT:-900}" \
  "$node" "$cli" "${args[@]}" "$@" || rc=$?
if [[ $rc -eq 124 ]]; then
  echo "conformance: the run did not finish within ${CASTELLAN_CONFORMANCE_TIMEOUT:-900}s" >&2
fi
exit "$rc"
