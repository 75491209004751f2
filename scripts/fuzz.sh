#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/, its own cargo workspace) and runs each for SECONDS (default 60).
#
#   scripts/fuzz.sh [SECONDS]                 every target
#   FUZZ_TARGETS="sse jsonrpc" scripts/fuzz.sh 300
#   FUZZ_ARGS="-len_control=0" FUZZ_TARGETS=profile scripts/fuzz.sh 120   # extra libFuzzer flags
#
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`; 0.13.2 was used). libFuzzer's flags need a
# nightly compiler; on the stable toolchain RUSTC_BOOTSTRAP=1 unlocks them. Everything is built into
# fuzz/target; the corpus grows in fuzz/corpus/TARGET (seeded from fuzz/seeds/TARGET), crashes land in
# fuzz/artifacts/TARGET, and each run's libFuzzer output is kept in fuzz/logs/TARGET.log.
# Exit status 1 when a target found a crash, a timeout or a leak. See docs/fuzzing.md.
set -euo pipefail

seconds="${1:-60}"
case "$seconds" in
    '' | *[!0-9]*) echo "usage: $0 [SECONDS]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1
targets=(${FUZZ_TARGETS:-profile jsonrpc sse stateless_headers tool_names oauth_params client_metadata hook_wire ai_sse ai_request_facts ai_translate cron skill_md skill_uri skill_archive policy_files})

# An input that takes longer than this many seconds is a failure ("must finish quickly").
timeout_seconds="${FUZZ_TIMEOUT:-5}"
# Longest input libFuzzer may generate (the profile parser is the one that reads whole files).
declare -A max_len=([profile]=65536 [jsonrpc]=16384 [sse]=16384 [stateless_headers]=4096 [tool_names]=4096 [oauth_params]=4096 [client_metadata]=8192 [ai_sse]=16384 [ai_request_facts]=16384 [ai_translate]=16384)

nice -n 10 cargo fuzz build
mkdir -p fuzz/logs
failed=()
for target in "${targets[@]}"; do
    corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    extra=()
    [[ -d "fuzz/seeds/$target" ]] && extra+=("fuzz/seeds/$target")
    flags=(
        -max_total_time="$seconds"
        -timeout="$timeout_seconds"
        -max_len="${max_len[$target]:-4096}"
        -report_slow_units=1
        -print_final_stats=1
    )
    [[ -f "fuzz/dict/$target.dict" ]] && flags+=(-dict="fuzz/dict/$target.dict")
    flags+=(${FUZZ_ARGS:-})
    echo "== $target: ${seconds}s"
    if ! nice -n 10 cargo fuzz run "$target" "$corpus" "${extra[@]}" -- "${flags[@]}" >"fuzz/logs/$target.log" 2>&1; then
        failed+=("$target")
    fi
    executions="$(sed -n 's/^stat::number_of_executed_units: *//p' "fuzz/logs/$target.log" | tail -n 1)"
    speed="$(sed -n 's/^stat::average_exec_per_sec: *//p' "fuzz/logs/$target.log" | tail -n 1)"
    coverage="$(grep -o 'cov: [0-9]*' "fuzz/logs/$target.log" | tail -n 1 || true)"
    echo "   executions: ${executions:-?}  exec/s: ${speed:-?}  ${coverage}  corpus: $(ls "$corpus" | wc -l) files"
done

if ((${#failed[@]})); then
    echo "FAILED: ${failed[*]} (see fuzz/logs/TARGET.log and fuzz/artifacts/TARGET/)" >&2
    exit 1
fi
echo "no crash, timeout or leak in ${targets[*]}"
