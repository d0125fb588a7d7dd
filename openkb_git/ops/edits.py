"""The user's own edits to tracked files, found and committed before openkb overwrites anything."""

from __future__ import annotations

import os
import stat as statmod

from ..errors import OpenKBError
from ..git.objects import blob_id
from ..kb import KB
from ..protocol.commit import Committed, Mutation, commit_mutation
from ..registry import Registry


class UncommittedEditsError(OpenKBError):
    """Tracked files differ from HEAD and the user asked openkb not to commit them."""


def find_edits(kb: KB, tree: bytes | None, paths: list[str] | None = None) -> dict[str, bytes | None]:
    """Tracked paths whose working-tree content differs from ``tree``: {path: content, None if deleted}.

    With ``paths``, only those are checked (and a path absent from ``tree`` counts when a
    file the user created sits there); otherwise every path of ``tree`` and the index.
    Files whose stat data matches their index entry are trusted without reading them.
    """
    if paths is None:
        candidates = {p for p, _m, _s in kb.objects.walk_files(tree)}
        candidates |= {k.decode("utf-8", "surrogateescape") for k in kb.index.paths()}
    else:
        candidates = set(paths)
    edits: dict[str, bytes | None] = {}
    for path in sorted(candidates):
        head_entry = kb.objects.lookup(tree, path)
        head_sha = head_entry[1] if head_entry and not statmod.S_ISDIR(head_entry[0]) else None
        target = kb.root / path
        try:
            st = os.lstat(target)
        except (FileNotFoundError, NotADirectoryError):
            if head_sha is not None:
                edits[path] = None
            continue
        if not statmod.S_ISREG(st.st_mode):
            continue
        index_entry = kb.index.stat(path)
        if (head_sha is not None and index_entry is not None and index_entry.sha == head_sha
                and _stat_matches(index_entry, st)):
            continue
        data = target.read_bytes()
        if head_sha is None or blob_id(data) != head_sha:
            edits[path] = data
    return edits


def _stat_matches(entry, st: os.stat_result) -> bool:
    return (entry.size == st.st_size and entry.mtime == (int(st.st_mtime), st.st_mtime_ns % 1_000_000_000)
            and entry.ino == st.st_ino & 0xFFFFFFFF)


def commit_edits(kb: KB, registry: Registry, edits: dict[str, bytes | None], *, allow: bool) -> Committed | None:
    """Commit ``edits`` as one `edit` commit, or raise UncommittedEditsError when not ``allow``ed."""
    if not edits:
        return None
    if not allow:
        names = ", ".join(sorted(edits)[:20]) + (" …" if len(edits) > 20 else "")
        raise UncommittedEditsError(
            f"tracked files were edited by hand: {names}; commit them (`git commit -a`) "
            "or run without --no-commit-edits to let openkb commit them as an `edit`"
        )
    subject = f"edit: {len(edits)} file(s) changed by hand"
    body = "\n".join(f"{'deleted' if data is None else 'modified'}: {path}" for path, data in sorted(edits.items()))
    mutation = Mutation(op="edit", subject=subject, body=body, changes=edits, project=False)
    return commit_mutation(kb, registry, kb.head(), mutation)
