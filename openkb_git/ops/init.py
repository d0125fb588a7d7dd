"""`openkb init`: create a knowledge base, or adopt an existing OpenKB one, as a Git repository."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from dulwich.repo import Repo

from ..compiler import update_index
from ..errors import DamageError, OpenKBError
from ..fsutil import makedirs, remove_file, write_file
from ..kb import CONFIG_PATH, DEFAULT_CONFIG, KB
from ..protocol.commit import Mutation, commit_mutation
from ..registry import encode_record, record_path
from ..views import LOG, update_views
from .gitsetup import DRIVERS, configure as configure_merge_drivers, driver_problems, install_git_hooks
from .session import Writer

GITIGNORE = """\
# Written by `openkb init`. Untracked: views rebuilt from the history, openkb-git's
# journals and staging (.openkb/openkb-git/), OpenKB's (.openkb/journal/, .openkb/staging/),
# the lock and the KB's hooks (never run when tracked). Everything else under .openkb/
# that is not listed as tracked below is local state of other tools.
/.openkb/*
/.openkb/openkb-git/
/.openkb/hooks/
!/.openkb/config.yaml
!/.openkb/registry/
!/.openkb/log-before-git.md
/wiki/log.md
# Written by OpenKB's own `openkb lint` (dated reports) and `openkb visualize` (the graph):
# made again on demand, never part of the KB's history.
/wiki/reports/
/output/
.env
"""

GITATTRIBUTES = """\
# Written by `openkb init`: structure-aware merge drivers (see `openkb merge-driver --help`).
wiki/concepts/*.md merge=openkb-page
wiki/summaries/*.md merge=openkb-page
wiki/index.md merge=openkb-index
.openkb/registry/*.json merge=openkb-record
# Originals (PDF, EPUB, ...) are shown as binary by `git diff` / `git show`, never as text.
raw/** -diff
"""
# The line a KB made before it lacked: `openkb init` in such a KB commits it (setup_existing).
RAW_NO_DIFF = "raw/** -diff"

ADOPTED_DIRS = ("raw", "wiki")


class AlreadyInitializedError(OpenKBError):
    """The directory already holds a Git repository that is not an openkb knowledge base."""


@dataclass
class InitResult:
    root: Path
    commit: str
    adopted_documents: int
    adopted_files: int
    existing: bool = False  # an existing openkb repository (a clone) was set up, nothing created
    done: list[str] = field(default_factory=list)  # what was set up, one line each
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # things to know (a KB inside another repository)


def enclosing_repository(root: Path) -> Path | None:
    """The work tree of the Git repository ``root`` lies inside (a project holding its KB in
    `kb/`), or None."""
    for parent in root.parents:
        if (parent / ".git").exists():
            return parent
    return None


def nested_note(root: Path, outer: Path) -> str:
    rel = root.relative_to(outer).as_posix()
    return (f"{root} is inside the Git repository {outer}: the knowledge base is its own repository (its own "
            f"history, branch main), which that one sees as an untracked folder `{rel}/` and never commits "
            f"(`git add` there would only add it as an embedded repository); add `/{rel}/` to "
            f"{outer / '.gitignore'} to hide it there, or share it as a submodule (docs/layout.md)")


def init_kb(directory: Path) -> InitResult:
    """Create the KB layout in ``directory`` with a first commit, adopting an OpenKB KB found there.

    In an existing openkb repository (a plain `git clone` of a KB: `.openkb/config.yaml` tracked
    at HEAD) it sets that clone up instead (setup_existing). Raises AlreadyInitializedError when
    ``directory`` holds another Git repository.
    """
    root = Path(directory).expanduser().resolve()
    if (root / ".git").exists():
        if is_kb_repository(root):
            return setup_existing(root)
        if _check_out_remote_kb(root):
            result = setup_existing(root)
            result.done.insert(0, "checked out branch main from the remote (nothing was checked out: the remote's "
                               "HEAD names a branch it lacks, as plain `git init --bare` makes it)")
            return result
        raise AlreadyInitializedError(f"{root} already holds a Git repository that is not an openkb knowledge base "
                                      f"(no {CONFIG_PATH} at HEAD); openkb init only creates new ones and sets up "
                                      "clones of existing ones: run it in an empty or new directory, e.g. a folder "
                                      f"of that project (`openkb init {root / 'kb'}`: the knowledge base is then its "
                                      "own repository inside the project; see docs/layout.md)")
    makedirs(root, sync=True)
    adopting = (root / ".openkb" / "hashes.json").is_file()
    Repo.init(str(root), default_branch=b"main").close()
    configure_merge_drivers(root)
    makedirs(root / ".openkb", sync=True)

    files: dict[str, bytes] = {".gitignore": GITIGNORE.encode(), ".gitattributes": GITATTRIBUTES.encode()}
    config_file = root / CONFIG_PATH
    if config_file.exists():
        files[CONFIG_PATH] = config_file.read_bytes()
    else:
        files[CONFIG_PATH] = yaml.safe_dump(DEFAULT_CONFIG, sort_keys=False).encode()

    documents = 0
    if adopting:
        records = adopt_registry(root)
        documents = len(records)
        for doc, record in records.items():
            files[record_path(doc)] = encode_record(record)
        old_log = root / "wiki" / "log.md"
        if old_log.is_file():
            files[".openkb/log-before-git.md"] = old_log.read_bytes()
    for top in ADOPTED_DIRS:
        base = root / top
        for dirpath, _dirnames, filenames in os.walk(base):
            for name in filenames:
                rel = (Path(dirpath) / name).relative_to(root).as_posix()
                if rel != "wiki/log.md":
                    files[rel] = (Path(dirpath) / name).read_bytes()
    if "wiki/index.md" not in files:
        files["wiki/index.md"] = update_index(None)

    for rel, data in files.items():
        target = root / rel
        if not target.exists() or target.read_bytes() != data:
            makedirs(target.parent, sync=False)
            write_file(target, data, sync=False)
    if adopting:
        remove_file(root / "wiki" / "log.md", sync=False)

    kb = KB(root)
    try:
        writer = Writer(kb)
        with writer.locked():
            subject = "init: adopt OpenKB knowledge base" if adopting else "init: new knowledge base"
            body = f"Adopted {documents} document(s) and {len(files)} file(s)." if adopting else ""
            committed = commit_mutation(kb, writer.registry, None,
                                        Mutation(op="init", subject=subject, body=body, changes=files, project=False))
        hooks = install_git_hooks(root)
        outer = enclosing_repository(root)
        return InitResult(root=root, commit=committed.sha.decode(), adopted_documents=documents,
                          adopted_files=len(files) if adopting else 0,
                          warnings=hooks.warnings + driver_problems(root),
                          notes=[nested_note(root, outer)] if outer is not None else [])
    finally:
        kb.close()


def is_kb_repository(root: Path) -> bool:
    """Whether ``root`` is a Git repository whose HEAD tracks `.openkb/config.yaml` (an openkb KB)."""
    if not (root / ".git").is_dir():
        return False
    try:
        kb = KB(root)
    except OpenKBError:
        return False
    try:
        tree = kb.head_tree()
        return tree is not None and kb.objects.lookup(tree, CONFIG_PATH) is not None
    except DamageError:  # a damaged branch or object is said as such, not as "not a KB"
        raise
    except OpenKBError:  # e.g. an unborn branch beside others: nothing checked out
        return False
    finally:
        kb.close()


def _check_out_remote_kb(root: Path) -> bool:
    """In a plain `git clone` of a remote whose HEAD names a branch it lacks (a bare repository
    made by plain `git init --bare` names master), nothing is checked out: check out the
    remote's KB branch, main, as `openkb clone` would. Only when HEAD has no commit yet and the
    Git index is empty (nothing to lose), and a remote's main holds a KB. Returns whether it did."""
    import shutil
    import subprocess

    try:
        kb = KB(root)
    except OpenKBError:
        return False
    try:
        from ..git.refs import head_target, read_branch

        branch, _detached = head_target(kb.git_dir)
        if branch is None or read_branch(kb.git_dir, branch) is not None or kb.index.paths():
            return False
        found = None
        for ref in sorted(kb.repo.refs.keys(base=b"refs/remotes/")):
            remote, _slash, name = ref.decode("utf-8", "replace").partition("/")
            if name != "main":
                continue
            try:
                tree = kb.objects.get(kb.repo.refs[b"refs/remotes/" + ref]).tree
            except (KeyError, OpenKBError, AttributeError, ValueError):
                continue
            if kb.objects.lookup(tree, CONFIG_PATH) is not None:
                found = remote
                break
    except OpenKBError:
        return False
    finally:
        kb.close()
    if found is None or shutil.which("git") is None:
        return False
    proc = subprocess.run(["git", "-C", str(root), "checkout", "-q", "-b", "main", "--track", f"{found}/main"],
                          capture_output=True, stdin=subprocess.DEVNULL)
    return proc.returncode == 0 and is_kb_repository(root)


def setup_existing(root: Path) -> InitResult:
    """Set up an existing openkb repository (after a plain `git clone`) as `openkb init` would
    have: declare the merge drivers (`.git/config`), install the Git hooks that refresh the views
    (`.git/hooks/`), rebuild the views (hashes.json, log.md, views.json) as every writer does,
    and, when the KB's `.gitattributes` predates it, commit the `raw/** -diff` line as one `edit`
    commit through the commit protocol. Returns what was done; raises what a writer raises (the
    KB lock held, a Git state openkb refuses, damage)."""
    from ..views import views_are_current

    root = Path(root).resolve()
    result = InitResult(root=root, commit="", adopted_documents=0, adopted_files=0, existing=True)
    command = configure_merge_drivers(root)
    result.done.append("merge drivers " + ", ".join(DRIVERS) + f" configured in .git/config (`{command}`)")
    hooks = install_git_hooks(root)
    if hooks.installed or hooks.kept:
        result.done.append("Git hooks " + ", ".join(hooks.installed + hooks.kept) +
                           (" installed" if hooks.installed else " already installed") +
                           " in .git/hooks/ (they refresh the views after git pull, rebase, checkout)")
    result.warnings += hooks.warnings + driver_problems(root)
    kb = KB(root)
    try:
        writer = Writer(kb)
        stale = not views_are_current(kb) or not (kb.root / LOG).exists()
        with writer.locked():  # recovery first: it brings the views up to HEAD
            committed = _commit_raw_no_diff(kb, writer, result)
            if not views_are_current(kb) or not (kb.root / LOG).exists():
                update_views(kb, writer.registry, full=True)
        result.done.append("views " + ("rebuilt" if stale else "up to date") +
                           " (.openkb/hashes.json, wiki/log.md, .openkb/views.json)")
        if committed:
            result.done.append(f"committed `{RAW_NO_DIFF}` in .gitattributes ({committed[:7]}): "
                               "`git show` prints originals as binary")
        head = kb.head()
        result.commit = head.decode() if head else ""
    finally:
        kb.close()
    return result


def _commit_raw_no_diff(kb: KB, writer: Writer, result: InitResult) -> str | None:
    """Commit `.gitattributes` with RAW_NO_DIFF added, when HEAD's lacks it; the commit id, or None.
    A hand-edited `.gitattributes` is left alone (a warning says what to add)."""
    from .edits import find_edits

    tree = kb.head_tree()
    current = kb.objects.read_path(tree, ".gitattributes") or b""
    if RAW_NO_DIFF.encode() in current.splitlines():
        return None
    if ".gitattributes" in find_edits(kb, tree, [".gitattributes"]):
        result.warnings.append(f".gitattributes has uncommitted edits: left alone; add the line `{RAW_NO_DIFF}` "
                               "to it (originals shown as binary by git diff) and commit it")
        return None
    text = current if current.endswith(b"\n") or not current else current + b"\n"
    text += b"# Originals (PDF, EPUB, ...) are shown as binary by `git diff` / `git show`, never as text.\n"
    text += RAW_NO_DIFF.encode() + b"\n"
    mutation = Mutation(op="edit", subject="edit: .gitattributes marks raw/** binary for diffs (openkb init)",
                        body=f"Added `{RAW_NO_DIFF}`: `git show` of an ingest prints its original as binary.",
                        changes={".gitattributes": text})
    return commit_mutation(kb, writer.registry, kb.head(), mutation).sha.decode()


def adopt_registry(root: Path) -> dict[str, dict]:
    """Per-document records from OpenKB's `.openkb/hashes.json` ({sha256: metadata}): each
    with the files, concepts and entities OpenKB's pages give it (ops/adopt.py), so `openkb
    remove` takes out everything it owns; an entry whose files are not all there keeps its
    metadata alone (`openkb fsck` names what is missing)."""
    from .adopt import _doc_of, document_files, openkb_record, shared_pages

    hashes = json.loads((root / ".openkb" / "hashes.json").read_text(encoding="utf-8"))
    pages = shared_pages(root)
    records: dict[str, dict] = {}
    for sha, meta in (hashes.items() if isinstance(hashes, dict) else ()):
        if not isinstance(meta, dict) or not isinstance(sha, str):
            continue
        doc = _doc_of(meta) or "document"
        files, why = document_files(root, doc, meta, lambda _path: False)
        record = openkb_record(root, sha, doc, meta, [] if why else files, pages if not why else {})
        if why:  # its files not all there: its metadata alone (`openkb fsck` names what is missing)
            for key in ("files", "summary_path", "concepts", "entities", "compiled_by"):
                record.pop(key, None)
        records[doc] = record
    return records
