"""Shared fixtures. Every test is isolated from the developer's own Git configuration."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).resolve().parent.parent

# Knobs of the test run itself, read here, at import, before `isolated_env` removes every
# OPENKB_* variable from the environment the tests (and the commands they start) see.
# OPENKB_SLOW=1: run the tests marked `slow`, and the full fault matrix instead of its sample;
# OPENKB_FAULT_MODES: the fault modes of the matrix (kill,power,io); OPENKB_FAULT_SEED: the
# seed that picks the sample (default: from the checkout's commit); OPENKB_CORPUS: the corpus;
# OPENKB_HYPOTHESIS=random: property tests explore new examples (below).
KNOBS = {name: os.environ.get(name) for name in
         ("OPENKB_SLOW", "OPENKB_FAULT_MODES", "OPENKB_FAULT_SEED", "OPENKB_CORPUS", "OPENKB_HYPOTHESIS")}
SLOW = KNOBS["OPENKB_SLOW"] == "1"

# Every property test runs derandomized (examples derived from the test itself, no example
# database): a run is repeatable, and a mutant a test catches is caught on every run, not in
# 2 of 3. A test's own @settings still sets its number of examples. OPENKB_HYPOTHESIS=random
# explores new examples (by hand, when hunting bugs; still no database).
settings.register_profile("derandomized", derandomize=True, database=None)
settings.register_profile("random", derandomize=False, database=None)
settings.load_profile("random" if KNOBS["OPENKB_HYPOTHESIS"] == "random" else "derandomized")


def knob(name: str, default: str | None = None) -> str | None:
    """A test knob as it was when pytest started (the tests' own environment is cleaned)."""
    value = KNOBS[name]
    return default if value in (None, "") else value


def _find_corpus() -> Path:
    """The shared corpus: $OPENKB_CORPUS, else ../shared/corpus next to this checkout, else
    next to the repository it was cloned from (a clone made elsewhere, e.g. in /tmp)."""
    candidates = [Path(knob("OPENKB_CORPUS"))] if knob("OPENKB_CORPUS") else []
    candidates.append(ROOT.parent / "shared" / "corpus")
    origin = subprocess.run(["git", "-C", str(ROOT), "config", "--get", "remote.origin.url"],
                            capture_output=True, text=True).stdout.strip()
    if origin and "://" not in origin and not origin.startswith("git@"):
        candidates.append(Path(origin).resolve().parent / "shared" / "corpus")
    for candidate in candidates:
        if (candidate / "md" / "tldr").is_dir():
            return candidate
    raise RuntimeError("the shared corpus was not found; tried " + ", ".join(map(str, candidates))
                       + " (set OPENKB_CORPUS)")


CORPUS = _find_corpus()
TLDR = CORPUS / "md" / "tldr"


def pytest_configure(config):
    """Byte-compile the package once: the tests start the real `openkb` a few thousand times,
    and with PYTHONDONTWRITEBYTECODE set (as on this project's machines) an editable install
    otherwise compiles every module of it again in each process (~0.15 s of a one-file
    `openkb add`'s 0.6 s). A wheel install has these files; this gives the tests the same."""
    import compileall

    compileall.compile_dir(str(ROOT / "openkb_git"), quiet=1)


def pytest_collection_modifyitems(config, items):
    """Tests marked `slow` run only with OPENKB_SLOW=1 (`-m "not slow"` deselects them)."""
    if SLOW:
        return
    skip = pytest.mark.skip(reason="slow: set OPENKB_SLOW=1 to run it")
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def openkb_bin(tmp_path_factory) -> Path:
    """A folder holding an `openkb` command that runs this checkout (`sys.executable -m
    openkb_git`, PYTHONPATH inherited), as an installed openkb-git would be: Git finds the merge
    drivers and the Git hooks openkb configures through PATH (docs/team.md)."""
    folder = tmp_path_factory.mktemp("bin")
    script = folder / "openkb"
    script.write_text(f'#!/bin/sh\n# openkb-git for the tests: this checkout\nexec "{sys.executable}" -m openkb_git "$@"\n')
    script.chmod(0o755)
    return folder


def isolate(monkeypatch: pytest.MonkeyPatch, home: Path, openkb_bin: Path) -> None:
    """The tests' environment: this checkout's `openkb` first on PATH, no GIT_/XDG_/OPENKB_
    variables of the caller, an empty HOME, no system Git config, a fixed identity."""
    monkeypatch.setenv("PATH", f"{openkb_bin}{os.pathsep}{os.environ.get('PATH', '')}")
    for var in list(os.environ):
        if var.startswith(("GIT_", "XDG_", "OPENKB_")):
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for who in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{who}_NAME", "Test")
        monkeypatch.setenv(f"GIT_{who}_EMAIL", "test@example.com")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory, monkeypatch, openkb_bin):
    isolate(monkeypatch, tmp_path_factory.mktemp("home"), openkb_bin)
    yield


def run_openkb(*args, cwd=None, env=None, check=False, timeout=600) -> subprocess.CompletedProcess:
    """Run the real `openkb` command in a subprocess."""
    full_env = dict(os.environ)
    if env:
        full_env.update(env)
    proc = subprocess.run([sys.executable, "-m", "openkb_git", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"openkb {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def git(kb: Path, *args, check=True) -> str:
    proc = subprocess.run(["git", "-C", str(kb), *args], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout + proc.stderr


def assert_consistent(kb: Path) -> None:
    """The invariants of docs/protocol.md ("Invariants") that hold after every command."""
    assert git(kb, "status", "--porcelain", "--untracked-files=all") == ""
    fsck = subprocess.run(["git", "-C", str(kb), "fsck", "--strict", "--no-dangling"], capture_output=True, text=True)
    assert fsck.returncode == 0 and fsck.stdout.strip() == "" and "error" not in fsck.stderr, fsck.stdout + fsck.stderr
    for folder in ("openkb-git/journal", "openkb-git/staging", "journal", "staging"):  # ours, OpenKB's
        left = kb / ".openkb" / folder
        assert not left.exists() or not any(left.iterdir()), list(left.iterdir())


def configure_llm(root: Path, base_url: str, **settings) -> None:
    """Set the KB's config to the LLM compiler at ``base_url`` (tests/llm_server.py), with the
    key in OPENKB_TEST_LLM_KEY, and ``settings``, as a user editing it would."""
    path = root / ".openkb" / "config.yaml"
    values = {"compiler": "llm", "model": "openai/test-model", "base_url": base_url,
              "api_key_env": "OPENKB_TEST_LLM_KEY", **settings}
    lines = [line for line in path.read_text().splitlines() if line.split(":", 1)[0] not in values]
    lines += [f"{key}: {json.dumps(value)}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")


def copy_tldr(dest: Path, names: list[str], folder: str = "common") -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        shutil.copy(TLDR / folder / name, dest / name)
    return dest


@pytest.fixture
def kb(tmp_path) -> Path:
    """A fresh, initialized knowledge base."""
    root = tmp_path / "kb"
    run_openkb("init", root, check=True)
    return root


# Lines the crash tests want shown at the end of every run (even without -s).
SUMMARY: list[str] = []


def pytest_terminal_summary(terminalreporter):
    if SUMMARY:
        terminalreporter.section("crash points checked")
        for line in SUMMARY:
            terminalreporter.write_line(line)


@contextlib.contextmanager
def git_daemon(served: Path):
    """A real `git daemon` serving the repositories under ``served`` on 127.0.0.1 (a free port,
    push enabled), up within 10 s; yields its base URL (`git://127.0.0.1:<port>`) and stops it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(["git", "daemon", "--export-all", "--enable=receive-pack", f"--base-path={served}",
                             f"--port={port}", "--listen=127.0.0.1", "--reuseaddr", str(served)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("git daemon did not start")
                time.sleep(0.05)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
