#!/usr/bin/env bash
# Compatibility check against the real OpenKB 0.4.5 (not run in CI: it installs OpenKB and its
# dependencies into a separate virtual environment, and takes minutes).
#
# Builds a KB with this project's `openkb` from ../shared/corpus/pdf plus 200 tldr pages, then:
#   1. OpenKB's `openkb lint`: every section of its structural report must count 0, and our
#      `openkb lint` must print the same report (also with faults seeded);
#   2. OpenKB's `openkb list` and `openkb status`: they must list our documents;
#   3. OpenKB's `openkb visualize --no-open`: it must write the graph;
#   4. OpenKB's own `add` of a document (tests/data/openkb_add.py: its code path, the model's
#      answers made there), then one of our writers: it commits it as an `add`; both lists agree,
#      fsck (ours and `git fsck --strict`) is clean, and our `revert` of it takes it out;
#   5. OpenKB's `openkb remove -y <doc>`, then one of our writers (`openkb add` of another
#      page): it commits OpenKB's removal, and our `openkb fsck` must find the KB clean.
#
# Usage: scripts/check_openkb_compat.sh [VENV_DIR]   (default: /tmp/openkb-compat-venv; a venv
# that already holds OpenKB 0.4.5's `bin/openkb` is used as it is)
# Our `openkb`: $here/.venv/bin/openkb, else `$PYTHON -m openkb_git` with this checkout first
# on PYTHONPATH (PYTHON defaults to python3).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="${1:-/tmp/openkb-compat-venv}"
corpus="$here/../shared/corpus"
[ -d "$corpus" ] || corpus="${OPENKB_CORPUS:?set OPENKB_CORPUS to the shared corpus}"

ours() {
    if [ -x "$here/.venv/bin/openkb" ]; then
        "$here/.venv/bin/openkb" "$@"
    else
        PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}" "${PYTHON:-python3}" -m openkb_git "$@"
    fi
}

if [ ! -x "$venv/bin/openkb" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "openkb==0.4.5"
fi
version="$("$venv/bin/openkb" --version)"
case "$version" in *0.4.5*) ;; *) echo "expected OpenKB 0.4.5, found: $version"; exit 1 ;; esac

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
kb="$work/kb"
mkdir -p "$work/docs/pdf" "$work/docs/tldr" "$work/more"
cp "$corpus"/pdf/*.pdf "$work/docs/pdf/"
find "$corpus/md/tldr/common" -name '*.md' | LC_ALL=C sort | sed -n '1,200p' | xargs -I{} cp {} "$work/docs/tldr/"
next="$(find "$corpus/md/tldr/common" -name '*.md' | LC_ALL=C sort | sed -n 201p)"
cp "$next" "$work/more/"
ours init "$kb" >/dev/null
start=$SECONDS
ours --kb-dir "$kb" add -q "$work/docs/pdf" "$work/docs/tldr" || true  # a PDF that fails is reported, not fatal
echo "== built with our openkb in $((SECONDS - start)) s: $(ours --kb-dir "$kb" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))') documents"

# OpenKB reads the global config in ~/.config/openkb; keep it out of the user's home. No API key:
# `lint` runs its structural part only.
export HOME="$work/home"
mkdir -p "$HOME"
theirs() { (cd "$kb" && env -u PYTHONPATH -u LLM_API_KEY -u OPENAI_API_KEY "$venv/bin/openkb" "$@"); }

echo "== OpenKB's openkb lint"
theirs lint > "$work/lint.txt" 2>&1 || { cat "$work/lint.txt"; exit 1; }
sed -n "/^## Structural Lint Report/,\$p" "$work/lint.txt" | grep -v "^- " || true
sections="$(grep -c '^### .* ([0-9]*)$' "$work/lint.txt" || true)"
nonzero="$(grep '^### .* ([0-9]*)$' "$work/lint.txt" | grep -v '(0)$' || true)"
if [ "$sections" -ne 6 ] || [ -n "$nonzero" ]; then
    echo "FAIL: OpenKB's lint: $sections structural sections, not all 0:"; echo "$nonzero"
    grep '^- ' "$work/lint.txt" | sed -n '1,20p'
    exit 1
fi

# Our `openkb lint` (ops/lint.py) must print OpenKB's structural report, on the clean KB and
# with a fault of each kind seeded (a broken link, a page no index line or link reaches, a
# frontmatter that is not YAML and lacks OKF's fields, a raw file of no document).
# (OpenKB saves each report under wiki/reports/ after making it, where the next lint sees it as
# an orphan: they are deleted first, and ours, which writes nothing, runs first.)
lint_both() {
    rm -rf "$kb/wiki/reports"
    { ours --kb-dir "$kb" lint || true; } | sed '/^$/d' > "$work/lint-ours.txt"
    theirs lint 2>&1 | sed -n "/^## Structural Lint Report/,\$p" | sed '/^Running knowledge lint/,$d' | sed '/^$/d' > "$work/lint-theirs.txt"
    rm -rf "$kb/wiki/reports"
    diff "$work/lint-theirs.txt" "$work/lint-ours.txt" || { echo "FAIL: our openkb lint differs from OpenKB's ($1)"; exit 1; }
}
echo "== our openkb lint against OpenKB's"
lint_both "clean KB"
some_concept="$(ls "$kb/wiki/concepts" | head -1)"
echo "See [[concepts/no-such-page]]." >> "$kb/wiki/concepts/$some_concept"
printf -- '---\ntitle: a: b\n---\n# Loose\n' > "$kb/wiki/concepts/loose-page.md"
echo "dropped" > "$kb/raw/dropped.txt"
lint_both "faults seeded"
git -C "$kb" checkout -q -- "wiki/concepts/$some_concept"
rm "$kb/wiki/concepts/loose-page.md" "$kb/raw/dropped.txt"
echo "OK: our openkb lint prints OpenKB's structural report ($(grep -c '^- ' "$work/lint-ours.txt") findings seeded)"

echo "== OpenKB's openkb list"
theirs list > "$work/list.txt"
head -3 "$work/list.txt"
echo "== OpenKB's openkb status"
theirs status | tee "$work/status.txt"
ours_docs="$(ours --kb-dir "$kb" list --json | python3 -c 'import json,sys; print("\n".join(sorted(d["name"] for d in json.load(sys.stdin))))')"
theirs_docs="$(sed -n '/^Documents/,/^$/p' "$work/list.txt" | tail -n +4 | awk '{print $1}' | sed '/^$/d' | LC_ALL=C sort)"
if [ "$(echo "$ours_docs" | LC_ALL=C sort)" != "$theirs_docs" ]; then
    echo "MISMATCH: ours:"; echo "$ours_docs"; echo "OpenKB's:"; echo "$theirs_docs"; exit 1
fi
count="$(echo "$ours_docs" | wc -l)"
grep -q "Total indexed: $count document(s)" "$work/status.txt"

echo "== OpenKB's openkb visualize --no-open"
theirs visualize --no-open | tee "$work/visualize.txt"
grep -q "^Graph written to" "$work/visualize.txt"

list_both() {  # our documents and OpenKB's `list` of them, sorted, must be the same
    local mine theirs_now
    mine="$(ours --kb-dir "$kb" list --json | python3 -c 'import json,sys; print("\n".join(sorted(d["name"] for d in json.load(sys.stdin))))')"
    theirs_now="$(theirs list | sed -n '/^Documents/,/^$/p' | tail -n +4 | awk '{print $1}' | sed '/^$/d' | sed 's/\.[^.]*$//' | LC_ALL=C sort)"
    [ "$(echo "$mine" | sed 's/\.[^.]*$//' | LC_ALL=C sort)" = "$theirs_now" ] || { echo "FAIL: the two lists differ ($1)"; diff <(echo "$mine") <(echo "$theirs_now") | head; exit 1; }
}

echo "== OpenKB's own add (its code path; the model's answers made by tests/data/openkb_add.py), then our next writer"
printf '# Rsync copies files\n\nrsync copies files between hosts.\n\nconcept: Archive\nconcept: Remote Copy\n' > "$work/rsync-notes.md"
(cd "$kb" && env -u PYTHONPATH "$venv/bin/python" "$here/tests/data/openkb_add.py" "$kb" "$work/rsync-notes.md") | tail -1
ours --kb-dir "$kb" recover
git -C "$kb" log -1 --format='   %h %s'
git -C "$kb" log -1 --format=%s | grep -q "^add: rsync-notes.md (added by OpenKB)$"
[ -z "$(git -C "$kb" status --porcelain)" ] || { echo "FAIL: git status is not clean"; git -C "$kb" status --short | head; exit 1; }
list_both "after OpenKB's add"
ours --kb-dir "$kb" fsck
git -C "$kb" fsck --strict --no-progress
ours --kb-dir "$kb" revert rsync-notes
[ ! -e "$kb/wiki/summaries/rsync-notes.md" ] && [ ! -e "$kb/wiki/concepts/remote-copy.md" ]
list_both "after our revert of OpenKB's add"
ours --kb-dir "$kb" fsck
echo "OK: OpenKB's add recorded as an add commit, both lists agree, fsck clean, and our revert of it removed it"

victim="attention-is-all-you-need"
echo "== OpenKB's openkb remove -y $victim"
theirs remove -y "$victim" | tail -3
[ ! -e "$kb/wiki/summaries/$victim.md" ]

echo "== our openkb add (commits OpenKB's removal), then our openkb fsck"
ours --kb-dir "$kb" add "$work/more/$(basename "$next")"
git -C "$kb" log -3 --format='   %h %s'
ours --kb-dir "$kb" fsck
after="$(ours --kb-dir "$kb" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
if ours --kb-dir "$kb" list --json | grep -q "\"$victim\""; then
    echo "FAIL: $victim is still listed after OpenKB's remove"; exit 1
fi
echo "OK: OpenKB's lint counts 0 in all $sections structural sections on $count documents" \
     "($(ls "$kb/wiki/concepts" | wc -l) concept pages, $(ls "$kb/wiki/entities" 2>/dev/null | wc -l) entity pages);" \
     "list, status and visualize work; after OpenKB's remove of $victim and our next add: $after documents, fsck clean"

# 6. The LLM compiler (docs/llm.md, issue #17): ../shared/corpus/pdf and 100 tldr pages compiled
#    by a model — the local OpenAI-compatible server of the tests (tests/llm_server.py) — one
#    commit per file, and OpenKB's lint must count 0 in every structural section.
echo "== compiler: llm (tests/llm_server.py on 127.0.0.1): corpus/pdf + 100 tldr pages, then OpenKB's lint"
llm_kb="$work/llm-kb"
mkdir -p "$work/llm-docs/tldr"
find "$corpus/md/tldr/common" -name '*.md' | LC_ALL=C sort | sed -n '1,100p' | xargs -I{} cp {} "$work/llm-docs/tldr/"
py="$here/.venv/bin/python"; [ -x "$py" ] || py="${PYTHON:-python3}"
"$py" "$here/tests/llm_server.py" --port 0 > "$work/llm-server.url" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do [ -s "$work/llm-server.url" ] && break; sleep 0.1; done
url="$(head -1 "$work/llm-server.url")"
ours init "$llm_kb" >/dev/null
printf 'compiler: llm\nmodel: openai/compat-model\nbase_url: %s\napi_key_env: null\n' "$url" >> "$llm_kb/.openkb/config.yaml"
git -C "$llm_kb" -c user.name=compat -c user.email=compat@example.invalid commit -qam "config: compiler llm"  # HOME is the work folder: no identity of the user
ours --kb-dir "$llm_kb" add -q "$work/docs/pdf" "$work/llm-docs/tldr" || true
added="$(git -C "$llm_kb" log --format=%B | grep -c '^OpenKB-Model: openai/compat-model$' || true)"
docs="$(ours --kb-dir "$llm_kb" list --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
[ "$added" -eq "$docs" ] || { echo "FAIL: $docs documents but $added commits compiled by the model"; exit 1; }
(cd "$llm_kb" && env -u PYTHONPATH -u LLM_API_KEY -u OPENAI_API_KEY "$venv/bin/openkb" lint) > "$work/llm-lint.txt" 2>&1 || { cat "$work/llm-lint.txt"; exit 1; }
sections="$(grep -c '^### .* ([0-9]*)$' "$work/llm-lint.txt" || true)"
nonzero="$(grep '^### .* ([0-9]*)$' "$work/llm-lint.txt" | grep -v '(0)$' || true)"
if [ "$sections" -ne 6 ] || [ -n "$nonzero" ]; then
    echo "FAIL: OpenKB's lint of the LLM-compiled KB:"; echo "$nonzero"; grep '^- ' "$work/llm-lint.txt" | sed -n '1,20p'; exit 1
fi
ours --kb-dir "$llm_kb" fsck
echo "OK: compiler llm: $docs documents, one model-compiled commit each, OpenKB's lint counts 0 in all 6 sections," \
     "$(curl -s "${url%/v1}/stats" | python3 -c 'import json,sys; print(json.load(sys.stdin)["chat_requests"])') requests"
