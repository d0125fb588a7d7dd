"""Git's merge-driver hook: the same structure-aware merges, for `git merge` and `git revert`
(docs/revert.md)."""

from __future__ import annotations

from pathlib import Path

from dulwich.objects import Blob
from dulwich.repo import Repo

from ..errors import OpenKBError
from ..history import iter_entries
from ..kb import KB
from ..merge import INDEX_PATH, MergeConflict, concept_slug, merge_file
from .review import changed_paths
from .revert import merge_trees

DRIVERS = {
    "openkb-page": "openkb structure-aware page merge",
    "openkb-index": "openkb index merge (entries keyed by link)",
    "openkb-record": "openkb registry record merge (key by key)",
}


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def _blob_id(data: bytes | None) -> bytes | None:
    return None if data is None else Blob.from_string(data).id


def revert_trees(kb: KB, base: bytes | None, theirs: bytes | None) -> tuple[bytes, bytes] | None:
    """(base tree, theirs tree) of the `git revert` (or `git cherry-pick`) Git is running, found
    as the commit of HEAD's history whose index is ``base`` and whose parent's is ``theirs``
    (or the other way round); None when there is none (a `git merge`).

    Git tells a merge driver only the three versions of one file; the index's `## Concepts`
    lines follow the concept pages after the merge, so the driver needs the two trees."""
    want = (_blob_id(base), _blob_id(theirs))
    for entry in iter_entries(kb):
        if entry.parent is None:
            return None
        tree = kb.objects.get(entry.sha.encode()).tree
        parent_tree = kb.objects.get(entry.parent.encode()).tree
        ids = tuple((found or (None, None))[1] for found in (kb.objects.lookup(tree, INDEX_PATH),
                                                             kb.objects.lookup(parent_tree, INDEX_PATH)))
        if ids == want:
            return tree, parent_tree
        if ids[::-1] == want:
            return parent_tree, tree
    return None


def _concept_exists(repo_root: Path, base: bytes | None, theirs: bytes | None) -> dict[str, bool] | None:
    """{slug: page exists after the merge} for the concept pages the revert changes, merged
    exactly as `openkb revert` merges them; None when the trees are not found or the
    repository cannot be read as a KB (the index's concept lines are then keyed by concept)."""
    try:
        kb = KB(repo_root)
    except OpenKBError:
        return None
    try:
        trees = revert_trees(kb, base, theirs)
        if trees is None:
            return None
        base_tree, theirs_tree = trees
        paths = sorted(p for p in changed_paths(kb, theirs_tree, base_tree) if concept_slug(p) is not None)
        results = merge_trees(kb, paths, base_tree, kb.head_tree(), theirs_tree)
        return {concept_slug(path): merged is not None for path, (_ours, merged) in results.items()
                if not isinstance(merged, MergeConflict)}
    finally:
        kb.close()


def merge_for_git(base: Path, ours: Path, theirs: Path, path: str,
                  repo_root: Path | None = None) -> MergeConflict | None:
    """Merge three temporary files Git gives us; the result goes to ``ours``. Returns the
    conflict (``ours`` then holds conflict markers) or None. Git runs drivers at the top of
    the work tree: ``repo_root`` defaults to the current directory."""
    b, o, t = _read(base), _read(ours), _read(theirs)
    concept_exists = None
    if path == INDEX_PATH and b != t and b != o and o != t:
        concept_exists = _concept_exists(repo_root or Path.cwd(), b, t)
    result = merge_file(path, b, o, t, concept_exists=concept_exists)
    if result is None:
        result = MergeConflict("the merge leaves nothing of this page; delete it (git rm) to resolve", path=path)
    if isinstance(result, MergeConflict):
        ours.write_bytes(b"<<<<<<< ours\n" + (o or b"") + b"=======\n" + (t or b"") + b">>>>>>> theirs\n")
        return result
    ours.write_bytes(result)
    return None


# The command Git runs for each driver: `openkb` found through PATH when Git runs it, so the
# configuration works on any machine (and after a virtual environment moves) that has
# openkb-git installed; Git runs it with `sh -c` at the top of the work tree.
DRIVER_COMMAND = "openkb merge-driver %O %A %B %P"
# What identifies openkb-git's `openkb` console script (OpenKB 0.4.5 installs an `openkb`
# command too, which has no merge driver): its text names this package.
_OURS_MARK = b"openkb_git"


def configure(repo_path: Path) -> None:
    """Declare the merge drivers in the repository's config (`.git/config`, never tracked):
    ``DRIVER_COMMAND`` for each of DRIVERS, replacing an older value (an absolute interpreter path)."""
    repo = Repo(str(repo_path))
    try:
        config = repo.get_config()
        for name, description in DRIVERS.items():
            config.set((b"merge", name.encode()), b"name", description.encode())
            config.set((b"merge", name.encode()), b"driver", DRIVER_COMMAND.encode())
        config.write_to_path()
    finally:
        repo.close()


def driver_problems(repo_path: Path) -> list[str]:
    """Why Git would not use openkb's merge drivers in this repository (empty when it would):
    a driver not declared in `.git/config` (a plain `git clone`: Git then silently falls back to a
    text merge), or a command that does not resolve to openkb-git on this machine's PATH.
    Each message says what to do. Reads the config only; runs nothing but, when the `openkb`
    found is not a script naming openkb_git, `openkb --version` (10 s at most)."""
    try:
        repo = Repo(str(repo_path))
    except Exception:  # not a repository dulwich can open: nothing to say about drivers
        return []
    try:
        config = repo.get_config()
        commands = {}
        for name in DRIVERS:
            try:
                commands[name] = config.get((b"merge", name.encode()), b"driver").decode("utf-8", "replace")
            except KeyError:
                commands[name] = None
    finally:
        repo.close()
    missing = sorted(name for name, command in commands.items() if not command)
    problems = []
    if missing:
        problems.append(f"merge driver(s) {', '.join(missing)} not configured in .git/config (a plain `git clone`?): "
                        "`git merge` and `git pull` fall back to text merges of the wiki; run `openkb init` here")
    for command in sorted({c for c in commands.values() if c}):
        problem = command_problem(command)
        if problem:
            problems.append(f"merge driver command `{command}` {problem}")
    return problems


def command_problem(command: str) -> str | None:
    """Why the driver ``command`` would not run openkb-git's merge driver here, or None."""
    import shlex
    import shutil

    try:
        words = shlex.split(command)
    except ValueError:
        return "cannot be parsed; run `openkb init` here to set it again"
    if not words:
        return "is empty; run `openkb init` here to set it again"
    program = words[0]
    found = shutil.which(program) if "/" not in program else (program if Path(program).is_file() else None)
    if found is None:
        return (f"does not resolve: `{program}` is not found on this machine's PATH; install openkb-git "
                "(its `openkb` command) or run `openkb init` here to set the command again")
    if Path(program).name == "openkb" and not _is_openkb_git(found):
        return (f"runs {found}, which is not openkb-git's `openkb` (OpenKB's own command?): put openkb-git's "
                "first on PATH, or set `git config merge.<driver>.driver` to its full path")
    return None


def _is_openkb_git(program: str) -> bool:
    """Whether ``program`` is openkb-git's `openkb`: a console script naming openkb_git (read,
    not run), else one whose `--version` says openkb-git."""
    import subprocess

    try:
        with open(program, "rb") as fh:
            if _OURS_MARK in fh.read(4096):
                return True
    except OSError:
        return False
    try:
        proc = subprocess.run([program, "--version"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return b"openkb-git" in proc.stdout
