"""`openkb use`: the default knowledge base, kept where OpenKB 0.4.5 keeps its own.

OpenKB's `use PATH` writes `default_kb` (and appends to `known_kbs`) in
`~/.config/openkb/global.yaml` under an flock of `global.lock` beside it; this does the same,
keeping every other setting of that file, so a user of both tools has one default KB.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import OpenKBError
from ..fsutil import makedirs, write_file
from ..kb import NotAKnowledgeBaseError, default_kb, read_user_config, user_config_path


class UseError(OpenKBError):
    """The default KB could not be set."""


def set_default_kb(path: str) -> Path:
    """Make ``path`` (a KB root, or a folder inside one) the default KB; returns its root."""
    import filelock
    import yaml

    target = Path(path).expanduser().resolve()
    root = target
    if not (root / ".openkb").is_dir():
        raise NotAKnowledgeBaseError(f"{target} is not a knowledge base (no .openkb/); give the folder of one, or "
                                     f"make one there with `openkb init {target}`")
    config_path = user_config_path()
    makedirs(config_path.parent, sync=True)
    lock = filelock.FileLock(str(config_path.with_name("global.lock")), timeout=30, preserve_lock_file=True)  # as OpenKB: flock
    try:
        with lock:
            config = read_user_config()
            known = config.get("known_kbs")
            known = list(known) if isinstance(known, list) else []
            if str(root) not in known:
                known.append(str(root))
            config["known_kbs"] = known
            config["default_kb"] = str(root)
            write_file(config_path, yaml.safe_dump(config, allow_unicode=True, sort_keys=True).encode(), sync=True)
    except filelock.Timeout:
        raise UseError(f"{config_path} is being changed by another process (its lock has been held for 30 s); "
                       "run `openkb use` again") from None
    return root


def show_default_kb() -> dict:
    """{"default_kb": path or None, "config": the file, "valid": is it a KB}."""
    default = default_kb()
    return {"default_kb": str(default) if default else None, "config": str(user_config_path()),
            "valid": bool(default and (default / ".openkb").is_dir())}
