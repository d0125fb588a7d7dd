"""`openkb fsck`: check the KB against its own history; `--repair` brings the working tree,
the Git index and the views back to HEAD (history is never rewritten).

Checks: the object store (via `git fsck` when Git is installed, else by reading every
object reachable from HEAD), HEAD's tree against the working tree, the Git index
against HEAD, registry records against the files they name, the compiler's parts of the
pages against the records (check_pages), the views against the history, and pending
journals.
"""

from __future__ import annotations

import json
import re
import shutil
import stat as statmod
import subprocess
import time
from dataclasses import asdict, dataclass, field

from .. import frontmatter
from ..fsutil import makedirs, write_file
from ..git.objects import ObjectDamageError
from ..git.index import record_sha
from ..git.objects import blob_id
from ..kb import KB
from ..protocol.journal import pending_journals
from ..protocol.recovery import reset_paths
from ..paths import link_on_the_way, path_problem, record_path_problems
from ..registry import OPENKB_COMPILED, Registry, record_path
from ..views import HASHES, LOG, hashes_json, update_views
from .contribution import document_files, owner_by_layout
from .edits import find_edits
from .session import Writer


@dataclass
class Problem:
    check: str  # objects | tree | worktree | index | registry | pages | views | journal
    path: str
    detail: str
    fix: str = ""  # the exact repair; empty when `openkb fsck --repair` does it
    repairable: bool = True  # False: --repair cannot fix it (``fix`` says what to do)
    note: bool = False  # normal life, not damage (exit 0): views behind HEAD, uncommitted hand edits


def is_note(problem: Problem) -> bool:
    """Whether ``problem`` is a note of normal life rather than damage: the views (hashes.json,
    log.md) missing or behind HEAD, as after a plain `git pull` or in a fresh clone, and tracked
    files edited or deleted by hand and not committed yet. A registry record edited or deleted
    by hand stays damage (writers refuse to go on with it, exit 6), as does the commit memo
    failing its hash check, and everything else."""
    if problem.check == "worktree":
        return problem.detail in ("deleted", "differs from HEAD") and not problem.path.startswith(".openkb/registry/")
    return problem.check == "views" and problem.path in (HASHES, LOG)


@dataclass
class FsckReport:
    head: str | None
    problems: list[Problem] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    unrepaired: list[Problem] = field(default_factory=list)
    backup: str | None = None
    writer: dict | None = None  # a writer kept running: only the object store was checked
    warnings: list[str] = field(default_factory=list)  # the set-up of .git (merge drivers): notes

    @property
    def damage(self) -> list[Problem]:
        """The problems that are not notes: any of them makes fsck exit 1."""
        return [p for p in self.problems if not p.note]

    @property
    def ok(self) -> bool:
        return not self.damage and self.writer is None

    def to_json(self) -> dict:
        return {"head": self.head, "ok": self.ok, "problems": [asdict(p) for p in self.problems],
                "repaired": self.repaired, "unrepaired": [asdict(p) for p in self.unrepaired],
                "backup": self.backup, "writer": self.writer, "warnings": self.warnings}


def fsck(kb: KB, *, settle: bool = True) -> FsckReport:
    """Check everything; changes nothing. The object store is checked first; the rest
    (working tree, index, registry, views, journals) is read while no writer is active
    (``settle``, see `read.at_rest`): when a writer keeps running, ``writer`` names it and
    those checks are not reported, as a writer's in-flight changes are not damage."""
    from .read import at_rest

    from .gitsetup import driver_problems

    head = kb.head()
    report = FsckReport(head=head.decode() if head else None, warnings=driver_problems(kb.root))
    if not settle:
        report.problems += check_objects(kb, head)
        report.problems += _check_at(kb, head)
        return _noted(report)
    damage, writer = _objects_at_rest(kb)
    report.problems += damage
    found, writer = at_rest(kb, _check_at) if writer is None else (None, writer)
    if writer is not None:
        report.writer = writer
    else:
        report.problems += found
    return _noted(report)


def _noted(report: FsckReport) -> FsckReport:
    for problem in report.problems:
        problem.note = is_note(problem)
    return report


def _objects_at_rest(kb: KB, attempts: int = 4) -> tuple[list[Problem], dict | None]:
    """check_objects, trusted only when no writer was active around it: `git fsck` started
    before a writer's new pack or reflog entry can report that entry as invalid. Returns
    (problems, None), or ([], holder) when a writer was active at every attempt."""
    from ..lock import KBLock

    lock = KBLock(kb.openkb_dir)
    holder: dict | None = None
    for attempt in range(attempts):
        if attempt:
            time.sleep(0.2 * attempt)
        before, head = lock.probe(), kb.head()
        problems = check_objects(kb, head)
        if not problems:
            return [], None
        after = lock.probe()
        if before is None and after is None and kb.head() == head:
            return problems, None
        holder = after or before or {}
    return [], holder


def _check_at(kb: KB, head: bytes | None) -> list[Problem]:
    tree = kb.head_tree(head)
    problems = check_tree(kb, tree)
    try:
        for path, data in sorted(find_edits(kb, tree).items()):
            problems.append(Problem("worktree", path, "deleted" if data is None else "differs from HEAD"))
        problems += check_index(kb, tree)
        registry = Registry(kb.objects)
        records = registry.view(tree).records
        problems += check_registry(kb, tree, records, registry)
        problems += check_pages(kb, tree, records)
        problems += check_views(kb, records)
    except ObjectDamageError as exc:  # the checks after it need the object git fsck found damaged
        problems.append(Problem("objects", exc.sha, str(exc), "", repairable=False))
    ours, openkb = pending_journals(kb)
    for journal in ours:
        problems.append(Problem("journal", journal.relative_to(kb.root).as_posix(),
                                "an interrupted mutation (recovery resets it)"))
    for journal in openkb:
        problems.append(Problem("journal", journal.relative_to(kb.root).as_posix(),
                                "an interrupted OpenKB mutation (the next writer rolls it back as OpenKB does)"))
    return problems


NO_COPY_FIX = ("cannot be repaired from this knowledge base (no intact copy in its working tree): restore "
               "`.git` from a backup or clone the KB again from a remote that has the object")


def check_objects(kb: KB, head: bytes | None) -> list[Problem]:
    if head is None:
        return []
    if shutil.which("git"):
        proc = subprocess.run(["git", "-C", str(kb.root), "fsck", "--strict", "--no-dangling", "--no-progress"],
                              capture_output=True, text=True)
        lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
        if proc.returncode != 0 or lines:
            problems = [Problem("objects", ".git", line, "", repairable=False) for line in lines] or \
                [Problem("objects", ".git", f"git fsck exited {proc.returncode}", "", repairable=False)]
            damaged = _damaged_ids(lines)
            copies = _intact_copies(kb, head, damaged)
            for sha, path in sorted(copies.items()):
                problems.append(Problem("objects", path, f"object {sha} is damaged or missing; the working-tree "
                                        f"file {path} is an intact copy of it",
                                        f"--repair writes it back from {path} (`git hash-object -w` does not: "
                                        "Git takes a damaged stored copy for present)"))
            fix = ("--repair restores every damaged object from the working tree (see below)"
                   if copies and len(copies) == len(damaged) else NO_COPY_FIX)
            for problem in problems:
                if _FORMAT_PROBLEM.search(problem.detail):  # e.g. hasDotdot: not damage, a crafted tree
                    problem.fix = UNSAFE_TREE_FIX
                elif not problem.fix:
                    problem.fix = fix
                    problem.repairable = fix != NO_COPY_FIX
            return problems
        return []
    problems = []
    seen: set[bytes] = set()
    todo, commits = [head], {head}  # every parent: the commits a merge brought in too
    while todo:
        sha = todo.pop()
        try:
            commit = kb.objects.get(sha)
            _walk_tree(kb, commit.tree, seen)
        except Exception as exc:  # a missing or corrupt object
            problems.append(Problem("objects", sha.decode(), f"unreadable: {exc}"))
            continue
        todo += [parent for parent in commit.parents if parent not in commits]
        commits.update(commit.parents)
    return problems


_HEX_ID = re.compile(r"(?<![0-9a-f-])([0-9a-f]{40})(?![0-9a-f])")
_FORMAT_PROBLEM = re.compile(r"(error|warning) in (tree|commit|tag|blob) [0-9a-f]{40}: ")
_LOOSE_PATH = re.compile(r"objects/([0-9a-f]{2})/([0-9a-f]{38})")


def _damaged_ids(lines: list[str]) -> set[str]:
    """Object ids `git fsck` names as damaged or missing (not pack names, not the trees and
    commits that merely point at them)."""
    out = set()
    for line in lines:
        if "broken link from" in line or "dangling" in line or _FORMAT_PROBLEM.search(line):
            continue
        out.update(f"{a}{b}" for a, b in _LOOSE_PATH.findall(line))
        if _LOOSE_PATH.search(line) is None:
            out.update(_HEX_ID.findall(line))
    return out


def _intact_copies(kb: KB, head: bytes | None, damaged: set[str]) -> dict[str, str]:
    """{damaged blob id: working-tree path whose content has exactly that id}."""
    if not damaged:
        return {}
    try:
        ids = kb.objects.file_ids(kb.head_tree(head))
    except Exception:  # the damaged object is a tree on the way: look at every tracked file
        ids = {key: record_sha(record) for key, record in kb.index.records().items()}
    out: dict[str, str] = {}
    for key, sha in ids.items():
        text = sha.decode()
        path = key.decode("utf-8", "surrogateescape")
        if text in damaged and text not in out and not path_problem(path):
            try:
                data = (kb.root / path).read_bytes()
            except OSError:
                continue
            if blob_id(data) == sha:
                out[text] = path
    return out


def _restore_objects(kb: KB, report: FsckReport) -> list[str]:
    """Write back the damaged objects the working tree holds intact copies of; repack when a
    damaged copy sat in a pack (Git then drops it). Returns the paths used."""
    from ..git.objects import RawObject

    restored = []
    for problem in report.problems:
        if problem.check != "objects" or problem.path == ".git" or not problem.repairable:
            continue
        data = (kb.root / problem.path).read_bytes()
        kb.objects.rewrite_loose([RawObject(b"blob", data)])
        restored.append(problem.path)
    if restored and shutil.which("git"):
        subprocess.run(["git", "-C", str(kb.root), "repack", "-a", "-d", "-q"], capture_output=True)
    return restored


def _names_object(kb: KB, tree: bytes | None, path: str, ids: set[str]) -> bool:
    entry = kb.objects.lookup(tree, path) if ids else None
    return entry is not None and entry[1].decode() in ids


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


UNSAFE_TREE_FIX = ("openkb never reads, writes or deletes it, and refuses to commit on top of it; "
                   "--repair cannot drop it (history is never rewritten): move the branch back to the last "
                   "commit before it (`git log --raw`, then `git reset --keep <commit>`) or use a trusted clone")


def check_tree(kb: KB, tree: bytes | None) -> list[Problem]:
    """HEAD's tree entries that Git's own fsck refuses (`.`, `..`, `.git`, empty names)."""
    if tree is None:
        return []
    problems = []
    pending = [(b"", tree)]
    while pending:
        base, sha = pending.pop()
        for name, (mode, child) in sorted(kb.objects.tree_entries(sha).items()):
            path = (base + name).decode("utf-8", "surrogateescape")
            problem = path_problem(path)
            if problem:
                problems.append(Problem("tree", path, f"unsafe entry in tree {sha.decode()[:12]}: {problem}",
                                        UNSAFE_TREE_FIX, repairable=False))
            elif statmod.S_ISDIR(mode):
                pending.append((base + name + b"/", child))
            elif statmod.S_ISLNK(mode):
                problems.append(Problem("tree", path, "a symbolic link: openkb never reads, writes or deletes "
                                        "beyond it", f"replace it by a folder or a file (`git rm {path}`, then "
                                        "`git commit`), or use a trusted clone", repairable=False))
    return problems


def check_index(kb: KB, tree: bytes | None) -> list[Problem]:
    problems = []
    head_files = {path: sha for path, _mode, sha in kb.objects.walk_files(tree) if not path_problem(path)}
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


def check_registry(kb: KB, tree: bytes | None, records: dict[str, dict], registry: Registry) -> list[Problem]:
    """Records against the files they name, and the other way round: a record that is not a
    JSON object or names another doc, two records of one content or one source, a path it
    names that is unsafe or missing from HEAD, and a document's files (raw, source, summary, index line) that no record owns."""
    problems = []
    folder = kb.objects.list_dir(tree, ".openkb/registry")
    invalid = []
    for name, (mode, sha) in sorted(folder.items()):
        if not name.endswith(".json") or statmod.S_ISDIR(mode):
            continue
        doc = name[:-len(".json")]
        if registry.record(sha) is None:
            invalid.append(doc)
            problems.append(Problem("registry", record_path(doc), "committed record is not a JSON object",
                                    _orphan_fix(kb, doc), repairable=False))
    for doc, record in sorted(records.items()):
        where = record_path(doc)
        if record.get("doc_name") != doc:
            problems.append(Problem("registry", where, f"names doc {record.get('doc_name')!r}, not {doc!r}",
                                    f"set \"doc_name\": {doc!r} in {where} and `git commit` it", repairable=False))
        unsafe = record_path_problems(record)
        for path, problem in unsafe:
            problems.append(Problem("registry", where, f"names unsafe path {path!r}: {problem}",
                                    "openkb refuses to act on this record (never followed); restore the record "
                                    f"from a trusted commit (`git log -p -- {where}`) and `git commit` it",
                                    repairable=False))
        if unsafe:
            continue
        for path in record.get("files", []):
            if kb.objects.lookup(tree, path) is None:
                link = link_on_the_way(kb.root, path)
                found = _in_history(kb, path) if link is None else None
                fix = (f"--repair restores it from commit {found[0].decode()[:7]}" if found else
                       f"'{link}' is a symbolic link: replace it by a folder first" if link else
                       f"not in any commit: `openkb remove {doc}` then add its source again")
                problems.append(Problem("registry", where, f"names {path}, which is not in HEAD", fix,
                                        repairable=found is not None))
    for field_name, what in (("sha256", "content"), ("path", "source")):
        first: dict[str, str] = {}
        for doc, record in sorted(records.items()):
            value = record.get(field_name)
            if not isinstance(value, str) or not value:
                continue
            if value in first:  # add never makes two documents of one content or one source
                problems.append(Problem("registry", record_path(doc),
                                        f"has the same {what} as {first[value]} ({field_name} {value[:64]!r})",
                                        f"one of them is a copy: keep one (`openkb remove {doc}`, or "
                                        f"`openkb remove {first[value]}`)", repairable=False))
            else:
                first[value] = doc
    owned = {path for record in records.values() for path in record.get("files", []) if isinstance(path, str)}
    gone = set(invalid)
    for path, _mode, _sha in document_files(kb.objects, tree):
        if path not in owned:
            doc = owner_by_layout(path)
            if doc is None or doc in records:
                continue
            gone.add(doc)
            problems.append(Problem("registry", path, f"owned by no registry record (no valid {record_path(doc)})",
                                    _orphan_fix(kb, doc), repairable=False))
    index = kb.objects.read_path(tree, "wiki/index.md")
    for doc in _index_docs(index):
        if doc not in records:
            problems.append(Problem("registry", "wiki/index.md", f"lists {doc}, which has no registry record",
                                    _orphan_fix(kb, doc), repairable=False))
    return problems


INDEX_PATH = "wiki/index.md"


def _section_lines(page: bytes | None, heading: str, prefix: str) -> dict[str, str]:
    """{key: line} of the bullets ``prefix<key>]]...`` in the section ``heading`` of a page (the
    part the compiler owns; the rest of the page is the user's)."""
    out: dict[str, str] = {}
    inside = False
    for line in (page or b"").decode("utf-8", "replace").split("\n"):
        if line.startswith("#"):
            inside = line.rstrip() == heading
        elif inside and line.startswith(prefix):
            out[line[len(prefix):].split("]]", 1)[0].split("|", 1)[0]] = line
    return out


def check_pages(kb: KB, tree: bytes | None, records: dict[str, dict]) -> list[Problem]:
    """The parts of the pages the compiler owns against the records (docs/layout.md): each
    record's line in the index's `## Documents` (link, marker and description, as the compiler
    writes it from the record), and each concept and entity page's `sources` and
    `## Related Documents` lines against the records naming it. Text a user wrote elsewhere on a
    page is not looked at. Reads the index and each shared page once (no summary is read: the
    record's files, summary included, are checked by check_registry). Records without a title or
    concepts (adopted from OpenKB, not compiled by openkb) are not compared."""
    from ..compiler.pages import DOCUMENTS, KINDS, LEGACY_MENTIONS, MENTIONS, page_sources, record_index_line

    problems = []  # (a record's unsafe paths, reported by check_registry, are not followed: names only)
    index = kb.objects.read_path(tree, INDEX_PATH)
    lines = _section_lines(index, DOCUMENTS, "- [[summaries/")
    for doc, record in sorted(records.items()):
        expected = record_index_line(doc, record)
        if expected is None:
            continue
        found = lines.get(doc)
        if found != expected:
            what = f"has no line for {doc}" if found is None else f"lists {doc} as {found!r}"
            problems.append(Problem("pages", INDEX_PATH, f"{what}; its record ({record_path(doc)}) gives {expected!r}"))
    recorded = recorded_docs(kb, tree)
    for kind, (folder, _type, section) in KINDS.items():
        wanted, compiled = _concept_sources(records, kind)
        # pages OpenKB's own compiler wrote for a document it added (ops/adopt.py): its model
        # rewrites a page whole, with no Related Documents lines; their sources are compared
        openkb_pages = {slug for doc, record in records.items() if record.get("compiled_by") == OPENKB_COMPILED
                        for slug in (record.get(kind) if isinstance(record.get(kind), list) else [])}
        pages = {name[:-3] for name, (mode, _sha) in kb.objects.list_dir(tree, f"wiki/{folder}").items()
                 if name.endswith(".md") and not statmod.S_ISDIR(mode)}
        listed = _section_lines(index, section, f"- [[{folder}/")
        for slug in sorted(pages | set(wanted)):
            path = f"wiki/{folder}/{slug}.md"
            docs = wanted.get(slug, set())
            if slug not in pages:
                problems.append(Problem("pages", path, f"missing, though the records of {', '.join(sorted(docs))} "
                                        f"name the {kind[:-1].replace('entitie', 'entity')}", PAGES_FIX))
                continue
            page = kb.objects.read_path(tree, path)
            try:
                text = page.decode("utf-8")
            except UnicodeDecodeError:
                text = ""  # (no sources: reported below as lacking the records' documents)
            sources = docs if _sources_as_compiled(text, docs) else page_sources(text)
            mentions = set(_section_lines(page, MENTIONS, "- [[summaries/")
                           or _section_lines(page, LEGACY_MENTIONS, "- [[summaries/"))
            checks = [("sources", sources)] + ([] if slug in openkb_pages else
                                               [(MENTIONS.lstrip("# ") + " lines", mentions)])
            for what, have in checks:
                # a mention of a document whose record does not name the page, or that has no record
                # (left by a hand fix of a modify/delete conflict); OpenKB's records without concepts are not compared
                extra, lacking = {d for d in have - docs if d in compiled or d not in recorded}, docs - have
                if extra or lacking:
                    detail = "; ".join(part for part in (
                        f"lacks {', '.join(sorted(lacking))}" if lacking else "",
                        f"has {', '.join(sorted(extra))}, whose record does not name {slug} (or that has no record)"
                        if extra else "") if part)
                    problems.append(Problem("pages", path, f"its {what} disagree with the records: {detail}",
                                            PAGES_FIX))
            if slug not in listed and docs:  # (a page no record names, made by hand, is the user's)
                problems.append(Problem("pages", INDEX_PATH, f"does not list the {kind[:-1].replace('entitie', 'entity')} "
                                        f"page {path}"))
        for slug in sorted(set(listed) - pages):
            problems.append(Problem("pages", INDEX_PATH, f"lists the {kind[:-1].replace('entitie', 'entity')} {slug}, "
                                    "which has no page"))
    problems += _check_summaries(kb, tree, records)
    return problems


def _check_summaries(kb: KB, tree: bytes | None, records: dict[str, dict]) -> list[Problem]:
    """Each compiled document's summary: its `## Concepts` links (the compiler's) against its
    record's concepts (a summary from one side of a hand-fixed conflict, the record from the
    other). One read per summary; a summary missing is check_registry's (the record names it)."""
    problems = []
    for doc, record in sorted(records.items()):
        path = record.get("summary_path")
        if not isinstance(record.get("concepts"), list) or not isinstance(path, str) or path_problem(path) \
                or path not in record.get("files", []) or record.get("compiled_by") == OPENKB_COMPILED:
            continue  # (OpenKB's summaries link what its model chose)
        summary = kb.objects.read_path(tree, path)
        if summary is None:
            continue
        links = set(_section_lines(summary, "## Related Concepts", "- [[concepts/")
                    or _section_lines(summary, "## Concepts", "- [[concepts/"))
        named = {slug for slug in record["concepts"] if isinstance(slug, str)}
        if links != named:
            detail = "; ".join(part for part in (
                f"lacks {', '.join(sorted(named - links))}" if named - links else "",
                f"links {', '.join(sorted(links - named))}, which its record does not name" if links - named else "")
                if part)
            problems.append(Problem("pages", path, f"its concept links disagree with its record ({record_path(doc)}): "
                                    f"{detail}", SUMMARY_FIX.format(doc=doc, path=path), repairable=False))
    return problems


SUMMARY_FIX = ("the summary and the record of {doc} come from different versions of it (`git log -p -- {path}`): "
               "`git checkout <commit> -- {path}` from the commit whose record matches and `git commit`, or add "
               "the document again (`openkb remove {doc}`, then `openkb add` its source)")


def recorded_docs(kb: KB, tree: bytes | None) -> set[str]:
    """The docs that have a record file at ``tree``, valid or not (an invalid record is damage
    reported by check_registry: its document's mentions are not taken for stale)."""
    return {name[:-5] for name in kb.objects.list_dir(tree, ".openkb/registry") if name.endswith(".json")}


def _concept_sources(records: dict[str, dict], kind: str = "concepts") -> tuple[dict[str, set[str]], set[str]]:
    """({slug of a page of ``kind``: docs whose record names it}, the docs whose records list
    concepts: compiled by openkb; their records list the entity pages too, under `entities`,
    when there are any)."""
    wanted: dict[str, set[str]] = {}
    compiled = set()
    for doc, record in records.items():
        if isinstance(record.get("concepts"), list):
            compiled.add(doc)
            named = record.get(kind, [])
            for slug in named if isinstance(named, list) else []:
                if isinstance(slug, str):
                    wanted.setdefault(slug, set()).add(doc)
    return wanted, compiled


def _sources_as_compiled(text: str, docs: set[str]) -> bool:
    """Whether the page's frontmatter holds `sources:` exactly as the compiler writes ``docs``
    (OpenKB's one line, `sources: ["summaries/<doc>.md", …]`, sorted): the common case, checked
    without parsing YAML (6,000 concept pages: 1 s). False means "parse it". The block is found
    by the one frontmatter split."""
    from ..compiler.pages import source_of

    found = frontmatter.parts(text)
    if found is None:
        return False
    block = "\n" + found[0]
    want = "\nsources: " + json.dumps([source_of(d) for d in sorted(docs)], ensure_ascii=False) + "\n"
    at = block.find(want)
    return at >= 0 and block.find("\nsources:") == at


PAGES_FIX = ("`openkb rebuild` (or `openkb fsck --repair`) regenerates the compiler's parts of the shared pages "
             "from the records as one revertible commit (`git log -p -- <page>` shows the commit that made it so)")


def _orphan_fix(kb: KB, doc: str) -> str:
    where = record_path(doc)
    found = _in_history(kb, where, valid_record=True)
    restore = (f"restore its record (`git checkout {found[0].decode()[:7]} -- {where}` and `git commit`), or "
               if found else "")
    return f"{restore}take the document out with `openkb remove {doc}` (it removes a document by its files)"


def _in_history(kb: KB, path: str, *, valid_record: bool = False, limit: int = 10_000):
    """(commit, blob id) of the newest commit holding ``path`` (a valid record), through merges."""
    import json

    from ..history import iter_entries

    for seen, walked in enumerate(iter_entries(kb)):
        if seen >= limit:
            break
        sha = walked.sha.encode()
        commit = kb.objects.get(sha)
        entry = kb.objects.lookup(commit.tree, path)
        if entry is not None and not statmod.S_ISDIR(entry[0]):
            if not valid_record:
                return sha, entry[1]
            try:
                if isinstance(json.loads(kb.objects.blob_bytes(entry[1])), dict):
                    return sha, entry[1]
            except ValueError:
                pass
    return None


def _index_docs(index: bytes | None) -> list[str]:
    out = []
    for line in (index or b"").decode("utf-8", "replace").split("\n"):
        if line.startswith("- [[summaries/"):
            out.append(line[len("- [[summaries/"):].split("]]", 1)[0].split("|", 1)[0])
    return out


def check_views(kb: KB, records: dict[str, dict]) -> list[Problem]:
    problems = []
    hashes = kb.root / HASHES
    if not hashes.exists():
        problems.append(Problem("views", HASHES, "missing"))
    elif hashes.read_bytes() != hashes_json(records):
        problems.append(Problem("views", HASHES, "does not match the registry at HEAD"))
    from ..history import MEMO_FILE, check_memo

    bad = check_memo(kb)
    if bad:  # a cache never misleads (readers ignore such a part): reported, dropped by --repair
        problems.append(Problem("views", f".openkb/{MEMO_FILE}", bad))
    log = kb.root / LOG
    if not log.exists():
        problems.append(Problem("views", LOG, "missing"))
    else:
        if log.read_bytes() != _expected_log(kb):
            problems.append(Problem("views", LOG, "does not match the history"))
    return problems


def _expected_log(kb: KB) -> bytes:
    from ..history import iter_entries
    from ..views import render_log

    return render_log(kb, list(iter_entries(kb))).encode("utf-8")


def repair(kb: KB, *, wait: float = 0.0) -> FsckReport:
    """Check, then reset what is wrong to HEAD: working tree (hand edits are first copied to
    `.openkb/fsck-backup/<time>/`), Git index, views; a file a record names that an earlier
    commit deleted is restored from the newest commit holding it (a new `edit` commit).
    Returns the report of what was found; ``unrepaired`` lists what it cannot fix."""
    report = fsck(kb)
    if not report.problems and report.writer is None:
        return report
    writer = Writer(kb, wait)
    with writer.locked():
        if report.writer is not None:  # it has finished now: check again, under the lock
            report = fsck(kb, settle=False)
        restored_objects = _restore_objects(kb, report)
        report.repaired += restored_objects
        tree = kb.head_tree()
        paths = sorted({p.path for p in report.problems if p.check in ("worktree", "index") and not path_problem(p.path)})
        lost = _damaged_ids([p.detail for p in report.problems if p.check == "objects"]) - \
            {blob_id((kb.root / path).read_bytes()).decode() for path in restored_objects}
        for path in [p for p in paths if _names_object(kb, tree, p, lost)]:
            paths.remove(path)  # resetting it would read the damaged object: the working-tree file is kept
            report.problems.append(Problem("worktree", path, "not reset: its content at HEAD is a damaged object",
                                           "the working-tree file is kept as it is; " + NO_COPY_FIX, repairable=False))
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
        restored = _restore_deleted_files(kb, writer, report)
        report.repaired += restored
        pages = [p for p in report.problems if p.check == "pages" and p.repairable]
        reapplied = _reapply_index_lines(kb, writer) if pages and all(p.path == INDEX_PATH for p in pages) else []
        if pages and not reapplied:  # a concept page: the rebuild regenerates the shared pages (ops/rebuild.py)
            from .rebuild import commit_rebuild

            rebuilt = commit_rebuild(kb, writer, why="fsck --repair")
            reapplied = sorted(rebuilt.plan.changes) if rebuilt.commit else []
            tree = kb.head_tree()
            left = {p.path for p in check_pages(kb, tree, Registry(kb.objects).view(tree).records)}
            for problem in pages:
                problem.repairable = problem.path not in left
                if not problem.repairable:
                    problem.fix = "; ".join(rebuilt.plan.left) or problem.fix
        report.repaired += reapplied
        if any(p.check == "views" for p in report.problems) or restored or reapplied:
            from ..history import MEMO_FILE, drop_memo

            if any(p.path.endswith(MEMO_FILE) for p in report.problems):
                drop_memo(kb)
            update_views(kb, writer.registry, full=True)
            report.repaired += sorted({p.path for p in report.problems if p.check == "views"})
    report.unrepaired = [p for p in report.problems if not p.repairable]
    return report


def _index_updates(kb: KB, tree: bytes | None, records: dict[str, dict]) -> tuple[dict, dict]:
    """(doc lines, {kind: shared page lines}) that make the index's compiler-owned lines agree
    with the records and the concept and entity pages, as `update_index` takes them."""
    from ..compiler.pages import DOCUMENTS, KINDS, record_index_line, shared_index_line

    index = kb.objects.read_path(tree, INDEX_PATH)
    lines = _section_lines(index, DOCUMENTS, "- [[summaries/")
    docs = {}
    for doc, r in records.items():
        line = record_index_line(doc, r)
        if line is not None and lines.get(doc) != line:
            docs[doc] = line
    shared = {}
    for kind, (folder, _type, section) in KINDS.items():
        pages = {name[:-3] for name in kb.objects.list_dir(tree, f"wiki/{folder}") if name.endswith(".md")}
        listed = set(_section_lines(index, section, f"- [[{folder}/"))
        named = set(_concept_sources(records, kind)[0])
        updates = {slug: None for slug in listed - pages}
        for slug in (pages & named) - listed:
            updates[slug] = shared_index_line(kind, slug, kb.objects.read_path(tree, f"wiki/{folder}/{slug}.md"))
        shared[kind] = updates
    return docs, shared


def _reapply_index_lines(kb: KB, writer: Writer) -> list[str]:
    """Commit, as one `edit`, the index lines the records give where the index disagrees."""
    from ..compiler import update_index
    from ..protocol.commit import Mutation, commit_mutation

    tree = kb.head_tree()
    docs, shared = _index_updates(kb, tree, Registry(kb.objects).view(tree).records)
    index = kb.objects.read_path(tree, INDEX_PATH)
    count = len(docs) + sum(len(v) for v in shared.values())
    if index is None or not count:
        return []
    new = update_index(index, docs=docs, concepts=shared["concepts"], entities=shared["entities"])
    if new == index:
        return []
    body = "\n".join([f"index line of {doc}: from its record" for doc in sorted(docs)] +
                      [f"index line of {kind[:-1].replace('entitie', 'entity')} {slug}: "
                       f"{'added' if line is not None else 'dropped'}"
                       for kind, updates in sorted(shared.items()) for slug, line in sorted(updates.items())])
    mutation = Mutation(op="edit", subject=f"edit: fsck re-applied {count} index line(s) from "
                        "the records", body=body, changes={INDEX_PATH: new})
    commit_mutation(kb, writer.registry, kb.head(), mutation)
    return [INDEX_PATH]


def _restore_deleted_files(kb: KB, writer: Writer, report: FsckReport) -> list[str]:
    """Commit, as one `edit`, the files records name that HEAD lacks but history holds."""
    from ..protocol.commit import Mutation, commit_mutation

    tree = kb.head_tree()
    changes = {}
    for record in Registry(kb.objects).view(tree).records.values():
        if record_path_problems(record):
            continue
        for path in record.get("files", []):
            if kb.objects.lookup(tree, path) is None and link_on_the_way(kb.root, path) is None:
                found = _in_history(kb, path)
                if found:
                    changes[path] = kb.objects.blob_bytes(found[1])
    if not changes:
        return []
    body = "\n".join(f"restored: {path}" for path in sorted(changes))
    mutation = Mutation(op="edit", subject=f"edit: fsck restored {len(changes)} file(s) a record names",
                        body=body, changes=changes)
    commit_mutation(kb, writer.registry, kb.head(), mutation)
    return sorted(changes)
