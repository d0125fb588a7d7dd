"""The documentation cannot drift: the tutorial runs, the CLI reference matches --help."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import CORPUS, ROOT, run_openkb
from openkb_git.cli.main import cli
from openkb_git.cli.reference import help_text, iter_commands, reference


def test_cli_reference_is_current():
    current = (ROOT / "docs" / "cli.md").read_text()
    assert current == reference(), "docs/cli.md is stale: run `python -m openkb_git.cli.reference > docs/cli.md`"


def test_every_command_has_help_and_is_in_the_reference():
    text = (ROOT / "docs" / "cli.md").read_text()
    for path, command in iter_commands(cli):
        assert (command.help or "").strip(), f"openkb {' '.join(path)} has no help text"
        assert f"## openkb {' '.join(path)}\n" in text
        assert help_text(path).strip()


def test_command_map_names_every_command_once():
    """Commands load lazily from COMMAND_MODULES: each module defines exactly the commands mapped to it."""
    import importlib

    from openkb_git.cli.main import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        importlib.import_module(f"openkb_git.cli.{module}")
    assert set(cli.commands) == set(COMMAND_MODULES)
    for name, command in cli.commands.items():
        assert command.callback.__module__ == f"openkb_git.cli.{COMMAND_MODULES[name]}", name


def run_console(text: str, cwd: Path, *, corpus: bool = True) -> str:
    """Run every `$ ` line of the ```console blocks of ``text`` in one bash (set -e) in ``cwd``,
    with this interpreter's `openkb` first on PATH and $CORPUS set (unless not ``corpus``: the
    text sets it itself); returns the output."""
    commands = []
    in_console = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_console = line.strip() == "```console"
            continue
        if in_console and line.startswith("$ "):
            commands.append(line[2:])
    script = "set -e\n" + "\n".join(f"echo '>>> {c.replace(chr(39), '')}'\n{c}" for c in commands)
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    env.pop("CORPUS", None)
    if corpus:
        env["CORPUS"] = str(CORPUS)
    proc = subprocess.run(["bash", "-c", script], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.stdout.count(">>> ") == len(commands)
    return proc.stdout


def test_tutorial_commands_run(tmp_path):
    """The tutorial as written, relative paths included, from the repository's root of a fresh
    copy of the layout it assumes (the repository, and the corpus beside it in shared/corpus):
    nothing set for it, and the KB it makes lands beside the repository, not inside it."""
    text = (ROOT / "docs" / "tutorial.md").read_text()
    assert text.count("\n$ ") >= 15
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "corpus").symlink_to(CORPUS, target_is_directory=True)
    repo = tmp_path / "openkb-git"
    shutil.copytree(ROOT / "docs", repo / "docs")
    shutil.copy2(ROOT / "README.md", repo / "README.md")
    out = run_console(text, repo, corpus=False)
    assert (tmp_path / "mykb" / ".openkb").is_dir()
    assert sorted(p.name for p in repo.iterdir()) == ["README.md", "docs"]  # nothing made inside the repository
    assert "reverted " in out and "would revert" in out and "duplicate of tar" in out
    assert re.search(r"Documents \(3\)", out)


def test_team_walkthrough_runs(tmp_path):
    """docs/team.md's walkthrough: a bare remote, two clones, an ingest each, sync on each."""
    text = (ROOT / "docs" / "team.md").read_text()
    walkthrough = text.split("## Walkthrough", 1)[1].split("\n## ", 1)[0]
    out = run_console(walkthrough, tmp_path)
    assert out.count(">>> ") >= 12
    heads = {subprocess.run(["git", "-C", str(tmp_path / who), "rev-parse", "HEAD"], capture_output=True,
                            text=True, check=True).stdout for who in ("alice", "bob")}
    assert len(heads) == 1  # one history
    log = out.split(">>> openkb --kb-dir alice log", 1)[1].split(">>> ", 1)[0]
    assert re.search(r"add +grep\n", log) and re.search(r"add +tar\n", log), log


def test_docs_cover_the_required_topics():
    docs = {p.name for p in (ROOT / "docs").glob("*.md")}
    assert {"index.md", "tutorial.md", "layout.md", "protocol.md", "revert.md", "hooks.md", "cli.md",
            "compatibility.md", "exit-codes.md", "team.md", "wiki.md"} <= docs


def test_the_pages_docs_wiki_shows_are_what_the_compiler_writes(tmp_path):
    # docs/wiki.md shows real pages of four sample files added together: each is compared, byte
    # for byte, with what `openkb add` writes today, so the page cannot drift from the compiler.
    text = (ROOT / "docs" / "wiki.md").read_text()
    shown = dict(re.findall(r"^## [^\n]*`(wiki/[^`]+)`\n\n```markdown\n(.*?)```\n", text, flags=re.S | re.M))
    assert len(shown) == 4, list(shown)
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(CORPUS / "pdf" / "attention-is-all-you-need.pdf", src)
    for name in ("tar.md", "zip.md", "gzip.md"):
        shutil.copy(CORPUS / "md" / "tldr" / "common" / name, src)
    kb = tmp_path / "kb"
    run_openkb("init", kb, check=True)
    run_openkb("--kb-dir", kb, "add", "-q", src, check=True)
    for path, page in shown.items():
        assert (kb / path).read_text() == page, f"docs/wiki.md shows another {path} than the compiler writes"
