"""The knowledge base on disk: where it is, its paths, its settings, its Git plumbing."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from dulwich.object_store import DiskObjectStore

from .errors import EXIT_NOT_A_KB, OpenKBError
from .git.objects import ObjectStore
from .git.refs import read_branch

DEFAULT_CONFIG = {
    "language": "en",
    "compiler": "offline",
    "pageindex_threshold": 20,
    "max_file_mb": 200,
    "max_expanded_mb": 50,
    "max_pages": 5000,
    "max_expansion_ratio": 100,
    "max_worker_memory_mb": 2048,
    "jobs": None,
    "concepts_per_doc": 5,
    "gc_auto_commits": 1000,
}

CONFIG_PATH = ".openkb/config.yaml"
REGISTRY_DIR = ".openkb/registry"


class NotAKnowledgeBaseError(OpenKBError):
    exit_code = EXIT_NOT_A_KB


def find_kb_root(override: str | os.PathLike | None = None, start: Path | None = None) -> Path:
    """The KB root: ``override`` (--kb-dir / OPENKB_DIR), else the first parent of ``start``
    (default: the current directory) holding `.openkb/`, as OpenKB does.

    Raises NotAKnowledgeBaseError when there is none.
    """
    if override:
        root = Path(override).expanduser().resolve()
        if not (root / ".openkb").is_dir():
            raise NotAKnowledgeBaseError(f"{root} is not an openkb knowledge base (no .openkb/); run `openkb init {root}`")
        return root
    current = (start or Path.cwd()).resolve()
    for candidate in (current, *current.parents):
        if (candidate / ".openkb").is_dir():
            return candidate
    raise NotAKnowledgeBaseError("no knowledge base here or in any parent directory; run `openkb init` or pass --kb-dir")


@dataclass
class Identity:
    name: str
    email: str

    def as_bytes(self) -> bytes:
        return f"{self.name} <{self.email}>".encode("utf-8")


class KB:
    """An open knowledge base. Cheap to open; holds caches between commits of one process."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.openkb_dir = self.root / ".openkb"
        self.git_dir = self.root / ".git"
        if not self.git_dir.is_dir():
            raise NotAKnowledgeBaseError(
                f"{self.root} has .openkb/ but no Git repository; run `openkb init {self.root}` to adopt it"
            )
        self._repo = None
        self.objects = ObjectStore(DiskObjectStore(str(self.git_dir / "objects")))
        self._index = None
        self._config: dict | None = None
        self._identity: Identity | None = None

    @classmethod
    def find(cls, override: str | os.PathLike | None = None) -> "KB":
        return cls(find_kb_root(override))

    @property
    def index(self):
        """The Git index (its module, and dulwich's, imported on first use: reads need neither)."""
        if self._index is None:
            from .git.index import GitIndex

            self._index = GitIndex(self.git_dir)
        return self._index

    @property
    def repo(self):
        """dulwich's Repo, opened on first use (gc, Git config): reading and committing need
        only the object store, and importing dulwich.repo costs every command ~25 ms."""
        if self._repo is None:
            from dulwich.repo import Repo

            self._repo = Repo(str(self.root), object_store=self.objects.store)
        return self._repo

    def close(self) -> None:
        if self._repo is not None:
            self._repo.close()
        self.objects.store.close()

    # -- paths -------------------------------------------------------------
    @property
    def journal_dir(self) -> Path:
        return self.openkb_dir / "journal"

    @property
    def staging_dir(self) -> Path:
        return self.openkb_dir / "staging"

    @property
    def hooks_dir(self) -> Path:
        return self.openkb_dir / "hooks"

    # -- state -------------------------------------------------------------
    def head(self) -> bytes | None:
        """The commit `refs/heads/main` names, or None before the first commit."""
        return read_branch(self.git_dir)

    def head_tree(self, head: bytes | None = None) -> bytes | None:
        head = head if head is not None else self.head()
        if head is None:
            return None
        return self.objects.get(head).tree

    @property
    def config(self) -> dict:
        if self._config is None:
            self._config = dict(DEFAULT_CONFIG)
            path = self.root / CONFIG_PATH
            if path.exists():
                import yaml  # here: reads that never need the config (log) do not pay for the import

                loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
                if isinstance(loaded, dict):
                    self._config.update(loaded)
        return self._config

    def identity(self) -> Identity:
        """Committer identity: the repository's or user's Git config, else a fixed openkb one
        (read once per open KB: a long `add` does not re-read the Git config for each commit)."""
        if self._identity is None:
            self._identity = self._read_identity()
        return self._identity

    def _read_identity(self) -> Identity:
        try:
            config = self.repo.get_config_stack()
            name = config.get((b"user",), b"name").decode("utf-8")
            email = config.get((b"user",), b"email").decode("utf-8")
            return Identity(name, email)
        except (KeyError, OSError):  # not set, or a config file we may not read
            return Identity(os.environ.get("OPENKB_AUTHOR_NAME", "openkb"),
                            os.environ.get("OPENKB_AUTHOR_EMAIL", "openkb@localhost"))


def local_tz_offset(when: float | None = None) -> int:
    """The local time zone's offset from UTC in seconds, for commit timestamps."""
    when = time.time() if when is None else when
    return -(time.altzone if time.localtime(when).tm_isdst else time.timezone)
