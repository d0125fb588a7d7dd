"""The knowledge base on disk: where it is, its paths, its settings, its Git plumbing."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dulwich.object_store import DiskObjectStore

from .errors import EXIT_NOT_A_KB, OpenKBError
from .git.objects import ObjectStore, local_tz_offset  # noqa: F401 (protocol/commit.py imports it from here)
from .git.refs import BadRefError, check_unborn, check_writable, damaged_ref_message, head_target, read_branch

DEFAULT_CONFIG = {
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
    "commit_group_files": None,
    "commit_group_seconds": 1,
    "max_fetch_mb": 100,
    "fetch_timeout": 30,
    "compile_concurrency": 5,
    "base_url": None,
    "api_key_env": "OPENAI_API_KEY",
    "llm_timeout": 120,
    "llm_retries": 3,
    "llm_max_input_chars": 60000,
}

CONFIG_PATH = ".openkb/config.yaml"
OWN_DIR = "openkb-git"
REGISTRY_DIR = ".openkb/registry"


class NotAKnowledgeBaseError(OpenKBError):
    exit_code = EXIT_NOT_A_KB


class ConfigError(OpenKBError):
    """`.openkb/config.yaml` cannot be read, or a setting in it has the wrong type or range."""


# The settings openkb-git reads: {key: (kind, lowest, highest)}, or for a choice
# {key: (_CHOICE, the values this version supports, None)}. Config arrives through clones
# like any tracked file (docs/protocol.md, "Trust boundaries"): every value is checked here,
# where it is read, and resource settings are capped by the machine (`Config.workers`).
# Other keys (OpenKB's own: model, language, entity_types, ...) are kept and not used.
_INT, _NUMBER, _CHOICE, _TEXT = "a whole number", "a number", "one of", "text"
# The compilers this version has (openkb_git/compiler/): a KB asking for another one is refused
# rather than compiled differently from what its config says.
COMPILERS = ("offline", "llm")
CONFIG_KEYS = {
    "compiler": (_CHOICE, COMPILERS, None),
    "pageindex_threshold": (_INT, 1, 100_000),
    "max_file_mb": (_NUMBER, 0, 10_240),  # larger files are refused; 10 GB at most; 0: no limit
    # Limits on what one file may expand to while converting (0 or null: no limit, except that
    # the memory of one conversion is always capped at the machine's memory: convert/limits.py).
    "max_expanded_mb": (_NUMBER, 0, 10_240),
    "max_pages": (_INT, 0, 10_000_000),
    "max_expansion_ratio": (_NUMBER, 0, 1_000_000),
    "max_worker_memory_mb": (_NUMBER, 0, 16_777_216),
    "jobs": (_INT, 1, 1024),  # null: one per CPU; at most one per CPU unless --jobs says more
    "concepts_per_doc": (_INT, 0, 100),  # concept pages one document contributes to, at most
    "gc_auto_commits": (_INT, 0, 1_000_000_000),
    # Group commit of `add` (docs/protocol.md): files per group at most (null: 32 with parallel
    # preparation, 1 with --jobs 1), and the seconds a group waits for its next file at most.
    "commit_group_files": (_INT, 1, 10_000),
    "commit_group_seconds": (_NUMBER, 0, 3600),
    "max_fetch_mb": (_NUMBER, 0, 10_240),  # `add URL`: a larger answer is refused while it arrives; 0: no limit
    "fetch_timeout": (_NUMBER, 0.1, 3600),  # `add URL`: seconds to connect, and to wait for each part of the answer
    # compiler: llm (compiler/llm.py, docs/llm.md); `model` is OpenKB's own key, read there.
    "compile_concurrency": (_INT, 1, 256),  # model requests at once, over all workers (OpenKB's key)
    "base_url": (_TEXT, r"https?://\S+", None),  # an OpenAI-compatible endpoint; null: OPENAI_BASE_URL, else OpenAI's
    "api_key_env": (_TEXT, r"[A-Za-z_][A-Za-z0-9_]{0,127}", None),  # the variable holding the key; null: none needed
    "llm_timeout": (_NUMBER, 1, 3600),  # seconds one request may take
    "llm_retries": (_INT, 0, 10),  # retries of a request that failed with 429, 5xx, a timeout or no connection
    "llm_max_input_chars": (_INT, 1000, 10_000_000),  # of a document's text put in its prompt
}


@dataclass(frozen=True)
class Config:
    """The validated settings of `.openkb/config.yaml` (defaults for the keys it lacks)."""

    compiler: str = "offline"
    pageindex_threshold: int = 20
    max_file_mb: float = 200
    max_expanded_mb: float = 50
    max_pages: int = 5000
    max_expansion_ratio: float = 100
    max_worker_memory_mb: float = 2048
    jobs: int | None = None
    concepts_per_doc: int = 5
    gc_auto_commits: int = 1000
    commit_group_files: int | None = None
    commit_group_seconds: float = 1
    max_fetch_mb: float = 100
    fetch_timeout: float = 30
    compile_concurrency: int = 5
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    llm_timeout: float = 120
    llm_retries: int = 3
    llm_max_input_chars: int = 60000
    extra: tuple = ()  # (key, value) of the keys openkb-git does not use, as read

    def workers(self, requested: int | None = None) -> int:
        """Worker processes for `add`: ``requested`` (--jobs) as given, else the config's
        `jobs` capped at the CPU count (a tracked config cannot fork 200 processes), else
        one per CPU."""
        if requested:
            return max(1, requested)
        cpus = os.cpu_count() or 1
        return max(1, min(self.jobs or cpus, cpus))

    def get(self, key: str, default=None):
        """Dict-style access (``config.get("jobs")``): the validated value, or another key's as read."""
        if key in CONFIG_KEYS:
            return getattr(self, key)
        return dict(self.extra).get(key, default)

    def __getitem__(self, key: str):
        if key in CONFIG_KEYS:
            return getattr(self, key)
        return dict(self.extra)[key]


def parse_config(data: bytes, where: str = CONFIG_PATH) -> Config:
    """The settings in ``data`` (the bytes of a config file); raises ConfigError naming the
    file, the key and what it must be."""
    import yaml  # here: reads that never need the config (log) do not pay for the import

    try:
        loaded = yaml.safe_load(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{where} is not UTF-8 text; fix it or remove it (defaults are used without it)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where} is not valid YAML{at} ({problem}); fix it or remove it "
                          "(defaults are used without it)") from None
    if loaded is None:
        loaded = {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{where} must be a mapping of settings (key: value), not {type(loaded).__name__}; "
                          "fix it or remove it")
    values, extra = {}, []
    for key, value in loaded.items():
        if key not in CONFIG_KEYS:
            extra.append((key, value))
            continue
        kind, low, high = CONFIG_KEYS[key]
        if value is None:
            if key in ("jobs", "api_key_env"):  # null: one per CPU; no key needed
                values[key] = None
            elif key.startswith("max_"):
                values[key] = 0  # null: no limit
            continue  # null: the default
        values[key] = _checked(where, key, value, kind, low, high)
    return Config(**values, extra=tuple(extra))


def _checked(where: str, key: str, value, kind: str, low, high):
    shown = repr(value) if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else value
    if kind == _CHOICE:
        if value not in low:
            raise ConfigError(f"{where}: {key}: {shown} is not supported by this version of openkb-git; "
                              f"set it to {' or '.join(map(repr, low))}, or remove the line (the default "
                              f"{DEFAULT_CONFIG[key]!r} is used)")
        return value
    if kind == _TEXT:
        import re

        if not isinstance(value, str) or not re.fullmatch(low, value):
            raise ConfigError(f"{where}: {key}: {shown} is not valid here; see docs/llm.md, or remove the line "
                              "(the default is used)")
        return value
    whole = isinstance(value, int) and not isinstance(value, bool)
    number = whole or isinstance(value, float) and value == value and value not in (float("inf"), float("-inf"))
    if not (whole if kind == _INT else number):
        raise ConfigError(f"{where}: {key}: {shown} is not {kind}; set it to {_range(kind, low, high)}, "
                          "or remove the line (the default is used)")
    if not low <= value <= high:
        raise ConfigError(f"{where}: {key}: {value} is out of range; set it to {_range(kind, low, high)}, "
                          "or remove the line (the default is used)")
    return value


def _range(kind: str, low, high) -> str:
    return f"{kind} from {low:g} to {high:g}" if kind == _NUMBER else f"{kind} from {low} to {high}"


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
    default = default_kb()
    if default is not None:
        if not (default / ".openkb").is_dir():
            raise NotAKnowledgeBaseError(
                f"no knowledge base here or in any parent directory, and the default one, {default} (set by "
                f"`openkb use` in {user_config_path()}), is not a knowledge base (no .openkb/); run `openkb use "
                "PATH` to choose another, or pass --kb-dir")
        return default
    raise NotAKnowledgeBaseError("no knowledge base here or in any parent directory, and no default one; run "
                                 "`openkb init`, pass --kb-dir, or choose a default with `openkb use PATH`")


class UserConfigError(OpenKBError):
    """The user's global config (shared with OpenKB) cannot be read."""


def user_config_path() -> Path:
    """`~/.config/openkb/global.yaml`: OpenKB's global config, where its `use` (and ours) keeps
    `default_kb` and `known_kbs`; one file, so both tools open the same default KB."""
    return Path.home() / ".config" / "openkb" / "global.yaml"


def read_user_config() -> dict:
    import yaml

    path = user_config_path()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UserConfigError(f"cannot read {path}: {exc.strerror}; fix its permissions or delete it") from None
    try:
        loaded = yaml.safe_load(data) if data.strip() else {}
    except yaml.YAMLError as exc:
        raise UserConfigError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix it or delete it, "
                              "then run `openkb use PATH` again") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise UserConfigError(f"{path} is not a mapping of settings; fix it or delete it, then run "
                              "`openkb use PATH` again")
    return loaded


def default_kb() -> Path | None:
    """The default KB of `openkb use` (or OpenKB's `use`), None when none is set."""
    value = read_user_config().get("default_kb")
    if not isinstance(value, str) or not value.strip():
        return None
    return Path(value).expanduser()


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
        self._branch: str | None = None  # the branch a writer holding the lock commits to
        self._verified: bytes | None = None  # the last HEAD found to name a readable commit
        self._config: Config | None = None
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
        """Release the object store's files. Never raises: it runs in `finally` blocks, after an
        error (e.g. a damaged pack) that must reach the user alone."""
        try:
            if self._repo is not None:
                self._repo.close()
        except Exception:
            pass
        try:
            self.objects.store.close()
        except Exception:
            pass

    # -- paths -------------------------------------------------------------
    @property
    def own_dir(self) -> Path:
        """`.openkb/openkb-git/`: this tool's local state, where OpenKB never looks (OpenKB
        reads `.openkb/journal/*.json` as its own journals and keeps rollback copies in
        `.openkb/staging/`)."""
        return self.openkb_dir / OWN_DIR

    @property
    def journal_dir(self) -> Path:
        return self.own_dir / "journal"

    @property
    def staging_dir(self) -> Path:
        return self.own_dir / "staging"

    @property
    def legacy_journal_dir(self) -> Path:
        """`.openkb/journal/`: OpenKB's journals, and ours of earlier versions (still recovered)."""
        return self.openkb_dir / "journal"

    @property
    def legacy_staging_dir(self) -> Path:
        """`.openkb/staging/`: OpenKB's staging and rollback copies, and ours of older versions."""
        return self.openkb_dir / "staging"

    @property
    def hooks_dir(self) -> Path:
        return self.openkb_dir / "hooks"

    # -- state -------------------------------------------------------------
    def begin_write(self) -> str:
        """Under the KB lock, before recovery: refuse the Git states openkb does not own
        (GitStateError) and a damaged branch (BadRefError); then pin the branch HEAD names as
        the one this acquisition commits to. Returns the previous pin (for end_write)."""
        previous = self._branch
        self._branch = None
        branch = check_writable(self.git_dir)
        self._branch = branch
        self.head()  # a branch naming a missing object is damage, found before anything is written
        return previous

    def write_branch(self) -> str:
        """The branch a commit moves: the writer's pinned one, else (a caller outside Writer,
        e.g. a test) the one HEAD names, checked as a writer would."""
        return self._branch if self._branch is not None else check_writable(self.git_dir)

    def end_write(self, previous: str | None) -> None:
        self._branch = previous

    def head(self) -> bytes | None:
        """The commit HEAD names (through the checked-out branch, or detached), None before
        the first commit. Raises BadRefError when the branch is empty, garbage or names no
        readable commit, GitStateError for an orphan branch beside other history."""
        name = self._branch
        if name is None:
            name, sha = head_target(self.git_dir)
            if name is not None:
                sha = read_branch(self.git_dir, name)
        else:
            sha = read_branch(self.git_dir, name)
        if sha is None:
            check_unborn(self.git_dir, name)
            return None
        if sha != self._verified:
            problem = self.objects.commit_type_problem(sha)
            if problem is not None:
                self._bad_head(name, sha, problem)
            self._verified = sha
        return sha

    def trust_head(self, sha: bytes) -> None:
        """``sha`` is a commit this process wrote durably: head() naming it needs no check."""
        self._verified = sha

    def _bad_head(self, name: str | None, sha: bytes, problem: str) -> None:
        from .git.objects import pack_index_hint

        if name is None:
            raise BadRefError(f"HEAD (detached) names {sha.decode()}, which {problem}: run `git switch main`")
        what = f"{name} names {sha.decode()}, which {problem}"
        packs_hint = pack_index_hint(self.objects.objects_dir)
        if packs_hint:  # the commit is most likely in that pack: rebuilding its index brings it back
            raise BadRefError(f"{what}: the Git object store is damaged (nothing was changed): {packs_hint}, "
                              "then run `openkb fsck`")
        raise BadRefError(damaged_ref_message(self.git_dir, name, what,
                                              present=lambda s: self.objects.commit_type_problem(s) is None, skip=sha))

    def head_tree(self, head: bytes | None = None) -> bytes | None:
        head = head if head is not None else self.head()
        if head is None:
            return None
        return self.objects.get(head).tree

    @property
    def config(self) -> Config:
        """The validated settings (read once). Raises ConfigError for a bad file or value."""
        if self._config is None:
            path = self.root / CONFIG_PATH
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                data = b""
            except OSError as exc:
                raise ConfigError(f"{CONFIG_PATH} cannot be read ({exc.strerror}); fix its permissions") from None
            self._config = parse_config(data)
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

