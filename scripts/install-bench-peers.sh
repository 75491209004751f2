#!/usr/bin/env bash
# Installs the peer gateways of the side-by-side benchmark (bench/compare.py, run by scripts/bench.sh)
# into ${CASTELLAN_TOOLS_DIR:-<repo>/.tools}/peers:
#
#   peers/contextforge/  a Python venv with IBM ContextForge, mcp-contextforge-gateway 1.1.0
#                        (bench/peers/contextforge-requirements.txt, full pins)
#   peers/litellm/       a Python venv with the LiteLLM proxy, litellm[proxy] 1.108.7
#                        (bench/peers/litellm-requirements.txt, full pins)
#
#   scripts/install-bench-peers.sh [contextforge] [litellm]     (no argument: both)
#
# Idempotent and cheap when nothing changed: each venv keeps a stamp (a fingerprint of its pin file
# and of `layout` below) written only after it installed and checked out; a venv whose stamp matches
# is skipped. An interrupted install leaves no stamp and is redone on the next run. Concurrent runs
# serialize on a lock file. Reinstalling deletes the venv first.
#
# Needs: bash, sha256sum, PyPI, and Python >= 3.12 (ContextForge 1.1.0 requires it; both venvs use
# the same interpreter): CASTELLAN_BENCH_PYTHON if set, else /root/.pyenv/versions/3.12.1 or 3.13.0,
# else python3.12 or python3.13 on PATH, else python3 if it is >= 3.12.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pins="$repo/bench/peers"
tools="${CASTELLAN_TOOLS_DIR:-$repo/.tools}"
stamp_name=".castellan-bench-peer.stamp"
# Bump when the way a venv is installed changes (not needed for new pins: the pin files are
# fingerprinted), so existing installs are redone.
layout=1

started=$SECONDS
mkdir -p "$tools/peers"
tools="$(cd "$tools" && pwd)"
log="$tools/peers/install-bench-peers.log"

installer=install-bench-peers
# shellcheck source=lib/install-common.sh
source "$repo/scripts/lib/install-common.sh"
take_install_lock "$tools/peers"

# The interpreter: the first candidate that exists and is >= 3.12.
find_python() {
  local candidate
  for candidate in "${CASTELLAN_BENCH_PYTHON:-}" /root/.pyenv/versions/3.12.1/bin/python3 \
    /root/.pyenv/versions/3.13.0/bin/python3 python3.12 python3.13 python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$candidate"
      return
    fi
  done
  return 1
}

installed=()
current=()
python=""

# name distribution modules [env...]: a venv at $tools/peers/NAME from bench/peers/NAME-requirements.txt,
# checked to hold DISTRIBUTION at the pinned version and to import MODULES (with ENV set).
venv() {
  local name="$1" dist="$2" modules="$3" dir="$tools/peers/$1" req="$pins/$1-requirements.txt"
  local fp version desc part_started=$SECONDS
  [[ -f "$req" ]] || die "no pin file $req"
  fp="$name $(fingerprint "$req")"
  if stamp_ok "$dir" "$fp" && [[ -x "$dir/bin/python" ]]; then
    current+=("$(sed -n 2p "$dir/$stamp_name")")
    return
  fi
  if [[ -z "$python" ]]; then
    python="$(find_python)" || die "no Python >= 3.12 found (ContextForge 1.1.0 needs it): set CASTELLAN_BENCH_PYTHON, or install python3.12 or python3.13"
  fi
  rm -rf "$dir"
  run_logged "python venv $name" "$python" -m venv "$dir"
  [[ -x "$dir/bin/pip" ]] || die "$python -m venv made no pip in $dir (on Debian/Ubuntu install python3-venv)"
  run_logged "pip install into $name" "$dir/bin/pip" install --no-input --disable-pip-version-check -r "$req"
  run_logged "pip check in $name" "$dir/bin/pip" check
  version="$("$dir/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$dist")" ||
    die "$dist is not installed in $dir"
  grep -qx "$dist==$version" "$req" || die "$dir has $dist $version, not what $req pins"
  # A broken wheel fails here rather than in the benchmark.
  run_logged "import check in $name" env "${@:4}" "$dir/bin/python" -c "import $modules"
  desc="$name: $dist $version (python $("$dir/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
  printf '%s\n%s\n' "$fp" "$desc" >"$dir/$stamp_name"
  installed+=("$desc, $((SECONDS - part_started))s")
}

wanted=("$@")
if ((${#wanted[@]} == 0)); then
  wanted=(contextforge litellm)
fi
for peer in "${wanted[@]}"; do
  case "$peer" in
  # The gateway itself is imported by the benchmark (it refuses to load without its secrets set):
  # here its command-line module and the compiled wheels it runs on.
  contextforge)
    venv contextforge mcp-contextforge-gateway \
      "mcpgateway.cli, orjson, uvloop, httptools, pydantic_core, sqlalchemy, cryptography.hazmat.bindings._rust" ;;
  # LITELLM_LOCAL_MODEL_COST_MAP: the bundled model cost map, not a download at import.
  litellm) venv litellm litellm litellm.proxy.proxy_server LITELLM_LOCAL_MODEL_COST_MAP=True ;;
  *) die "unknown peer '$peer' (contextforge, litellm)" ;;
  esac
done

elapsed=$((SECONDS - started))
if ((${#installed[@]} == 0)); then
  echo "install-bench-peers: up to date in $tools/peers ($(IFS=';'; echo "${current[*]}" | sed 's/;/; /g'))"
else
  summary="installed $(IFS=';'; echo "${installed[*]}" | sed 's/;/; /g')"
  if ((${#current[@]} > 0)); then
    summary+="; already there: $(IFS=';'; echo "${current[*]}" | sed 's/;/; /g')"
  fi
  echo "install-bench-peers: $summary into $tools/peers in ${elapsed}s"
fi
