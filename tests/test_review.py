"""show, diff, blame, log: text, stat and JSON forms carry the same facts."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import example, given, settings, strategies as st

from conftest import copy_tldr, git, run_openkb

FILES = ["git-commit.md", "git-add.md", "git-status.md"]


@pytest.fixture
def history(kb, tmp_path):
    run_openkb("add", "--jobs", "1", copy_tldr(tmp_path / "src", FILES), cwd=kb, check=True)
    return kb


def test_log_text_and_json_agree_with_git(history):
    text = run_openkb("log", cwd=history, check=True).stdout.splitlines()
    data = json.loads(run_openkb("log", "--json", cwd=history, check=True).stdout)
    assert [e["commit"] for e in data] == git(history, "log", "--format=%H").split()
    assert [int(line.split()[0]) for line in text] == [e["position"] for e in data] == [0, 1, 2, 3]
    assert [line.split()[1] for line in text] == [e["short"] for e in data]
    only = json.loads(run_openkb("log", "--json", "git-add", cwd=history, check=True).stdout)
    assert [e["doc"] for e in only] == ["git-add"]


def test_show_text_stat_json(history):
    data = json.loads(run_openkb("show", "--json", "git-add", cwd=history, check=True).stdout)
    assert data["operation"]["doc"] == "git-add" and data["operation"]["op"] == "add"
    files = {f["path"]: f for f in data["files"]}
    assert files["raw/git-add.md"]["status"] == "added"
    assert files["wiki/index.md"]["status"] == "modified" and files["wiki/index.md"]["added"] >= 1
    record = files[".openkb/registry/git-add.json"]
    assert {f["field"] for f in record["fields"]} >= {"sha256", "doc_name", "concepts"}
    assert record["diff"] == []  # a record is shown as fields, not as JSON text

    stat = run_openkb("show", "--stat", "git-add", cwd=history, check=True).stdout
    for path, f in files.items():
        assert path in stat
        if f["fields"] and not (f["added"] or f["removed"]):  # a record: its fields, never "+0 -0"
            assert re.search(rf"{re.escape(path)} +{len(f['fields'])} field\(s\)\n", stat), stat
        elif not f["binary"]:
            assert f"+{f['added']} -{f['removed']}" in stat
    assert "+0 -0" not in stat
    assert "document: git-add" in stat and "op:       add" in stat
    assert "@@" not in stat

    text = run_openkb("show", "git-add", cwd=history, check=True).stdout
    assert "@@" in text and "+- [[summaries/git-add]]" in text
    assert "doc_name: added \"git-add\"" in text or "doc_name: added git-add" in text
    names = run_openkb("show", "--name-only", "git-add", cwd=history, check=True).stdout.split()
    assert sorted(names) == sorted(files)


def test_show_reports_frontmatter_as_fields(history, tmp_path):
    # Re-ingest a changed file: the summary's frontmatter and the record change field by field.
    src = tmp_path / "src" / "git-add.md"
    src.write_text(src.read_text() + "\n- Add changes interactively, hunk by hunk:\n\n`git add -p`\n")
    run_openkb("add", src, cwd=history, check=True)
    data = json.loads(run_openkb("show", "--json", "HEAD", cwd=history, check=True).stdout)
    record = next(f for f in data["files"] if f["path"] == ".openkb/registry/git-add.json")
    sha = next(f for f in record["fields"] if f["field"] == "sha256")
    assert sha["change"] == "changed" and sha["old"] != sha["new"]
    text = run_openkb("show", "HEAD", cwd=history, check=True).stdout
    assert f"sha256 changed from {sha['old']} to {sha['new']}" in text


def test_diff_between_points_and_paths(history):
    data = json.loads(run_openkb("diff", "--json", "HEAD~3", "HEAD", cwd=history, check=True).stdout)
    paths = {f["path"] for f in data["files"]}
    assert {"raw/git-commit.md", "raw/git-add.md", "raw/git-status.md", "wiki/index.md"} <= paths
    limited = json.loads(run_openkb("diff", "--json", "HEAD~3", "HEAD", "wiki/index.md", cwd=history, check=True).stdout)
    assert [f["path"] for f in limited["files"]] == ["wiki/index.md"]
    stat = run_openkb("diff", "--stat", "3", cwd=history, check=True).stdout
    assert "raw/git-status.md" in stat and "file(s) changed" in stat


def test_blame_attributes_lines_to_ingests(history):
    lines = json.loads(run_openkb("blame", "--json", "wiki/index.md", cwd=history, check=True).stdout)
    by_text = {line["text"]: line for line in lines}
    for doc in ("git-commit", "git-add", "git-status"):
        entry = next(v for k, v in by_text.items() if k.startswith(f"- [[summaries/{doc}]]"))
        assert entry["doc"] == doc and entry["op"] == "add"
    assert by_text["# Knowledge Base Index"]["op"] == "init"
    text = run_openkb("blame", "wiki/index.md", cwd=history, check=True).stdout.splitlines()
    assert len(text) == len(lines)
    assert all(t.split()[0] == line["commit"][:7] for t, line in zip(text, lines))


def test_blame_reads_only_the_commits_that_changed_the_page(history, tmp_path, monkeypatch):
    """Where Git is installed, blame reads the commits Git's pathspec-limited walk names
    (`git rev-list --full-history -- path`), not every commit since the page was written;
    its answer is the one the walk of every commit gives (no Git on PATH), and Git's."""
    from openkb_git.history import entry_of
    from openkb_git.kb import KB
    from openkb_git.ops import review

    # More ingests after git-commit's: its summary is not touched by them (HEAD does not
    # change it), the index by all of them.
    run_openkb("add", "--jobs", "1", copy_tldr(tmp_path / "more", ["git-log.md", "git-diff.md", "git-push.md"]),
               cwd=history, check=True)
    read: list[str] = []

    def counting(kb, sha):
        read.append(sha.decode())
        return entry_of(kb, sha)

    monkeypatch.setattr(review, "entry_of", counting)
    reads = {}
    for page in ("wiki/summaries/git-commit.md", "wiki/index.md", "raw/git-add.md"):
        read.clear()
        kb = KB(history)
        try:
            lines = review.blame(kb, page)
        finally:
            kb.close()
        changed = set(git(history, "rev-list", "--full-history", "HEAD", "--", page).split())
        head = git(history, "rev-parse", "HEAD").strip()
        assert set(read) <= changed | {head}, page
        assert changed <= set(read) or page != "wiki/index.md", page
        ours = json.loads(run_openkb("blame", "--json", page, cwd=history, check=True).stdout)
        assert [line["commit"] for line in ours] == [line.commit for line in lines], page
        alone = run_openkb("blame", "--json", page, cwd=history, env={"PATH": str(tmp_path / "no-git-here")},
                           check=True)
        assert json.loads(alone.stdout) == ours, page
        porcelain = git(history, "blame", "--line-porcelain", page).splitlines()
        theirs = [line.split()[0] for line in porcelain if re.match(r"[0-9a-f]{40} \d+ \d+", line)]
        assert [n for n, (a, b) in enumerate(zip([line["commit"] for line in ours], theirs))
                if a != b and ours[n]["text"].strip()] == [], page
        reads[page] = set(read)
    # the summary's lines come from git-commit's add alone: HEAD and that add are all it read,
    # none of the five commits between; the index changed in every commit, all were read
    assert len(reads["wiki/summaries/git-commit.md"]) <= 2
    assert len(reads["wiki/index.md"]) >= 6


def test_bad_selector_is_a_clear_error(history):
    proc = run_openkb("show", "no-such-doc", cwd=history)
    assert proc.returncode == 1 and "names no operation" in proc.stderr


@pytest.mark.parametrize("direct_steps", [0, 64])
def test_positions_name_the_commits_git_names(history, monkeypatch, direct_steps):
    """HEAD~N and log positions, walked commit by commit (near HEAD) or through the log memo."""
    from openkb_git.kb import KB
    from openkb_git.ops import select

    monkeypatch.setattr(select, "DIRECT_STEPS", direct_steps)
    kb = KB(history)
    for selector, rev in [("HEAD", "HEAD"), ("@", "HEAD"), ("HEAD~", "HEAD~1"), ("HEAD~3", "HEAD~3"),
                          ("@~2", "HEAD~2"), ("#2", "HEAD~2"), ("1", "HEAD~1")]:
        assert select.resolve(kb, selector).sha == git(history, "rev-parse", rev).strip(), selector
    with pytest.raises(select.BadSelectorError, match="fewer than 5 operations"):
        select.resolve(kb, "HEAD~4")


def _forge_commit_memo(memo, old: bytes, new: bytes) -> None:
    """Rewrite bytes of the commits in .openkb/commit-objects.cache (lengths kept: entries still parse)."""
    assert len(old) == len(new)
    data = memo.read_bytes()
    assert old in data
    memo.write_bytes(data.replace(old, new))


def test_log_memo_is_a_cache_that_cannot_mislead(history):
    """.openkb/commit-objects.cache memoizes commits; deleting, garbling, tearing or forging it, or
    moving the branch back, never changes what log says: every entry is checked against its id
    (git/memo.py, the rule of the record memo too), and what fails is read from the commits."""
    from openkb_git.history import CommitMemo

    memo = history / ".openkb" / "commit-objects.cache"
    expected = git(history, "log", "--format=%H").split()

    def logged():
        return [e["commit"] for e in json.loads(run_openkb("log", "--json", cwd=history, check=True).stdout)]

    memo.unlink(missing_ok=True)
    assert logged() == expected
    assert set(CommitMemo(memo).raw) == {sha.encode() for sha in expected} and CommitMemo(memo).ignored == 0
    first = run_openkb("log", cwd=history, check=True).stdout
    whole = memo.read_bytes()
    second = whole.index(b"\n", whole.index(b"\n") + 1)  # the end of the first entry's header line
    memo.write_bytes(whole[:second] + b"not an entry\n[1, 2]\n" + whole[second:second + 17])  # garbled, torn
    assert logged() == expected
    assert CommitMemo(memo).ignored == 0 and set(CommitMemo(memo).raw) == {sha.encode() for sha in expected}
    _forge_commit_memo(memo, b"OpenKB-Doc: git-add", b"OpenKB-Doc: git-adX")  # a forged entry that parses
    assert CommitMemo(memo).ignored > 0
    assert run_openkb("log", cwd=history, check=True).stdout == first
    assert "git-adX" not in run_openkb("show", "git-add", cwd=history, check=True).stdout
    git(history, "reset", "-q", "--hard", "HEAD~1")
    assert logged() == expected[1:]
    assert run_openkb("status", "--json", cwd=history, check=True).returncode == 0


_words = st.text(alphabet="abc ", max_size=4)
_values = st.one_of(st.none(), st.booleans(), st.integers(-2, 2), _words, st.lists(_words, max_size=4))
_records = st.dictionaries(st.sampled_from(["doc", "title", "sources", "concepts", "n"]), _values, min_size=1)


@settings(max_examples=400, deadline=None)
@given(old=_records, new=_records)
def test_flat_field_changes_equal_deepdiffs(old, new):
    """The deepdiff-free path gives exactly deepdiff's changes wherever it answers (and it answers
    for the usual ingest: a list that only gains, scalars that change)."""
    from openkb_git.ops import review

    def key(change):
        return (change.field, change.change, repr(change.old), repr(change.new))

    flat = review._flat_changes(old, new)
    if flat is not None:
        assert sorted(flat, key=key) == sorted(review._deepdiff_changes(old, new), key=key)


def test_flat_field_changes_answer_for_an_ingest():
    from openkb_git.ops import review

    old = {"title": "Email", "sources": ["alpine", "git-send-email"]}
    new = {"title": "Email", "sources": ["alpine", "git-send-email", "msmtp"]}
    assert review._flat_changes(old, new) == [review.FieldChange("sources", "added", new="msmtp")]
    assert review._flat_changes({"a": ["x"]}, {"a": ["y"]}) is None  # paired by deepdiff: left to it


def _apply(lines: list[str], diff: list[str]) -> list[str]:
    """Apply a unified diff (as `patch` would, offsets taken literally) to ``lines``."""
    import re

    out, pos = [], 0
    for line in diff[2:]:
        hunk = re.match(r"@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@", line)
        if hunk:
            start, length = int(hunk[1]), int(hunk[2] if hunk[2] is not None else 1)
            start = start - 1 if length else start  # 1-based, or "after line N" when empty
            out += lines[pos:start]
            pos = start
            new_start, new_length = int(hunk[3]), int(hunk[4] if hunk[4] is not None else 1)
            assert len(out) == (new_start - 1 if new_length else new_start), "new-side line number"
        elif line.startswith((" ", "-")):
            assert lines[pos] == line[1:], "context or removed line does not match"
            if line.startswith(" "):
                out.append(lines[pos])
            pos += 1
        else:
            assert line.startswith("+")
            out.append(line[1:])
    return out + lines[pos:]


_lines = st.lists(st.sampled_from(["a\n", "b\n", "c\n", "\n", "- [[x]]\n"]), max_size=40)


@settings(max_examples=400, deadline=None)
@given(old=_lines, new=_lines)
def test_unified_diff_of_the_middle_applies(old, new):
    """show's diff (difflib on the lines between the common head and tail, hunks shifted back)
    turns the old lines into the new ones, with line numbers as a patch tool reads them."""
    from openkb_git.ops.review import unified_diff

    diff = unified_diff(old, new, "a/p", "b/p", n=3)
    assert (diff == []) == (old == new)
    assert _apply(old, diff) == new


_yaml_words = st.one_of(
    st.sampled_from(["yes", "No", "ON", "null", "Null", "~", "1e3", "0x1f", "1:20", "2001-12-14", ".inf", "-", "[]",
                     "a: b", "a #b", "'q'", "x-y", "git add", "e1", "y", "n", "<<", "=", "v1.2", "a  b", "a ", ""]),
    st.text(alphabet="aZ09 _.-:#'\"[]{}!&*|>%@`,?", max_size=6))
_yaml_values = st.one_of(_yaml_words, st.lists(_yaml_words, max_size=3), st.integers(), st.booleans(), st.none())


@example(data={}, raw=["x-y:", "n: e1"])  # a key with no items is a null, not an empty list
@settings(max_examples=500, deadline=None)
@given(data=st.dictionaries(_yaml_words, _yaml_values, max_size=5),
       raw=st.lists(st.one_of(_yaml_words.map(lambda w: f"- {w}"), st.tuples(_yaml_words, _yaml_words).map(
           lambda kv: f"{kv[0]}: {kv[1]}"), _yaml_words.map(lambda w: f"{w}:")), max_size=5))
def test_plain_frontmatter_reader_agrees_with_pyyaml(data, raw):
    """show reads openkb-shaped frontmatter without PyYAML; wherever it answers, PyYAML gives the
    same mapping (frontmatter as the compiler dumps it, and arbitrary lines)."""
    import yaml

    from openkb_git.frontmatter import dump as dump_frontmatter
    from openkb_git.ops.review import _plain_mapping

    for text in (dump_frontmatter(data)[4:-4], "\n".join(raw) + "\n"):
        fast = _plain_mapping(text)
        if fast is not None:
            assert fast == yaml.safe_load(text), text


def test_plain_frontmatter_reader_answers_for_openkb_pages():
    from openkb_git.frontmatter import dump as dump_frontmatter
    from openkb_git.ops.review import _plain_mapping

    page = {"title": "Git commit", "sources": ["git-add", "git-commit"], "type": "concept", "keywords": []}
    assert _plain_mapping(dump_frontmatter(page)[4:-4]) == page
    assert _plain_mapping("title: yes\n") is None  # a boolean to YAML: left to PyYAML


_versions = st.lists(st.integers(0, 400).map(str), min_size=80, max_size=200, unique=True).flatmap(
    lambda a: st.tuples(st.just(a), st.lists(st.tuples(st.integers(0, max(len(a), 1)), st.sampled_from(["ins", "del"]),
                                                       st.integers(401, 420).map(str)), min_size=2, max_size=6)))


@settings(max_examples=100, deadline=None)
@given(version=_versions)
def test_matching_blocks_are_a_valid_alignment(version):
    """blame's matcher (anchors between the common head and tail, difflib on small pieces):
    every block is equal on both sides, blocks increase on both sides, and when the old lines
    are distinct and the new ones are new, every line not deleted is matched."""
    from openkb_git.ops.review import matching_blocks

    a, edits = version
    b = list(a)
    deleted = 0
    for at, kind, line in edits:
        at = min(at, len(b))
        if kind == "ins":
            b.insert(at, line)
        elif at < len(b):
            deleted += b[at] in a
            del b[at]
    blocks = matching_blocks(a, b)
    end_a = end_b = 0
    for i, j, n in blocks:
        assert n > 0 and i >= end_a and j >= end_b and a[i:i + n] == b[j:j + n]
        end_a, end_b = i + n, j + n
    assert sum(n for _i, _j, n in blocks) == len(a) - deleted


def test_diff_refuses_an_argument_that_is_neither_a_point_nor_a_path(history):
    """A mistyped B (`HEAD~1x`) is not a path filter matching nothing ("0 file(s) changed",
    exit 0): as git's "ambiguous argument", it is an error naming it (exit 2). An existing path
    before `--`, or anything after `--`, is a path."""
    for argv in (["--stat", "HEAD~1", "HEAD~1x"], ["--stat", "HEAD~1", "HEAD", "wiki/nothere.md"]):
        proc = run_openkb("diff", *argv, cwd=history)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert f"ambiguous argument {argv[-1]!r}" in proc.stderr and "--" in proc.stderr
        assert "Traceback" not in proc.stderr and proc.stdout == ""
    by_path = run_openkb("diff", "--name-only", "HEAD~1", "wiki/index.md", cwd=history, check=True).stdout
    assert by_path.split() == ["wiki/index.md"]
    after = run_openkb("diff", "--name-only", "HEAD~1", "HEAD", "--", "wiki/index.md", cwd=history, check=True)
    assert after.stdout == by_path
    gone = run_openkb("diff", "--stat", "HEAD~1", "--", "HEAD~1x", cwd=history, check=True)
    assert "0 file(s) changed" in gone.stdout


@given(st.lists(st.sampled_from(["a", "b", "c", "", "x\r", "- [[summaries/d]]"]), max_size=12),
       st.lists(st.sampled_from(["a", "b", "c", "", "y", "- [[summaries/d]]"]), max_size=12),
       st.booleans(), st.booleans())
def test_text_blocks_are_runs_of_equal_lines_in_order(a_lines, b_lines, a_end, b_end):
    """blame compares two versions on their bytes (ops/review.py text_blocks): every run it
    returns is lines equal on both sides, in increasing order on both, and a common head and
    tail of whole lines are matched whole."""
    from openkb_git.ops.review import _split_lines, text_blocks

    a = ("\n".join(a_lines) + ("\n" if a_end and a_lines else "")).encode()
    b = ("\n".join(b_lines) + ("\n" if b_end and b_lines else "")).encode()
    la, lb = _split_lines(a) if a else [], _split_lines(b) if b else []
    blocks = text_blocks(a, b)
    last_i = last_j = 0
    for i, j, n in blocks:
        assert n > 0 and i >= last_i and j >= last_j
        assert la[i:i + n] == lb[j:j + n]
        last_i, last_j = i + n, j + n
    head = 0
    while head < min(len(la), len(lb)) and la[head] == lb[head] and (head + 1 < len(la) or a.endswith(b"\n")) \
            and (head + 1 < len(lb) or b.endswith(b"\n")):
        head += 1
    matched = {(i + k, j + k) for i, j, n in blocks for k in range(n)}
    assert all((k, k) in matched for k in range(head))
