"""Every durable operation of openkb_git goes through fsutil (so the fault injector, faults.py,
counts it and the crash matrix covers it): a scan of the source for direct file-system writes
outside fsutil.py and faults.py. Each allowed exception is listed with the reason it is not a
durable operation; a new direct call fails this test until it is routed through fsutil or
listed here with its reason."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "openkb_git"
EXEMPT_MODULES = {"fsutil.py", "faults.py"}  # the helpers themselves, and the injector's own bookkeeping

# (module, function) -> (its direct writes, in order, and why they are not durable operations of the KB).
ALLOWED = {
    ("lock.py", "KBLock._write_holder"): ((".write_text()", "os.replace"),
        "`.openkb/ingest.lock.holder`: who holds the lock, for messages only; best effort, rewritten each time"),
    ("history.py", "drop_memo"): (("os.unlink",), "deletes the commit memo (the next read rebuilds it)"),
    ("git/memo.py", "ObjectMemo.flush"): (("os.open(write)", "os.write", "open('wb')", "os.replace"),
        "`.openkb/records.cache`, `.openkb/commit-objects.cache`: hash-checked caches, also written by "
        "readers; best effort"),
    ("git/index.py", "GitIndex._write_body"): ((".unlink()",),
        "error path: removes the index.lock this process has just created"),
    ("git/lockwait.py", "create_lock"): ((".unlink()",), "error path: removes the lock this process has just created"),
    ("git/refs.py", "compare_and_swap"): ((".unlink()",), "error path: removes the ref lock this process has just created"),
    ("ops/add.py", "write_staged"): ((".write_bytes()", ".write_text()"),
        "staging (`.openkb/openkb-git/staging/`): scratch outside the live KB, not counted (docs/protocol.md)"),
    ("ops/add.py", "_rmtree"): (("shutil.rmtree",),
        "removes one file's staging (scratch); the run's folder goes with release_staging, through fsutil"),
    ("ops/mergedriver.py", "merge_for_git"): ((".write_bytes()", ".write_bytes()"),
        "a Git merge driver writes the file Git hands it (%A): Git owns that write"),
    ("hooks.py", "install_sample"): ((".mkdir()", "shutil.copyfile"),
        "`openkb hooks install` copies a sample hook the user asked for: not KB data, no journal"),
    ("protocol/recovery.py", "staging_run_dir"): (("os.open(write)",),
        "creates the empty flock owner file of a staging run (the folder is made through fsutil)"),
    ("compiler/llm.py", "_cache_write"): ((".mkdir()", ".write_text()", "os.replace"),
        "`.openkb/openkb-git/llm-cache/`: the model's answers, checked again when read; a lost entry costs a call"),
    ("cli/main.py", "OpenKBGroup.invoke"): (("os.open(write)",), "opens /dev/null for stdout once the reader has gone"),
}

_OS_WRITES = {"unlink", "remove", "replace", "rename", "renames", "mkdir", "makedirs", "rmdir", "removedirs",
              "truncate", "ftruncate", "write", "symlink", "link"}
_SHUTIL_WRITES = {"rmtree", "copytree", "copyfile", "copy", "copy2", "move", "copymode", "copystat"}
_PATH_WRITES = {"unlink", "rmdir", "mkdir", "rename", "touch", "write_text", "write_bytes", "truncate",
                "symlink_to", "hardlink_to"}
_WRITE_FLAGS = {"O_CREAT", "O_WRONLY", "O_APPEND", "O_TRUNC"}


def _direct_writes(tree: ast.AST) -> list[tuple[str, int, str]]:
    """(enclosing function, line, call) of every direct file-system write in ``tree``."""
    found = []

    def visit(node: ast.AST, where: list[str]) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, [*where, child.name])
                continue
            if isinstance(child, ast.Call):
                call = _write_call(child)
                if call:
                    found.append((".".join(where) or "<module>", child.lineno, call))
            visit(child, where)

    visit(tree, [])
    return found


def _write_call(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        if owner == "os" and func.attr == "open":
            flags = {n.attr for n in ast.walk(call.args[1]) if isinstance(n, ast.Attribute)} if len(call.args) > 1 else set()
            return "os.open(write)" if flags & _WRITE_FLAGS else None
        if owner == "os" and func.attr in _OS_WRITES:
            return f"os.{func.attr}"
        if owner == "shutil" and func.attr in _SHUTIL_WRITES:
            return f"shutil.{func.attr}"
        if owner not in ("os", "shutil", "fsutil", "str") and func.attr in _PATH_WRITES:
            return f".{func.attr}()"
    if isinstance(func, ast.Name) and func.id == "open":
        mode = call.args[1] if len(call.args) > 1 else next((k.value for k in call.keywords if k.arg == "mode"), None)
        if isinstance(mode, ast.Constant) and isinstance(mode.value, str) and set(mode.value) & set("wax+"):
            return f"open({mode.value!r})"
    return None


def scan() -> dict[tuple[str, str], list[str]]:
    out: dict[tuple[str, str], list[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module in EXEMPT_MODULES:
            continue
        for function, line, call in _direct_writes(ast.parse(path.read_text(encoding="utf-8"))):
            out.setdefault((module, function), []).append(f"{module}:{line} {call}")
    return out


def test_every_durable_operation_goes_through_fsutil():
    found = scan()
    new = {key: calls for key, calls in found.items()
           if key not in ALLOWED or tuple(c.split(" ", 1)[1] for c in calls) != ALLOWED[key][0]}
    assert not new, ("direct file-system writes outside fsutil (route them through fsutil so the fault "
                     "injector sees them, or list them in ALLOWED with the reason they are not durable)", new)
    stale = sorted(set(ALLOWED) - set(found))
    assert not stale, ("ALLOWED lists functions that no longer write directly: remove them", stale)


def test_the_scan_sees_each_kind_of_direct_write():
    source = '''
import os, shutil
def f(p, fd):
    os.unlink(p); os.replace(p, p); shutil.rmtree(p); p.write_bytes(b""); p.unlink()
    open(p, "w"); open(p, "r+b").truncate(0); os.open(p, os.O_WRONLY | os.O_CREAT)
    open(p, "rb"); os.open(p, os.O_RDONLY); "a-b".replace("-", " ")
'''
    calls = [call for _f, _line, call in _direct_writes(ast.parse(source))]
    assert calls == ["os.unlink", "os.replace", "shutil.rmtree", ".write_bytes()", ".unlink()", "open('w')",
                     ".truncate()", "open('r+b')", "os.open(write)"], calls
