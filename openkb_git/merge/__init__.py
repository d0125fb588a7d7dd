"""Structure-aware three-way merges of the KB's files, for `openkb revert` and for Git's
merge drivers (docs/revert.md).

`merge_file(path, base, ours, theirs)` is the one place that picks the merge by path:

- `wiki/concepts/<slug>.md`: the compiler's page for the merged set of contributions
  (`## Mentions` bullets keyed by document; merge/wiki.py);
- `wiki/index.md`: `## Documents` lines keyed by document, `## Concepts` lines following
  the concept pages that exist after the merge (``concept_exists``) or, without it, keyed
  by concept (merge/wiki.py);
- `wiki/summaries/<doc>.md`: frontmatter key by key, `sources:`/`concepts:` as sets, the
  `## Concepts` bullets keyed by link target, other text line by line (merge/core.py);
- registry records (`.openkb/registry/<doc>.json`): key by key;
- anything else: line-level three-way merge.

Each side is bytes or None (the file is absent). The result is bytes, None (delete), or a
MergeConflict naming the path, the reason and both sides in short.
"""

from __future__ import annotations

from .core import MergeConflict, merge_page, merge_record, merge_text, merge_value
from .wiki import merge_concept_page, merge_index

INDEX_PATH = "wiki/index.md"
CONCEPTS_DIR = "wiki/concepts/"


def concept_slug(path: str) -> str | None:
    """The slug of a concept page's path, or None for any other path."""
    if path.startswith(CONCEPTS_DIR) and path.endswith(".md") and "/" not in path[len(CONCEPTS_DIR):]:
        return path[len(CONCEPTS_DIR):-3]
    return None


def merge_file(path: str, base: bytes | None, ours: bytes | None, theirs: bytes | None, *,
               concept_exists: dict[str, bool] | None = None) -> bytes | None | MergeConflict:
    """Merge one path three-way; see the package docstring for the merge each path gets.
    ``concept_exists`` ({slug: page exists after the merge}) is for `wiki/index.md` only."""
    try:
        if ours == theirs or base in (ours, theirs):
            return merge_value(path, base, ours, theirs)
        slug = concept_slug(path)
        if slug is not None:
            return merge_concept_page(slug, base, ours, theirs)
        if path == INDEX_PATH:
            return merge_index(base, ours, theirs, concept_exists)
        if path.startswith("wiki/summaries/") and path.endswith(".md"):
            return merge_page(base, ours, theirs)
        if path.startswith(".openkb/registry/") and path.endswith(".json"):
            return merge_record(base, ours, theirs)
        return merge_text(base, ours, theirs)
    except MergeConflict as conflict:
        conflict.path = path
        return conflict


__all__ = ["INDEX_PATH", "MergeConflict", "concept_slug", "merge_file"]
