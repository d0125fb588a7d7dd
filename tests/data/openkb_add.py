"""Run the real OpenKB 0.4.5's `add` of files into a KB, with its model calls answered here.

Run with OpenKB's own interpreter (its venv, never ours): python openkb_add.py KB FILE...

Everything is OpenKB's own code path — its lock, converter (raw/, wiki/sources/, images),
mutation journal, hashes.json entry and log.md line — except the three model calls of
`compile_short_doc`, which need a hosted LLM. In their place this writes what they would
make, through OpenKB's own page writers (`_write_summary`, `_write_concept`, `_update_index`,
the backlinks): a summary whose description is the document's first line, and one concept
page per `concept:` line of the document (an existing page is rewritten whole, as OpenKB's
model does, keeping what it said and adding this document's part).
"""

from __future__ import annotations

import sys
from pathlib import Path

import openkb.agent.compiler as compiler
from openkb.cli import add_single_file


async def compile_without_model(doc_name, source_path, kb_dir, model, max_concurrency=5):
    wiki = Path(kb_dir) / "wiki"
    text = Path(source_path).read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    brief = lines[0].lstrip("# ").strip() if lines else doc_name
    concepts = [line.split(":", 1)[1].strip() for line in lines if line.lower().startswith("concept:")]
    slugs = [compiler._sanitize_concept_name(name).lower() for name in concepts]
    links = "".join(f"\n- [[concepts/{slug}]]" for slug in slugs)
    compiler._write_summary(wiki, doc_name, f"# {brief}\n\n{text.strip()}\n\n## Related Concepts{links}\n",
                            description=brief)
    briefs = {}
    for name, slug in zip(concepts, slugs):
        page = wiki / "concepts" / f"{slug}.md"
        briefs[slug] = f"{name}, as {doc_name} describes it"
        # a model asked to rewrite the page keeps what it says and adds this document's part
        said = (page.read_text(encoding="utf-8").split("\n---\n", 1)[-1].strip() + "\n\n") if page.exists() else f"# {name}\n\n"
        compiler._write_concept(wiki, slug, f"{said}{name} is discussed in [[summaries/{doc_name}]].\n",
                                f"summaries/{doc_name}.md", is_update=page.exists(), brief=briefs[slug])
    compiler._backlink_concepts(wiki, doc_name, slugs)
    compiler._update_index(wiki, doc_name, slugs, doc_brief=brief, concept_briefs=briefs)


compiler.compile_short_doc = compile_without_model

if __name__ == "__main__":
    kb = Path(sys.argv[1]).resolve()
    outcomes = [add_single_file(Path(name).resolve(), kb) for name in sys.argv[2:]]
    print(" ".join(outcomes))
    sys.exit(0 if all(o == "added" for o in outcomes) else 1)
