"""Structure-aware three-way merges of the KB's files, for `openkb revert` and for Git's
merge drivers (docs/revert.md).

`merge_file(path, base, ours, theirs)` is the one place that picks the merge by path:

- `wiki/concepts/<slug>.md`, `wiki/entities/<slug>.md`: the compiler's page for the merged
  set of contributions (`## Related Documents` bullets keyed by document; merge/wiki.py);
- `wiki/index.md`: `## Documents` lines keyed by document, `## Concepts` and `## Entities`
  lines following the shared pages as they are after the merge (``concept_exists``:
  {page path: merged page or None}) or, without it, keyed by page (merge/wiki.py);
- `wiki/summaries/<doc>.md`: frontmatter key by key, `sources:`/`concepts:` as sets, the
  `## Related Concepts` and `## Entities` bullets keyed by link target, other text line by
  line (merge/core.py);
- registry records (`.openkb/registry/<doc>.json`): key by key;
- anything else: line-level three-way merge.

Each side is bytes or None (the file is absent). The result is bytes, None (delete), or a
MergeConflict naming the path, the reason and both sides in short.
"""

from __future__ import annotations

from .core import MergeConflict, merge_page, merge_record, merge_text, merge_value
from .wiki import merge_index, merge_shared_page

INDEX_PATH = "wiki/index.md"
CONCEPTS_DIR = "wiki/concepts/"
SHARED_DIRS = {"wiki/concepts/": "concepts", "wiki/entities/": "entities"}


def shared_page(path: str) -> tuple[str, str] | None:
    """(kind, slug) of a concept or entity page's path, or None for any other path."""
    for folder, kind in SHARED_DIRS.items():
        if path.startswith(folder) and path.endswith(".md") and "/" not in path[len(folder):]:
            return kind, path[len(folder):-3]
    return None


def concept_slug(path: str) -> str | None:
    """The slug of a concept page's path, or None for any other path."""
    found = shared_page(path)
    return found[1] if found is not None and found[0] == "concepts" else None


def merge_file(path: str, base: bytes | None, ours: bytes | None, theirs: bytes | None, *,
               concept_exists: dict[str, bool] | None = None, page_of=None) -> bytes | None | MergeConflict:
    """Merge one path three-way; see the package docstring for the merge each path gets.
    ``concept_exists`` ({shared page path: the page after the merge, or None}) and ``page_of``
    (kind, slug -> any shared page as the merge leaves it) are for `wiki/index.md` only."""
    try:
        if ours == theirs or base in (ours, theirs):
            return merge_value(path, base, ours, theirs)
        shared = shared_page(path)
        if shared is not None:
            return merge_shared_page(shared[0], shared[1], base, ours, theirs)
        if path == INDEX_PATH:
            return merge_index(base, ours, theirs, concept_exists, page_of)
        if path.startswith("wiki/summaries/") and path.endswith(".md"):
            return merge_page(base, ours, theirs)
        if path.startswith(".openkb/registry/") and path.endswith(".json"):
            return merge_record(base, ours, theirs)
        return merge_text(base, ours, theirs)
    except MergeConflict as conflict:
        conflict.path = path
        return conflict


__all__ = ["INDEX_PATH", "MergeConflict", "concept_slug", "merge_file", "shared_page"]
