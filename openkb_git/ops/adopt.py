"""Documents OpenKB itself added to this KB, recorded as `add` operations.

OpenKB (the tool whose layout this is, docs/compatibility.md) knows nothing of our records:
its `openkb add` writes the document's files (raw/, wiki/sources/, its images, its summary),
rewrites shared pages (concepts, entities, the index) and adds an entry to
`.openkb/hashes.json`, all in the working tree. The next writer of ours finds that entry
(hashes.json is a view we write; an entry no record explains is OpenKB's) and commits the
document as an `add` of its own: a record made from the entry, every file of the document
and the shared pages that list it — so `openkb list`, `log`, `revert` and `remove` treat it
as any other document, and the hashes.json we write next keeps its entry.

Documents OpenKB removed (their entries gone, their files deleted) are committed as `remove`
here too, through the hand-edit guard's own removal (ops/edits.py commit_removed_by_hand).
"""

from __future__ import annotations

import json
import os
import stat as statmod
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..frontmatter import parts as frontmatter_parts, split as split_frontmatter
from ..fsutil import makedirs, write_file
from ..kb import KB
from ..paths import document_path_problem, link_on_the_way, path_problem
from ..protocol.commit import Committed, Mutation, commit_mutation
from ..registry import OPENKB_COMPILED, Registry, encode_record, record_path
from ..views import HASHES, OPENKB_FIELDS, read_state, rewrite_hashes

SHARED_KINDS = ("concepts", "entities")
# OpenKB's hashes.json entries that could not be recorded (their files not all there), kept
# aside: local and untracked, as hashes.json is.
UNADOPTED = ".openkb/openkb-git/unadopted-openkb-entries.json"
INDEX = "wiki/index.md"


@dataclass
class Adoption:
    """What one look at OpenKB's writes found: commits made, entries left (with why)."""

    commits: list[Committed] = field(default_factory=list)
    docs: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # documents OpenKB removed, committed as `remove`
    skipped: list[str] = field(default_factory=list)  # "<doc>: <reason>"


def hashes_changed(kb: KB) -> bool:
    """Whether `.openkb/hashes.json` is not the file our views last wrote (size and mtime that
    views.json recorded): one stat, so the common case costs nothing."""
    state = read_state(kb)
    try:
        st = os.stat(kb.root / HASHES)
    except OSError:
        return False
    if state.get("hashes_size") != st.st_size:
        return True
    mtime = state.get("hashes_mtime")
    return isinstance(mtime, int) and mtime != st.st_mtime_ns


def _doc_of(meta: dict) -> str | None:
    """The doc name of an OpenKB entry (its `doc_name`, else its file name's stem), or None
    when it has none that is text."""
    doc = meta.get("doc_name")
    if not isinstance(doc, str) or not doc:
        name = meta.get("name")
        doc = PurePosixPath(name).stem if isinstance(name, str) else None
    return doc or None


def pending_openkb_adds(kb: KB, view) -> list[str]:
    """The documents OpenKB added that no record holds yet (for `openkb status`; the next
    writer records them): one stat when hashes.json is the file we wrote."""
    if kb.head() is None or not hashes_changed(kb):
        return []
    try:
        entries = json.loads((kb.root / HASHES).read_bytes())
    except (OSError, ValueError):
        return []
    out = []
    for sha, meta in (entries.items() if isinstance(entries, dict) else ()):
        if isinstance(meta, dict) and sha not in view.by_sha:
            doc = _doc_of(meta)
            if doc is not None and doc not in view.records:
                out.append(doc)
    return out


def adopt_openkb_adds(kb: KB, registry: Registry) -> Adoption:
    """Commit, one `add` each, the documents OpenKB added since our views were last written
    (the KB lock held). An entry whose files are not all there is left, and said."""
    result = Adoption()
    if kb.head() is None or not hashes_changed(kb):  # (no commit yet: `openkb init` adopts the KB whole)
        return result
    try:
        entries = json.loads((kb.root / HASHES).read_bytes())
    except (OSError, ValueError):
        return result  # not OpenKB's either: the views' rebuild replaces it, fsck says so
    if not isinstance(entries, dict):
        return result
    tree = kb.head_tree()
    view = registry.view(tree)
    found, left = [], {}
    for sha, meta in entries.items():  # in OpenKB's order: the order its adds came in
        if not isinstance(meta, dict) or not isinstance(sha, str) or sha in view.by_sha:
            continue
        doc = _doc_of(meta)
        if doc is None or doc in view.records:
            continue
        if any(doc == d for _s, d, _m, _f in found):
            result.skipped.append(f"{doc}: another new entry of hashes.json has that name (the first is recorded)")
            left[sha] = meta
            continue
        files, why = document_files(kb.root, doc, meta, lambda p: kb.objects.lookup(tree, p) is not None)
        if why:
            result.skipped.append(f"{doc}: {why} (the entry is kept in {UNADOPTED})")
            left[sha] = meta
            continue
        found.append((sha, doc, meta, files))
    if left:
        _keep_unadopted(kb, left)
    _commit_openkb_removes(kb, registry, view, entries, result)
    if not found:
        if not result.commits:
            # nothing of it to record: hashes.json is made again from the records, so the next
            # writer does not read it all again (an entry left is kept in UNADOPTED)
            rewrite_hashes(kb, registry)
        return result
    pages = shared_pages(kb.root)  # {path: (bytes, {docs its sources name})}
    order = [doc for _s, doc, _m, _f in found]
    listing = {path: [d for d in order if d in docs] for path, (_data, docs) in pages.items()}
    first = {path: docs[0] for path, docs in listing.items() if docs}  # the adopted doc that brought it
    tree = kb.head_tree()
    index_now = _read(kb.root, INDEX)
    mutations = []
    for at, (sha, doc, meta, files) in enumerate(found):
        later = [d for _s, d, _m, _f in found[at + 1:]]
        changes: dict[str, bytes | None] = {path: _read(kb.root, path) for path in files}
        for path, docs in listing.items():
            if doc in docs and pages[path][0] != kb.objects.read_path(tree, path):
                # a page several adopted documents changed: each commit has it without the later ones
                changes[path] = _page_without(pages[path][0], docs[docs.index(doc) + 1:])
        if index_now is not None:
            new_later = [p for p, d in first.items() if d in later and kb.objects.read_path(tree, p) is None]
            changes[INDEX] = _index_without(index_now, later, new_later)
        record = openkb_record(kb.root, sha, doc, meta, files, pages)
        changes[record_path(doc)] = encode_record(record)
        trailers = {"OpenKB-Doc": doc, "OpenKB-Source-Sha256": sha, "OpenKB-Adopted": "openkb add"}
        if isinstance(record.get("path"), str) and record["path"]:
            trailers["OpenKB-Source"] = record["path"]
        body = "Added by OpenKB's own `openkb add`; recorded by openkb-git's next writer.\n\n" + "\n".join(
            f"added: {path}" for path in sorted(files))
        # The working tree holds it all (project=False) but the record, written first: one
        # chain of commits (one journal, one move of the branch), so no crash leaves the index
        # of an earlier commit of the chain in place of OpenKB's.
        mutations.append(Mutation(op="add", subject=f"add: {record.get('name', doc)} (added by OpenKB)",
                                  body=body, changes=changes, trailers=trailers, project=False))
        makedirs((kb.root / record_path(doc)).parent, sync=False)
        write_file(kb.root / record_path(doc), changes[record_path(doc)], sync=False)
        result.docs.append(doc)
    for earlier, follow in zip(mutations, mutations[1:]):
        earlier.then = follow
    committed = commit_mutation(kb, registry, kb.head(), mutations[0])
    if committed is not None:
        result.commits.append(committed)
    return result


def _keep_unadopted(kb: KB, left: dict) -> None:
    """Keep OpenKB's entries that could not be recorded in UNADOPTED (the next rebuild of
    hashes.json, a view of our records, no longer holds them): never erased unsaid."""
    path = kb.root / UNADOPTED
    try:
        kept = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        kept = {}
    if not isinstance(kept, dict):
        kept = {}
    if any(kept.get(sha) != meta for sha, meta in left.items()):
        kept.update(left)
        makedirs(path.parent, sync=False)
        write_file(path, (json.dumps(kept, indent=2, ensure_ascii=False) + "\n").encode("utf-8"), sync=True)


def _commit_openkb_removes(kb: KB, registry: Registry, view, entries: dict, result: Adoption) -> None:
    """Commit as `remove` the documents OpenKB's `openkb remove` took out (their entries gone
    from hashes.json, every file of theirs deleted), as the hand-edit guard does for any writer
    that commits edits (ops/edits.py) — here for every writer, `openkb recover` included."""
    from ..paths import record_path_problems
    from .edits import commit_removed_by_hand, find_edits

    gone = [doc for doc, record in view.records.items()
            if isinstance(record.get("sha256"), str) and record["sha256"] not in entries and isinstance(record.get("files"), list) and record["files"]
            and not record_path_problems(record) and not (kb.root / record["files"][0]).exists()]
    if not gone:
        return
    paths = {INDEX}
    for doc in gone:
        record = view.records[doc]
        paths.update(record["files"])
        for kind in SHARED_KINDS:
            named = record.get(kind)
            paths.update(f"wiki/{kind}/{slug}.md" for slug in (named if isinstance(named, list) else []))
    edits = find_edits(kb, kb.head_tree(), sorted(paths), refresh=True)
    removed = commit_removed_by_hand(kb, registry, edits)
    for committed in {c.sha: c for c in removed.values()}.values():
        result.commits.append(committed)
    result.removed += [doc for doc in gone if doc not in registry.view(kb.head_tree()).records]


def document_files(root: Path, doc: str, meta: dict, tracked) -> tuple[list[str], str]:
    """The files OpenKB wrote for ``doc`` (its raw file, its source, the source's images, its
    summary) in the KB at ``root``, or the reason it is not adopted (one is missing, or
    ``tracked(path)``: committed already)."""
    summary = f"wiki/summaries/{doc}.md"
    if "/" in doc or path_problem(summary) or document_path_problem(summary) or not _utf8(summary):
        return [], f"its name {doc!r} is not a page name"
    named = [meta.get("raw_path"), meta.get("source_path"), summary]
    files = []
    for path in named:
        if not path:
            continue
        if not isinstance(path, str) or document_path_problem(path) or not _utf8(path):
            return [], f"hashes.json names {path!r}, not a path inside raw/ or wiki/"
        if not _regular(root, path):
            return [], f"{path} is not there"
        files.append(path)
    if summary not in files or not any(p.startswith("raw/") for p in files):
        return [], "its raw file or summary is missing"
    images = f"wiki/sources/images/{doc}"
    if _regular_dir(root, images):
        for dirpath, _dirs, names in os.walk(root / images):
            for name in names:
                path = os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")
                if not _utf8(path):  # a Git path is UTF-8 here: such a file is OpenKB's, left alone
                    return [], f"{path.encode('utf-8', 'surrogateescape')!r} is no UTF-8 name"
                if not path_problem(path) and _regular(root, path):
                    files.append(path)
    committed = [p for p in files if tracked(p)]
    if committed:
        return [], f"{committed[0]} is already committed (as another document's?)"
    return sorted(set(files)), ""


def _utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _regular(root: Path, path: str, test=statmod.S_ISREG) -> bool:
    """Whether ``path`` is a regular file (``test``: or a folder, S_ISDIR) reached through no
    symbolic link: what OpenKB wrote is read, never what a link points to."""
    if link_on_the_way(root, path) is not None:
        return False
    try:
        return test(os.lstat(root / path).st_mode)
    except OSError:
        return False


def _regular_dir(root: Path, path: str) -> bool:
    return _regular(root, path, statmod.S_ISDIR)


def _read(root: Path, path: str) -> bytes | None:
    try:
        return (root / path).read_bytes() if _regular(root, path) else None
    except OSError:
        return None


def shared_pages(root: Path) -> dict[str, tuple[bytes, set[str]]]:
    """{path of each concept and entity page: (its bytes, the docs its `sources` name)}."""
    out = {}
    for kind in SHARED_KINDS:
        folder = f"wiki/{kind}"
        if not _regular_dir(root, folder):
            continue
        for name in sorted(os.listdir(root / folder)):
            path = f"{folder}/{name}"
            if not name.endswith(".md") or path_problem(path) or not _utf8(path):
                continue
            data = _read(root, path)
            if data is not None:
                from ..compiler.pages import page_sources  # (here: writers need not import the compiler)

                out[path] = (data, page_sources(data))
    return out


def _page_without(page: bytes, docs: list[str]) -> bytes:
    """``page`` (a shared page OpenKB wrote) as it was before ``docs`` were added: without them
    in its `sources` nor the lines that link their summaries. (OpenKB's model rewrote the page
    whole for each; what it said of a document elsewhere is not known, so this is the page's
    text less those lines.)"""
    if not docs:
        return page
    from ..compiler.pages import source_of

    text = page.decode("utf-8", "surrogateescape")
    found = frontmatter_parts(text)  # the one delimiter rule
    block, body = found if found is not None else (None, text)
    links = tuple(f"[[summaries/{doc}]]" for doc in docs)
    body = "\n".join(ln for ln in body.split("\n") if not any(link in ln for link in links))
    if block is None:
        return body.encode("utf-8", "surrogateescape")
    sources = tuple(json.dumps(source_of(doc)) for doc in docs)
    lines = []
    for line in block.split("\n"):
        if line.startswith("sources:"):  # OpenKB's one line, `sources: ["summaries/<doc>.md", …]`
            for quoted in sources:
                line = line.replace(quoted + ", ", "").replace(", " + quoted, "").replace(quoted, "")
        lines.append(line)
    return ("---\n" + "\n".join(lines) + "---\n" + body).encode("utf-8", "surrogateescape")


def _index_without(index: bytes, docs: list[str], pages: list[str]) -> bytes:
    """``index`` without the lines of ``docs`` and of the new shared ``pages`` (those a later
    adopted document brings), so each adopted add commits its own lines."""
    if not docs and not pages:
        return index
    from ..compiler import update_index

    kinds: dict[str, dict] = {"concepts": {}, "entities": {}}
    for path in pages:
        kind, name = path.split("/")[1], path.rsplit("/", 1)[1][:-3]
        kinds[kind][name] = None
    return update_index(index, docs={doc: None for doc in docs}, concepts=kinds["concepts"],
                        entities=kinds["entities"])


def openkb_record(root: Path, sha: str, doc: str, meta: dict, files: list[str], pages: dict) -> dict:
    """Our registry record of a document OpenKB added: its hashes.json entry, plus what our
    records carry (docs/layout.md): its files, summary, concepts, entities, description."""
    # only OpenKB's fields, and only as text (an entry is data another program wrote: a list
    # where a path belongs would be committed, and trip every reader of the record)
    record = {k: meta[k] for k in OPENKB_FIELDS if isinstance(meta.get(k), str) and meta[k]}
    if isinstance(meta.get("pages"), int) and not isinstance(meta.get("pages"), bool):
        record["pages"] = meta["pages"]
    if isinstance(record.get("path"), str) and PurePosixPath(record["path"]).is_absolute():
        # OpenKB records a file from outside the KB by its absolute path; ours never hold one
        # (they are published to every clone): its folder's name and its own, as `openkb add`
        # of that one file would (registry.source_key), so adding it again updates it
        where = PurePosixPath(record["path"])
        record["path"] = f"{where.parent.name}/{where.name}" if where.parent.name else where.name
    record.update(doc_name=doc, sha256=sha, files=files, summary_path=f"wiki/summaries/{doc}.md",
                  compiled_by=OPENKB_COMPILED)
    for kind in SHARED_KINDS:
        record[kind] = sorted(path.rsplit("/", 1)[1][:-3] for path, (_d, docs) in pages.items()
                              if path.startswith(f"wiki/{kind}/") and doc in docs)
    summary = _read(root, record["summary_path"])
    if summary is not None:
        try:
            fm, _body = split_frontmatter(summary.decode("utf-8"))
        except UnicodeDecodeError:
            fm = None
        if isinstance(fm, dict) and isinstance(fm.get("description"), str):
            record["description"] = fm["description"]
    return record
