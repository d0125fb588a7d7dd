"""The one frontmatter split (openkb_git/frontmatter.py): the edge cases, and its callers agree."""

from __future__ import annotations

import pytest

from openkb_git.compiler.pages import render_summary, update_concept_page
from openkb_git.convert.text import convert_text
from openkb_git.frontmatter import dump, parts, split
from openkb_git.ops.review import split_structured


def test_a_page_openkb_writes_round_trips():
    data = {"title": "Git commit", "sources": ["b", "a"], "type": "md"}
    text = dump(data) + "\n# Git commit\n"
    assert split(text) == (data, "\n# Git commit\n")


@pytest.mark.parametrize("text, expected", [
    ("---\n---\nbody\n", ({}, "body\n")),                        # an empty block is {}
    ("---\n# only a comment\n---\nbody\n", ({}, "body\n")),
    ("---\na: 1\n---", ({"a": 1}, "")),                          # the closing line ends the text
    ("---\r\na: 1\r\n---\r\nbody\r\n", ({"a": 1}, "body\r\n")),  # CRLF
    ("---\na: 1\n---\nbody\n---\nmore\n", ({"a": 1}, "body\n---\nmore\n")),  # first close wins
    ("---\na: |\n  x\n  ---\n---\nbody\n", ({"a": "x\n---\n"}, "body\n")),  # indented: YAML, not a close
])
def test_edge_cases(text, expected):
    assert split(text) == expected


@pytest.mark.parametrize("text", [
    "no frontmatter\n---\na: 1\n",
    "---\na: 1\nno closing line\n",  # not closed: all body
    "---\na: [1\n---\nbody\n",       # not YAML: all body, nothing dropped
    "---\n- a list\n---\nbody\n",    # not a mapping
    "----\na: 1\n----\nbody\n",      # a rule, not a delimiter
    "---\na: 1\n----\nbody\n",
    " ---\na: 1\n---\n",
])
def test_no_frontmatter_keeps_all_text_as_body(text):
    assert split(text) == (None, text)


def test_parts_gives_the_yaml_text():
    assert parts("---\na: 1\nb: 2\n---\nbody") == ("a: 1\nb: 2\n", "body")
    assert parts("---\na: 1\n") is None


def test_callers_use_the_same_split():
    """The compiler, the converter and review read the same frontmatter from the same text,
    including the cases their four copies disagreed on (CRLF, an empty block, a close at EOF)."""
    for text in ("---\ntitle: Hello\n---\n# Body\n", "---\r\ntitle: Hello\r\n---\r\n# Body\r\n",
                 "---\ntitle: Hello\n---"):
        assert split_structured("wiki/x.md", text) == split(text)
        converted = convert_text(text.encode(), ".md", "stem", "doc")
        assert converted.title == "Hello"
    assert split_structured("wiki/x.md", "---\n---\nbody\n") == ({}, "body\n")


def test_broken_frontmatter_on_a_concept_page_is_kept_as_text():
    """A hand edit that breaks the YAML: updating the page keeps the user's lines (the old
    split read it as empty frontmatter and dropped them)."""
    broken = b"---\ntitle: [unclosed\n---\n# Commit\n\n## Mentions\n\n- [[summaries/a]]: x\n"
    from openkb_git.compiler import Contribution
    out = update_concept_page(broken, "commit", "b", Contribution("commit", "y")).decode()
    assert "title: [unclosed" in out
    assert "- [[summaries/b]]: y" in out


def test_summary_frontmatter_reads_back():
    page = render_summary("d", title="T: a colon", doc_type="md", source_path="raw/d.md", pages=None,
                          concepts=["b", "a"], summary=["S."], headings=[]).decode()
    fm, body = split(page)
    assert fm == {"type": "Summary", "description": "T: a colon", "doc_type": "short", "full_text": "raw/d.md",
                  "title": "T: a colon"}
    assert body.startswith("\n# T: a colon\n")
