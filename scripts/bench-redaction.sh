#!/usr/bin/env bash
# redact() on a 64 KiB text, release build: this tree's redactor against the one at BASE (default
# 9869bf4, before the encoding forms), with 1 and 20 secrets. A throwaway crate in a temp dir with
# only the redactor's own dependencies, so nothing of the workspace is built in release.
#   scripts/bench-redaction.sh [BASE]
set -euo pipefail
top=$(git rev-parse --show-toplevel)
base=${1:-9869bf4}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src/new"
cat > "$dir/Cargo.toml" <<'TOML'
[package]
name = "bench-redaction"
version = "0.0.0"
edition = "2024"

[workspace]

[dependencies]
aho-corasick = "1.1"
arc-swap = "1"
base64 = "0.22"
serde_json = "1"
percent-encoding = "2.3"
hex = "0.4"
TOML
cp "$top/Cargo.lock" "$dir/"
cp "$top/scripts/bench-redaction/main.rs" "$dir/src/main.rs"
# The redactor without its glue to the actors crate (not a dependency here).
strip_glue() { python3 -c '
import sys
s = sys.stdin.read()
start = "/// The process\x27s redactor at the moment of each line"
if start in s:
    s = s[:s.index(start)] + s[s.index("/// A log writer that redacts"):]
sys.stdout.write(s)'; }
strip_glue < "$top/daemon/src/redaction.rs" > "$dir/src/new.rs"
cp "$top/daemon/src/redaction/forms.rs" "$dir/src/new/forms.rs"
git -C "$top" show "$base:daemon/src/redaction.rs" | strip_glue > "$dir/src/old.rs"
if git -C "$top" cat-file -e "$base:daemon/src/redaction/forms.rs" 2>/dev/null; then
    mkdir -p "$dir/src/old"
    git -C "$top" show "$base:daemon/src/redaction/forms.rs" > "$dir/src/old/forms.rs"
fi
(cd "$dir" && CARGO_TARGET_DIR="$dir/target" cargo build --release --offline --quiet && "$dir/target/release/bench-redaction")
