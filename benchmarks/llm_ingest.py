"""Issue #17: `openkb add` with the LLM compiler (`compiler: llm`) against OpenKB 0.4.5 doing the
same, both talking to one local OpenAI-compatible server (tests/llm_server.py, started here on
127.0.0.1 as a subprocess) that answers each call after a fixed delay, as a hosted model would
take its time. What is measured: wall time of the whole command, and the model's requests and
tokens per document as the server counts them (its counters zeroed between runs).

1. Speed: DOCS short Markdown documents (300-600 words of tldr pages, 3 `concept:` lines and
   2 `entity:` lines each, each concept shared by 5 of them), the server waiting DELAY seconds
   per call. `openkb-git add DIR --jobs 8` (compile_concurrency 8) and `--jobs 1`, each into a
   fresh KB, and OpenKB 0.4.5's `openkb add DIR` into its own. Goal: >= 5x faster than OpenKB.
2. Dense: N documents that all name the same 3 concepts and 2 entities (different text), no
   delay; per N, requests and tokens per document for each system, then the cost of adding one
   more document to that KB, to show whether a document's cost grows with the KB.

    .venv/bin/python benchmarks/llm_ingest.py [--docs 20] [--delay 1.0] [--jobs 8]
        [--dense-sizes 10,100] [--dense | --skip-speed] [--skip-dense] [--max-seconds 900]
        [--openkb045 /work/openkb045/bin/openkb] [--workdir /tmp/openkb-bench-llm]

openkb-git is configured with `compiler: llm`, `model: bench-model`, `base_url: <server>`,
`api_key_env: OPENKB_BENCH_KEY`, `compile_concurrency: 8`; OpenKB with `model:
openai/bench-model` and litellm's OPENAI_API_BASE / OPENAI_API_KEY. A run that fails prints its
stderr and the script goes on; an OpenKB run longer than --max-seconds is stopped and says so.
Nothing leaves 127.0.0.1 (HOME is a folder of the work directory; proxies are bypassed).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TLDR = ROOT.parent / "shared" / "corpus" / "md" / "tldr"
SERVER = ROOT / "tests" / "llm_server.py"
OPENKB_GIT = ROOT / ".venv" / "bin" / "openkb-git"
OPENKB_045 = Path("/work/openkb045/bin/openkb")
KEY = "sk-bench-0000"  # the server takes any key; both systems need one set

CONCEPTS = ["file archiving", "text search", "process control", "network transfer", "disk usage",
            "package management", "version control", "text editing", "user accounts", "system services",
            "shell scripting", "data compression"]
ENTITIES = ["GNU Project", "Free Software Foundation", "Linux Foundation", "Apple Inc", "Debian Project",
            "Red Hat", "Canonical Ltd", "Open Group"]
DENSE_CONCEPTS = CONCEPTS[:3]
DENSE_ENTITIES = ENTITIES[:2]

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- the documents -------------------------------------------------------------------------------


def _pages(folder: str) -> list[Path]:
    return [p for p in sorted((TLDR / folder).glob("*.md")) if re.fullmatch(r"[a-z][a-z0-9-]*", p.stem)]


def _body(page: Path) -> str:
    """A tldr page as a section: its `# name` heading made `## name`."""
    text = page.read_text(encoding="utf-8")
    if re.search(r"FAULT:|ignore previous instructions", text, re.I):
        return ""  # never a fault trigger of the server by accident
    return re.sub(r"\A# ", "## ", text.strip()) + "\n"


def make_docs(dest: Path, count: int, folder: str, concepts, entities, *, start: int = 0) -> list[Path]:
    """``count`` documents of 300-600 words (consecutive tldr pages of ``folder``), each with the
    `concept:` and `entity:` lines ``concepts(i)`` and ``entities(i)`` give; deterministic."""
    shutil.rmtree(dest, ignore_errors=True)
    dest.mkdir(parents=True)
    pages = iter(_pages(folder)[start:])
    made = []
    for i in range(count):
        sections, words = [], 0
        while words < 300:
            body = _body(next(pages))
            n = len(body.split())
            if body and words + n <= 600:
                sections.append(body)
                words += n
        names = ", ".join(re.match(r"## (\S+)", s).group(1) for s in sections)
        head = (f"# Notes {i:03d}: {names}\n\n" + "".join(f"concept: {c}\n" for c in concepts(i))
                + "".join(f"entity: {e}\n" for e in entities(i)) + "\n")
        path = dest / f"notes-{i:03d}.md"
        path.write_text(head + "\n".join(sections), encoding="utf-8")
        made.append(path)
    return made


def speed_docs(dest: Path, count: int) -> list[Path]:
    """Each document: 3 of the 12 concepts (each in count/4 documents), 2 of the 8 entities."""
    return make_docs(dest, count, "common",
                     lambda i: [CONCEPTS[(i + k) % len(CONCEPTS)] for k in (0, 4, 8)],
                     lambda i: [ENTITIES[(i + k) % len(ENTITIES)] for k in (0, 3)])


def dense_docs(dest: Path, count: int) -> list[Path]:
    """Every document: the same 3 concepts and 2 entities, its own text."""
    return make_docs(dest, count, "linux", lambda i: DENSE_CONCEPTS, lambda i: DENSE_ENTITIES)


# -- the server ----------------------------------------------------------------------------------


class Server:
    """tests/llm_server.py in a subprocess; its counters over HTTP."""

    def __init__(self, delay: float, log: Path):
        self._log = open(log, "wb")
        self.proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0", "--delay", str(delay)],
                                     stdout=subprocess.PIPE, stderr=self._log, text=True)
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        line = self.proc.stdout.readline().strip() if ready else ""
        if not line.startswith("http://127.0.0.1:"):
            self.stop()
            raise SystemExit(f"tests/llm_server.py did not start (see {log})")
        self.base_url = line
        self.root = line.rsplit("/v1", 1)[0]
        self.delay = delay

    def _call(self, method: str, path: str) -> dict:
        request = urllib.request.Request(self.root + path, method=method, data=b"" if method == "POST" else None)
        with _NO_PROXY.open(request, timeout=30) as response:
            return json.loads(response.read())

    def stats(self) -> dict:
        return self._call("GET", "/stats")

    def reset(self) -> None:
        self._call("POST", "/reset")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self._log.close()


@contextmanager
def server(delay: float, log: Path):
    srv = Server(delay, log)
    try:
        yield srv
    finally:
        srv.stop()


# -- the two systems -----------------------------------------------------------------------------


@dataclass
class Run:
    system: str
    wall: float | None  # None: it failed
    docs: int  # documents in the KB afterwards
    stats: dict
    note: str = ""

    @property
    def requests(self) -> int:
        return self.stats.get("chat_requests", 0)

    @property
    def tokens(self) -> int:
        return self.stats.get("prompt_tokens", 0) + self.stats.get("completion_tokens", 0)

    def per_doc(self, value: int) -> float:
        return value / self.docs if self.docs else float("nan")


def base_env(work: Path) -> dict:
    home = work / "home"
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONDONTWRITEBYTECODE", "OPENKB_DIR", "OPENKB_LLM_BASE_URL", "OPENAI_BASE_URL")
           and not k.startswith(("GIT_", "XDG_"))}
    env.update({"HOME": str(home), "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
                "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost",
                "LITELLM_LOCAL_MODEL_COST_MAP": "True"})
    return env


def _timed(argv: list[str], *, cwd: Path | None, env: dict, limit: float | None,
           stdin: str | None = None) -> tuple[subprocess.CompletedProcess, float, bool]:
    """Run ``argv`` in its own process group: (result, wall seconds, whether it was stopped at ``limit``)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(stdin, timeout=limit)
        stopped = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
        stopped = True
    wall = time.perf_counter() - start
    return subprocess.CompletedProcess(argv, proc.returncode, out, err), wall, stopped


def _failed(label: str, proc: subprocess.CompletedProcess) -> None:
    print(f"\n{label} failed (exit {proc.returncode}); its stderr:\n{proc.stderr.strip()[-3000:] or '(empty)'}")
    if proc.stdout.strip():
        print(f"its stdout (end):\n{proc.stdout.strip()[-1500:]}")
    print(flush=True)


def openkb_git_kb(kb: Path, srv: Server, env: dict) -> bool:
    """A fresh openkb-git KB with `compiler: llm` on the server; False (said) if init failed."""
    shutil.rmtree(kb, ignore_errors=True)
    proc = subprocess.run([str(OPENKB_GIT), "init", str(kb)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        _failed("openkb-git init", proc)
        return False
    path = kb / ".openkb" / "config.yaml"
    values = {"compiler": "llm", "model": "bench-model", "base_url": srv.base_url,
              "api_key_env": "OPENKB_BENCH_KEY", "compile_concurrency": 8}
    lines = [line for line in path.read_text().splitlines() if line.split(":", 1)[0] not in values]
    path.write_text("\n".join(lines + [f"{k}: {json.dumps(v)}" for k, v in values.items()]) + "\n")
    return True


def openkb_git_add(kb: Path, src: Path, jobs: int, srv: Server, env: dict, label: str) -> Run:
    """`openkb-git --kb-dir KB add SRC --jobs N`, timed, with the server's counters of it."""
    env = {**env, "OPENKB_BENCH_KEY": KEY}
    srv.reset()
    proc, wall, _ = _timed([str(OPENKB_GIT), "--kb-dir", str(kb), "add", str(src), "--jobs", str(jobs)],
                           cwd=None, env=env, limit=None)
    docs = len(list((kb / ".openkb" / "registry").glob("*.json")))
    summary = [line.strip() for line in proc.stdout.splitlines() if " added, " in line]  # "N added, 0 skipped, 0 failed"
    run = Run(label, wall if proc.returncode == 0 else None, docs, srv.stats(), summary[-1] if summary else "")
    if proc.returncode != 0:
        _failed(label, proc)
    return run


def openkb045_kb(kb: Path, openkb: Path, env: dict) -> bool:
    """A fresh OpenKB 0.4.5 KB (`openkb init`, model openai/bench-model) whose calls go to the server."""
    shutil.rmtree(kb, ignore_errors=True)
    kb.mkdir(parents=True)
    proc, _, _ = _timed([str(openkb), "init", "--model", "openai/bench-model", "--language", "en"],
                        cwd=kb, env=env, limit=120, stdin="\n")  # "\n": no API key saved to .env
    if proc.returncode != 0 or not (kb / ".openkb" / "config.yaml").exists():
        _failed("OpenKB 0.4.5 init", proc)
        return False
    return True


def openkb045_env(env: dict, srv: Server) -> dict:
    return {**env, "OPENAI_API_BASE": srv.base_url, "OPENAI_API_KEY": KEY}


def openkb045_add(kb: Path, src: Path, openkb: Path, srv: Server, env: dict, limit: float, label: str) -> Run:
    """OpenKB 0.4.5's `openkb add SRC` in KB (one file after another), stopped at ``limit`` seconds."""
    srv.reset()
    proc, wall, stopped = _timed([str(openkb), "add", str(src)], cwd=kb, env=openkb045_env(env, srv), limit=limit)
    try:
        docs = len(json.loads((kb / ".openkb" / "hashes.json").read_text()))
    except (OSError, ValueError):
        docs = 0
    errors = [line.strip() for line in proc.stdout.splitlines() if "[ERROR]" in line]
    note = f"stopped after {wall:.0f} s (--max-seconds): {docs} document(s) added by then" if stopped else ""
    if errors:
        note = (note + "; " if note else "") + f"{len(errors)} error line(s), first: {errors[0][:160]}"
    run = Run(label, wall if (proc.returncode == 0 or stopped) else None, docs, srv.stats(), note)
    if proc.returncode != 0 and not stopped:
        _failed(label, proc)
    return run


# -- the figures ---------------------------------------------------------------------------------


def _num(value: float | None, fmt: str) -> str:
    return "failed" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, fmt)


def _kinds(run: Run) -> str:
    kinds = run.stats.get("by_kind", {})
    return ", ".join(f"{k.split(':', 1)[-1]} {v / run.docs:.1f}" for k, v in sorted(kinds.items())) if run.docs else ""


def speed(args, work: Path, env: dict) -> None:
    src = work / "speed-src"
    docs = speed_docs(src, args.docs)
    words = [len(p.read_text().split()) for p in docs]
    print(f"\n1. Speed: `add` of {len(docs)} Markdown documents ({min(words)}-{max(words)} words, 3 concept: and "
          f"2 entity: lines each), the server answering each call after {args.delay:g} s", flush=True)
    runs: dict[str, Run] = {}
    with server(args.delay, work / "server-speed.log") as srv:
        for jobs in (args.jobs, 1):
            label = f"openkb-git add --jobs {jobs}"
            kb = work / f"speed-openkb-git-jobs{jobs}"
            if openkb_git_kb(kb, srv, env):
                runs[f"jobs{jobs}"] = openkb_git_add(kb, src, jobs, srv, env, label)
        kb = work / "speed-openkb045"
        if openkb045_kb(kb, args.openkb045, env):
            runs["openkb"] = openkb045_add(kb, src, args.openkb045, srv, env, args.max_seconds, "OpenKB 0.4.5 add")
    print(f"\n{'command':<26} {'wall':>8} {'docs':>5} {'requests':>9} {'req/doc':>8} {'tokens/doc':>11}  requests/doc by step")
    for run in runs.values():
        print(f"{run.system:<26} {_num(run.wall, '7.1f')}s {run.docs:>5} {run.requests:>9} "
              f"{_num(run.per_doc(run.requests), '8.1f')} {_num(run.per_doc(run.tokens), '11.0f')}  {_kinds(run)}")
        if run.note:
            print(f"{'':<26} {run.note}")
    fast, slow, theirs = runs.get(f"jobs{args.jobs}"), runs.get("jobs1"), runs.get("openkb")
    # What the delay alone costs at best: openkb-git's calls `compile_concurrency` at a time;
    # OpenKB's four rounds per document (summary, plan, pages at once, summary rewrite), one document at a time.
    floor_ours = math.ceil(len(docs) / min(args.jobs, 8)) * args.delay
    print(f"\nthe delay alone, at best: openkb-git --jobs {args.jobs} {floor_ours:.1f} s (calls 8 at a time), "
          f"OpenKB {len(docs) * 4 * args.delay:.1f} s (4 rounds of calls per document, one document at a time)")
    if fast and fast.wall and theirs and theirs.wall:
        partial = " (OpenKB stopped early: a lower bound)" if "stopped" in theirs.note else ""
        print(f"OpenKB / openkb-git --jobs {args.jobs}: {theirs.wall / fast.wall:.1f}x{partial}")
    if fast and fast.wall and slow and slow.wall:
        print(f"openkb-git --jobs 1 / --jobs {args.jobs}: {slow.wall / fast.wall:.1f}x")
    print("goal: >= 5x faster than OpenKB", flush=True)


def dense(args, work: Path, env: dict) -> None:
    sizes = [int(n) for n in args.dense_sizes.split(",") if n.strip()]
    pool = dense_docs(work / "dense-pool", max(sizes) + 1)
    print(f"\n2. Dense: documents that all name the same {len(DENSE_CONCEPTS)} concepts and {len(DENSE_ENTITIES)} "
          f"entities (their own text, {min(len(p.read_text().split()) for p in pool)}+ words each), no delay; "
          "`next doc`: the cost of adding one more document to the KB of N", flush=True)
    rows = []
    with server(0.0, work / "server-dense.log") as srv:
        for n in sizes:
            src, extra = work / f"dense-src-{n}", work / f"dense-next-{n}"
            for folder, files in ((src, pool[:n]), (extra, pool[n:n + 1])):
                shutil.rmtree(folder, ignore_errors=True)
                folder.mkdir()
                for path in files:
                    shutil.copy(path, folder / path.name)
            kb = work / f"dense-openkb-git-{n}"
            if openkb_git_kb(kb, srv, env):
                run = openkb_git_add(kb, src, args.jobs, srv, env, f"openkb-git --jobs {args.jobs}")
                after = openkb_git_add(kb, extra, 1, srv, env, "openkb-git next doc") if run.wall else None
                rows.append((run.system, n, run, after))
            kb = work / f"dense-openkb045-{n}"
            if openkb045_kb(kb, args.openkb045, env):
                run = openkb045_add(kb, src, args.openkb045, srv, env, args.max_seconds, "OpenKB 0.4.5")
                after = None
                if run.wall and "stopped" not in run.note:
                    after = openkb045_add(kb, extra, args.openkb045, srv, env, args.max_seconds, "OpenKB next doc")
                rows.append((run.system, n, run, after))
    print(f"\n{'system':<22} {'N':>5} {'wall':>8} {'docs':>5} {'req/doc':>8} {'tokens/doc':>11} "
          f"{'next doc: requests':>19} {'tokens':>8}")
    for system, n, run, after in rows:
        nxt = (f"{after.requests:>19} {after.tokens:>8}" if after and after.wall and after.docs
               else f"{'-':>19} {'-':>8}")
        print(f"{system:<22} {n:>5} {_num(run.wall, '7.1f')}s {run.docs:>5} {_num(run.per_doc(run.requests), '8.1f')} "
              f"{_num(run.per_doc(run.tokens), '11.0f')} {nxt}")
        if run.note:
            print(f"{'':<22} {run.note}")
    for system in dict.fromkeys(r[0] for r in rows):
        mine = [(n, run, after) for s, n, run, after in rows if s == system and run.docs]
        if len(mine) >= 2:
            (n0, r0, a0), (n1, r1, a1) = mine[0], mine[-1]
            growth = f"tokens per document, N={n1} over N={n0}: {r1.per_doc(r1.tokens) / r0.per_doc(r0.tokens):.2f}x"
            if a0 and a1 and a0.tokens and a1.tokens:
                growth += f"; next document's tokens: {a1.tokens / a0.tokens:.2f}x"
            print(f"{system}: {growth}")
    print(flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=20, help="documents of the speed run")
    parser.add_argument("--delay", type=float, default=1.0, help="seconds the server takes per call (speed run)")
    parser.add_argument("--jobs", type=int, default=8, help="openkb-git's --jobs of the fast run")
    parser.add_argument("--dense-sizes", default="10,100", help="N of the dense runs, comma-separated")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-dense", action="store_true")
    parser.add_argument("--dense", action="store_true", help="only the dense set (as --skip-speed)")
    parser.add_argument("--max-seconds", type=float, default=900, help="an OpenKB run longer than this is stopped")
    parser.add_argument("--openkb045", type=Path, default=OPENKB_045, help="OpenKB 0.4.5's `openkb` command")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/openkb-bench-llm"))
    args = parser.parse_args()
    for path, what in ((OPENKB_GIT, "openkb-git (pip install -e . in .venv)"), (args.openkb045, "OpenKB 0.4.5")):
        if not path.exists():
            raise SystemExit(f"{path} is missing: {what}")
    args.workdir.mkdir(parents=True, exist_ok=True)
    env = base_env(args.workdir)
    print("openkb add with an LLM: openkb-git (compiler: llm, one call per document, files prepared in parallel) "
          "against OpenKB 0.4.5 (litellm, several calls per document, one document at a time), both on "
          "tests/llm_server.py at 127.0.0.1; wall time of each command (a fresh process, start-up included), "
          "requests and tokens as the server counts them", flush=True)
    if not (args.skip_speed or args.dense):
        speed(args, args.workdir, env)
    if not args.skip_dense:
        dense(args, args.workdir, env)


if __name__ == "__main__":
    main()
