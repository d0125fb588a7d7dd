"""The merge package: one dispatch by path, one merge of the shared pages, a public conflict."""

from __future__ import annotations

import pytest

from openkb_git.compiler import Contribution, update_concept_page, update_index
from openkb_git.compiler.pages import index_line
from openkb_git.merge import MergeConflict, merge_file

PAGE = "wiki/concepts/commit.md"


def concept(*docs: str, note: str = "") -> bytes | None:
    page = None
    for doc in docs:
        page = update_concept_page(page, "commit", doc, Contribution("commit", f"{doc} makes a commit."))
    if note and page is not None:
        page += f"\n{note}\n".encode()
    return page


def index(docs: dict[str, str], concepts: list[str], note: str = "") -> bytes:
    page = update_index(None, docs={d: index_line(d, t) for d, t in docs.items()}, concepts={c: True for c in concepts})
    return page.replace(b"# Index\n", f"# Index\n\n{note}\n".encode()) if note else page


def test_revert_of_an_ingest_drops_its_mention_and_keeps_later_ones():
    assert merge_file(PAGE, concept("a", "b"), concept("a", "b", "c"), concept("b")) == concept("b", "c")
    assert merge_file(PAGE, concept("a"), concept("a", "c"), None) == concept("c")
    assert merge_file(PAGE, concept("a"), concept("a"), None) is None  # nothing left: deleted


def test_a_page_left_with_only_the_users_text_is_kept():
    merged = merge_file(PAGE, concept("a"), concept("a", note="My own words."), None)
    assert merged is not None and b"My own words." in merged and b"[[summaries/a]]" not in merged


def test_reverting_a_hand_edit_of_a_page_takes_it_out_and_keeps_later_mentions():
    """base = the edit, theirs = before it, ours = the edit and a later ingest."""
    edited = concept("a", note="A hand-written note.")
    later = update_concept_page(edited, "commit", "c", Contribution("commit", "c makes a commit."))
    assert merge_file(PAGE, edited, later, concept("a")) == concept("a", "c")


def test_both_sides_changing_the_text_merge_or_conflict():
    base = concept("a", note="line one\n\nline two")
    ours = concept("a", "c", note="line one, ours\n\nline two")
    theirs = concept("a", note="line one\n\nline two, theirs")
    merged = merge_file(PAGE, base, ours, theirs)
    assert b"line one, ours" in merged and b"line two, theirs" in merged and b"[[summaries/c]]" in merged
    clash = merge_file(PAGE, base, ours, concept("a", note="line one, theirs\n\nline two"))
    assert isinstance(clash, MergeConflict) and clash.path == PAGE and "overlapping" in clash.reason


def test_a_mention_both_sides_changed_is_a_public_conflict_naming_the_path():
    ours = concept("a").replace(b"a makes a commit.", b"(my note) a makes a commit.")
    conflict = merge_file(PAGE, concept("a"), ours, None)
    assert isinstance(conflict, MergeConflict)
    assert str(conflict) == f"{PAGE}: both sides changed 'the mention of [[a]]'"
    assert "(my note)" in conflict.ours and conflict.theirs == "(absent)"


def test_index_concept_lines_follow_the_pages_when_told_and_are_keyed_otherwise():
    base = index({"a": "A", "b": "B"}, ["apply", "patch"])
    ours = index({"a": "A", "b": "B", "c": "C"}, ["apply", "patch", "zip"])
    theirs = index({"b": "B"}, ["patch"])
    keyed = merge_file("wiki/index.md", base, ours, theirs)
    assert keyed == index({"b": "B", "c": "C"}, ["patch", "zip"])
    followed = merge_file("wiki/index.md", base, ours, theirs, concept_exists={"apply": True, "patch": True})
    assert followed == index({"b": "B", "c": "C"}, ["apply", "patch", "zip"])


def test_an_index_brief_both_sides_changed_follows_the_page_the_merge_leaves():
    """A brief is the concept page's description: `openkb sync` replaying a hand-resolved
    `git revert` (pages kept, index lines changed) on a remote whose ingest changed the same
    brief stopped with "both sides changed 'the index line of [[git]]'". Given the pages as
    the merge leaves them (page_of) the line follows its page; a line only one side changed
    is kept as that side has it, also when other lines follow their pages."""
    def with_brief(page: bytes, slug: str, brief: str) -> bytes:
        import re

        return re.sub(rf"(?m)^- \[\[concepts/{slug}\]\].*$".encode(), f"- [[concepts/{slug}]] — {brief}".encode(), page)

    base = with_brief(index({"a": "A"}, ["git", "patch"]), "git", "Git, named in a and 2 more document(s).")
    ours = with_brief(base, "git", "Git, named in a and 3 more document(s).")
    theirs = with_brief(with_brief(base, "git", "Git, named in a and 1 more document(s)."), "patch", "My brief.")
    clash = merge_file("wiki/index.md", base, ours, theirs)
    assert isinstance(clash, MergeConflict) and "the index line of [[git]]" in clash.reason
    page = concept("a", "b").replace(b"commit", b"git")
    merged = merge_file("wiki/index.md", base, ours, theirs, concept_exists={},
                        page_of=lambda kind, slug: page if (kind, slug) == ("concepts", "git") else None)
    from openkb_git.compiler.pages import page_description
    assert f"- [[concepts/git]] — {page_description(page)}\n".encode() in merged
    assert b"- [[concepts/patch]] \xe2\x80\x94 My brief.\n" in merged


def test_index_changed_line_is_reapplied_under_later_lines():
    """A re-ingest with a new title, reverted under a later add: the old line comes back."""
    base = index({"a": "New title"}, [])
    ours = index({"a": "New title", "c": "C"}, [])
    theirs = index({"a": "Old title"}, [])
    assert merge_file("wiki/index.md", base, ours, theirs) == index({"a": "Old title", "c": "C"}, [])


def test_index_text_outside_the_lines_merges_too():
    base = index({"a": "A"}, [], note="A note.")
    ours = index({"a": "A", "c": "C"}, [], note="A note.")
    assert merge_file("wiki/index.md", base, ours, index({"a": "A"}, [])) == index({"a": "A", "c": "C"}, [])


@pytest.mark.parametrize("path", ["wiki/summaries/a.md", ".openkb/registry/a.json", "wiki/other.md"])
def test_other_paths_conflict_with_their_path(path):
    data = b'{"a": 1}\n' if path.endswith(".json") else b"---\nx: 1\n---\n# A\n\ntext\n"
    ours = data.replace(b"1", b"2")
    conflict = merge_file(path, data, ours, data.replace(b"1", b"3"))
    assert isinstance(conflict, MergeConflict) and conflict.path == path
