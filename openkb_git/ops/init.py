"""`openkb init`: create a knowledge base, or adopt an existing OpenKB one, as a Git repository."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml
from dulwich.repo import Repo

from ..compiler import update_index
from ..errors import OpenKBError
from ..fsutil import makedirs, remove_file, write_file
from ..kb import CONFIG_PATH, DEFAULT_CONFIG, KB
from ..protocol.commit import Mutation, commit_mutation
from ..registry import encode_record, record_path
from .mergedriver import configure as configure_merge_drivers
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
.env
"""

GITATTRIBUTES = """\
# Written by `openkb init`: structure-aware merge drivers (see `openkb merge-driver --help`).
wiki/concepts/*.md merge=openkb-page
wiki/summaries/*.md merge=openkb-page
wiki/index.md merge=openkb-index
.openkb/registry/*.json merge=openkb-record
"""

ADOPTED_DIRS = ("raw", "wiki")


class AlreadyInitializedError(OpenKBError):
    """The directory already holds a Git repository."""


@dataclass
class InitResult:
    root: Path
    commit: str
    adopted_documents: int
    adopted_files: int


def init_kb(directory: Path) -> InitResult:
    """Create the KB layout in ``directory`` with a first commit, adopting an OpenKB KB found there.

    Raises AlreadyInitializedError when ``directory`` already has a `.git`.
    """
    root = Path(directory).expanduser().resolve()
    if (root / ".git").exists():
        raise AlreadyInitializedError(f"{root} already holds a Git repository; openkb init only creates new ones")
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
        return InitResult(root=root, commit=committed.sha.decode(), adopted_documents=documents,
                          adopted_files=len(files) if adopting else 0)
    finally:
        kb.close()


def adopt_registry(root: Path) -> dict[str, dict]:
    """Per-document records from OpenKB's `.openkb/hashes.json` ({sha256: metadata})."""
    hashes = json.loads((root / ".openkb" / "hashes.json").read_text(encoding="utf-8"))
    records: dict[str, dict] = {}
    for sha, meta in hashes.items():
        if not isinstance(meta, dict):
            continue
        doc = meta.get("doc_name") or Path(meta.get("name", "document")).stem
        record = {k: v for k, v in meta.items() if v not in (None, "")}
        record["doc_name"] = doc
        record["sha256"] = sha
        records[doc] = record
    return records
