"""A read command loads what it needs, not the writers' machinery: `openkb blame` once imported
the whole `add` path (converters, compilers, the LLM client's module, multiprocessing) through a
helper it shared with `add`'s output, ~0.1 s of every blame (issue #19: lazy imports on every path)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import copy_tldr, run_openkb

# Modules only a writer of documents needs.
WRITERS_ONLY = ("openkb_git.ops.add", "openkb_git.compiler.llm", "openkb_git.convert", "openkb_git.compiler.text",
                "fitz", "pymupdf", "yake", "openai", "multiprocessing", "concurrent.futures.process")

PROBE = """
import json, runpy, sys
sys.argv = ["openkb", *sys.argv[2:]]
try:
    runpy.run_module("openkb_git", run_name="__main__")
except SystemExit as exc:
    code = exc.code
else:
    code = 0
open(OUT, "w").write(json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


@pytest.fixture(scope="module")
def small_kb(tmp_path_factory):
    root = tmp_path_factory.mktemp("startup") / "kb"
    run_openkb("init", root, check=True)
    run_openkb("add", "--jobs", "1", copy_tldr(root.parent / "src", ["git-commit.md", "git-add.md"]), cwd=root,
               check=True)
    return root


@pytest.mark.parametrize("command", [["log"], ["log", "--path", "wiki/index.md"], ["show", "HEAD"],
                                     ["diff", "HEAD~1", "HEAD"], ["blame", "wiki/index.md"],
                                     ["blame", "wiki/summaries/git-add.md"], ["list"], ["status"]])
def test_read_commands_do_not_import_the_writers(small_kb, tmp_path, command):
    out = tmp_path / "modules.json"
    script = PROBE.replace("OUT", repr(str(out)))
    proc = subprocess.run([sys.executable, "-c", script, "-", *command], cwd=small_kb, capture_output=True,
                          text=True, timeout=120)
    assert out.exists(), proc.stderr
    seen = json.loads(out.read_text())
    assert seen["code"] in (0, None), proc.stdout + proc.stderr
    loaded = [name for name in WRITERS_ONLY if name in seen["modules"]]
    assert loaded == [], (command, loaded)
