"""The offline, deterministic compiler.

Per document: a summary page (title, extractive summary, outline, concepts) and up to
`k` concept contributions from the document's own keyphrases. Shared pages — concept
pages and the index — are deterministic functions of the set of per-document
contributions, in a stable (sorted) order: adding a document's contribution and
removing it again gives back the same bytes, whatever happened in between. This is
what makes `openkb revert` exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from .pages import (
    index_line,
    phrase_of,
    render_summary,
    update_concept_page,
    update_index,
)
from .text import extract_keyphrases, extractive_summary, normalize_phrase, sentences, snippet_for


@dataclass(frozen=True)
class Contribution:
    """One document's contribution to one concept page."""

    phrase: str
    snippet: str


@dataclass(frozen=True)
class Compiled:
    summary: bytes  # wiki/summaries/<doc>.md
    concepts: dict[str, Contribution]  # slug -> contribution
    index_line: str  # the document's line in index.md


def slugify(phrase: str) -> str:
    """"attention mechanism" -> "attention-mechanism" (inverse: phrase_of)."""
    return "-".join(normalize_phrase(phrase).split())


def compile_document(doc: str, *, title: str, text: str, headings: list[tuple[int, str]], doc_type: str,
                     source_path: str, pages: int | None, tree: list[dict] | None = None,
                     k: int = 5) -> Compiled:
    """Compile one document: its summary page, its concept contributions, its index line."""
    doc_sentences = sentences(text)
    phrases = [p for p in extract_keyphrases(text, k) if slugify(p)]
    concepts = {}
    for phrase in phrases:
        slug = slugify(phrase)
        if slug and len(slug) <= 100:
            concepts[slug] = Contribution(phrase=phrase_of(slug), snippet=snippet_for(phrase, doc_sentences))
    summary = render_summary(doc, title=title, doc_type=doc_type, source_path=source_path, pages=pages,
                             concepts=sorted(concepts), summary=extractive_summary(doc_sentences, phrases),
                             headings=headings)
    return Compiled(summary=summary, concepts=concepts, index_line=index_line(doc, title))


__all__ = ["Compiled", "Contribution", "compile_document", "extract_keyphrases",
           "slugify", "update_concept_page", "update_index"]
