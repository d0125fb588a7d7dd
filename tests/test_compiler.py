"""The offline compiler: shared pages are order-independent functions of contributions."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from conftest import TLDR
from openkb_git.compiler import Contribution, compile_document, extract_keyphrases, slugify, update_concept_page, update_index
from openkb_git.convert import convert_file

DOCS = sorted(p for p in (TLDR / "common").glob("git-*.md"))[:30]


def compiled(path):
    conv = convert_file(path, path.stem)
    return compile_document(path.stem, title=conv.title, text=conv.text, headings=conv.headings,
                            doc_type=conv.doc_type, source_path=f"wiki/sources/{path.stem}.md", pages=conv.pages)


def build(order, results):
    pages: dict[str, bytes] = {}
    index = update_index(None)
    for doc in order:
        result = results[doc]
        created = {}
        for slug, contribution in result.concepts.items():
            before = pages.get(slug)
            pages[slug] = update_concept_page(before, slug, doc, contribution)
            if before is None:
                created[slug] = True
        index = update_index(index, docs={doc: result.index_line}, concepts=created)
    return pages, index


def remove(pages, index, doc, result):
    pages = dict(pages)
    gone = {}
    for slug in result.concepts:
        pages[slug] = update_concept_page(pages[slug], slug, doc, None)
        if pages[slug] is None:
            del pages[slug]
            gone[slug] = False
    return pages, update_index(index, docs={doc: None}, concepts=gone)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.sampled_from(DOCS), min_size=3, max_size=8, unique=True), st.randoms(use_true_random=False))
def test_shared_pages_do_not_depend_on_order_and_removal_is_exact(paths, rnd):
    results = {p.stem: compiled(p) for p in paths}
    order = sorted(results)
    shuffled = list(order)
    rnd.shuffle(shuffled)
    assert build(order, results) == build(shuffled, results)
    victim = rnd.choice(order)
    pages, index = build(shuffled, results)
    without = build([d for d in order if d != victim], results)
    assert remove(pages, index, victim, results[victim]) == without


def test_user_text_on_a_concept_page_is_kept():
    page = update_concept_page(None, "git-branch", "a", Contribution("git branch", "Snippet a."))
    edited = page.replace(b"## Mentions", b"My own paragraph.\n\n## Mentions") + b"\n## Notes\n\nkeep me\n"
    updated = update_concept_page(edited, "git-branch", "b", Contribution("git branch", "Snippet b."))
    assert b"My own paragraph." in updated and b"keep me" in updated and b"[[summaries/b]]: Snippet b." in updated
    # Removing every source keeps a page the user wrote on.
    emptied = update_concept_page(update_concept_page(updated, "git-branch", "a", None), "git-branch", "b", None)
    assert emptied is not None and b"My own paragraph." in emptied
    assert update_concept_page(page, "git-branch", "a", None) is None


def test_yaml_hostile_titles_round_trip():
    import yaml

    for title in ['Colon: here', "it's \"quoted\"", "---", "Ünïcødé 日本", "- dash", "#hash"]:
        result = compile_document("d", title=title, text="Some words here. More words here.", headings=[],
                                  doc_type="md", source_path="wiki/sources/d.md", pages=None)
        front = result.summary.decode().split("---\n")[1]
        assert yaml.safe_load(front)["title"] == title


def test_keyphrases_and_slugs_are_clean():
    text = (TLDR / "common" / "tar.md").read_text()
    phrases = extract_keyphrases(text)
    assert phrases and all(p == p.lower() and "{" not in p and "`" not in p for p in phrases)
    assert slugify("Attention Mechanism!") == "attention-mechanism"
    assert compiled(TLDR / "common" / "tar.md") == compiled(TLDR / "common" / "tar.md")
