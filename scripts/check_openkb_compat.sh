#!/usr/bin/env bash
# Compatibility check against the real OpenKB (not run in CI: it installs OpenKB and its
# dependencies into a separate virtual environment).
#
# Builds a KB with this project's `openkb`, then runs OpenKB's own `openkb list` and
# `openkb status` on it and checks that both succeed and list the same documents.
#
# Usage: scripts/check_openkb_compat.sh [VENV_DIR]   (default: /tmp/openkb-compat-venv)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-/tmp/openkb-compat-venv}"
ours="$here/.venv/bin/openkb"
corpus="$here/../shared/corpus"

if [ ! -x "$venv/bin/openkb" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q openkb
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
kb="$work/kb"
mkdir -p "$work/docs"
cp "$corpus/md/tldr/common/tar.md" "$corpus/md/tldr/common/git-commit.md" "$work/docs/"
cp "$corpus/pdf/attention-is-all-you-need.pdf" "$corpus/pdf/2.pdf" "$work/docs/"
"$ours" init "$kb" >/dev/null
"$ours" --kb-dir "$kb" add -q "$work/docs"

# OpenKB reads the global config in ~/.config/openkb; keep it out of the user's home.
export HOME="$work/home"
mkdir -p "$HOME"
echo "== OpenKB's openkb list"
(cd "$kb" && "$venv/bin/openkb" list) | tee "$work/list.txt"
echo "== OpenKB's openkb status"
(cd "$kb" && "$venv/bin/openkb" status) | tee "$work/status.txt"

ours_docs="$("$ours" --kb-dir "$kb" list --json | python3 -c 'import json,sys; print("\n".join(sorted(d["name"] for d in json.load(sys.stdin))))')"
theirs_docs="$(sed -n '/^Documents/,/^$/p' "$work/list.txt" | tail -n +4 | awk '{print $1}' | sed '/^$/d' | sort)"
if [ "$ours_docs" != "$theirs_docs" ]; then
    echo "MISMATCH: ours:"; echo "$ours_docs"; echo "OpenKB's:"; echo "$theirs_docs"; exit 1
fi
grep -q "Total indexed: $(echo "$ours_docs" | wc -l) document(s)" "$work/status.txt"
echo "OK: OpenKB lists the same $(echo "$ours_docs" | wc -l) documents"
