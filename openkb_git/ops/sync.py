"""`openkb sync`, `openkb pull` and `openkb push`: a KB shared through a Git remote.

Under the KB lock: `git fetch`; then integrate the remote branch with ours. Behind only,
the branch fast-forwards. With operations of our own the remote lacks, each of them
(oldest first) is REPLAYED on top of the remote head as an operation, as one KB doing
the remote's operations and then ours would have done it:

- an ingest (`add`) of document D sets D's footprint as the operation's commit holds it
  (its files, record, concept-page mentions and index line) on the new head through
  `document_changes`, as `openkb add` does; content already there under any name is a
  duplicate and lands nowhere, as `openkb add` would say; when another document took the
  name D on the remote, ours gets the name `openkb add` would give it there (OpenKB's
  `-<hash>` rule, derived from its source) and is converted again under it, and our later
  operations on D follow it;
- a `remove` of D takes D's footprint out of the new head (nothing when it is gone);
- a `revert` is planned again on the new head by `openkb revert`'s own machinery
  (ops/revert.py: a three-way merge of the paths the reverted operation changed, and
  "superseded" when a later operation re-ingested or removed its document);
- anything else (hand `edit`s, plain Git commits) is cherry-picked: a three-way merge
  of the paths it changed, base = its parent, ours = the new head, theirs = it, through
  the structure-aware drivers of `openkb_git.merge`, in process.

So modify/delete, which Git settles without a merge driver, comes out as in one KB
(an ingest adding to a concept page the other side's revert deleted; a revert on one
side and a re-ingest of its document on the other). The replayed commits keep their
author, message and trailers (an `OpenKB-Reverts` names the replayed commit); they are
written first, then the branch moves once from our old head to the last of them
(protocol/advance.py: journaled, crash-safe), so a crash leaves either our old branch or
the whole result. If an operation conflicts (the same lines edited by hand on both
sides), nothing changes and every path is listed with the reason, as `openkb revert`
does. Then `git push`; when the remote moved meanwhile (non-fast-forward), all again,
up to MAX_ATTEMPTS times.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dulwich.objects import Commit

from ..compiler import Contribution
from ..compiler.pages import DOCUMENTS, MENTIONS, mention_text, phrase_of
from ..convert import ConversionError, Limits
from ..errors import OpenKBError
from ..fsutil import decoded_stem
from ..history import Entry, entry_of
from ..kb import KB, local_tz_offset
from ..merge import MergeConflict
from ..protocol.advance import advance_branch, tree_changes
from ..protocol.commit import effective_changes
from ..registry import Registry
from .contribution import INDEX_PATH, Footprint, document_changes, shared_path
from .edits import commit_edits, find_edits
from .review import changed_paths
from .revert import merge_trees, plan_revert
from .session import Writer

MAX_ATTEMPTS = 5
# What a remote says when another push updated the branch while it received ours.
RACES = ("failed to update ref", "cannot lock ref", "incorrect old value", "failed to lock")
HEADS = "refs/heads/"


class GitCommandError(OpenKBError):
    """`git fetch` or `git push` failed (network, authentication, a hook of the remote)."""


class NoCommonHistoryError(OpenKBError):
    """The remote branch shares no commit with ours: it is another knowledge base."""


class SyncConflictError(OpenKBError):
    """Replaying one of our operations on the remote's would conflict; nothing was changed."""

    def __init__(self, message: str, entry: Entry, conflicts: list[MergeConflict]):
        super().__init__(message)
        self.entry = entry
        self.conflicts = conflicts
        self.edit_commit: str | None = None  # the hand edits the command committed first, if any


class RemoteAheadError(OpenKBError):
    """`openkb push` while the remote holds operations we lack."""


class PushRejectedError(OpenKBError):
    """The remote kept moving: every push of MAX_ATTEMPTS was rejected as non-fast-forward."""


class InTheWayError(OpenKBError):
    """Files Git does not track sit where the remote's changes would be written."""


@dataclass
class Replayed:
    original: str
    commit: str | None
    op: str
    doc: str | None
    subject: str
    note: str = ""


@dataclass
class SyncResult:
    remote: str
    branch: str  # the local branch (its short name)
    remote_branch: str
    before: str | None
    after: str | None = None
    remote_head: str | None = None
    fast_forwarded: bool = False
    replayed: list[Replayed] = field(default_factory=list)
    pushed: bool = False
    attempts: int = 0
    edit_commit: str | None = None
    rebuild_commit: str | None = None  # the shared pages regenerated after the replay (ops/rebuild.py)

    def to_json(self) -> dict:
        return {"remote": self.remote, "branch": self.branch, "remote_branch": self.remote_branch,
                "before": self.before, "after": self.after, "remote_head": self.remote_head,
                "fast_forwarded": self.fast_forwarded, "pushed": self.pushed, "attempts": self.attempts,
                "edit_commit": self.edit_commit, "rebuild_commit": self.rebuild_commit,
                "replayed": [{"original": r.original, "commit": r.commit, "op": r.op, "doc": r.doc,
                              "subject": r.subject, "note": r.note} for r in self.replayed]}


Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


# -- git subprocesses ------------------------------------------------------------------


def _git(kb: KB, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["git", "-C", str(kb.root), *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise GitCommandError(f"`git {' '.join(args)}` failed: {_tail(proc.stderr)}; fix the cause (the remote's "
                              "address, the network, your credentials), then run the command again")
    return proc


def _tail(text: str, lines: int = 4) -> str:
    return " / ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "(no message)"


def _config(kb: KB, key: str) -> str | None:
    value = _git(kb, "config", "--get", key, check=False).stdout.strip()
    return value or None


def resolve_target(kb: KB, remote: str | None, branch: str | None) -> tuple[str, str, str]:
    """(remote, local branch, remote branch): the remote given, else the branch's upstream,
    else `origin`; the remote branch given, else the upstream's, else the local one's name."""
    ref = kb.write_branch()
    local = ref[len(HEADS):] if ref.startswith(HEADS) else ref
    upstream_remote = _config(kb, f"branch.{local}.remote")
    upstream_merge = _config(kb, f"branch.{local}.merge")
    remote = remote or upstream_remote or "origin"
    if branch is None:
        if upstream_merge and upstream_merge.startswith(HEADS) and remote == upstream_remote:
            branch = upstream_merge[len(HEADS):]
        else:
            branch = local
    if _config(kb, f"remote.{remote}.url") is None and "/" not in remote and ":" not in remote:
        raise GitCommandError(f"no remote named {remote!r}: add one (`git remote add {remote} URL`) or name "
                              "the remote (`openkb sync NAME`)")
    return remote, local, branch


def fetch(kb: KB, remote: str, branch: str) -> bytes | None:
    """`git fetch` the remote's ``branch`` (objects checked by Git, `fetch.fsckObjects`);
    returns its commit id, or None when the remote has no such branch (yet)."""
    named = _config(kb, f"remote.{remote}.url") is not None
    tracking = f"refs/remotes/{remote}/{branch}" if named else None
    spec = f"+{HEADS}{branch}:{tracking}" if tracking else f"{HEADS}{branch}"
    proc = _git(kb, "-c", "fetch.fsckObjects=true", "fetch", "--no-tags", "--quiet", remote, spec, check=False)
    if proc.returncode != 0:
        if "couldn't find remote ref" in proc.stderr.lower():
            return None
        raise GitCommandError(f"`git fetch {remote} {spec}` failed: {_tail(proc.stderr)}; fix the cause (the "
                              "remote's address, the network, your credentials), then run the command again")
    sha = _git(kb, "rev-parse", "--verify", "--quiet", f"{tracking or 'FETCH_HEAD'}^{{commit}}",
               check=False).stdout.strip()
    return sha.encode("ascii") if sha else None


def push(kb: KB, remote: str, local: str, branch: str) -> bool:
    """`git push` our branch to the remote's ``branch``; False when rejected as not a
    fast-forward (the remote moved), GitCommandError for any other failure."""
    args = ["push", "--porcelain"]
    if _config(kb, f"branch.{local}.remote") is None and _config(kb, f"remote.{remote}.url") is not None:
        args.append("--set-upstream")
    proc = _git(kb, *args, remote, f"{HEADS}{local}:{HEADS}{branch}", check=False)
    if proc.returncode == 0:
        return True
    out = proc.stdout + proc.stderr
    if "[rejected]" in out and ("non-fast-forward" in out or "fetch first" in out):
        return False
    if "[remote rejected]" in out and any(race in out for race in RACES):
        return False  # another push updated the branch while the remote checked ours
    raise GitCommandError(f"`git push {remote} {local}:{branch}` failed: {_tail(out)}; fix the cause, then run "
                          "`openkb sync` again")


def _is_ancestor(kb: KB, a: bytes, b: bytes) -> bool:
    return _git(kb, "merge-base", "--is-ancestor", a.decode(), b.decode(), check=False).returncode == 0


# -- replaying one operation -----------------------------------------------------------


@dataclass
class Plan:
    changes: dict = field(default_factory=dict)
    conflicts: list[MergeConflict] = field(default_factory=list)
    note: str = ""
    reverts: str | None = None  # the (replayed) commit a revert names
    doc: str | None = None  # the document's name where it lands, when the operation names one


def _mention(page: bytes | None, doc: str, section: str) -> str | None:
    """The line of ``doc`` (`- [[summaries/<doc>]]…`) in ``section`` of a page, or None."""
    if page is None:
        return None
    prefix = f"- [[summaries/{doc}]]"
    current = None
    for line in page.decode("utf-8", "replace").split("\n"):
        if line.startswith(("# ", "## ")):
            current = line.rstrip()
        elif current == section and line.startswith(prefix) and line[len(prefix):len(prefix) + 1] in ("", ":", " "):
            return line
    return None


def footprint_at(kb: KB, tree: bytes, doc: str, record: dict) -> Footprint | None:
    """``doc``'s footprint as ``tree`` holds it (None when a part is missing: not an ingest's)."""
    files = {}
    for path in record.get("files", []):
        data = kb.objects.read_path(tree, path)
        if data is None:
            return None
        files[path] = data
    shared: dict[str, dict[str, Contribution]] = {"concepts": {}, "entities": {}}
    for kind, contributions in shared.items():
        for slug in record.get(kind, []) if isinstance(record.get(kind, []), list) else []:
            line = _mention(kb.objects.read_path(tree, shared_path(kind, slug)), doc, MENTIONS)
            if line is None:
                return None
            contributions[slug] = Contribution(phrase=phrase_of(slug), snippet=mention_text(line, doc))
    concepts = shared["concepts"]
    index_line = _mention(kb.objects.read_path(tree, INDEX_PATH), doc, DOCUMENTS)
    if index_line is None:
        return None
    return Footprint(doc=doc, files=files, record=record, concepts=concepts, index_line=index_line,
                     entities=shared["entities"])


def cherry_pick(kb: KB, entry: Entry, tree: bytes) -> Plan:
    """The change set that re-applies ``entry``'s change (its parent to it) on ``tree``."""
    op_tree = kb.objects.get(entry.sha.encode()).tree
    parent_tree = kb.objects.get(entry.parent.encode()).tree if entry.parent else None
    paths = sorted(tree_changes(kb, parent_tree, op_tree))
    plan = Plan()
    for path, (ours, merged) in merge_trees(kb, paths, parent_tree, tree, op_tree).items():
        if isinstance(merged, MergeConflict):
            plan.conflicts.append(merged)
        elif merged != ours:
            plan.changes[path] = merged
    return plan


def _replay_add(kb: KB, registry: Registry, entry: Entry, tree: bytes) -> Plan | None:
    """``entry`` (an ingest of its doc) done again on ``tree``, as `openkb add` would; None
    when the commit does not hold a whole footprint (then it is cherry-picked).

    The name is the one `openkb add` would give at ``tree``: the source's own name there if
    it has one, else the operation's if free, else OpenKB's rule (a `-<hash>` suffix
    derived from the source): another document that took the name on the remote keeps it,
    and ours is converted again under its new name."""
    op_tree = kb.objects.get(entry.sha.encode()).tree
    record = registry.view(op_tree).records.get(entry.doc)
    if not isinstance(record, dict) or not isinstance(record.get("sha256"), str) \
            or not isinstance(record.get("path"), str):
        return None
    view = registry.view(tree)
    owner = view.by_sha.get(record["sha256"])
    if owner is not None:
        return Plan(note=f"duplicate of {owner}: that content is already there")
    doc = view.by_key.get(record["path"])
    if doc is None:
        doc = entry.doc if entry.doc not in view.records and entry.doc not in view.invalid \
            else view.name_for(record["path"], decoded_stem(Path(record["path"]).stem))
    if doc == entry.doc:
        footprint = footprint_at(kb, op_tree, doc, record)
    else:
        footprint = _converted_again(kb, op_tree, record, doc)
    if footprint is None:
        return None
    return Plan(changes=document_changes(kb.objects, tree, view, doc, footprint), doc=doc,
                note=f"named {doc}: {entry.doc} is another document there" if doc != entry.doc else "")


def _converted_again(kb: KB, op_tree: bytes, record: dict, doc: str) -> Footprint | None:
    """The footprint of the document ``record`` describes, converted again under the name
    ``doc`` from its raw file (as `openkb add` does when the name it reserved was taken)."""
    from .add import Task, build_footprint, stored_shaping

    raw = kb.objects.read_path(op_tree, str(record.get("raw_path", "")))
    if raw is None or hashlib.sha256(raw).hexdigest() != record["sha256"]:
        return None
    key = record["path"]
    name = record.get("name") if isinstance(record.get("name"), str) and record.get("name") else Path(key).name
    src = Path(key).with_name(name)
    config = kb.config
    try:
        footprint, _warnings = build_footprint(Task(0, str(src), name, key, doc), src, raw, record["sha256"],
                                               stored_shaping(kb, config, record), None, Limits.unlimited())
    except (ConversionError, ValueError):
        return None
    return footprint


def _replay_remove(kb: KB, registry: Registry, entry: Entry, tree: bytes, names: dict[str, str]) -> Plan | None:
    parent_tree = kb.objects.get(entry.parent.encode()).tree if entry.parent else None
    if entry.doc not in registry.view(parent_tree).records:
        return None  # a removal by its files (the record was missing): cherry-picked
    doc = names.get(entry.doc, entry.doc)
    view = registry.view(tree)
    if doc not in view.records:
        return Plan(note=f"{doc} is already gone")
    return Plan(changes=document_changes(kb.objects, tree, view, doc, None), doc=doc)


def _replay_revert(kb: KB, entry: Entry, tree: bytes, tip: bytes, mapping: dict[str, str | None]) -> Plan | None:
    target = entry.trailers.get("OpenKB-Reverts", "")
    if target in mapping:
        if mapping[target] is None:
            return Plan(note=f"the operation it reverts ({target[:7]}) landed as nothing")
        target = mapping[target]
    try:
        reverted = entry_of(kb, target.encode("ascii"))
    except (KeyError, ValueError, UnicodeEncodeError, OpenKBError):
        return None
    revert_plan = plan_revert(kb, reverted, tree, tip)
    if revert_plan.superseded_by:
        return Plan(note=f"nothing to revert: {reverted.doc} was changed again by {revert_plan.superseded_by[:7]}",
                    reverts=target)
    return Plan(changes=revert_plan.changes, conflicts=revert_plan.conflicts, reverts=target, doc=reverted.doc)


def plan_replay(kb: KB, registry: Registry, entry: Entry, tree: bytes, tip: bytes,
                mapping: dict[str, str | None], names: dict[str, str]) -> Plan:
    """How our operation ``entry`` lands on ``tree`` (the commit ``tip``); ``mapping``: our
    replayed commits so far ({original: replayed, None if it landed as nothing}); ``names``:
    our documents that landed under another name ({ours: theirs})."""
    plan = None
    if entry.op == "add" and entry.doc:
        plan = _replay_add(kb, registry, entry, tree)
    elif entry.op == "remove" and entry.doc:
        plan = _replay_remove(kb, registry, entry, tree, names)
    elif entry.op == "revert" and entry.trailers.get("OpenKB-Reverts"):
        plan = _replay_revert(kb, entry, tree, tip, mapping)
    return plan if plan is not None else cherry_pick(kb, entry, tree)


def _replayed_commit(kb: KB, original: Commit, tree: bytes, parent: bytes,
                     renames: list[tuple[bytes, bytes]]) -> Commit:
    """``original`` on a new parent and tree: its author, message and trailers kept but for
    ``renames`` (a revert's `OpenKB-Reverts` naming the replayed commit, an `OpenKB-Doc`
    the name the document got), the committer ours."""
    commit = Commit()
    commit.tree = tree
    commit.parents = [parent]
    commit.author = original.author
    commit.author_time = original.author_time
    commit.author_timezone = original.author_timezone
    now = int(time.time())
    commit.committer = kb.identity().as_bytes()
    commit.commit_time = now
    commit.commit_timezone = local_tz_offset(now)
    commit.encoding = original.encoding
    message = original.message
    for old, new in renames:
        if old != new:
            message = message.replace(old, new)
    commit.message = message
    return commit


# -- integrating -----------------------------------------------------------------------


def integrate(kb: KB, writer: Writer, result: SyncResult, remote_head: bytes | None, progress: Progress) -> None:
    """Bring the remote's operations into our branch (the caller holds the KB lock)."""
    ours = kb.head()
    if remote_head is None or remote_head == ours or (ours is not None and _is_ancestor(kb, remote_head, ours)):
        return
    if ours is None:
        raise NoCommonHistoryError("this knowledge base has no commit yet; clone the remote instead "
                                   "(`git clone URL` then `openkb recover`)")
    base = _git(kb, "merge-base", ours.decode(), remote_head.decode(), check=False).stdout.strip()
    if not base:
        raise NoCommonHistoryError(
            f"{result.remote}/{result.remote_branch} shares no commit with {result.branch}: it is another knowledge "
            "base; sync with the remote it was cloned from, or clone this one")
    if base.encode() == ours:
        progress(f"fast-forward to {remote_head.decode()[:7]}")
        advance_branch(kb, writer.registry, ours, remote_head, [], op="sync",
                       message=f"openkb sync: fast-forward to {result.remote}/{result.remote_branch}")
        result.fast_forwarded = True
        return
    mine = _git(kb, "rev-list", "--reverse", "--topo-order", "--no-merges",
                f"{remote_head.decode()}..{ours.decode()}").stdout.split()
    tip, tree = remote_head, kb.objects.get(remote_head).tree
    mapping: dict[str, str | None] = {}
    names: dict[str, str] = {}
    written_all = []
    replayed: list[Replayed] = []
    try:
        for n, sha in enumerate(mine, 1):
            entry = entry_of(kb, sha.encode("ascii"))
            progress(f"replaying {n}/{len(mine)}: {entry.subject}")
            plan = plan_replay(kb, writer.registry, entry, tree, tip, mapping, names)
            if plan.conflicts:
                raise SyncConflictError(
                    f"replaying {entry.short} ({entry.subject}) on {result.remote}/{result.remote_branch} would "
                    f"conflict in {len(plan.conflicts)} path(s); nothing was changed", entry, plan.conflicts)
            changes = effective_changes(kb, tree, plan.changes)
            if not changes:
                mapping[sha] = None
                replayed.append(Replayed(sha, None, entry.op, entry.doc, entry.subject,
                                         plan.note or "already there: nothing to replay"))
                continue
            new_tree, objects, _ids = kb.objects.build_tree(tree, changes)
            renames = []
            if plan.reverts:
                renames.append((entry.trailers.get("OpenKB-Reverts", "").encode("ascii"), plan.reverts.encode("ascii")))
            if plan.doc and entry.doc and plan.doc != entry.doc:
                names[entry.doc] = plan.doc
                renames.append((f"\nOpenKB-Doc: {entry.doc}\n".encode(), f"\nOpenKB-Doc: {plan.doc}\n".encode()))
            commit = _replayed_commit(kb, kb.objects.get(sha.encode("ascii")), new_tree, tip, renames)
            objects.append(commit)
            written_all.append(kb.objects.write_durably(objects, pending=True))
            tip, tree = commit.id, new_tree
            mapping[sha] = tip.decode()
            replayed.append(Replayed(sha, tip.decode(), entry.op, plan.doc or entry.doc, entry.subject, plan.note))
        advance_branch(kb, writer.registry, ours, tip, written_all, op="sync",
                       message=f"openkb sync: {len(mine)} operation(s) replayed on {result.remote}/{result.remote_branch}")
    except BaseException:
        if kb.head() != tip:
            for written in written_all:
                kb.objects.abandon(written)
        raise
    result.replayed.extend(replayed)


def check_in_the_way(kb: KB, old: bytes | None, new: bytes) -> None:
    """Refuse when a file Git does not track sits at a path the move to ``new`` would write."""
    paths = [p for p, (a, b) in tree_changes(kb, kb.head_tree(old), kb.objects.get(new).tree).items()
             if a is None and b is not None]
    found = [p for p in paths if os.path.lexists(kb.root / p)]
    if found:
        names = ", ".join(found[:10]) + (" …" if len(found) > 10 else "")
        raise InTheWayError(f"files Git does not track sit where the remote's operations go: {names}; move them "
                            "away (or `git add` and commit them), then run the command again")


# -- the commands ----------------------------------------------------------------------


def _start(kb: KB, writer: Writer, remote: str | None, branch: str | None, allow_edit_commits: bool) -> SyncResult:
    remote, local, rbranch = resolve_target(kb, remote, branch)
    edits = find_edits(kb, kb.head_tree(), refresh=True)
    edited = commit_edits(kb, writer.registry, edits, allow=allow_edit_commits)
    head = kb.head()
    result = SyncResult(remote=remote, branch=local, remote_branch=rbranch, before=head.decode() if head else None)
    if edited is not None:
        result.edit_commit = edited.sha.decode()
    return result


def _finish(kb: KB, result: SyncResult) -> SyncResult:
    head = kb.head()
    result.after = head.decode() if head else None
    return result


def pull(kb: KB, remote: str | None = None, branch: str | None = None, *, wait: float = 0.0,
         allow_edit_commits: bool = True, progress: Progress = _quiet) -> SyncResult:
    """Fetch and integrate the remote branch's operations (no push)."""
    writer = Writer(kb, wait)
    with writer.locked():
        result = _start(kb, writer, remote, branch, allow_edit_commits)
        _fetch_and_integrate(kb, writer, result, progress)
        return _finish(kb, result)


def _fetch_and_integrate(kb: KB, writer: Writer, result: SyncResult, progress: Progress) -> bytes | None:
    progress(f"fetching {result.remote_branch} from {result.remote}")
    remote_head = fetch(kb, result.remote, result.remote_branch)
    result.remote_head = remote_head.decode() if remote_head else None
    if remote_head is not None and kb.head() != remote_head:
        _check_before_moving(kb, remote_head)
    try:
        integrate(kb, writer, result, remote_head, progress)
    except SyncConflictError as exc:
        exc.edit_commit = result.edit_commit
        raise
    _rebuild_if_needed(kb, writer, result, remote_head, progress)
    return remote_head


_SHARED_STATE = ("wiki/concepts", "wiki/entities", "wiki/index.md", ".openkb/registry")


def _rebuild_if_needed(kb: KB, writer: Writer, result: SyncResult, remote_head: bytes | None,
                       progress: Progress) -> None:
    """After a replay that changed the shared pages, the index or the records, the shared
    pages are checked against the records (ops/rebuild.py plan_rebuild: 0.4 s at 2,000
    documents) and a `rebuild` commit made when they disagree (a replayed hand commit that
    took a record out can leave its mentions on pages it did not touch). A fast-forward, or a
    replay that left all of those as the remote has them, is not checked: the remote's tree
    is the remote's."""
    from .rebuild import commit_rebuild

    head = kb.head()
    if remote_head is None or head is None or head == remote_head or result.fast_forwarded:
        return
    def shared(sha: bytes) -> list:
        tree = kb.objects.get(sha).tree
        return [kb.objects.lookup(tree, path) for path in _SHARED_STATE]

    if shared(remote_head) == shared(head):
        return
    rebuilt = commit_rebuild(kb, writer, why="after openkb sync")
    if rebuilt.commit:
        progress(f"rebuilt {len(rebuilt.plan.changes)} shared page(s) from the records")
        result.rebuild_commit = rebuilt.commit


def _check_before_moving(kb: KB, remote_head: bytes) -> None:
    ours = kb.head()
    if ours is not None and not _is_ancestor(kb, remote_head, ours):
        check_in_the_way(kb, ours, remote_head)


def sync(kb: KB, remote: str | None = None, branch: str | None = None, *, wait: float = 0.0,
         allow_edit_commits: bool = True, progress: Progress = _quiet, attempts: int = MAX_ATTEMPTS) -> SyncResult:
    """Fetch, integrate, push; on a non-fast-forward rejection, all again (``attempts`` times)."""
    writer = Writer(kb, wait)
    with writer.locked():
        result = _start(kb, writer, remote, branch, allow_edit_commits)
        for attempt in range(1, attempts + 1):
            result.attempts = attempt
            remote_head = _fetch_and_integrate(kb, writer, result, progress)
            head = kb.head()
            if head is None or head == remote_head:
                return _finish(kb, result)
            progress(f"pushing {result.branch} to {result.remote}/{result.remote_branch}")
            if push(kb, result.remote, result.branch, result.remote_branch):
                result.pushed = True
                return _finish(kb, result)
            progress("the remote moved meanwhile: fetching again")
        raise PushRejectedError(
            f"{result.remote}/{result.remote_branch} moved under every one of {attempts} pushes (others are pushing "
            f"at the same time); what was integrated stays committed here; run `openkb sync` again")


def push_only(kb: KB, remote: str | None = None, branch: str | None = None, *, wait: float = 0.0,
              allow_edit_commits: bool = True, progress: Progress = _quiet) -> SyncResult:
    """Push our operations; refused (RemoteAheadError) when the remote has operations we lack."""
    writer = Writer(kb, wait)
    with writer.locked():
        result = _start(kb, writer, remote, branch, allow_edit_commits)
        result.attempts = 1
        progress(f"fetching {result.remote_branch} from {result.remote}")
        remote_head = fetch(kb, result.remote, result.remote_branch)
        result.remote_head = remote_head.decode() if remote_head else None
        head = kb.head()
        if head is None or head == remote_head:
            return _finish(kb, result)
        if remote_head is not None and not _is_ancestor(kb, remote_head, head):
            raise RemoteAheadError(_ahead_message(kb, result, remote_head, head))
        progress(f"pushing {result.branch} to {result.remote}/{result.remote_branch}")
        if not push(kb, result.remote, result.branch, result.remote_branch):
            raise RemoteAheadError(f"{result.remote}/{result.remote_branch} moved meanwhile: it has operations this "
                                   "knowledge base lacks; run `openkb sync` to integrate them and push")
        result.pushed = True
        return _finish(kb, result)


def _ahead_message(kb: KB, result: SyncResult, remote_head: bytes, head: bytes) -> str:
    count = _git(kb, "rev-list", "--count", f"{head.decode()}..{remote_head.decode()}", check=False).stdout.strip()
    return (f"{result.remote}/{result.remote_branch} has {count or 'some'} commit(s) this knowledge base lacks; "
            "nothing was pushed; run `openkb sync` to integrate them and push (or `openkb pull`, then `openkb push`)")
