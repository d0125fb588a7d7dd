"""The one place that decides whether a path that came from data may be used.

Paths arrive in registry records, trees, journals, config and hook names — all of it
data someone else may have written (a clone, a pull). Like Git's ``verify_path``, every
reader, writer and deleter of the working tree goes through these checks before it
touches a path: relative, posix, no empty, ``.`` or ``..`` component, no ``.git``
component (in any case, as Git refuses on case-insensitive systems), no NUL, no
backslash, every component within 255 bytes.
"""

from __future__ import annotations

import os
import stat

from .errors import DamageError

NAME_MAX = 255  # bytes in one file name (ext4, xfs, apfs, ntfs as UTF-16 is more lenient)

# Where a document's own files may live (a record's `files`, `raw_path`, ...).
DOCUMENT_ROOTS = ("raw/", "wiki/")
REGISTRY_ROOT = ".openkb/registry/"


class UnsafePathError(DamageError):
    """A path from data is absolute, climbs out with `..`, names `.git`, or leaves the KB's folders."""

    def __init__(self, path, reason: str, where: str = ""):
        self.path = path
        self.reason = reason
        self.where = where
        origin = f" in {where}" if where else ""
        super().__init__(f"unsafe path {path!r}{origin}: {reason}; refused (nothing outside the knowledge "
                         "base is read, written or deleted); run `openkb fsck` to see what is damaged")


def path_problem(path: str | bytes) -> str | None:
    """Why ``path`` may not be used as a KB-relative path, or None when it may (Git's rules)."""
    if isinstance(path, bytes):
        try:
            path = path.decode("utf-8", "surrogateescape")
        except Exception:  # pragma: no cover - surrogateescape never fails
            return "not a text path"
    if not isinstance(path, str) or not path:
        return "empty path"
    if "\0" in path:
        return "contains a NUL byte"
    if "\\" in path:
        return "contains a backslash"
    if path.startswith("/"):
        return "absolute path"
    for part in path.split("/"):
        if part == "":
            return "empty component (// or a trailing /)"
        if part in (".", ".."):
            return f"'{part}' component"
        if part.lower() == ".git" or part.lower().rstrip(". ") == ".git":
            return "'.git' component"
        if len(part.encode("utf-8", "surrogateescape")) > NAME_MAX:
            return f"a component longer than {NAME_MAX} bytes"
    return None


def check_path(path: str, *, where: str = "", document: bool = False) -> str:
    """``path`` when it is a safe KB-relative path (with ``document``: also inside the folders
    a document may own, raw/ and wiki/); raises UnsafePathError naming ``where``."""
    problem = document_path_problem(path) if document else path_problem(path)
    if problem:
        raise UnsafePathError(path, problem, where)
    return path


def document_path_problem(path) -> str | None:
    """Why ``path`` may not be a document's own file (unsafe, or outside raw/ and wiki/), or None."""
    if not isinstance(path, str):
        return "not a text path"
    problem = path_problem(path)
    if problem is None and not path.startswith(DOCUMENT_ROOTS):
        problem = "outside raw/ and wiki/"
    return problem


def check_document_path(path: str, *, where: str = "") -> str:
    """``path`` when it is safe and inside raw/ or wiki/ (see check_path)."""
    return check_path(path, where=where, document=True)


RECORD_PATH_FIELDS = ("raw_path", "source_path", "summary_path")


def record_path_problems(record: dict) -> list[tuple[str, str]]:
    """[(path, problem)] for every path a registry record names (``files``, ``raw_path``,
    ``source_path``, ``summary_path``, concept slugs) that a document may not own."""
    out = []
    files = record.get("files", [])
    if not isinstance(files, list):
        out.append((repr(files), "`files` is not a list"))
        files = []
    named = list(files) + [record[k] for k in RECORD_PATH_FIELDS if record.get(k)]
    for path in named:
        problem = document_path_problem(path)
        if problem:
            out.append((str(path), problem))
    concepts = record.get("concepts", [])
    for slug in concepts if isinstance(concepts, list) else [concepts]:
        problem = path_problem(slug) if isinstance(slug, str) else "not a text name"
        if problem is None and "/" in slug:
            problem = "contains a slash"
        if problem:
            out.append((f"wiki/concepts/{slug}.md", f"concept {problem}"))
    return out


def check_record_paths(record: dict, *, where: str) -> None:
    """Raise UnsafePathError naming ``where`` (the record's path) for the first unsafe path it names."""
    for path, problem in record_path_problems(record):
        raise UnsafePathError(path, problem, where)


def link_on_the_way(root: os.PathLike, path: str) -> str | None:
    """The folder on the way to ``path`` (KB-relative) that is a symbolic link, or a file,
    in the working tree — or None. As Git's `has_symlink_leading_path`: nothing is read,
    written or deleted beyond a symbolic link (a tree can carry `raw -> ../elsewhere`)."""
    parts = path.split("/")[:-1]
    current = os.fspath(root)
    for n, part in enumerate(parts):
        current = os.path.join(current, part)
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not stat.S_ISDIR(mode):
            return "/".join(parts[: n + 1])
    return None


def check_worktree_path(root: os.PathLike, path: str, *, where: str = "") -> str:
    """``path`` when it is safe and no folder on its way is a symbolic link; else UnsafePathError."""
    check_path(path, where=where)
    link = link_on_the_way(root, path)
    if link is not None:
        raise UnsafePathError(path, f"'{link}' is a symbolic link (or a file) in the working tree", where)
    return path
