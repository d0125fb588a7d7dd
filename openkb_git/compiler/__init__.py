"""The offline, deterministic compiler.

Per document: a summary page in OpenKB's format (description, summary, outline, links to its
concept and entity pages), its contributions to up to `k` concept pages (its keyphrases) and
to the entity pages of the named entities it names, and its index line. Shared pages —
concept and entity pages, the index — are deterministic functions of the set of
per-document contributions, in a stable (sorted) order: adding a document's contribution
and removing it again gives back the same bytes, whatever happened in between. This is what
makes `openkb revert` exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .pages import (clip, index_line, phrase_of, render_summary, update_concept_page, update_entity_page,
                    update_index, update_shared_page)
from .text import (concept_sentences, describe, detect_language, extract_entities, extract_keyphrases,
                   extractive_summary, normalize_phrase, sentences)


@dataclass(frozen=True)
class Contribution:
    """One document's contribution to one shared page: the phrase (or entity name) and what
    the document says about it (its own sentences, one line)."""

    phrase: str
    snippet: str


@dataclass(frozen=True)
class Compiled:
    summary: bytes  # wiki/summaries/<doc>.md
    concepts: dict[str, Contribution]  # slug -> contribution
    index_line: str  # the document's line in index.md
    description: str = ""
    entities: dict[str, Contribution] = field(default_factory=dict)  # slug -> contribution


def slugify(phrase: str) -> str:
    """"attention mechanism" -> "attention-mechanism" (inverse: phrase_of)."""
    return "-".join(normalize_phrase(phrase).split())


def _says(phrase: str, doc_sentences: list[str]) -> str:
    """What the document says about ``phrase``: its best sentences, on one line."""
    return clip(" ".join(concept_sentences(phrase, doc_sentences)), 600)


def compile_document(doc: str, *, title: str, text: str, headings: list[tuple[int, str]], doc_type: str,
                     source_path: str, pages: int | None, tree: list[dict] | None = None,
                     k: int = 5) -> Compiled:
    """Compile one document: its summary page, its contributions to at most ``k`` concept pages
    (the config's `concepts_per_doc`) and to the entity pages of the entities it names, its
    index line."""
    doc_sentences = sentences(text)
    phrases = [p for p in extract_keyphrases(text, k) if slugify(p)]
    concepts = {}
    for phrase in phrases:
        slug = slugify(phrase)
        if slug and len(slug) <= 100:
            concepts[slug] = Contribution(phrase=phrase_of(slug), snippet=_says(phrase, doc_sentences))
    entities = {}
    for name in extract_entities(text, k) if k else []:
        slug = slugify(str(name))
        if slug and len(slug) <= 100 and slug not in entities:
            entities[slug] = Contribution(phrase=phrase_of(slug), snippet=_says(str(name), doc_sentences))
    description = clip(describe(text, doc_sentences, headings), 300) or " ".join(title.split()) or doc
    summary = render_summary(doc, title=title, doc_type=doc_type, source_path=source_path, pages=pages,
                             concepts=sorted(concepts), summary=extractive_summary(doc_sentences, phrases),
                             headings=headings, description=description, entities=sorted(entities),
                             language=detect_language(text))
    return Compiled(summary=summary, concepts=concepts, index_line=index_line(doc, description, doc_type),
                    description=description, entities=entities)


def compile_with_llm(doc: str, *, title: str, text: str, headings: list[tuple[int, str]], doc_type: str,
                     source_path: str, pages: int | None, settings, k: int = 5) -> tuple[Compiled, list[str], dict]:
    """Compile one document from the model's answer (compiler/llm.py): the same parts as
    compile_document, from the model's description, summary, concepts and entities, each
    sanitized. Returns (compiled, warnings, usage); raises LLMError (a ConversionError)."""
    from .llm import MAX_DESCRIPTION, MAX_NAME, MAX_SAYS, MAX_SUMMARY, ask, clean_text, messages_for

    messages = messages_for(title=title, doc_type=doc_type, text=text, k=k, max_chars=settings.max_input_chars)
    answer, usage = ask(settings, messages)
    warnings: list[str] = []
    doc_sentences = None

    def contributions(field: str) -> dict[str, Contribution]:
        nonlocal doc_sentences
        out: dict[str, Contribution] = {}
        for item in answer[field]:
            if len(out) >= k:
                break
            name = clean_text(item["name"])
            slug = slugify(name[:10 * MAX_NAME])
            if not slug or len(slug) > MAX_NAME:
                shown = clip(name, 60) or repr(item["name"][:60])
                warnings.append(f"the model named a {field[:-1] if field == 'concepts' else 'entity'} that cannot be a "
                                f"page name ({len(item['name'])} characters: {shown}); left out")
                continue
            if slug in out:
                continue
            says = clip(clean_text(item["says"]), MAX_SAYS)
            if not says:
                doc_sentences = sentences(text) if doc_sentences is None else doc_sentences
                says = _says(name, doc_sentences)
            out[slug] = Contribution(phrase=phrase_of(slug), snippet=says)
        return out

    concepts, entities = contributions("concepts"), contributions("entities")
    description = clip(clean_text(answer["description"]), MAX_DESCRIPTION) or " ".join(title.split()) or doc
    summary = clip(clean_text(" ".join(answer["summary"])), MAX_SUMMARY)
    page = render_summary(doc, title=title, doc_type=doc_type, source_path=source_path, pages=pages,
                          concepts=sorted(concepts), summary=[summary] if summary else [], headings=headings,
                          description=description, entities=sorted(entities), language=detect_language(text))
    return (Compiled(summary=page, concepts=concepts, index_line=index_line(doc, description, doc_type),
                     description=description, entities=entities), warnings, usage)


__all__ = ["Compiled", "compile_with_llm", "Contribution", "compile_document", "extract_keyphrases", "slugify", "update_concept_page",
           "update_entity_page", "update_index", "update_shared_page"]
