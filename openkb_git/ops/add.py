"""`openkb add`: scan and reserve names, prepare in parallel, commit one file at a time.

    scan + reserve   [lock] recover; commit user edits; resolve a stable doc name per file [/lock]
    prepare          worker processes: hash, duplicate prefilter, convert, compile the
                     document's own pages into .openkb/staging/<run>/<n>/ (never the live KB)
    commit           in scan order, one commit per prepared file:
                     [lock] recover; compile shared pages against HEAD; commit (docs/protocol.md) [/lock]
"""

from __future__ import annotations

import errno
import hashlib
import json
import multiprocessing
import os
import signal
import stat as statmod
import threading
import time
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

from ..compiler import Contribution, compile_document, compile_with_llm
from ..compiler.llm import (CACHE_DIR, PROMPT_VERSION, LLMSettings, preflight, record_trailers, settings_for,
                            share_slots)
from ..convert import SUPPORTED_SUFFIXES, ConversionError, Limits, convert_file, memory_limit, unsupported_reason
from ..errors import EXIT_FAILED, DamageError, OpenKBError, RefusedStateError
from ..faults import checkpoint
from ..fsutil import decoded_stem, makedirs, os_error_text, readable
from ..hooks import run_hook
from ..kb import KB, Config
from ..lock import LockBusyError
from ..protocol.commit import CommittedButIncomplete, Mutation, commit_mutation, failure_reason
from ..protocol.journal import list_journals
from ..protocol.recovery import release_staging, staging_run_dir
from ..registry import RegistryView, legacy_source_key, source_key
from ..paths import UnsafePathError
from ..tether import die_with_parent
from .compiled import compile_base, conflict_rows, edit_body, edit_subject, merge_hand_edits
from .contribution import Footprint, document_changes, summary_path
from .edits import commit_edits, find_edits
from .fetch import FetchError, Fetched, FetchSettings, fetch_url, is_url, looks_like_url
from .gc import AutoGC, collect
from .session import Writer

ADDED, SKIPPED, FAILED = "added", "skipped", "failed"


@dataclass
class FileResult:
    """The outcome for one input file."""

    path: str
    status: str  # added | skipped | failed
    doc: str | None = None
    reason: str = ""
    commit: str | None = None
    warnings: list[str] = field(default_factory=list)
    updated: bool = False  # added over an existing document of that name (its commit says `update:`)
    conflicts: list[dict] = field(default_factory=list)  # {path, reason, ours, theirs}: hand edits in the way
    edit_commit: str | None = None  # the `edit` commit that kept hand edits over the new compile


NOT_TRIED = "not tried: "  # reason prefix of the files a run that stopped early never reached


@dataclass
class AddReport:
    results: list[FileResult] = field(default_factory=list)
    edit_commits: list[str] = field(default_factory=list)
    edit_ops: dict[str, str] = field(default_factory=dict)  # commit -> its op (`edit`, or `remove` of deleted files)
    interrupted: bool = False
    signum: int = 0  # the signal that interrupted the run (SIGINT, SIGTERM, SIGHUP), if one did
    stopped: str = ""  # why the run stopped early (an I/O error, a refused state), if it did
    stop_code: int = EXIT_FAILED  # the exit code that stop calls for
    unfinished: list[str] = field(default_factory=list)  # commits made whose projection failed (left to recovery)
    finished_later: bool = False  # ... and the run's own later lock acquisitions recovered them all
    kept_edits: list[str] = field(default_factory=list)  # "<backup folder>: <paths>" kept by recovery
    # compiler: llm: {model, requests, cached, prompt_tokens, completion_tokens} of the run
    llm: dict = field(default_factory=dict)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def not_tried(self) -> int:
        return sum(1 for r in self.results if r.status == FAILED and r.reason.startswith(NOT_TRIED))

    @property
    def failed(self) -> bool:
        return (self.interrupted or bool(self.stopped) or bool(self.unfinished)
                or any(r.status == FAILED for r in self.results))

    def to_json(self) -> dict:
        return {"added": self.count(ADDED), "skipped": self.count(SKIPPED), "failed": self.count(FAILED),
                "not_tried": self.not_tried, "interrupted": self.interrupted, "stopped": self.stopped,
                "unfinished": self.unfinished, "finished_later": self.finished_later,
                "edit_commits": self.edit_commits,
                "kept_edits": self.kept_edits,
                **({"llm": self.llm} if self.llm else {}),
                "files": [asdict(r) for r in self.results]}


@dataclass
class Task:
    """One input file, with the name reserved for it at scan time."""

    n: int
    src: str  # absolute path as given (not resolved: links are read through)
    display: str
    key: str  # the source key recorded (`source_key`): relative, the same on every machine
    doc: str
    legacy: str = ""  # the absolute key an older KB may hold for this file (looked up, never recorded)
    twin: str = ""  # an earlier file of this run with the same key (see `scan`)
    origin: dict = field(default_factory=dict)  # a fetched URL's record keys (`Fetched.origin`)
    notes: tuple[str, ...] = ()  # warnings from fetching it


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


# ---------------------------------------------------------------------------
# scan
# ---------------------------------------------------------------------------


def scan(kb: KB, inputs: list[Path | Fetched]) -> tuple[list[tuple[Path, str, str, str]], list[FileResult]]:
    """Expand files and directories (recursively, sorted, hidden entries skipped) into files;
    a fetched URL (`Fetched`, its file in staging) is one file whose key is the URL.

    Returns (files as (path, display name, source key, twin), results for entries skipped
    or refused at scan). The source key (`source_key`, docs/layout.md) is the file's path
    relative to the directory given, its name when given by itself, its KB path when
    inside the KB. ``twin`` is the display name of an earlier file of this run with the
    same key ("" when none): one source path is one document, so such a file is, at commit,
    a duplicate of that one's content, or else refused (see `_commit_locked`).
    Files inside the KB's own `.git`, `.openkb` or `wiki/` are refused (the KB's own pages are
    not sources); in `raw/`, files already tracked are skipped (they are documents already) and
    new ones dropped there are added (OpenKB's drop-in workflow); in directories, files of an
    unsupported type are skipped with that reason; symbolic-link loops are reported.
    Display names are `readable` (bytes of a name that are not UTF-8 shown as \\xNN).
    """
    files: list[tuple[Path, str, str, str]] = []
    refused: list[FileResult] = []
    seen: set[str] = set()
    keyed: dict[str, str] = {}  # source key -> the display name of the file of this run that has it
    protected = [(kb.root / ".git").resolve(), kb.openkb_dir.resolve(), (kb.root / "wiki").resolve()]
    why_protected = "inside the knowledge base's own .git or .openkb or wiki/ (its own pages are not sources); refused"
    raw_dir = (kb.root / "raw").resolve()
    head_tree = kb.head_tree()

    def consider(path: Path, display: str, explicit: bool, root: Path | None) -> None:
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError) as exc:
            reason = "symbolic link loop" if isinstance(exc, RuntimeError) or getattr(exc, "errno", None) == 40 else \
                ("no such file" if isinstance(exc, FileNotFoundError) else str(exc.strerror or exc))
            refused.append(FileResult(readable(display), FAILED, reason=reason))
            return
        if any(resolved == p or p in resolved.parents for p in protected):
            refused.append(FileResult(readable(display), FAILED, reason=why_protected))
            return
        if raw_dir in resolved.parents and \
                kb.objects.lookup(head_tree, resolved.relative_to(kb.root.resolve()).as_posix()) is not None:
            refused.append(FileResult(readable(display), SKIPPED, reason="already a document's raw copy (tracked in raw/)"))
            return
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            # Given by name: the supported types are listed; skipped in a folder: the type only.
            refused.append(FileResult(readable(display), FAILED if explicit else SKIPPED,
                                      reason=unsupported_reason(path, listed=explicit)))
            return
        if str(resolved) in seen:
            return
        seen.add(str(resolved))
        key = readable(source_key(path, kb.root, root))  # registry records and trailers are UTF-8 text
        twin = keyed.get(key, "")
        keyed.setdefault(key, readable(display))
        files.append((path, readable(display), key, twin))

    for given in inputs:
        if isinstance(given, Fetched):  # staged by this run (inside .openkb/, which `consider` refuses)
            if given.url not in keyed:
                keyed[given.url] = given.url
                files.append((given.path, given.url, given.url, ""))
            continue
        path = Path(os.path.abspath(given))
        if path.is_dir() and any(path.resolve() == p or p in path.resolve().parents for p in protected):
            refused.append(FileResult(readable(str(given)), FAILED, reason=why_protected))
        elif path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path, followlinks=False):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                here = Path(dirpath)
                if any(here.resolve() == p or p in here.resolve().parents for p in protected):
                    dirnames[:] = []
                    if not here.name.startswith("."):  # .git and .openkb are hidden: skipped silently
                        refused.append(FileResult(os.path.join(str(given), os.path.relpath(here, path)), FAILED,
                                                  reason=why_protected))
                    continue
                for name in sorted(filenames):
                    if name.startswith("."):
                        continue
                    consider(here / name, os.path.join(str(given), os.path.relpath(here / name, path)), False, path)
        elif path.exists() or path.is_symlink():
            consider(path, str(given), True, None)
        else:
            refused.append(FileResult(readable(str(given)), FAILED, reason="no such file or directory"))
    return files, refused


def reserve(view: RegistryView, kb: KB, files: list[tuple[Path, str, str, str]]) -> list[Task]:
    """Stable doc names for the scanned files (OpenKB's rules), distinct within the run.

    A source's existing document is found by its key, or by the absolute path a KB made
    before relative keys recorded (`legacy_source_key`): re-adding it is a re-ingest."""
    reserved: dict[str, str] = {}
    tasks = []
    for n, (path, display, key, twin) in enumerate(files):
        legacy = readable(legacy_source_key(path, kb.root)) if not is_url(key) else key
        legacy = legacy if legacy != key else ""
        doc = view.name_for(key, decoded_stem(path.stem), reserved, (legacy,))
        reserved.setdefault(doc, key)
        tasks.append(Task(n=n, src=str(path), display=display, key=key, doc=doc, legacy=legacy, twin=twin))
    return tasks


# ---------------------------------------------------------------------------
# prepare (runs in worker processes)
# ---------------------------------------------------------------------------

_known_shas: frozenset[str] = frozenset()


def _init_worker(known: frozenset[str], parent: int = 0, inherited_fds: tuple[int, ...] = (), slots=None,
                 in_flight=None) -> None:
    """Set up a preparation worker: it dies with the add that forked it (SIGKILL on the parent's
    death, Linux; the parent pid checked as well, in case the parent died before that was set),
    and it drops the inherited descriptor of the staging owner lock, so the lock is free (and
    the next writer removes the staging) as soon as the parent is gone."""
    global _known_shas
    _known_shas = known
    share_slots(slots, in_flight)  # the LLM compiler's bound on concurrent requests, over all workers
    if not die_with_parent(signal.SIGKILL) and parent:  # no PR_SET_PDEATHSIG: watch the parent pid
        threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    if parent and os.getppid() != parent:
        os._exit(1)
    for fd in inherited_fds:
        try:
            os.close(fd)
        except OSError:
            pass
    # The parent decides what an interruption means (it stops the workers itself); a terminal
    # hang-up or Ctrl-C, sent to the whole process group, is for it alone.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)


def _Counter():
    """The count of model calls in flight, shared with the workers."""
    return multiprocessing.Value("i", 0)


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


@dataclass(frozen=True)
class Shaping:
    """The settings that decide what a file becomes (config, docs/layout.md): the page count
    from which a PDF is a long document, and how many concepts one document contributes."""

    pageindex_threshold: int = 20
    concepts_per_doc: int = 5
    llm: LLMSettings | None = None  # compiler: llm (compiler/llm.py); None: the offline compiler

    def locked(self) -> "Shaping":
        """These settings under the KB lock: the model is never called there, its cache only."""
        return replace(self, llm=self.llm.offline()) if self.llm else self


def shaping_of(kb: KB, config: Config, *, model: str | None = None) -> Shaping:
    """The settings `add` and `recompile` compile with: the config's, the LLM compiler's among
    them (``model`` overriding the config's). Raises LLMSetupError (an endpoint not approved, a
    bad model name)."""
    from ..kb import read_user_config, user_config_path

    return Shaping(config.pageindex_threshold, config.concepts_per_doc,
                   settings_for(kb.root, config, model=model, user_config=read_user_config,
                                user_config_where=str(user_config_path())))


def stored_shaping(kb: KB, config: Config, record: dict, concepts: int | None = None) -> Shaping:
    """The settings that compile ``record``'s document again as it was compiled, for the
    writers that do so under the lock (a revert after a recompile, sync's replays, rebuild):
    a document the model compiled is compiled from the cache of its answer (the model is not
    called; without the answer it fails, and the caller falls back as for any failed compile)."""
    k = config.concepts_per_doc if concepts is None else concepts
    model = record.get("model")
    if record.get("compiler") == "llm" and isinstance(model, str) and model:
        # its prompt asked for `concepts_per_doc` concepts (the cache key holds the prompt)
        return Shaping(config.pageindex_threshold, config.concepts_per_doc,
                       LLMSettings(model=model, base_url="", api_key_env=None, cache_dir=str(kb.root / CACHE_DIR),
                                   max_input_chars=config.llm_max_input_chars, cache_only=True))
    return Shaping(config.pageindex_threshold, k)


@dataclass
class Prepared:
    n: int
    status: str  # "ready" | SKIPPED | FAILED
    sha256: str = ""
    reason: str = ""
    dir: str = ""
    warnings: list[str] = field(default_factory=list)
    no_space: bool = False  # failed with ENOSPC: maybe only because another file filled the disk then
    usage: dict = field(default_factory=dict)  # the LLM compiler's requests and tokens for it


def prepare(task: Task, run_dir: str, shaping: Shaping, limits: Limits, known: frozenset[str] | None = None) -> Prepared:
    """Hash, prefilter duplicates, convert and compile one file into ``run_dir/<n>/``,
    within ``limits`` (sizes checked before reading and while converting; memory capped)."""
    known = _known_shas if known is None else known
    src = Path(task.src)
    max_mb = limits.max_file_mb
    try:
        st = os.stat(src)
        if not statmod.S_ISREG(st.st_mode):
            return Prepared(task.n, FAILED, reason="not a regular file")
        if st.st_size > max_mb * 1024 * 1024:
            return Prepared(task.n, FAILED, reason=f"larger than max_file_mb ({st.st_size / 1048576:.1f} MB > {max_mb:g} MB)")
        limits.check_input(src.suffix.lower(), st.st_size)
        data = src.read_bytes()
    except ConversionError as exc:
        return Prepared(task.n, FAILED, reason=str(exc))
    except PermissionError:
        return Prepared(task.n, FAILED, reason="permission denied (cannot read the file)")
    except OSError as exc:
        return Prepared(task.n, FAILED, reason=f"cannot read: {exc.strerror or exc}")
    sha = hashlib.sha256(data).hexdigest()
    if sha in known:
        return Prepared(task.n, SKIPPED, sha256=sha, reason="duplicate")
    out = Path(run_dir) / str(task.n)
    try:
        with memory_limit(limits.max_worker_memory_mb, src.suffix.lower()):
            footprint, warnings = build_footprint(task, src, data, sha, shaping, out, limits)
    except BaseException as exc:
        # A failed preparation's partial staging goes at once: on a full disk it holds the
        # space every later file needs.
        _rmtree(out)
        if isinstance(exc, ConversionError):
            return Prepared(task.n, FAILED, sha256=sha, reason=str(exc))
        if isinstance(exc, OSError):  # staging could not be written (disk full, I/O error)
            return Prepared(task.n, FAILED, sha256=sha, reason=f"I/O error while preparing: {_os_error(exc)}",
                            no_space=exc.errno == errno.ENOSPC)
        raise
    return Prepared(task.n, "ready", sha256=sha, dir=str(out), warnings=warnings, usage=footprint.usage)


def build_footprint(task: Task, src: Path, data: bytes, sha: str, shaping: Shaping,
                    out: Path | None, limits: Limits | None = None) -> tuple[Footprint, list[str]]:
    """Convert and compile one file for doc name ``task.doc``; write it under ``out`` when given.

    Returns the footprint and the converter's warnings; raises ConversionError."""
    doc = task.doc
    conv, source = _converted(task, src, data, shaping, limits)
    suffix = src.suffix.lower()
    raw = f"raw/{doc}{suffix}"
    usage, compile_warnings = {}, []
    if shaping.llm is not None:
        compiled, compile_warnings, usage = compile_with_llm(
            doc, title=conv.title, text=conv.text, headings=conv.headings, doc_type=conv.doc_type,
            source_path=source, pages=conv.pages, settings=shaping.llm, k=shaping.concepts_per_doc)
    else:
        compiled = compile_document(doc, title=conv.title, text=conv.text, headings=conv.headings,
                                    doc_type=conv.doc_type, source_path=source, pages=conv.pages, tree=conv.tree,
                                    k=shaping.concepts_per_doc)
    files = {raw: data, **conv.files, summary_path(doc): compiled.summary}
    record = {
        "doc_name": doc,
        "name": readable(src.name),
        "type": conv.doc_type,
        "path": task.key,
        "sha256": sha,
        "raw_path": raw,
        "source_path": source,
        "summary_path": summary_path(doc),
        "title": conv.title,
        "description": compiled.description,
        "concepts": sorted(compiled.concepts),
        "files": sorted(files),
        **task.origin,
    }
    if shaping.llm is not None:
        record.update(compiler="llm", model=shaping.llm.model, prompt_version=PROMPT_VERSION)
    if compiled.entities:
        record["entities"] = sorted(compiled.entities)
    if conv.pages:
        record["pages"] = conv.pages
    if conv.tree:
        record["tree"] = conv.tree
    if conv.encoding:
        record["encoding"] = conv.encoding
    footprint = Footprint(doc=doc, files=files, record=record, concepts=dict(compiled.concepts),
                          index_line=compiled.index_line, entities=dict(compiled.entities), usage=usage)
    warnings = [*task.notes, *conv.warnings, *compile_warnings]
    if out is not None:
        write_staged(out, footprint, warnings)
    return footprint, warnings


def _converted(task: Task, src: Path, data: bytes, shaping: Shaping, limits: Limits | None):
    """(the converted file, its source path in the KB); raises ConversionError."""
    # The converter sees the name only for its suffix and a fallback title: give it the readable one.
    conv = convert_file(src.with_name(readable(src.name)), task.doc, pageindex_threshold=shaping.pageindex_threshold,
                        data=data, limits=limits)
    return conv, next((p for p in sorted(conv.files) if p.startswith(f"wiki/sources/{task.doc}.")), "")


def model_question(task: Task, src: Path, data: bytes, shaping: Shaping, limits: Limits | None):
    """A function asking the model what build_footprint will ask it for this file (the file
    converted here, at once; the call when the function runs, in any thread): (usage, None),
    or ({}, why) when it fails. Raises ConversionError for the conversion."""
    conv, source = _converted(task, src, data, shaping, limits)

    def question():
        try:
            _compiled, _warnings, usage = compile_with_llm(
                task.doc, title=conv.title, text=conv.text, headings=conv.headings, doc_type=conv.doc_type,
                source_path=source, pages=conv.pages, settings=shaping.llm, k=shaping.concepts_per_doc)
        except ConversionError as exc:
            return {}, str(exc)
        return usage, None

    return question


def write_staged(out: Path, footprint: Footprint, warnings: list[str]) -> None:
    """Stage a footprint: its files under ``out/files/<KB path>`` (what a pre-ingest hook
    sees) and ``out/manifest.json`` with the rest."""
    for path, data in sorted(footprint.files.items()):
        target = out / "files" / path
        makedirs(target.parent, sync=False)
        target.write_bytes(data)
    manifest = {"doc": footprint.doc, "files": sorted(footprint.files), "record": footprint.record,
                "concepts": {s: [c.phrase, c.snippet] for s, c in footprint.concepts.items()},
                "entities": {s: [c.phrase, c.snippet] for s, c in footprint.entities.items()},
                "index_line": footprint.index_line, "warnings": warnings}
    (out / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")


def read_staged(out: Path) -> tuple[Footprint, list[str]]:
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    files = {path: (out / "files" / path).read_bytes() for path in manifest["files"]}
    concepts = {s: Contribution(phrase=p, snippet=t) for s, (p, t) in manifest["concepts"].items()}
    entities = {s: Contribution(phrase=p, snippet=t) for s, (p, t) in manifest.get("entities", {}).items()}
    return Footprint(doc=manifest["doc"], files=files, record=manifest["record"], concepts=concepts,
                     index_line=manifest["index_line"], entities=entities), manifest["warnings"]


# ---------------------------------------------------------------------------
# commit
# ---------------------------------------------------------------------------


def add_paths(kb: KB, inputs: list[Path | str], *, jobs: int | None = None, wait: float = 0.0,
              allow_edit_commits: bool = True, verify: bool = True,
              on_result: Callable[[FileResult], None] | None = None,
              on_progress: Callable[[int, int, str], None] | None = None) -> AddReport:
    """Add files, directories and http(s) URLs (given as str; other URLs fail) to the KB, one
    commit per new or changed file.

    Returns an AddReport; per-file failures are reported in it, not raised. Raises
    LockBusyError when the lock is held past ``wait``, UncommittedEditsError when edits
    exist and ``allow_edit_commits`` is False.
    """
    config = kb.config  # validated before anything is committed: a bad value is an error, not an edit
    shaping = shaping_of(kb, config)  # so is the LLM compiler's endpoint (LLMSetupError)
    if shaping.llm is not None:
        preflight(shaping.llm)  # no key, no endpoint: one message before anything is prepared or committed
    run_id = uuid.uuid4().hex[:12]
    staging: tuple[Path, int] | None = None
    if any(is_url(str(given)) for given in inputs if isinstance(given, str)):
        staging = staging_run_dir(kb.staging_dir, run_id)  # URLs are fetched into it, before any lock
    try:
        return _add(kb, inputs, config, shaping, run_id, staging, jobs=jobs, wait=wait, allow_edit_commits=allow_edit_commits,
                    verify=verify, on_result=on_result, on_progress=on_progress)
    finally:
        if staging is not None:
            release_staging(kb.staging_dir, run_id, staging[1])


def fetch_urls(inputs: list[Path | str], run_dir: Path, settings: FetchSettings) -> tuple[list[Path | Fetched], list[FileResult]]:
    """The inputs with each http(s) URL (a str) fetched into ``run_dir/fetched/<n>/``, in
    order; (inputs, a failed result for each URL that could not be fetched)."""
    out: list[Path | Fetched] = []
    failed: list[FileResult] = []
    seen: dict[str, Fetched | None] = {}
    for n, given in enumerate(inputs):
        if not (isinstance(given, str) and is_url(given)):
            out.append(Path(given))
            continue
        if given in seen:  # the same URL twice: fetched once
            if seen[given] is not None:
                out.append(seen[given])
            continue
        try:
            fetched = fetch_url(given, run_dir / "fetched" / str(n), settings)
        except FetchError as exc:
            seen[given] = None
            failed.append(FileResult(readable(given), FAILED, reason=str(exc)))
            continue
        except OSError as exc:  # the staging could not be written
            seen[given] = None
            failed.append(FileResult(readable(given), FAILED, reason=f"I/O error while fetching: {_os_error(exc)}"))
            continue
        except Exception as exc:  # a bug (or a library's surprise): this URL fails, the run goes on
            seen[given] = None
            failed.append(FileResult(readable(given), FAILED,
                                     reason=f"internal error while fetching: {type(exc).__name__}: {exc}"))
            continue
        seen[given] = fetched
        out.append(fetched)
    return out, failed


def _add(kb: KB, inputs: list[Path | str], config, shaping: Shaping, run_id: str, staging: tuple[Path, int] | None, *,
         jobs: int | None, wait: float, allow_edit_commits: bool, verify: bool,
         on_result: Callable[[FileResult], None] | None,
         on_progress: Callable[[int, int, str], None] | None) -> AddReport:
    writer = Writer(kb, wait)
    report = AddReport()
    emit = on_result or (lambda r: None)
    progress = on_progress or (lambda done, total, what: None)

    fetch_failed: list[FileResult] = []
    for given in [g for g in inputs if looks_like_url(g) and not is_url(g)]:
        fetch_failed.append(FileResult(readable(given), FAILED, reason=(
            f"not an http(s) URL ({given.split(':', 1)[0]}:); openkb fetches http:// and https:// URLs only: "
            "download it and add the file")))
        inputs = [g for g in inputs if g is not given]
    if staging is not None:
        inputs, not_fetched = fetch_urls(inputs, staging[0], FetchSettings.from_config(config))
        fetch_failed += not_fetched
    else:
        inputs = [Path(given) for given in inputs]
    fetched = {given.url: given for given in inputs if isinstance(given, Fetched)}
    files, refused = scan(kb, inputs)
    refused = fetch_failed + refused
    with writer.locked():
        tree = kb.head_tree()
        edited = commit_edits(kb, writer.registry, find_edits(kb, tree, refresh=True), allow=allow_edit_commits)
        if edited:
            report.edit_commits.append(edited.sha.decode())
            report.edit_ops[edited.sha.decode()] = edited.op
        view = writer.registry.view(kb.head_tree())
        tasks = reserve(view, kb, files)
        for task in tasks:
            if task.key in fetched:
                task.origin, task.notes = fetched[task.key].origin(), tuple(fetched[task.key].warnings)
        known = frozenset(view.by_sha)
        auto_gc = AutoGC(kb)
    report.kept_edits = [f"{r.backup}/: {', '.join(r.kept)}" for r in writer.recoveries if r.kept]
    for result in refused:
        report.results.append(result)
        emit(result)
    if not tasks:
        return report
    if shaping.llm is not None:
        report.llm = {"model": shaping.llm.model, "requests": 0, "cached": 0, "prompt_tokens": 0,
                      "completion_tokens": 0}
    limits = Limits.from_config(config)  # max_file_mb, max_expanded_mb, max_pages, max_worker_memory_mb...
    jobs = config.workers(jobs)  # --jobs as given; the config's `jobs` at most one per CPU
    own_staging = staging is None
    run_dir, owner_fd = staging if staging is not None else staging_run_dir(kb.staging_dir, run_id)
    interrupted = {"flag": False, "signum": 0, "fds": (owner_fd,)}
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def on_signal(signum, frame):  # SIGINT, SIGTERM, SIGHUP: stop after the file being committed
        interrupted["flag"] = True
        interrupted["signum"] = interrupted["signum"] or signum

    for sig in STOP_SIGNALS:
        signal.signal(sig, on_signal)
    tried: set[int] = set()
    last = ""  # the file the run stopped at
    in_flight = _Counter() if shaping.llm is not None else None

    def doing(what: str) -> str:  # the progress line's text: the file, and the model's calls
        if in_flight is None:
            return what
        tokens = report.llm["prompt_tokens"] + report.llm["completion_tokens"]
        return f"{what} · model: {in_flight.value} in flight, {report.llm['requests']} calls, {tokens:,} tokens"

    # Files already prepared when one is committed go with it: a group of commits, made durable
    # together and the branch moved once (docs/protocol.md, "Group commit").
    group_files = config.commit_group_files or (GROUP_FILES if jobs > 1 else 1)
    if verify and _ingest_hooks(kb):
        group_files = 1
    probe = {"wait": lambda seconds: False}
    done = 0
    try:
        try:
            stream = _prepared_in_order(tasks, str(run_dir), shaping, limits, known, jobs, interrupted, in_flight,
                                        probe)
            for task, prepared in stream:
                batch = [(task, prepared)]
                deadline = time.monotonic() + config.commit_group_seconds
                while (len(batch) < group_files and not interrupted["flag"]
                       and probe["wait"](deadline - time.monotonic())):
                    following = next(stream, None)
                    if following is None:
                        break
                    batch.append(following)
                if interrupted["flag"]:
                    break
                for n, (task, prepared) in enumerate(batch):
                    for key, value in prepared.usage.items():
                        if key in report.llm:
                            report.llm[key] += value
                    if prepared.no_space and jobs > 1:
                        # Prepared in parallel while another file was filling the disk (its partial
                        # staging is gone now): once more, here, so disk full fails only that file.
                        _rmtree(Path(run_dir) / str(task.n))
                        try:
                            prepared = prepare(task, str(run_dir), shaping, limits, known)
                        except Exception as exc:
                            prepared = Prepared(task.n, FAILED,
                                                reason=f"preparation crashed: {type(exc).__name__}: {exc}")
                        batch[n] = (task, prepared)
                progress(done, len(tasks), doing(batch[0][0].display))
                try:
                    outcomes = _commit_batch(kb, writer, batch, shaping, allow_edit_commits, report, verify)
                finally:
                    for task, _prepared in batch:  # also a failed or crashed preparation's leftovers
                        _rmtree(Path(run_dir) / str(task.n))
                stop = None
                for task, result, stop in outcomes:
                    done += 1
                    tried.add(task.n)
                    report.results.append(result)
                    emit(result)
                    if stop:
                        report.stopped, report.stop_code = stop
                        last = task.display
                        break
                    if result.status == ADDED and result.commit and auto_gc.committed() and auto_gc.run_now(kb):
                        with writer.locked():
                            collect(kb, lock=writer.lock)  # keeps a long ingest from piling up loose objects
                    progress(done, len(tasks), doing(task.display))
                if stop:
                    break
            if auto_gc.deferred and not interrupted["flag"] and not report.stopped:
                progress(done, len(tasks), "packing the repository (git gc)")
                with writer.locked():
                    collect(kb, lock=writer.lock)  # the automatic gc that came due, once, last
        except BrokenPipeError:  # our reader has gone (`openkb add … | head`): stop as before
            raise
        except Exception as exc:  # preparation or housekeeping failed as a whole: stop, listing what is left
            report.stopped = f"stopped: {failure_reason(exc) if not isinstance(exc, OpenKBError) else exc}"
            report.stop_code = exc.exit_code if isinstance(exc, OpenKBError) else EXIT_FAILED
        if interrupted["flag"]:
            report.interrupted = True
        report.signum = interrupted["signum"]
        if report.interrupted or report.stopped:
            why = ("interrupted" if report.interrupted and not report.stopped
                   else f"the run stopped after the error on {last}" if last else f"the run {report.stopped}")
            for task in tasks:
                if task.n not in tried:
                    result = FileResult(task.display, FAILED, reason=NOT_TRIED + why)
                    report.results.append(result)
                    emit(result)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if own_staging:  # else add_paths releases it, with the fetched files
            release_staging(kb.staging_dir, run_id, owner_fd)
    if report.unfinished:
        # Every later lock acquisition recovers first: no journal left means they were finished.
        report.finished_later = not list_journals(kb.journal_dir)
    return report


def _commit_guarded(kb: KB, writer: Writer, task: Task, prepared: Prepared, shaping: Shaping,
                    allow_edit_commits: bool, report: AddReport,
                    verify: bool) -> tuple[FileResult, tuple[str, int] | None]:
    """Commit one file; never raises. Returns its result and, when the run cannot go on,
    (why it stopped, exit code). A failure that is this file's own (a bad name, a bug in
    one converter's output) fails the file and the run goes on: whatever the failed step
    left is undone by recovery when the next file takes the lock."""
    try:
        return _commit_one(kb, writer, task, prepared, shaping, allow_edit_commits, report, verify), None
    except CommittedButIncomplete as exc:  # the edit commit made first: committed, this file not
        report.edit_commits.append(exc.sha)
        report.unfinished.append(exc.sha)
        return FileResult(task.display, FAILED, doc=task.doc,
                          reason=f"not committed: your hand edits were committed first ({exc.warning()})"), None
    except Exception as exc:
        return _failed_commit(task, exc)


def _failed_commit(task: Task, exc: Exception) -> tuple[FileResult, tuple[str, int] | None]:
    """The result of a file whose commit raised ``exc`` (nothing of it committed), and, when the
    run cannot go on, (why it stopped, exit code)."""
    if isinstance(exc, OSError):
        reason = f"I/O error while committing: {_os_error(exc)}"
        if exc.errno == errno.ENAMETOOLONG:  # this file's names, not the disk
            return FileResult(task.display, FAILED, doc=task.doc, reason=reason), None
        # The disk is failing (full, read-only, I/O error): this file is out, and so are the rest.
        return (FileResult(task.display, FAILED, doc=task.doc, reason=reason),
                (f"stopped after an I/O error on {task.display} ({_os_error(exc)}); the files after it were not "
                 "tried; fix the cause, then add them again (the next openkb command cleans up)", EXIT_FAILED))
    if isinstance(exc, (LockBusyError, RefusedStateError, DamageError)):  # the KB as a whole, not this file
        return FileResult(task.display, FAILED, doc=task.doc, reason=str(exc)), (f"stopped: {exc}", exc.exit_code)
    if isinstance(exc, OpenKBError):
        return FileResult(task.display, FAILED, doc=task.doc, reason=str(exc)), None
    # a bug: report it for this file and go on (recovery makes the KB whole)
    return FileResult(task.display, FAILED, doc=task.doc,
                      reason=f"internal error while committing: {type(exc).__name__}: {exc}"), None


def _prepared_in_order(tasks: list[Task], run_dir: str, shaping: Shaping, limits: Limits, known: frozenset[str],
                       jobs: int, interrupted: dict, in_flight=None, probe: dict | None = None
                       ) -> Iterator[tuple[Task, Prepared]]:
    """Prepared results in scan order; at most a few tasks ahead of the committer per worker.
    With the LLM compiler, at most `compile_concurrency` model calls run at once over all
    workers; ``in_flight`` counts them. With each result, ``probe["wait"](seconds left)`` becomes
    a call telling whether to take the next one into the group: in parallel, whether it is
    prepared already (taking it does not wait); serially, whether there is one and time left."""
    from ..convert.text import TEXT_SUFFIXES

    if len(tasks) == 1 and os.path.splitext(tasks[0].src)[1].lower() in TEXT_SUFFIXES:
        # One text file: a worker's start-up (its interpreter, the compiler's imports) would cost
        # more than it prepares (0.9 s -> 0.6 s for one tldr page). Native converters (PDF, EPUB,
        # Office) keep their worker: a crash or runaway memory there fails the file, not the add.
        jobs = 1
    if jobs == 1:
        share_slots(None, in_flight)
        for task in tasks:
            if interrupted["flag"]:
                return
            if probe is not None:  # the next file is prepared here, when it is asked for
                more = task.n + 1 < len(tasks)
                probe["wait"] = lambda seconds, more=more: more and seconds > 0
            try:
                prepared = prepare(task, run_dir, shaping, limits, known)
            except Exception as exc:  # a converter bug must not stop the other files
                prepared = Prepared(task.n, FAILED, reason=f"preparation crashed: {type(exc).__name__}: {exc}")
            yield task, prepared
        return
    # How far preparation may run ahead of the committer (prepared files wait in staging).
    # Commits follow scan order, so one slow file at the head stalls the committer; a short
    # window then also idles the other workers (46 PDFs, one slow one first: 1.4x with 2
    # jobs at 4 per worker).
    window = jobs * 16
    _preload_converters(tasks)
    # Workers are forked by this (the main) thread on the first submit, so their parent-death
    # signal fires when this process ends, however it ends.
    slots = multiprocessing.BoundedSemaphore(shaping.llm.concurrency) if shaping.llm is not None else None
    initargs = (known, os.getpid(), tuple(interrupted.get("fds", ())), slots, in_flight)
    with ProcessPoolExecutor(max_workers=jobs, initializer=_init_worker, initargs=initargs) as pool:
        pending: dict[int, Future] = {}
        next_submit = 0
        try:
            for task in tasks:
                while next_submit < len(tasks) and next_submit < task.n + window:
                    pending[next_submit] = pool.submit(prepare, tasks[next_submit], run_dir, shaping, limits)
                    next_submit += 1
                future = pending.pop(task.n)
                while True:
                    try:
                        prepared = future.result(timeout=0.1)
                    except TimeoutError:
                        if interrupted["flag"]:  # a signal: stop now, not after this preparation
                            return
                        continue
                    except Exception as exc:  # a worker died (e.g. a converter crashed the process)
                        prepared = Prepared(task.n, FAILED, reason=f"preparation crashed: {type(exc).__name__}: {exc}")
                    break
                if probe is not None:
                    probe["wait"] = _waiter(pending.get(task.n + 1))
                yield task, prepared
                if interrupted["flag"]:
                    return
        finally:
            if interrupted["flag"]:
                # What they prepare would be thrown away (the staging goes next). The futures are
                # not cancelled first: the pool, finding its workers dead, fails them itself.
                _stop_workers(pool)
            else:
                for future in pending.values():
                    future.cancel()


def _waiter(future: Future | None) -> Callable[[float], bool]:
    """Whether the next file's preparation (``future``) is done. It is not waited for: while the
    committer would wait, the files it holds could be committed (the workers go on meanwhile)."""
    return lambda seconds: future is not None and seconds > 0 and future.done()


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers (an interrupted run does not wait for their preparations)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        try:
            process.kill()
        except (OSError, ValueError):
            pass


def _preload_converters(tasks: list[Task]) -> None:
    """Import PyMuPDF before the workers are forked when a paged document is among the
    inputs: each worker then starts with it (0.5–0.9 s of imports saved per worker, which
    with 2 workers on ~650 PDF pages was a third of the wall time)."""
    from ..convert.pdf import PYMUPDF_SUFFIXES, _pymupdf

    if any(Path(task.src).suffix.lower() in PYMUPDF_SUFFIXES for task in tasks):
        _pymupdf()
    from ..convert.office import MARKITDOWN_SUFFIXES, preload

    if any(Path(task.src).suffix.lower() in MARKITDOWN_SUFFIXES for task in tasks):
        preload()  # markitdown's imports take seconds: once, not once per worker


def _hook_env(task: Task, sha: str, doc: str | None = None) -> dict[str, str]:
    return {"OPENKB_DOC": doc or task.doc, "OPENKB_SOURCE": task.src, "OPENKB_SHA256": sha}


def _commit_one(kb: KB, writer: Writer, task: Task, prepared: Prepared, shaping: Shaping,
                allow_edit_commits: bool, report: AddReport, verify: bool = True) -> FileResult:
    if prepared.status == FAILED:
        return FileResult(task.display, FAILED, doc=None, reason=prepared.reason)
    refused = []  # hooks that may not run (tracked, not the user's): warned once per run
    if verify and prepared.status != SKIPPED:
        staged = Path(prepared.dir) / "files"
        paths = sorted(p.relative_to(staged).as_posix() for p in staged.rglob("*") if p.is_file())
        hook = run_hook(kb.hooks_dir, "pre-ingest", kb.root,
                        {**_hook_env(task, prepared.sha256), "OPENKB_STAGED_DIR": str(staged)}, paths)
        if not hook.ok:
            return FileResult(task.display, FAILED, doc=task.doc, reason=f"rejected by pre-ingest hook: {hook.message}")
        if hook.refused and hook.message:
            refused.append(hook.message)
    result = _commit_locked(kb, writer, task, prepared, shaping, allow_edit_commits, report)
    result.warnings.extend(refused)
    if result.status == ADDED and result.commit not in report.unfinished:
        hook = run_hook(kb.hooks_dir, "post-ingest", kb.root,
                        {**_hook_env(task, prepared.sha256, result.doc), "OPENKB_COMMIT": result.commit or ""})
        if not hook.ok:
            result.warnings.append(f"post-ingest hook failed: {hook.message}")
        elif hook.refused and hook.message:
            result.warnings.append(hook.message)
    return result


def _commit_locked(kb: KB, writer: Writer, task: Task, prepared: Prepared, shaping: Shaping,
                   allow_edit_commits: bool, report: AddReport) -> FileResult:
    with writer.locked():
        head = kb.head()
        tree = kb.head_tree(head)
        view = writer.registry.view(tree)
        planned = _plan(view, task, prepared, shaping)
        if isinstance(planned, FileResult):
            return planned
        doc, footprint, warnings = planned
        try:
            changes = document_changes(kb.objects, tree, view, doc, footprint)
        except UnsafePathError as exc:  # the old record of this doc is unsafe: this file is out, not the run
            return FileResult(task.display, FAILED, doc=doc, reason=str(exc))
        edits = _edits_in_the_way(kb, tree, changes)
        if edits:
            edited = commit_edits(kb, writer.registry, edits, allow=allow_edit_commits)
            report.edit_commits.append(edited.sha.decode())
            report.edit_ops[edited.sha.decode()] = edited.op
            head = kb.head()
            tree = kb.head_tree(head)
            view = writer.registry.view(tree)
            changes = document_changes(kb.objects, tree, view, doc, footprint)
        replacing = doc in view.records
        verb = "update" if replacing else "add"
        then = None
        if replacing:  # hand edits of the pages it rewrites are merged, not overwritten (ops/compiled.py)
            last, hand_paths = compile_base(kb, doc, head)
            hand = merge_hand_edits(kb, kb.objects.get(last.sha.encode()).tree if last else None, tree, changes,
                                    hand=hand_paths)
            if hand.conflicts:
                return FileResult(task.display, FAILED, doc=doc, conflicts=conflict_rows(hand.conflicts), reason=(
                    f"hand edits conflict with the new compile in {len(hand.conflicts)} path(s); nothing of {doc} "
                    "was changed: edit those pages (or revert your edit), then add it again"))
            if hand.edits:
                then = Mutation(op="edit", subject=edit_subject(doc, hand.edits), body=edit_body(hand.edits),
                                changes=hand.edits)
        mutation = _ingest(task, prepared, doc, footprint, changes, verb=verb, then=then)
        checkpoint("add:commit")
        try:
            committed = commit_mutation(kb, writer.registry, head, mutation)
        except CommittedButIncomplete as exc:  # the file IS added; recovery finishes the working tree
            report.unfinished.append(exc.sha)
            return FileResult(task.display, ADDED, doc=doc, commit=exc.sha, warnings=[*warnings, exc.warning()],
                              updated=replacing)
    if committed is None:
        return FileResult(task.display, SKIPPED, doc=doc, reason="unchanged")
    kept = committed.chain[1].decode() if len(committed.chain) > 1 else None
    return FileResult(task.display, ADDED, doc=doc, commit=committed.chain[0].decode(), warnings=warnings,
                      updated=replacing, edit_commit=kept)


def _ingest(task: Task, prepared: Prepared, doc: str, footprint: Footprint, changes: dict, *, verb: str = "add",
            then: Mutation | None = None, built: tuple | None = None) -> Mutation:
    """The `add` commit of one file (its subject says `update:` over an existing document)."""
    return Mutation(op="add", subject=f"{verb}: {readable(Path(task.src).name)}", changes=changes,
                    trailers={"OpenKB-Doc": doc, "OpenKB-Source": task.key, "OpenKB-Source-Sha256": prepared.sha256,
                              **record_trailers(footprint.record)},
                    then=then, built=built)


def _edits_in_the_way(kb: KB, tree: bytes | None, changes: dict) -> dict[str, bytes | None]:
    """The hand edits (working tree against ``tree``) of the paths ``changes`` writes — not a
    file dropped into raw/ and added from there, which is the add's own input."""
    edits = find_edits(kb, tree, sorted(changes), refresh=True)
    for path in [p for p, data in edits.items() if data is not None and data == changes.get(p)]:
        if kb.objects.lookup(tree, path) is None:
            del edits[path]
    return edits


def _plan(view: RegistryView, task: Task, prepared: Prepared,
          shaping: Shaping) -> FileResult | tuple[str, Footprint, list[str]]:
    """What a prepared file becomes against ``view`` (under the lock): its result when it is a
    duplicate or cannot be committed, else (its final name, its footprint, warnings)."""
    owner = view.by_sha.get(prepared.sha256)
    if owner is not None or prepared.status == SKIPPED:
        return FileResult(task.display, SKIPPED, doc=owner, reason=f"duplicate of {owner}" if owner else "duplicate")
    if task.twin:
        return FileResult(task.display, FAILED, reason=(
            f"same source path '{task.key}' as {task.twin}, given in this run, with other content (a source "
            "path is the file's path from the folder given on, or its folder's name and its own when given "
            "by itself, and names one document); add their common folder instead, so that their paths differ"))
    try:
        footprint, warnings = read_staged(Path(prepared.dir))
    except (OSError, ValueError, KeyError, TypeError) as exc:  # staging changed under us (e.g. by a hook)
        reason = _os_error(exc) if isinstance(exc, OSError) else f"{type(exc).__name__}: {exc}"
        return FileResult(task.display, FAILED, doc=task.doc,
                          reason=f"its prepared files could not be read back ({reason}); add it again")
    doc = _final_name(view, task)
    if doc != footprint.doc:
        # Another process took the reserved name since the scan, or a file of this run reserved a
        # name and turned out a duplicate: convert again under the final name.
        data = footprint.files[footprint.record["raw_path"]]
        try:
            footprint, warnings = build_footprint(replace(task, doc=doc, twin=""),
                                                  Path(task.src), data, prepared.sha256, shaping.locked(), None,
                                                  Limits.unlimited())  # within the limits: it was converted
        except ConversionError as exc:
            return FileResult(task.display, FAILED, reason=str(exc))
    return doc, footprint, warnings


# Group commit (docs/protocol.md): with parallel preparation, at most this many files go in one
# chain of commits, those already prepared when the group starts (config `commit_group_files`).
# With --jobs 1, a group (when the config asks for one) prepares its next file while
# `commit_group_seconds` since its first have not passed. The lock is never held meanwhile.
GROUP_FILES = 32
GROUP_BYTES = 256 * 1024 * 1024  # a group also ends once its objects built in memory reach this


def _ingest_hooks(kb: KB) -> bool:
    """Whether a pre- or post-ingest hook is there (each such hook sees its file's own commit
    made alone, as before groups: files are then committed one at a time)."""
    return any(os.path.lexists(kb.hooks_dir / event) for event in ("pre-ingest", "post-ingest"))


Outcome = tuple[Task, FileResult, "tuple[str, int] | None"]


def _commit_batch(kb: KB, writer: Writer, batch: list[tuple[Task, Prepared]], shaping: Shaping,
                  allow_edit_commits: bool, report: AddReport, verify: bool) -> list[Outcome]:
    """Commit the files of ``batch`` in order: runs of new documents as groups, any other (one
    that updates a document, or meets hand edits) alone. Stops at a file whose failure stops the
    run (the files after it are not tried). Never raises."""
    outcomes: list[Outcome] = []
    at = 0
    while at < len(batch):
        if len(batch) - at > 1:
            grouped, at_next = _commit_group(kb, writer, batch, at, shaping, report)
            outcomes += grouped
            if any(stop for _task, _result, stop in grouped):
                return outcomes
            if at_next > at:
                at = at_next
                continue
        task, prepared = batch[at]
        result, stop = _commit_guarded(kb, writer, task, prepared, shaping, allow_edit_commits, report, verify)
        outcomes.append((task, result, stop))
        if stop:
            return outcomes
        at += 1
    return outcomes


def _commit_group(kb: KB, writer: Writer, batch: list[tuple[Task, Prepared]], start: int, shaping: Shaping,
                  report: AddReport) -> tuple[list[Outcome], int]:
    """Commit new documents from ``batch[start:]`` as one chain of `add` commits under one lock:
    each computed against the tree the one before made (built in memory, not yet written),
    then all made durable together, one journal, the branch moved once (commit_mutation). Stops
    before the first file that is not a new document without hand edits in its way (it goes
    alone). Returns the outcomes, in order, and the index of the first file not handled."""
    outcomes: list[tuple[Task, FileResult | None]] = []
    members: list[tuple[Task, str, list[str], Mutation]] = []
    at = start
    held = 0  # bytes of the objects built in memory for the group
    try:
        with writer.locked():
            head = kb.head()
            base_tree = tree = kb.head_tree(head)
            view = writer.registry.view(tree)
            try:
                while at < len(batch):
                    task, prepared = batch[at]
                    if prepared.status == FAILED:
                        outcomes.append((task, FileResult(task.display, FAILED, doc=None, reason=prepared.reason)))
                        at += 1
                        continue
                    planned = _plan(view, task, prepared, shaping)
                    if isinstance(planned, FileResult):
                        outcomes.append((task, planned))
                        at += 1
                        continue
                    doc, footprint, warnings = planned
                    if doc in view.records:
                        break  # an update: its hand edits are merged, alone
                    try:
                        changes = document_changes(kb.objects, tree, view, doc, footprint)
                        # The working tree holds the base: an edit is a difference from it.
                        if _edits_in_the_way(kb, base_tree, changes):
                            break  # hand edits in the way: committed first, alone
                        built = kb.objects.build_tree(tree, changes)
                    except (LockBusyError, RefusedStateError, DamageError):
                        raise  # the KB as a whole: the group fails, the run stops
                    except Exception as exc:  # this file's own (its names, a bug): it is out, not the group
                        result, stop = _failed_commit(task, exc)
                        if stop:
                            raise
                        outcomes.append((task, result))
                        at += 1
                        continue
                    kb.objects.stage(built[1])
                    tree, view = built[0], writer.registry.view(built[0])
                    mutation = _ingest(task, prepared, doc, footprint, changes, built=built)
                    if members:
                        members[-1][3].then = mutation
                    members.append((task, doc, warnings, mutation))
                    outcomes.append((task, None))
                    at += 1
                    held += sum(len(obj.raw) for obj in built[1])
                    if held >= GROUP_BYTES:
                        break  # the rest in the next group (at 50,000 documents a commit's trees are ~20 MB)
                if not members:
                    return [(task, result, None) for task, result in outcomes], at
                checkpoint("add:commit")
                committed = commit_mutation(kb, writer.registry, head, members[0][3], one_pack=len(members) > 1)
            finally:
                kb.objects.unstage()
    except CommittedButIncomplete as exc:  # the files ARE added; recovery finishes the working tree
        report.unfinished.append(exc.sha)
        added = iter(FileResult(task.display, ADDED, doc=doc, commit=sha, warnings=[*warnings, exc.warning()])
                     for (task, doc, warnings, _mutation), sha in zip(members, exc.chain))
        return [(task, result or next(added), None) for task, result in outcomes], at
    except Exception as exc:  # nothing of the group was committed: each of its files says why
        if not outcomes:  # the lock or recovery failed before any file was looked at
            task = batch[start][0]
            return [(task, *_failed_commit(task, exc))], start + 1
        done: list[Outcome] = [(task, result or _failed_commit(task, exc)[0], None) for task, result in outcomes]
        # What stops the run (the disk failing, the KB refused), if it does, is said by the last file.
        last, result, _stop = done[-1]
        done[-1] = (last, result, _failed_commit(last, exc)[1])
        return done, at
    # Each member adds a new record (`.openkb/registry/<doc>.json`), so each is a commit of the chain.
    shas = iter(sha.decode() for sha in (committed.chain if committed is not None else ()))
    added = iter(FileResult(task.display, ADDED, doc=doc, commit=next(shas, None), warnings=warnings)
                 for task, doc, warnings, _mutation in members)
    return [(task, result or next(added), None) for task, result in outcomes], at


def _final_name(view: RegistryView, task: Task) -> str:
    """The name at commit time: the source's existing name, else OpenKB's rule applied
    against HEAD alone. The run's earlier files are committed by then, or skipped as
    duplicates, or failed: their reservations no longer count, so a name depends only on the
    documents that exist (a duplicate found after the scan reserved a name for nothing).
    The run's later files yield to this one, as at the scan."""
    return view.name_for(task.key, decoded_stem(Path(task.src).stem), aliases=(task.legacy,))


def _os_error(exc: OSError) -> str:
    return os_error_text(exc)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)
