"""A knowledge base of N documents, built fast, shaped like one `openkb add` makes.

Ingesting 50,000 real documents one commit at a time takes hours, and the commit-path
benchmarks only need the *shape* of a large KB: N registry records, N raw / source /
summary files, ~N/5 shared concept pages each listing its documents, and an index
with one line per document and per concept. This module writes that working tree with
the compiler's own page format, commits it as one snapshot with the `git` command line,
then lets `openkb fsck --repair` build the views and the Git index exactly as openkb
keeps them, so the result is a KB openkb accepts as its own (fsck clean).

Built KBs are cached under a folder (default /tmp/openkb-bench) by size; a cached KB
is checked with `openkb fsck` before reuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TLDR = ROOT.parent / "shared" / "corpus" / "md" / "tldr"
CONCEPTS_PER_DOC = 3
DOCS_PER_CONCEPT = 5
GIT_ENV = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@localhost",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@localhost"}


def openkb(*args: str, kb: Path, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-m", "openkb_git", "--kb-dir", str(kb), *map(str, args)],
                          capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise SystemExit(f"openkb {' '.join(map(str, args))} failed ({proc.returncode}): {proc.stderr}")
    return proc


def git(kb: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "-C", str(kb), *args], capture_output=True, text=True, env=GIT_ENV, check=check)


@lru_cache(maxsize=1)
def tldr_pages() -> list[Path]:
    return sorted(TLDR.glob("*/*.md"))


def concept_slug(i: int) -> str:
    return f"topic-{i:06d}"


def doc_concepts(i: int, n_concepts: int) -> list[str]:
    return sorted({concept_slug((i * 7 + k * 9973) % n_concepts) for k in range(CONCEPTS_PER_DOC)})


def doc_files(doc: str, text: bytes, concepts: list[str], source: str) -> dict[str, bytes]:
    """raw, source, summary and registry record of one document, in openkb's formats."""
    sha = hashlib.sha256(text).hexdigest()
    title = doc
    summary = (f"---\ntitle: {title}\nsources:\n- {doc}\ntype: summary\n---\n\n# {title}\n\n"
               + text.decode("utf-8", "replace")[:400].strip() + "\n\n## Concepts\n\n"
               + "".join(f"- [[concepts/{c}]]\n" for c in concepts))
    record = {
        "concepts": concepts, "doc_name": doc, "name": f"{doc}.md", "path": source,
        "raw_path": f"raw/{doc}.md", "sha256": sha, "source_path": f"wiki/sources/{doc}.md",
        "summary_path": f"wiki/summaries/{doc}.md", "title": title, "type": "md",
        "files": [f"raw/{doc}.md", f"wiki/sources/{doc}.md", f"wiki/summaries/{doc}.md"],
    }
    return {
        f"raw/{doc}.md": text,
        f"wiki/sources/{doc}.md": text,
        f"wiki/summaries/{doc}.md": summary.encode("utf-8"),
        f".openkb/registry/{doc}.json": (json.dumps(record, sort_keys=True, indent=2) + "\n").encode("utf-8"),
    }


def concept_page(slug: str, docs: list[str]) -> bytes:
    title = slug.replace("-", " ").title()
    head = "---\nsources:\n" + "".join(f"- {d}\n" for d in docs) + f"title: {title}\ntype: concept\n---\n\n# {title}\n\n## Mentions\n\n"
    return (head + "".join(f"- [[summaries/{d}]]: {d}\n" for d in docs)).encode("utf-8")


def index_page(docs: list[str], concepts: list[str]) -> bytes:
    lines = ["# Index", "", "## Documents", ""] + [f"- [[summaries/{d}]] — {d}" for d in sorted(docs)]
    lines += ["", "## Concepts", ""] + [f"- [[concepts/{c}]] — {c.replace('-', ' ').title()}" for c in sorted(concepts)]
    return ("\n".join(lines) + "\n").encode("utf-8")


def build(n_docs: int, cache: Path) -> Path:
    """The path of a KB of ``n_docs`` documents (built now, or reused from ``cache``)."""
    kb = cache / f"synthetic-{n_docs}"
    if (kb / ".openkb" / "built").exists():
        if openkb("fsck", kb=kb, check=False).returncode == 0:
            return kb
    shutil.rmtree(kb, ignore_errors=True)
    cache.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "openkb_git", "init", str(kb)], check=True, capture_output=True, env=GIT_ENV)
    pages = tldr_pages()
    n_concepts = max(1, n_docs // DOCS_PER_CONCEPT * CONCEPTS_PER_DOC)
    members: dict[str, list[str]] = {}
    docs = []
    for i in range(n_docs):
        doc = f"doc-{i:06d}"
        docs.append(doc)
        text = pages[i % len(pages)].read_bytes() + f"\n<!-- copy {i} -->\n".encode()
        concepts = doc_concepts(i, n_concepts)
        for c in concepts:
            members.setdefault(c, []).append(doc)
        for path, data in doc_files(doc, text, concepts, f"/bench/{doc}.md").items():
            target = kb / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
    for slug, docs_of in members.items():
        (kb / "wiki" / "concepts").mkdir(parents=True, exist_ok=True)
        (kb / "wiki" / "concepts" / f"{slug}.md").write_bytes(concept_page(slug, sorted(docs_of)))
    (kb / "wiki" / "index.md").write_bytes(index_page(docs, list(members)))
    git(kb, "add", "-A")
    git(kb, "commit", "-q", "-m", f"add: {n_docs} synthetic documents\n\nOpenKB-Op: add\n")
    openkb("fsck", "--repair", kb=kb, check=False)  # views and the Git index as openkb keeps them
    openkb("fsck", kb=kb)
    (kb / ".openkb" / "built").write_text(str(n_docs))  # untracked (.openkb/ is ignored but for config/registry)
    if git(kb, "status", "--porcelain").stdout.strip():
        raise SystemExit(f"{kb}: git status is not clean after the build")
    return kb


def new_document_change(kb: Path, i: int) -> dict[str, bytes]:
    """The change one more ingest makes, computed from the working tree: about 8 paths —
    raw, source, summary, registry record, 3 concept pages, the index."""
    pages = tldr_pages()
    doc = f"new-{i:06d}-{os.getpid()}"
    n_concepts = len(list((kb / "wiki" / "concepts").iterdir()))
    concepts = doc_concepts(i, n_concepts)
    change = doc_files(doc, pages[(i * 31) % len(pages)].read_bytes() + f"\n<!-- new {i} -->\n".encode(),
                       concepts, f"/bench/{doc}.md")
    for slug in concepts:
        path = f"wiki/concepts/{slug}.md"
        page = (kb / path).read_bytes()
        change[path] = page.replace(b"sources:\n", f"sources:\n- {doc}\n".encode(), 1) + f"- [[summaries/{doc}]] — {doc}\n".encode()
    index = (kb / "wiki" / "index.md").read_bytes()
    change["wiki/index.md"] = index.replace(b"\n\n## Concepts", f"\n- [[summaries/{doc}]] — {doc}\n\n## Concepts".encode(), 1)
    return change
