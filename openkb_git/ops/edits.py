"""The user's own edits to tracked files, found and committed before openkb overwrites anything."""

from __future__ import annotations

import os
import stat as statmod

import json

from ..errors import DamageError, OpenKBError
from ..git.index import record_sha, stat_matches
from ..git.objects import blob_id
from ..kb import CONFIG_PATH, KB, parse_config
from ..paths import link_on_the_way, path_problem, record_path_problems
from ..protocol.commit import Committed, Mutation, commit_mutation
from ..registry import Registry


class UncommittedEditsError(OpenKBError):
    """Tracked files differ from HEAD and the user asked openkb not to commit them."""


class BrokenRecordEditError(DamageError):
    """A registry record was deleted or broken by hand: committing that would make the document
    vanish from `openkb list` while its files stay, so it is refused."""


REGISTRY_PREFIX = ".openkb/registry/"


def broken_record_edits(edits: dict[str, bytes | None]) -> dict[str, str]:
    """{record path: what is wrong} for the edits that delete a registry record or leave one
    that is not a JSON object naming its own doc."""
    out = {}
    for path, data in edits.items():
        if not (path.startswith(REGISTRY_PREFIX) and path.endswith(".json")):
            continue
        doc = path[len(REGISTRY_PREFIX):-len(".json")]
        if data is None:
            out[path] = "deleted"
            continue
        try:
            record = json.loads(data)
        except ValueError:
            out[path] = "not valid JSON"
            continue
        if not isinstance(record, dict):
            out[path] = "not a JSON object"
        elif record.get("doc_name") != doc:
            out[path] = f"names doc {record.get('doc_name')!r}, not {doc!r}"
        elif record_path_problems(record):
            bad, problem = record_path_problems(record)[0]
            out[path] = f"names unsafe path {bad!r} ({problem})"
    return out


def find_edits(kb: KB, tree: bytes | None, paths: list[str] | None = None, *,
               refresh: bool = False) -> dict[str, bytes | None]:
    """Tracked paths whose working-tree content differs from ``tree``: {path: content, None if deleted}.

    With ``paths``, only those are checked (and a path absent from ``tree`` counts when a
    file the user created sits there); otherwise every path of ``tree`` and the index.
    Files whose stat data matches their index entry are trusted without reading them.
    With ``refresh`` (a writer, under the KB lock), files read because their stat data no
    longer matched (a copied or restored KB, a touched file) but whose content is unchanged
    get their index entries updated with that stat data, as `git update-index --refresh`
    does, so the next check trusts them again without reading them.
    A path Git would refuse (a `..`, `.git` or empty component: a crafted tree) is never
    read nor reported here; `openkb fsck` reports it.
    """
    records = kb.index.records()
    root = os.fsencode(kb.root) + b"/"
    if paths is None:
        head: dict[bytes, bytes] | None = kb.objects.file_ids(tree)
        candidates = _suspects(root, head, records)
    else:
        head = None
        candidates = {path.encode("utf-8", "surrogateescape") for path in paths}
    edits: dict[str, bytes | None] = {}
    fresh: dict[str, tuple[bytes, os.stat_result]] = {}
    for key in candidates:  # bytes throughout: most paths are only stat'ed
        if path_problem(key):
            continue
        if head is not None:
            head_sha = head.get(key)
        else:
            head_entry = kb.objects.lookup(tree, key.decode("utf-8", "surrogateescape"))
            head_sha = head_entry[1] if head_entry and not statmod.S_ISDIR(head_entry[0]) else None
        target = root + key
        if b"/" in key and link_on_the_way(kb.root, key.decode("utf-8", "surrogateescape")) is not None:
            continue  # beyond a symbolic link: never read (`openkb fsck` reports it)
        try:
            st = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            if head_sha is not None:
                edits[key.decode("utf-8", "surrogateescape")] = None
            continue
        if not statmod.S_ISREG(st.st_mode):
            continue
        record = records.get(key)
        same_blob = head_sha is not None and record is not None and record_sha(record) == head_sha
        if same_blob and stat_matches(record, st):
            continue
        with open(target, "rb") as fh:
            data = fh.read()
        path = key.decode("utf-8", "surrogateescape")
        if head_sha is None or blob_id(data) != head_sha:
            edits[path] = data
        elif same_blob and refresh:
            fresh[path] = (head_sha, st)
    if fresh:
        # Durable before anything else happens: a torn index makes recovery reset every path to
        # HEAD, which would take the user's uncommitted edits found here with it.
        kb.index.update(kb.root, {path: sha for path, (sha, _st) in fresh.items()}, sync=True,
                        stats={path: st for path, (_sha, st) in fresh.items()})
    return dict(sorted(edits.items()))


def _suspects(root: bytes, head: dict[bytes, bytes], records: dict[bytes, bytes]) -> list[bytes]:
    """The paths of ``head`` or the index that may hold edits: all but the regular files whose
    index entry names their blob in ``head`` and holds their current stat data (at 50,000
    documents that is 230,000 lstat calls, so this loop is kept to the bare checks)."""
    lstat, get = os.lstat, head.get
    out = [key for key in head if key not in records]
    for key, record in records.items():
        if get(key) != record_sha(record):
            out.append(key)
            continue
        try:
            st = lstat(root + key)
        except OSError:
            out.append(key)
            continue
        if not statmod.S_ISREG(st.st_mode) or not stat_matches(record, st):
            out.append(key)
    return out


def commit_edits(kb: KB, registry: Registry, edits: dict[str, bytes | None], *, allow: bool) -> Committed | None:
    """Commit ``edits`` as one `edit` commit, or raise UncommittedEditsError when not ``allow``ed."""
    if not edits:
        return None
    if edits.get(CONFIG_PATH) is not None:
        parse_config(edits[CONFIG_PATH])  # a bad config is an error (ConfigError), never committed as an edit
    broken = broken_record_edits(edits)
    if broken:
        path, what = sorted(broken.items())[0]
        doc = path[len(REGISTRY_PREFIX):-len(".json")]
        more = f" (and {len(broken) - 1} more record(s))" if len(broken) > 1 else ""
        raise BrokenRecordEditError(
            f"registry record {path} was changed by hand: {what}{more}; openkb does not commit that, since "
            f"the document would vanish from `openkb list` while its files stay. Restore it "
            f"(`git checkout HEAD -- {path}`, or `openkb fsck --repair`), or take the document out with "
            f"`openkb remove {doc}`")
    if not allow:
        names = ", ".join(sorted(edits)[:20]) + (" …" if len(edits) > 20 else "")
        raise UncommittedEditsError(
            f"tracked files were edited by hand: {names}; commit them (`git commit -a`) "
            "or run without --no-commit-edits to let openkb commit them as an `edit`"
        )
    removed = commit_removed_by_hand(kb, registry, edits)
    edits = {path: data for path, data in edits.items() if path not in removed}
    if not edits:
        return _last_commit(removed)
    subject = f"edit: {len(edits)} file(s) changed by hand"
    body = "\n".join(f"{'deleted' if data is None else 'modified'}: {path}" for path, data in sorted(edits.items()))
    mutation = Mutation(op="edit", subject=subject, body=body, changes=edits, project=False)
    return commit_mutation(kb, registry, kb.head(), mutation)


def commit_removed_by_hand(kb: KB, registry: Registry, edits: dict[str, bytes | None]) -> dict[str, Committed]:
    """Commit, as one `remove`, the documents the edits take out whole (OpenKB's `openkb remove`
    run on this KB: ops/contribution.py removed_by_hand); {path it covers: the commit}."""
    from .contribution import removed_by_hand

    tree = kb.head_tree()
    docs, changes = removed_by_hand(kb.objects, tree, registry.view(tree), edits)
    if not docs:
        return {}
    names = ", ".join(docs)
    trailers = {"OpenKB-Doc": docs[0]} if len(docs) == 1 else {}
    mutation = Mutation(op="remove", subject=f"remove: {names} (removed by hand or by OpenKB's `openkb remove`)",
                        body="\n".join(f"{'deleted' if data is None else 'modified'}: {path}"
                                       for path, data in sorted(changes.items())),
                        changes=changes, trailers=trailers)
    committed = commit_mutation(kb, registry, kb.head(), mutation)
    return {path: committed for path in changes}


def _last_commit(removed: dict[str, Committed]) -> Committed | None:
    return next(iter(removed.values()), None)


def edit_commit_line(sha: str, op: str = "edit") -> str:
    """What a commit of the user's changes made before a write was: an `edit`, or the `remove`
    of documents whose files were deleted (by hand, or by OpenKB's own `openkb remove`)."""
    if op == "remove":
        return f"committed the removal of documents whose files were deleted (by hand or OpenKB) as {sha[:7]} (remove)"
    return f"committed your edits of tracked files as {sha[:7]} ({op or 'edit'})"
