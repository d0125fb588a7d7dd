"""The offline compiler: shared pages are order-independent functions of contributions."""

from __future__ import annotations

from hypothesis import example, given, settings, strategies as st

from conftest import CORPUS, TLDR
from crossprocess import outputs_under_hash_seeds
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
    edited = page.replace(b"## Related Documents", b"My own paragraph.\n\n## Related Documents") + b"\n## Notes\n\nkeep me\n"
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


_COMPILE_DIGESTS = """
import hashlib, sys
from pathlib import Path
from openkb_git.compiler import compile_document, update_concept_page, update_index
from openkb_git.convert import convert_file
pages, index = {}, update_index(None)
for name in sys.argv[1:]:
    path = Path(name)
    conv = convert_file(path, path.stem)
    result = compile_document(path.stem, title=conv.title, text=conv.text, headings=conv.headings,
                              doc_type=conv.doc_type, source_path=f"wiki/sources/{path.stem}.md", pages=conv.pages)
    print(path.stem, hashlib.sha256(repr(result).encode()).hexdigest())
    created = {}
    for slug, contribution in result.concepts.items():
        created[slug] = slug not in pages
        pages[slug] = update_concept_page(pages.get(slug), slug, path.stem, contribution)
    index = update_index(index, docs={path.stem: result.index_line}, concepts=created)
print("pages", hashlib.sha256(repr(pages).encode()).hexdigest())
print("index", hashlib.sha256(index).hexdigest())
"""


def test_compiler_is_deterministic_across_processes():
    """Summaries, contributions (in order), concept pages and the index come out the same in
    separate processes with different hash seeds: nothing depends on the order of a set."""
    paths = [*DOCS[:8], TLDR / "common" / "tar.md", CORPUS / "pdf" / "test_4505.pdf"]
    outputs = outputs_under_hash_seeds(_COMPILE_DIGESTS, *map(str, paths))
    assert len(set(outputs.values())) == 1, outputs
    assert len(outputs["0"].splitlines()) == len(paths) + 2


_KEYS = st.text(alphabet="abcz-:] é", min_size=1, max_size=6)
_BULLETS = {"## Documents": ["- [[summaries/a]] — A", "- [[summaries/b]]", "- [[summaries/a:]] — x", "- [[summaries/c]] — C"],
            "## Concepts": ["- [[concepts/a]] — A", "- [[concepts/b]] — B", "- [[concepts/z-]] — Z"],
            "## Other": ["- [[summaries/a]] — A", "text"]}


@st.composite
def _index_pages(draw):
    """Index pages of many shapes: sections in any order or missing, bullets in any order,
    blank lines or hand text in between, a heading repeated."""
    lines = draw(st.sampled_from([["# Index", ""], [], ["# Index"]]))
    for heading in draw(st.lists(st.sampled_from(sorted(_BULLETS)), max_size=4)):
        lines.append(heading)
        if draw(st.integers(0, 3)):
            lines.append("")
        body = draw(st.lists(st.sampled_from(_BULLETS[heading]), unique=True, max_size=4))
        for line in body:
            lines.append(line)
            if draw(st.integers(0, 3)) == 0:
                lines.append(draw(st.sampled_from(["", "hand text", "### deeper"])))
        lines += [""] * draw(st.sampled_from([0, 0, 1, 1, 2]))
    while lines and lines[-1] == "" and draw(st.integers(0, 3)):
        lines.pop()  # most pages end with one newline, as the fast path requires
    return ("\n".join(lines) + "\n" * draw(st.sampled_from([1, 1, 1, 0, 2]))).encode()


@settings(max_examples=400, deadline=None)
@example("## Documents\n\n- [[summaries/b]]\nhand text\n".encode(), False, {}, {})  # text among the bullets
@example("## Documents\n\n- [[summaries/b]]\n- [[summaries/a]]\n".encode(), False, {}, {})  # unsorted
@given(_index_pages(), st.booleans(), st.dictionaries(_KEYS, st.one_of(st.none(), _KEYS), max_size=4),
       st.dictionaries(_KEYS, st.booleans(), max_size=4))
def test_index_spliced_in_place_equals_the_line_by_line_rendering(page, canonical, docs, concepts):
    """The fast path of update_index (splicing bullets into canonical sections) gives the
    bytes of the line-by-line rendering, or declines; on pages openkb wrote it never declines."""
    from openkb_git.compiler.pages import _render_index, _update_index_in_place as _in_place, index_line, index_updates

    def _update_index_in_place(existing, docs, concepts):
        return _in_place(existing, index_updates(docs, concepts))

    if canonical:  # a page as openkb writes it, then the same updates
        existing = update_index(None, docs={k: index_line(k, v or k) for k, v in docs.items()} or {"seed": "- [[summaries/seed]] — S"},
                                concepts={k: True for k in concepts} or {"seed": True})
    else:
        existing = page
    for docs_update, concepts_update in (
            ({k: (index_line(k, v) if v is not None else None) for k, v in docs.items()}, concepts),
            ({"a": None, "b": "- [[summaries/b]] — new"}, {"a": False, "c": True}),
            ({"a": None, "c": "- [[summaries/c]] — new"}, None), (None, {"a": False, "b": True})):
        fast = _update_index_in_place(existing, docs_update, concepts_update)
        if fast is not None:
            assert fast == _render_index(existing, index_updates(docs_update, concepts_update))
    # A run chains them: each update starts from the text the one before returned (which the
    # splice remembers, with its sections' bullets, to spare splitting them again).
    text = existing
    for docs_update, concepts_update in (
            ({k: (index_line(k, v) if v is not None else None) for k, v in docs.items()}, concepts),
            ({"a": None, "b": "- [[summaries/b]] — new"}, {"a": False, "c": True}),
            ({"b": "- [[summaries/b]] — newer"}, {"d": True}), ({"a": "- [[summaries/a]] — A"}, None),
            ({"a": None, "c": "- [[summaries/c]] — new"}, None), (None, {"a": False, "b": True})):
        slow = _render_index(text, index_updates(docs_update, concepts_update))
        fast = _update_index_in_place(text, docs_update, concepts_update)
        if fast is not None:
            assert fast == slow
        text = slow
    if canonical and any(v is not None for v in docs.values()) and any(concepts.values()):
        assert _update_index_in_place(existing, {k: (index_line(k, v) if v is not None else None) for k, v in docs.items()},
                                      concepts) is not None


_VALUES = st.one_of(st.text(max_size=30), st.lists(st.text(max_size=12), max_size=3), st.integers(),
                    st.none(), st.booleans(), st.dates(), st.just("2024-01-01"), st.just("a\u2028b"),
                    st.just("x\n---\ny"), st.just("yes"), st.just("  spaced "))


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["concepts", "entities"]), description=_VALUES, type_=_VALUES, extra=_VALUES,
       snippet=st.text(min_size=1, max_size=20).filter(lambda s: s.strip()), remove=st.booleans())
def test_a_shared_pages_index_line_known_from_its_update_is_the_one_its_bytes_give(kind, description, type_, extra,
                                                                                   snippet, remove):
    """A document's update of a concept or entity page remembers the page's `description`
    and `type` from the mapping it wrote, not parsing the YAML it just dumped (a popular
    concept's page lists thousands of sources): it must be what reading the bytes gives,
    whatever the keys held (any YAML value, line breaks of every kind, text YAML would read
    as a date or a boolean)."""
    from openkb_git.compiler import pages
    from openkb_git.frontmatter import dump

    fm = {"type": type_, "sources": ["summaries/old.md"], "description": description, "extra key": extra}
    existing = (dump(fm) + "\n# Page\n\n## Mentions\n\n- [[summaries/old]]: said.\n").encode("utf-8")
    updated = pages.update_shared_page(existing, kind, "page", "doc", None if remove else Contribution("page", snippet))
    if updated is None:
        return
    remembered = pages.shared_index_line(kind, "page", updated)
    pages._KEYS_MEMO.clear()
    assert remembered == pages.shared_index_line(kind, "page", updated)  # parsed from the bytes


_YAML_VALUES = st.recursive(
    st.one_of(st.text(max_size=20), st.integers(), st.booleans(), st.none(), st.dates(),
              st.datetimes(), st.floats(allow_nan=False), st.binary(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
    max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(value=_YAML_VALUES)
def test_a_frontmatter_value_written_back_is_read_as_the_same_value(value):
    """update_shared_page keeps a page's other keys as the user wrote them: whatever YAML read
    there (a date, a time, a float, binary data, nested lists and mappings) is written on its
    line so YAML reads the same value back (characters YAML refuses or folds included)."""
    from openkb_git.compiler.pages import dump_frontmatter
    from openkb_git.frontmatter import load_yaml

    block = dump_frontmatter({"k": value})
    assert load_yaml(block[len("---\n"):-len("---\n")]) == {"k": value}
