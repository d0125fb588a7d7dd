"""`openkb fsck`: check the KB against its own history; `--repair` brings the working tree,
the Git index and the views back to HEAD (history is never rewritten).

Checks: the object store (via `git fsck` when Git is installed, else by reading every
object reachable from HEAD), HEAD's tree against the working tree, the Git index
against HEAD, registry records against the files they name, the views against the
history, and pending journals.
"""

from __future__ import annotations

import shutil
import stat as statmod
import subprocess
import time
from dataclasses import asdict, dataclass, field

from ..fsutil import makedirs, write_file
from ..git.objects import ObjectDamageError
from ..kb import KB
from ..protocol.journal import pending_journals
from ..protocol.recovery import reset_paths
from ..registry import Registry
from ..views import HASHES, LOG, hashes_json, update_views
from .edits import find_edits
from .session import Writer


@dataclass
class Problem:
    check: str  # objects | worktree | index | registry | views | journal
    path: str
    detail: str


@dataclass
class FsckReport:
    head: str | None
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    backup: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {"head": self.head, "ok": self.ok, "problems": [asdict(p) for p in self.problems],
                "repaired": self.repaired, "backup": self.backup}


def fsck(kb: KB) -> FsckReport:
    """Check everything; changes nothing."""
    head = kb.head()
    tree = kb.head_tree(head)
    report = FsckReport(head=head.decode() if head else None)
    report.problems += check_objects(kb, head)
    try:
        for path, data in sorted(find_edits(kb, tree).items()):
            report.problems.append(Problem("worktree", path, "deleted" if data is None else "differs from HEAD"))
        report.problems += check_index(kb, tree)
        records = Registry(kb.objects).view(tree).records
        report.problems += check_registry(kb, tree, records)
        report.problems += check_views(kb, records)
    except ObjectDamageError as exc:  # the checks after it need the object git fsck found damaged
        report.problems.append(Problem("objects", exc.sha, str(exc)))
    ours, openkb = pending_journals(kb)
    for journal in ours:
        report.problems.append(Problem("journal", journal.relative_to(kb.root).as_posix(),
                                       "an interrupted mutation (recovery resets it)"))
    for journal in openkb:
        report.problems.append(Problem("journal", journal.relative_to(kb.root).as_posix(),
                                       "an interrupted OpenKB mutation (the next writer rolls it back as OpenKB does)"))
    return report


def check_objects(kb: KB, head: bytes | None) -> list[Problem]:
    if head is None:
        return []
    if shutil.which("git"):
        proc = subprocess.run(["git", "-C", str(kb.root), "fsck", "--strict", "--no-dangling", "--no-progress"],
                              capture_output=True, text=True)
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        if proc.returncode != 0 or lines:
            return [Problem("objects", ".git", line) for line in lines] or \
                [Problem("objects", ".git", f"git fsck exited {proc.returncode}")]
        return []
    problems = []
    seen: set[bytes] = set()
    sha = head
    while sha:
        try:
            commit = kb.objects.get(sha)
            _walk_tree(kb, commit.tree, seen)
        except Exception as exc:  # a missing or corrupt object
            problems.append(Problem("objects", sha.decode(), f"unreadable: {exc}"))
            break
        sha = commit.parents[0] if commit.parents else None
    return problems


def _walk_tree(kb: KB, tree: bytes, seen: set[bytes]) -> None:
    if tree in seen:
        return
    seen.add(tree)
    for _name, (mode, sha) in kb.objects.tree_entries(tree).items():
        if statmod.S_ISDIR(mode):
            _walk_tree(kb, sha, seen)
        elif sha not in seen:
            seen.add(sha)
            kb.objects.blob_bytes(sha)


def check_index(kb: KB, tree: bytes | None) -> list[Problem]:
    problems = []
    head_files = {path: sha for path, _mode, sha in kb.objects.walk_files(tree)}
    indexed = set()
    for key in kb.index.paths():
        path = key.decode("utf-8", "surrogateescape")
        indexed.add(path)
        entry = kb.index.stat(path)
        if path not in head_files:
            problems.append(Problem("index", path, "in the Git index but not in HEAD"))
        elif entry.sha != head_files[path]:
            problems.append(Problem("index", path, "the Git index entry differs from HEAD"))
    for path in sorted(set(head_files) - indexed):
        problems.append(Problem("index", path, "in HEAD but missing from the Git index"))
    return problems


def check_registry(kb: KB, tree: bytes | None, records: dict[str, dict]) -> list[Problem]:
    problems = []
    for doc, record in sorted(records.items()):
        where = f".openkb/registry/{doc}.json"
        if record.get("doc_name") != doc:
            problems.append(Problem("registry", where, f"names doc {record.get('doc_name')!r}, not {doc!r}"))
        for path in record.get("files", []):
            if kb.objects.lookup(tree, path) is None:
                problems.append(Problem("registry", where, f"names {path}, which is not in HEAD"))
    return problems


def check_views(kb: KB, records: dict[str, dict]) -> list[Problem]:
    problems = []
    hashes = kb.root / HASHES
    if not hashes.exists():
        problems.append(Problem("views", HASHES, "missing"))
    elif hashes.read_bytes() != hashes_json(records):
        problems.append(Problem("views", HASHES, "does not match the registry at HEAD"))
    from ..history import MEMO_FILE, check_memo

    bad = check_memo(kb)
    if bad:
        problems.append(Problem("views", f".openkb/{MEMO_FILE}",
                                f"{len(bad)} memoized commit(s) differ from the commits (e.g. {bad[0][:7]})"))
        return problems  # the log is checked against the history once the memo is dropped
    log = kb.root / LOG
    if not log.exists():
        problems.append(Problem("views", LOG, "missing"))
    else:
        if log.read_bytes() != _expected_log(kb):
            problems.append(Problem("views", LOG, "does not match the history"))
    return problems


def _expected_log(kb: KB) -> bytes:
    from ..history import iter_entries
    from ..views import LOG_HEADER, log_line, prelude

    entries = list(iter_entries(kb))
    return (LOG_HEADER + prelude(kb) + "".join(log_line(e) for e in reversed(entries))).encode("utf-8")


def repair(kb: KB, *, wait: float = 0.0) -> FsckReport:
    """Check, then reset what is wrong to HEAD: working tree (hand edits are first copied to
    `.openkb/fsck-backup/<time>/`), Git index, views. Returns the report of what was found."""
    report = fsck(kb)
    if report.ok:
        return report
    writer = Writer(kb, wait)
    with writer.locked():
        tree = kb.head_tree()
        paths = sorted({p.path for p in report.problems if p.check in ("worktree", "index")})
        edited = [p for p in paths if (kb.root / p).is_file() and kb.objects.read_path(tree, p) != (kb.root / p).read_bytes()]
        if edited:
            backup = kb.openkb_dir / "fsck-backup" / time.strftime("%Y%m%d-%H%M%S")
            for path in edited:
                source = kb.root / path
                if source.is_file():
                    makedirs((backup / path).parent, sync=False)
                    write_file(backup / path, source.read_bytes(), sync=True)
            report.backup = backup.relative_to(kb.root).as_posix()
        if paths:
            reset_paths(kb, tree, paths)
            report.repaired += paths
        if any(p.check == "views" for p in report.problems):
            from ..history import MEMO_FILE, drop_memo

            if any(p.path.endswith(MEMO_FILE) for p in report.problems):
                drop_memo(kb)
            update_views(kb, writer.registry, full=True)
            report.repaired += sorted({p.path for p in report.problems if p.check == "views"})
    return report
