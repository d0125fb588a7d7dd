"""Fault injection for crash tests: every durable operation of a mutating command goes
through `op()`, which counts it and can fail it.

Environment (read once, at import):

- ``OPENKB_FAULT_TRACE=FILE`` appends "N kind path" for every operation (to count them).
- ``OPENKB_FAULT_AT=N`` with ``OPENKB_FAULT_MODE``:
  - ``kill``: SIGKILL the process just before the N-th operation;
  - ``power``: simulate power loss at the N-th operation — undo everything not yet made
    durable (file contents not fsynced are truncated or dropped; creations, renames,
    removals in directories not fsynced since are reverted), then SIGKILL;
  - ``eio`` / ``enospc``: the N-th operation raises OSError(EIO / ENOSPC).
- ``OPENKB_FAULT_AT=label`` (not a number) with mode ``kill`` or ``power``: the same at the
  first `checkpoint()` of that label, so a test can address a point between two protocol
  steps by name, whatever the operations before it.
- ``OPENKB_FAULT_OP=kind[@text][+K]`` instead of a number N: the point is the K-th operation
  after (0: at) the first operation of that kind whose path contains ``text`` — a point
  addressed by what happens there, e.g. ``write@pack-objects+1``, the first after Git's.
- ``OPENKB_FAULT_KILL_AT=N`` or ``=label`` kills at the N-th or a named `checkpoint()`;
  ``OPENKB_FAULT_CHECKPOINTS=FILE`` lists the checkpoints of a run.

Operations counted: file write, truncation, fsync (file or directory), rename/replace, unlink,
mkdir, rmdir, removal of a scratch tree, reference update, and `git pack-objects` (one write;
its two files are then made durable by openkb, see git/packs.py). Production runs pay one
attribute check per operation.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
from pathlib import Path

_MODE = os.environ.get("OPENKB_FAULT_MODE")
_AT_TEXT = os.environ.get("OPENKB_FAULT_AT", "")
_AT = int(_AT_TEXT) if _AT_TEXT.isdigit() else 0
_AT_LABEL = _AT_TEXT if _AT_TEXT and not _AT_TEXT.isdigit() else None
_TRACE = os.environ.get("OPENKB_FAULT_TRACE")
_KILL_AT = os.environ.get("OPENKB_FAULT_KILL_AT")
_CHECKPOINT_TRACE = os.environ.get("OPENKB_FAULT_CHECKPOINTS")
_OP_SPEC = os.environ.get("OPENKB_FAULT_OP")
ACTIVE = bool(_MODE or _TRACE or _KILL_AT)


def _parse_op_spec(spec: str | None) -> tuple[str, str, int] | None:
    if not spec:
        return None
    spec, _, after = spec.partition("+")
    kind, _, text = spec.partition("@")
    return kind, text, int(after or 0)


_OP = _parse_op_spec(_OP_SPEC)

_count = 0
_checkpoints = 0
# Power-loss model: undo records for effects not yet durable, oldest first.
# ("content", path) — file content written, not fsynced;
# ("entry", directory, undo) — a name created/renamed/removed in directory, not fsynced.
_pending: list[list] = []


def op(kind: str, path: os.PathLike | str) -> None:
    """Count one durable operation (before doing it); may kill, lose power, or raise."""
    global _count, _AT, _OP
    if not ACTIVE:
        return
    _count += 1
    if _OP is not None and _OP[0] == kind and _OP[1] in str(path):
        _AT, _OP = _count + _OP[2], None  # the first match decides the point
    if _TRACE:
        with open(_TRACE, "a", encoding="utf-8") as fh:
            fh.write(f"{_count} {kind} {path}\n")
    if _MODE and _count == _AT:
        if _MODE == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif _MODE == "power":
            _power_loss()
            os.kill(os.getpid(), signal.SIGKILL)
        elif _MODE in ("eio", "enospc"):
            code = errno.EIO if _MODE == "eio" else errno.ENOSPC
            raise OSError(code, os.strerror(code), str(path))


def checkpoint(label: str) -> None:
    """Mark a point between two protocol steps (OPENKB_FAULT_KILL_AT may kill here)."""
    global _checkpoints
    if _KILL_AT is None and _CHECKPOINT_TRACE is None and _AT_LABEL is None:
        return
    _checkpoints += 1
    if _CHECKPOINT_TRACE:
        with open(_CHECKPOINT_TRACE, "a", encoding="utf-8") as fh:
            fh.write(f"{_checkpoints} {label}\n")
    if label == _AT_LABEL:
        if _MODE == "power":
            _power_loss()
        if _MODE in ("kill", "power"):
            os.kill(os.getpid(), signal.SIGKILL)
    if _KILL_AT == str(_checkpoints) or _KILL_AT == label:
        os.kill(os.getpid(), signal.SIGKILL)


# -- bookkeeping for the power-loss model ------------------------------------------------

def _tracking() -> bool:
    return _MODE == "power"


def before_image(path: Path) -> bytes | None:
    """The current content of ``path`` (None when absent), for undo records."""
    if not _tracking():
        return None
    try:
        return Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def wrote(path: Path) -> None:
    """``path``'s content changed and is not yet durable."""
    if _tracking():
        _pending.append(["content", str(path)])


def renamed(src: Path, dst: Path, dst_before: bytes | None, dst_existed: bool) -> None:
    if not _tracking():
        return
    for record in _pending:
        if record[0] == "content" and record[1] == str(src):
            record[1] = str(dst)
    _pending.append(["entry", str(Path(dst).parent), ("restore", str(dst), dst_before, dst_existed)])


def removed(path: Path, before: bytes | None) -> None:
    if _tracking():
        _pending.append(["entry", str(Path(path).parent), ("restore", str(path), before, before is not None)])


def made_dir(path: Path) -> None:
    if _tracking():
        _pending.append(["entry", str(Path(path).parent), ("rmtree", str(path))])


def created(path: Path) -> None:
    """A new name (e.g. a symbolic link) in a folder not yet fsynced."""
    if _tracking():
        _pending.append(["entry", str(Path(path).parent), ("restore", str(path), None, False)])


def removed_dir(path: Path) -> None:
    if _tracking():
        _pending.append(["entry", str(Path(path).parent), ("mkdir", str(path))])


def tree_image(path: Path) -> list | None:
    """What a folder holds (relative path, kind, content, mode), for undoing its removal."""
    if not _tracking():
        return None
    image = []
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            full = Path(dirpath) / name
            rel = full.relative_to(path).as_posix()
            if full.is_symlink():
                image.append((rel, "link", os.readlink(full), 0))
            elif full.is_dir():
                image.append((rel, "dir", None, 0))
            else:
                image.append((rel, "file", full.read_bytes(), full.stat().st_mode & 0o777))
    return image


def removed_tree(path: Path, image: list | None) -> None:
    if _tracking():
        _pending.append(["entry", str(Path(path).parent), ("tree", str(path), image)])


def synced_file(path: Path) -> None:
    if _tracking():
        _pending[:] = [r for r in _pending if not (r[0] == "content" and r[1] == str(path))]


def synced_dir(path: Path) -> None:
    if _tracking():
        _pending[:] = [r for r in _pending if not (r[0] == "entry" and r[1] == str(path))]


def _power_loss() -> None:
    """Undo what a power cut would lose, newest first. Contents not fsynced are truncated
    to half (odd N) or emptied (even N) — a torn write or a lost one."""
    for record in reversed(_pending):
        try:
            if record[0] == "content":
                path = Path(record[1])
                if path.is_file():
                    size = path.stat().st_size
                    with open(path, "r+b") as fh:
                        fh.truncate(size // 2 if _AT % 2 else 0)
            else:
                action = record[2]
                if action[0] == "rmtree":
                    shutil.rmtree(action[1], ignore_errors=True)
                elif action[0] == "mkdir":
                    os.makedirs(action[1], exist_ok=True)
                elif action[0] == "tree":  # a removed folder comes back, whole
                    root = Path(action[1])
                    root.mkdir(parents=True, exist_ok=True)
                    for rel, kind, data, mode in action[2] or []:
                        target = root / rel
                        if kind == "dir":
                            target.mkdir(parents=True, exist_ok=True)
                        elif kind == "link":
                            target.symlink_to(data)
                        else:
                            target.write_bytes(data)
                            target.chmod(mode)
                else:
                    _kind, target, before, existed = action
                    target = Path(target)
                    if existed and before is not None:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(before)
                    else:
                        target.unlink(missing_ok=True)
        except OSError:
            continue
