"""Structure-aware three-way merges of the wiki's files (used by revert and by Git).

`merge_file(path, base, ours, theirs)` picks the driver by path:

- compiled pages (`wiki/concepts/*.md`, `wiki/summaries/*.md`): frontmatter key by key,
  `sources:`/`concepts:` as sets; bullet lists under known sections keyed by link target;
  other text by line-level three-way merge;
- `wiki/index.md`: entries keyed by link target, per section;
- registry records (`.openkb/registry/*.json`): key by key;
- anything else: line-level three-way merge.

Each side is bytes or None (the file is absent). The result is bytes, None (delete),
or a MergeConflict naming the reason and both sides in short.
"""

from .core import MergeConflict, merge_file, merge_text

__all__ = ["MergeConflict", "merge_file", "merge_text"]
