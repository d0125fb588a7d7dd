"""Reviewing history: what changed between two trees (show, diff) and who wrote each line (blame).

Pages are shown as unified diffs of their text; frontmatter and registry records are
compared as data (deepdiff) and reported as "field X changed from A to B".
"""

from __future__ import annotations

import bisect
import heapq
import difflib
import functools
import json
import re
import stat as statmod
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..errors import EXIT_USAGE, OpenKBError
from ..frontmatter import load_yaml, split as split_frontmatter
from ..git.objects import PathFollower, common_prefix, common_suffix
from ..history import Entry, entry_of, tree_of
from ..kb import KB
from .read import git_path_graph
from .select import BadSelectorError, resolve

DIFF_CONTEXT = 3


@dataclass
class FieldChange:
    field: str
    change: str  # added | removed | changed
    old: object = None
    new: object = None

    def describe(self) -> str:
        if self.change == "added":
            return f"{self.field}: added {_fmt(self.new)}"
        if self.change == "removed":
            return f"{self.field}: removed {_fmt(self.old)}"
        return f"{self.field} changed from {_fmt(self.old)} to {_fmt(self.new)}"


@dataclass
class FileChange:
    path: str
    status: str  # added | modified | deleted
    added: int = 0
    removed: int = 0
    binary: bool = False
    fields: list[FieldChange] = field(default_factory=list)  # frontmatter / record changes
    diff: list[str] = field(default_factory=list)  # unified diff lines of the text (frontmatter excluded)


@dataclass
class Change:
    """The difference between two commits (``old`` may be None: the empty tree)."""

    old: str | None
    new: str
    files: list[FileChange]

    def to_json(self) -> dict:
        return {"old": self.old, "new": self.new, "files": [asdict(f) for f in self.files]}


def _fmt(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 120 else text[:119] + "…"


# -- tree diff ------------------------------------------------------------------------


def changed_paths(kb: KB, old_tree: bytes | None, new_tree: bytes | None) -> dict[str, tuple]:
    """{path: (old blob id or None, new blob id or None)} for files that differ (as stored: a
    reader lists even a path it would refuse to write)."""
    return kb.objects.changed_files(old_tree, new_tree)


class PathOutsideKBError(OpenKBError):
    """A path argument (blame, diff, log --path) that is not inside the knowledge base."""

    exit_code = EXIT_USAGE


def kb_path(kb: KB, arg: str, cwd: Path | None = None) -> str:
    """The KB-relative path (`wiki/index.md`; "" for the KB's root) a path argument names, as
    git reads one: relative to the current directory when that is inside the KB (`archive.md`
    from wiki/concepts, `./wiki/index.md`, `../index.md`), else relative to the KB's root
    (`openkb --kb-dir kb blame wiki/index.md` from outside it); an absolute path must be inside
    the KB. Symbolic links in the current directory are resolved, as for the KB's root. Raises
    PathOutsideKBError for a path outside the KB."""
    import os

    root = str(kb.root)
    here = os.path.realpath(cwd if cwd is not None else os.getcwd())
    inside = here == root or here.startswith(root.rstrip(os.sep) + os.sep)
    if os.path.isabs(arg):
        base = ""
    else:
        base = here if inside else root
    full = os.path.normpath(os.path.join(base, arg) if base else arg)
    if full != root and not full.startswith(root.rstrip(os.sep) + os.sep):
        real = os.path.realpath(full)  # /tmp/kb given where /tmp is a link: the same place
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            full = real
        else:
            raise PathOutsideKBError(
                f"{arg!r} is outside the knowledge base {root}: give a path inside it (relative to the current "
                f"directory, or to the KB's root when you are outside it, e.g. wiki/index.md)")
    rel = os.path.relpath(full, root)
    return "" if rel == "." else rel.replace(os.sep, "/")


class AmbiguousArgumentError(OpenKBError):
    """A `diff` argument before `--` that is neither a point of the history nor a path."""

    exit_code = EXIT_USAGE


def diff_points(kb: KB, points: list[str], after_dashes: list[str]) -> tuple[Entry, Entry, list[str]]:
    """(A, B, paths) of `openkb diff A [B] [PATH...] [-- PATH...]`, as git reads them: B (default
    HEAD) is the second argument when it is a selector; before `--`, any other argument must be
    a path the KB has (in the working tree, or in A's or B's tree), else AmbiguousArgumentError
    names it (a mistyped `HEAD~1x` is not a filter matching nothing); after `--`, only paths."""
    old = resolve(kb, points[0])
    rest = list(points[1:])
    new, not_a_point = None, None
    if rest:
        try:
            new = resolve(kb, rest[0])
            rest = rest[1:]
        except BadSelectorError as exc:
            not_a_point = exc  # then rest[0] is a path, or a mistyped B
    if new is None:
        new = resolve(kb, "HEAD")
    trees = [kb.objects.get(entry.sha.encode()).tree for entry in (old, new)]
    used = " ".join(points[:len(points) - len(rest)])
    paths = []
    for at, arg in enumerate(rest):
        try:
            name = kb_path(kb, arg)
        except PathOutsideKBError:
            name = None
        paths.append(name)
        if not (name is not None and (name == "" or (kb.root / name).exists()
                                      or any(kb.objects.lookup(t, name) for t in trees))):
            why = f" ({not_a_point})" if at == 0 and not_a_point else ""
            raise AmbiguousArgumentError(
                f"ambiguous argument {arg!r}: neither a point of the history{why} nor a path in the knowledge "
                f"base; check the spelling, or put paths after `--` (`openkb diff {used} -- {arg}`)")
    return old, new, paths + [kb_path(kb, arg) for arg in after_dashes]


def compare(kb: KB, old: str | None, new: str, paths: list[str] | None = None, *, with_text: bool = True) -> Change:
    """The Change from commit ``old`` (None: nothing) to commit ``new``, limited to ``paths``
    (files or folders) when given."""
    old_tree = kb.objects.get(old.encode()).tree if old else None
    new_tree = kb.objects.get(new.encode()).tree
    files = []
    if paths and any(not p.strip("/") for p in paths):
        paths = None  # the KB's root (`.`): every path
    for path, (a, b) in sorted(changed_paths(kb, old_tree, new_tree).items()):
        if paths and not any(path == p.strip("/") or path.startswith(p.strip("/") + "/") for p in paths):
            continue
        files.append(file_change(kb, path, a, b, with_text=with_text))
    return Change(old=old, new=new, files=files)


def file_change(kb: KB, path: str, a: bytes | None, b: bytes | None, *, with_text: bool = True) -> FileChange:
    status = "added" if a is None else "deleted" if b is None else "modified"
    old = kb.objects.blob_bytes(a) if a else b""
    new = kb.objects.blob_bytes(b) if b else b""
    change = FileChange(path=path, status=status)
    try:
        old_text, new_text = old.decode("utf-8"), new.decode("utf-8")
    except UnicodeDecodeError:
        change.binary = True
        return change
    if "\0" in old_text or "\0" in new_text:
        change.binary = True
        return change
    old_meta, old_body = split_structured(path, old_text)
    new_meta, new_body = split_structured(path, new_text)
    if old_meta is not None or new_meta is not None:
        change.fields = field_changes(old_meta or {}, new_meta or {})
    old_lines, new_lines = old_body.splitlines(True), new_body.splitlines(True)
    diff = unified_diff(old_lines, new_lines, f"a/{path}", f"b/{path}", n=DIFF_CONTEXT)
    change.added = sum(1 for line in diff if line.startswith("+") and not line.startswith("+++"))
    change.removed = sum(1 for line in diff if line.startswith("-") and not line.startswith("---"))
    if with_text:
        change.diff = [line if line.endswith("\n") else line + "\n" for line in diff]
    return change


_HUNK = re.compile(r"@@ -(\d+)((?:,\d+)?) \+(\d+)((?:,\d+)?) @@")


def unified_diff(a: list[str], b: list[str], fromfile: str, tofile: str, n: int = 3) -> list[str]:
    """difflib's unified diff of the lines that differ: the common head and tail are matched by
    comparing slices (as Git's xdiff trims them) and only the middle, with ``n`` lines of
    context, goes to difflib, whose matcher is quadratic-ish and builds a map of every line
    (index.md's thousands of lines for one added bullet). Hunk line numbers are shifted back."""
    head = common_prefix(a, b)
    tail = common_suffix(a, b, head)
    lo = max(0, head - n)
    cut = max(0, tail - n)
    diff = list(difflib.unified_diff(a[lo:len(a) - cut], b[lo:len(b) - cut], fromfile, tofile, n=n))
    if lo:
        for k, line in enumerate(diff):
            if line.startswith("@@"):
                m = _HUNK.match(line)
                diff[k] = f"@@ -{int(m[1]) + lo}{m[2]} +{int(m[3]) + lo}{m[4]} @@{line[m.end():]}"
    return diff


def split_structured(path: str, text: str) -> tuple[dict | None, str]:
    """(data, remaining text): a registry record is all data; a page's YAML frontmatter is data."""
    if path.endswith(".json") and path.startswith(".openkb/registry/"):
        try:
            data = json.loads(text) if text else {}
            return (data if isinstance(data, dict) else {"value": data}), ""
        except ValueError:
            return None, text
    if path.endswith(".yaml"):
        try:
            data = _load_yaml(text) if text else {}
            return (data if isinstance(data, dict) else {"value": data}), ""
        except ValueError:
            return None, text
    if path.endswith(".md"):
        return split_frontmatter(text, load=_load_yaml)
    return None, text


# A plain YAML scalar that PyYAML resolves to this very string: a letter first, then letters,
# digits, `_./-` and single spaces (no `:`, `#`, quotes or brackets), and not a YAML 1.1
# boolean or null word. Numbers, dates, `.inf` and `~` start with something else.
_PLAIN = r"[A-Za-z][A-Za-z0-9_./-]*(?: [A-Za-z0-9_./-]+)*"
_NOT_STRINGS = frozenset(
    w for word in ("yes", "no", "true", "false", "on", "off", "null") for w in (word, word.title(), word.upper()))
_KEY_LINE = re.compile(rf"({_PLAIN}):(?: ({_PLAIN}|\[\]))?")
_ITEM_LINE = re.compile(rf"- ({_PLAIN})")


def _plain_mapping(text: str) -> dict | None:
    """The mapping a YAML text holds when it is written the way openkb's pages are (`key: word`,
    `key:` then `- word` lines, `key: []`, every scalar plain), without importing PyYAML (a
    tenth of `show`'s time); None for anything else, which PyYAML then reads. Property test:
    the same mapping as PyYAML's wherever it answers."""
    data: dict = {}
    items: list | None = None
    for line in text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"):
        item = _ITEM_LINE.fullmatch(line)
        if item:
            if items is None or item[1] in _NOT_STRINGS:
                return None
            items.append(item[1])
            continue
        if items is not None and not items:
            return None  # `key:` with no items is a null
        pair = _KEY_LINE.fullmatch(line)
        if pair is None or pair[1] in _NOT_STRINGS or pair[1] in data or pair[2] in _NOT_STRINGS:
            return None
        if pair[2] is None:
            items = data[pair[1]] = []
        else:
            data[pair[1]] = [] if pair[2] == "[]" else pair[2]
            items = None
    if items is not None and not items:
        return None
    return data


def _load_yaml(text: str):
    data = _plain_mapping(text)
    if data is not None:
        return data
    return load_yaml(text)


def _deepdiff():
    """deepdiff's DeepDiff, imported on first use without numpy.

    deepdiff imports numpy when it is installed (pymupdf brings it), which costs 0.2 s of every
    `show`; the values compared here are YAML and JSON data, never arrays, so deepdiff is
    imported with numpy hidden (it has a numpy-less mode) and numpy stays importable after.
    """
    import sys

    if "deepdiff" in sys.modules or "numpy" in sys.modules:
        from deepdiff import DeepDiff

        return DeepDiff
    sys.modules["numpy"] = None  # makes `import numpy` raise ImportError inside deepdiff
    try:
        from deepdiff import DeepDiff
    finally:
        del sys.modules["numpy"]
    return DeepDiff


def _scalar(value: object) -> bool:
    return value is None or type(value) in (str, int, bool)


def _strings(value: object) -> bool:
    return type(value) is list and all(type(item) is str for item in value)


def _flat_changes(old: dict, new: dict) -> list[FieldChange] | None:
    """field_changes for the shape of openkb's own pages and records, without importing deepdiff
    (a tenth of a second of every `show`): string keys whose values are scalars or lists of
    strings, where no list both gains and loses items. None for anything else (deepdiff then
    pairs and nests as it does). Same result as deepdiff's, checked by a property test."""
    union = old.keys() | new.keys()
    if len(union) > 1 and len(old.keys() & new.keys()) / len(union) < 0.33:
        return None  # deepdiff's threshold_to_diff_deeper: it reports the whole mapping as changed
    changes: list[FieldChange] = []
    for key in union:
        if type(key) is not str:
            return None
        a, b = old.get(key, _ABSENT), new.get(key, _ABSENT)
        for value in (a, b):
            if value is not _ABSENT and not _scalar(value) and not _strings(value):
                return None
        if a is _ABSENT:
            changes.append(FieldChange(key, "added", new=b))
        elif b is _ABSENT:
            changes.append(FieldChange(key, "removed", old=a))
        elif type(a) is list and type(b) is list:
            gained, lost = set(b) - set(a), set(a) - set(b)
            if gained and lost:
                return None  # deepdiff pairs similar items as changes
            changes += [FieldChange(key, "added", new=item) for item in gained]
            changes += [FieldChange(key, "removed", old=item) for item in lost]
        elif type(a) is not type(b) or a != b:
            changes.append(FieldChange(key, "changed", old=a, new=b))
    return changes


_ABSENT = object()


def field_changes(old: dict, new: dict) -> list[FieldChange]:
    """Structured differences between two mappings, one per changed field or list item."""
    if not old or not new:
        side, kind = (new, "added") if not old else (old, "removed")
        return [FieldChange(key, kind, old=None if kind == "added" else value, new=value if kind == "added" else None)
                for key, value in sorted(side.items())]
    changes = _flat_changes(old, new)
    if changes is None:
        changes = _deepdiff_changes(old, new)
    changes.sort(key=lambda c: (c.field, c.change, _fmt(c.old), _fmt(c.new)))
    return changes


def _deepdiff_changes(old: dict, new: dict) -> list[FieldChange]:
    diff = _deepdiff()(old, new, ignore_order=True, view="tree")
    changes: list[FieldChange] = []
    for kind, items in diff.items():
        for item in items:
            parts = item.path(output_format="list")
            is_item = len(parts) > 1 and isinstance(parts[-1], int)
            name = ".".join(str(p) for p in (parts[:-1] if is_item else parts)) or "(root)"
            t1 = None if type(item.t1).__name__ == "NotPresent" else item.t1
            t2 = None if type(item.t2).__name__ == "NotPresent" else item.t2
            if "added" in kind:
                changes.append(FieldChange(name, "added", new=t2))
            elif "removed" in kind:
                changes.append(FieldChange(name, "removed", old=t1))
            else:
                changes.append(FieldChange(name, "changed", old=t1, new=t2))
    return changes


# -- show ----------------------------------------------------------------------------


def show(kb: KB, entry: Entry, *, with_text: bool = True) -> tuple[Entry, Change]:
    """What one operation changed: (its entry, the Change from its parent)."""
    return entry, compare(kb, entry.parent, entry.sha, with_text=with_text)


# -- blame ---------------------------------------------------------------------------


@dataclass
class BlameLine:
    line: int
    commit: str
    doc: str | None
    op: str
    text: str
    model: str = ""  # the LLM that wrote it (the commit's OpenKB-Model trailer), if one did


SMALL_PIECE = 64  # lines (both sides together) below which a piece goes straight to difflib
ANCHOR_TRIES = 8


def matching_blocks(a: list[str], b: list[str]) -> list[tuple[int, int, int]]:
    """Runs (i, j, n) with a[i:i+n] == b[j:j+n], increasing in both, that a diff of a and b keeps.

    The common head and tail are found by comparing slices (in C); the rest is split on a line
    that occurs once on each side, near the middle (as patience diff anchors), piece by piece,
    and a piece without such a line, or a small one, goes to difflib. Two versions of a page
    that differ in a few scattered lines (index.md gains a line in each of its sections) cost
    a few slice comparisons instead of difflib over everything between the changes."""
    blocks: list[tuple[int, int, int]] = []
    pieces = [(0, len(a), 0, len(b))]
    while pieces:
        alo, ahi, blo, bhi = pieces.pop()
        sub_a, sub_b = a[alo:ahi], b[blo:bhi]
        head = common_prefix(sub_a, sub_b)
        tail = common_suffix(sub_a, sub_b, head)
        if head:
            blocks.append((alo, blo, head))
        if tail:
            blocks.append((ahi - tail, bhi - tail, tail))
        ilo, ihi, jlo, jhi = alo + head, ahi - tail, blo + head, bhi - tail
        if ilo >= ihi or jlo >= jhi:
            continue
        anchor = _anchor(a, b, ilo, ihi, jlo, jhi) if (ihi - ilo) + (jhi - jlo) > SMALL_PIECE else None
        if anchor is None:
            matcher = difflib.SequenceMatcher(None, a[ilo:ihi], b[jlo:jhi], autojunk=False)
            blocks += [(ilo + i, jlo + j, n) for i, j, n in matcher.get_matching_blocks() if n]
        else:
            i, j = anchor
            pieces += [(ilo, i, jlo, j), (i, ihi, j, jhi)]  # the second starts with the anchor line
    blocks.sort()
    return blocks


def _anchor(a: list[str], b: list[str], ilo: int, ihi: int, jlo: int, jhi: int) -> tuple[int, int] | None:
    """(i, j) with a[i] == b[j] the only occurrence of that line in a[ilo:ihi] and in b[jlo:jhi],
    i tried from the middle outwards; None when the first few tried are not unique."""
    sub_a, sub_b = a[ilo:ihi], b[jlo:jhi]
    middle = (ilo + ihi) // 2
    for step in range(ANCHOR_TRIES):
        i = middle + (step + 1) // 2 * (1 if step % 2 else -1)
        if not ilo <= i < ihi:
            continue
        line = a[i]
        if sub_a.count(line) == 1 and sub_b.count(line) == 1:
            return i, jlo + sub_b.index(line)
    return None


def blame(kb: KB, path: str, at: Entry | None = None) -> list[BlameLine]:
    """For each line of ``path`` at ``at`` (default HEAD), the operation that wrote it.

    Walks the history back through the commits that changed the path, as `git blame` does:
    each step diffs the path's text with its parent's and passes the lines carried over to
    the parent. At a merge, a parent whose version is the same gets every line; otherwise
    the lines are offered to each parent in turn (first parent first), and the merge keeps
    only those no parent had (written while merging). A line's journey depends only on the
    versions it passes through, so the commits are taken newest first and a commit reached
    again later (clock skew) simply passes the new lines on.
    """
    path = path.strip("/")
    if at is None:
        head = kb.head()
        at = entry_of(kb, head) if head else None  # HEAD alone: no walk (a merge would read it all)
    start = at
    if start is None:
        raise FileNotFoundError(path)
    tree = kb.objects.get(start.sha.encode()).tree
    data = kb.objects.read_path(tree, path)
    if data is None:
        from ..errors import OpenKBError

        raise OpenKBError(f"{path or '.'} (a path from the KB's root) is not a file in {start.short}; "
                          "give a page's path, e.g. wiki/index.md (`openkb show --name-only` lists paths)")
    # Lines end at "\n" (as Git's); a version is kept as its bytes, and two versions are
    # compared on them (`text_blocks`): only the part between their common head and tail is
    # ever split into lines.
    lines = [line.decode("utf-8", "replace").removesuffix("\r") for line in _split_lines(data)]
    owners: list[Entry | None] = [None] * len(lines)
    follower = PathFollower(kb.objects, path)
    versions: dict[str, tuple | None] = {start.sha: follower.lookup(tree)}  # commit -> (mode, blob) of path

    def version(sha: str) -> tuple | None:
        if sha not in versions:
            versions[sha] = follower.lookup(tree_of(kb, sha))
        return versions[sha]

    @functools.lru_cache(maxsize=64)  # a version is read as a commit's and as its child's parent's
    def blob(sha: bytes) -> bytes:
        return kb.objects.blob_bytes(sha)

    def text_of(found: tuple | None) -> bytes:
        if not found or statmod.S_ISDIR(found[0]):
            return b""
        return blob(found[1])

    # The lines not yet attributed, per commit: their numbers in that commit's version (heres)
    # and at the start (origins), heres in increasing order (a diff keeps the order of lines).
    pending: dict[str, tuple[list[int], list[int]]] = {start.sha: (list(range(len(lines))), list(range(len(lines))))}
    entries: dict[str, Entry] = {start.sha: start}
    queue = [(-start.time, 0, start.sha)]
    count = 1
    # The path's history as Git's own walk simplifies it, where Git is installed (ops/read.py
    # `git_path_graph`): the commits that changed it and the merges, each with its parents
    # rewritten to the nearest such ancestors; every commit left out has its parent's version,
    # so the lines go straight to the nearest one and the commits between are never read.
    graph = git_path_graph(kb, path, start.sha.encode())
    if graph is not None and start.sha not in graph:
        # HEAD did not change the path (nor is it a merge): its version is that of the one listed
        # commit no other listed commit has as a parent (the nearest changed ancestor).
        named = {parent for parents in graph.values() for parent in parents}
        tips = [sha for sha in graph if sha not in named]
        graph = {**graph, start.sha: tips} if len(tips) == 1 else None

    def hand_on(parent: str, carried: tuple[list[int], list[int]]) -> None:
        nonlocal count
        if parent not in entries:
            entries[parent] = entry_of(kb, parent.encode())
        if parent in pending:
            carried = _union(pending[parent], carried)
        else:
            heapq.heappush(queue, (-entries[parent].time, count, parent))
            count += 1
        pending[parent] = carried

    while queue:
        _when, _order, sha = heapq.heappop(queue)
        if sha not in pending:
            continue
        heres, origins = pending.pop(sha)
        entry = entries[sha]
        current_sha = version(sha)
        parents = list(graph[sha] if graph is not None and sha in graph else entry.parents)
        same = next((p for p in parents if version(p) == current_sha), None)
        if same is not None:
            parents = [same]  # that parent had this version: every line comes from it
        current = text_of(current_sha)
        for parent in parents:
            if not heres:
                break
            if parent == same:
                carried, kept = (heres, origins), ([], [])
            else:
                carried, kept = _carry(text_blocks(text_of(version(parent)), current), heres, origins)
            heres, origins = kept
            if carried[0]:
                hand_on(parent, carried)
        for k in origins:
            owners[k] = entry
    return [BlameLine(i + 1, (o.sha if o else ""), (o.doc if o else None), (o.op if o else ""), text,
                      (o.trailers.get("OpenKB-Model", "") if o else ""))
            for i, (o, text) in enumerate(zip(owners, lines))]


def _split_lines(data: bytes) -> list[bytes]:
    """The lines of ``data``, each up to a "\n" (not kept); a last line may lack one."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    return lines


def _line_count(data: bytes) -> int:
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def text_blocks(a: bytes, b: bytes) -> list[tuple[int, int, int]]:
    """`matching_blocks` of the lines of texts ``a`` and ``b`` (lines as `_split_lines`), with
    their common head and tail of whole lines found on the bytes (in C): only what lies
    between is split into lines and diffed."""
    if not a or not b:
        return []
    head = common_prefix(a, b)
    if head == len(a) == len(b):
        return [(0, 0, _line_count(a))]
    head = a.rfind(b"\n", 0, head) + 1  # whole lines: a[:head] == b[:head] ends at a line's end
    tail = common_suffix(a, b, head)
    while tail and not (_line_start(a, len(a) - tail, head) and _line_start(b, len(b) - tail, head)):
        nl = a.find(b"\n", len(a) - tail)
        tail = len(a) - nl - 1 if nl >= 0 else 0
    head_lines = a.count(b"\n", 0, head)
    mid_a, mid_b = _split_lines(a[head:len(a) - tail]), _split_lines(b[head:len(b) - tail])
    blocks = [(0, 0, head_lines)] if head_lines else []
    blocks += [(i + head_lines, j + head_lines, n) for i, j, n in matching_blocks(mid_a, mid_b)]
    tail_lines = _line_count(a[len(a) - tail:]) if tail else 0
    if tail_lines:
        blocks.append((head_lines + len(mid_a), head_lines + len(mid_b), tail_lines))
    return blocks


def _line_start(text: bytes, at: int, head: int) -> bool:
    """Whether a line of ``text`` starts at ``at`` (``head``, the common head's end, is one)."""
    return at == head or text[at - 1:at] == b"\n"


def _carry(blocks: list[tuple[int, int, int]], heres: list[int],
           origins: list[int]) -> tuple[tuple[list[int], list[int]], tuple[list[int], list[int]]]:
    """((heres in the parent, origins) of the pending lines the parent shares with this version
    (``blocks``: the runs of lines they share, `text_blocks`; each shifts a run by one amount),
    (heres, origins) of the others)."""
    new_heres: list[int] = []
    new_origins: list[int] = []
    kept_heres: list[int] = []
    kept_origins: list[int] = []
    done = 0
    for i0, j0, n in blocks:
        lo = bisect.bisect_left(heres, j0, done)
        hi = bisect.bisect_left(heres, j0 + n, lo)
        kept_heres += heres[done:lo]
        kept_origins += origins[done:lo]
        shift = i0 - j0
        new_heres += map(shift.__add__, heres[lo:hi]) if shift else heres[lo:hi]
        new_origins += origins[lo:hi]
        done = hi
    kept_heres += heres[done:]
    kept_origins += origins[done:]
    return (new_heres, new_origins), (kept_heres, kept_origins)


def _union(a: tuple[list[int], list[int]], b: tuple[list[int], list[int]]) -> tuple[list[int], list[int]]:
    """Two sets of pending lines of one commit (from two of its children), ordered by here."""
    pairs = sorted(zip(a[0] + b[0], a[1] + b[1]))
    return [here for here, _ in pairs], [origin for _, origin in pairs]
