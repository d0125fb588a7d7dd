#!/usr/bin/env bash
# The package as a user installs it: clone this repository clean (committed files only),
# build a wheel, install it into a fresh virtual environment (not editable), then run the
# core of README's first command (init, add, log) and install and run a sample hook.
# Not in CI: installing the wheel fetches its dependencies (pip's cache serves them when warm).
#
#   scripts/check_wheel.sh [REV]      # REV: the commit to build (default HEAD);
#                                     # corpus: $OPENKB_CORPUS, else ../shared/corpus
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
rev="$(git -C "$repo" rev-parse "${1:-HEAD}")"
corpus="${OPENKB_CORPUS:-$repo/../shared/corpus}"
python="${PYTHON:-python3}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
step() { printf '\n== %s\n' "$*"; }

step "clone ${rev:0:7} clean into $work/clone"
git clone -q --no-hardlinks --no-checkout "$repo" "$work/clone"
git -C "$work/clone" checkout -q "$rev"

step "pip wheel --no-deps"
"$python" -m venv "$work/build"
(cd "$work/clone" && "$work/build/bin/pip" wheel -q --no-deps -w "$work/dist" .)
wheel="$(ls "$work"/dist/openkb_git-*.whl)"
echo "$(basename "$wheel")"
samples="$("$python" -c 'import sys, zipfile; print("\n".join(n for n in zipfile.ZipFile(sys.argv[1]).namelist() if "/hook_samples/" in n))' "$wheel")"
echo "$samples"
test -n "$samples" || { echo "FAIL: the wheel has no hook samples" >&2; exit 1; }

step "install the wheel into a fresh venv"
"$python" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "$wheel"
cd "$work"  # away from the clone: the installed package runs, not a source tree
unset PYTHONPATH
installed="$("$work/venv/bin/python" -c 'import openkb_git; print(openkb_git.__file__)')"
echo "openkb_git from $installed"
case "$installed" in "$work/venv/"*) ;; *) echo "FAIL: not the installed package" >&2; exit 1;; esac
openkb="$work/venv/bin/openkb"

step "README: openkb init, add, log"
src="$work/src"
mkdir -p "$src"
cp "$corpus/pdf/attention-is-all-you-need.pdf" "$corpus/pdf/img-regular.pdf" "$corpus/md/tldr/common/tar.md" "$src/"
"$openkb" init "$work/kb"
"$openkb" --kb-dir "$work/kb" add "$src"
"$openkb" --kb-dir "$work/kb" log -n 5

step "openkb hooks install max-size, and the hook runs"
"$openkb" --kb-dir "$work/kb" hooks install max-size
"$openkb" --kb-dir "$work/kb" hooks list
cp "$corpus/md/tldr/common/grep.md" "$corpus/pdf/test_4505.pdf" "$work/"
mkdir -p "$work/more" && mv "$work/grep.md" "$work/test_4505.pdf" "$work/more/"
size=$(wc -c <"$work/more/grep.md")
set +e
OPENKB_MAX_BYTES=$((size + 1)) "$openkb" --kb-dir "$work/kb" add "$work/more"
status=$?
set -e
echo "exit status $status"
listed="$("$openkb" --kb-dir "$work/kb" list)"
echo "$listed"
grep -q '^grep\b\|[[:space:]]grep\b' <<<"$listed" || { echo "FAIL: grep.md (under the limit) was not added" >&2; exit 1; }
if grep -q 'test_4505' <<<"$listed"; then echo "FAIL: the max-size hook did not stop test_4505.pdf" >&2; exit 1; fi
step "ok: the wheel from a clean clone has its sample hooks and runs"
