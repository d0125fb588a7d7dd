"""The wiki in OpenKB 0.4.5's format (issue #16, item 1): OpenKB's own lint, list, status,
visualize and remove treat a KB we compiled as theirs; hand notes on shared pages keep their
place. The real OpenKB runs where it is installed (OPENKB045, default /work/openkb045)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import CORPUS, TLDR, assert_consistent, copy_tldr, git, run_openkb
from openkb_git.compiler import Contribution, compile_document, update_index
from openkb_git.compiler.pages import render_summary, update_concept_page, update_entity_page
from openkb_git.frontmatter import split

OPENKB = Path(os.environ.get("OPENKB045", "/work/openkb045")) / "bin" / "openkb"
needs_openkb = pytest.mark.skipif(not OPENKB.exists(), reason="OpenKB 0.4.5 is not installed (set OPENKB045)")
PAGES = ["tar.md", "git-commit.md", "git-cherry-pick.md", "git-log.md", "ls.md", "grep.md"]


def openkb045(kb: Path, *args: str, home: Path) -> subprocess.CompletedProcess:
    """The real OpenKB's command in ``kb``, its global config kept out of the user's home."""
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENAI_API_KEY", "LLM_API_KEY")}
    env["HOME"] = str(home)
    return subprocess.run([str(OPENKB), *args], cwd=kb, env=env, capture_output=True, text=True, timeout=300)


def build(root: Path, src: Path, names=PAGES, pdfs=("2.pdf",)) -> Path:  # (2.pdf: a long document)
    copy_tldr(src, list(names))
    for name in pdfs:
        shutil.copy(CORPUS / "pdf" / name, src / name)
    run_openkb("init", root, check=True)
    run_openkb("--kb-dir", root, "add", "-q", src, check=True)
    return root


def page(root: Path, path: str) -> tuple[dict, str]:
    fm, body = split((root / path).read_text())
    assert fm is not None, path
    return fm, body


def lint_counts(report: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^### (.+?) \((\d+)\)$", report, re.M)}


@needs_openkb
def test_openkbs_lint_finds_nothing_structural(tmp_path):
    """On main: every concept page lacks 'type' and 'description', every summary 'description'."""
    root = build(tmp_path / "kb", tmp_path / "src")
    proc = openkb045(root, "lint", home=tmp_path / "home")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = lint_counts(proc.stdout)
    assert set(counts) == {"Broken Links", "Orphaned Pages", "Raw Files Without Wiki Entry", "Index Sync Issues",
                           "Invalid Frontmatter", "OKF Conformance"}, proc.stdout
    assert counts == dict.fromkeys(counts, 0), proc.stdout


def test_summaries_concept_pages_and_index_are_in_openkbs_format(tmp_path):
    root = build(tmp_path / "kb", tmp_path / "src")
    fm, body = page(root, "wiki/summaries/tar.md")
    assert list(fm)[:4] == ["type", "description", "doc_type", "full_text"]
    assert fm["type"] == "Summary" and fm["doc_type"] == "short" and fm["full_text"] == "sources/tar.md"
    assert fm["description"].strip()
    record = json.loads((root / ".openkb/registry/tar.json").read_text())
    links = re.findall(r"^- \[\[concepts/([^\]]+)\]\]$", body.split("## Related Concepts", 1)[1], re.M)
    assert links == sorted(record["concepts"]) and links
    long_fm, _ = page(root, "wiki/summaries/2.md")
    assert long_fm["doc_type"] == "pageindex" and long_fm["full_text"] == "sources/2.json"

    slug = record["concepts"][0]
    text = (root / f"wiki/concepts/{slug}.md").read_text()
    cfm, cbody = page(root, f"wiki/concepts/{slug}.md")
    assert list(cfm)[:3] == ["type", "sources", "description"] and cfm["type"] == "Concept"
    assert "summaries/tar.md" in cfm["sources"] and cfm["description"].strip()
    # one line, as OpenKB's `remove` reads and rewrites it
    line = next(line for line in text.splitlines() if line.startswith("sources:"))
    assert json.loads(line[len("sources: "):]) == cfm["sources"]
    mine = next(line for line in cbody.split("## Related Documents", 1)[1].splitlines()
                if line.startswith("- [[summaries/tar]]"))
    assert len(mine) > len("- [[summaries/tar]]: ") + 10  # what tar says about it, not a bare link

    index = (root / "wiki/index.md").read_text()
    headings = [line for line in index.splitlines() if line.startswith("## ")]
    assert headings == ["## Documents", "## Concepts", "## Entities", "## Explorations"]
    assert f"- [[summaries/tar]] (short) — {fm['description']}\n" in index
    assert f"- [[summaries/2]] (pageindex) — {long_fm['description']}\n" in index
    assert f"- [[concepts/{slug}]] — {cfm['description']}\n" in index
    assert_consistent(root)


def test_entity_pages_and_their_links():
    """Hand-made entity contributions (the offline compiler names entities only when the text
    helper finds them): the entity page, the summary's `## Entities`, the index line."""
    a = update_entity_page(None, "openai", "paper", Contribution("openai", "OpenAI trains large models."))
    ab = update_entity_page(a, "openai", "blog", Contribution("openai", "OpenAI published a blog post."))
    fm, body = split(ab.decode())
    assert list(fm) == ["sources", "type", "description"]
    assert fm == {"sources": ["summaries/blog.md", "summaries/paper.md"], "type": "Other",
                  "description": "OpenAI published a blog post."}
    assert body == ("\n# Openai\n\n## Related Documents\n\n- [[summaries/blog]]: OpenAI published a blog post.\n"
                    "- [[summaries/paper]]: OpenAI trains large models.\n")
    # taking the contributions out again gives back the same bytes, then nothing
    assert update_entity_page(ab, "openai", "blog", None) == a
    assert update_entity_page(a, "openai", "paper", None) is None
    summary = render_summary("paper", title="A paper", doc_type="pdf", source_path="wiki/sources/paper.md", pages=3,
                             concepts=["attention"], entities=["openai"], summary=["S."], headings=[],
                             description="A paper about attention.").decode()
    assert "\n## Related Concepts\n\n- [[concepts/attention]]\n\n## Entities\n\n- [[entities/openai]]\n" in summary
    index = update_index(None, entities={"openai": "- [[entities/openai]] (other) — OpenAI trains large models."})
    assert b"## Entities\n\n- [[entities/openai]] (other) \xe2\x80\x94 OpenAI trains large models.\n\n## Explorations" \
        in index


def test_a_concept_description_follows_its_lines_unless_the_user_wrote_it():
    one = update_concept_page(None, "branch", "b", Contribution("branch", "B makes a branch. More."))
    two = update_concept_page(one, "branch", "a", Contribution("branch", "A lists branches."))
    assert split(two.decode())[0]["description"] == "A lists branches."
    assert update_concept_page(two, "branch", "a", None) == one
    mine = two.replace(b'description: "A lists branches."', b'description: "Branches, my words."')
    kept = update_concept_page(update_concept_page(mine, "branch", "a", None), "branch", "c",
                               Contribution("branch", "C deletes a branch."))
    assert split(kept.decode())[0]["description"] == "Branches, my words."


def test_a_hand_note_on_a_concept_page_keeps_its_place_and_blame_credits_the_edit(tmp_path):
    """On main, the next ingest moved a note written under the bullets above them, and
    `openkb blame` credited it to that ingest."""
    root, src = tmp_path / "kb", tmp_path / "src"
    run_openkb("init", root, check=True)
    copy_tldr(src, ["git-commit.md"])
    run_openkb("--kb-dir", root, "add", src / "git-commit.md", check=True)
    record = json.loads((root / ".openkb/registry/git-commit.json").read_text())
    slug = record["concepts"][0]
    path = root / f"wiki/concepts/{slug}.md"
    note = "A note of mine, written under the list."
    path.write_text(path.read_text() + f"\n{note}\n")
    # a second document sharing the concept: the same page and one more line (a new name, sorted after)
    (src / "git-commit-2.md").write_text((src / "git-commit.md").read_text() + "\nOne more line about it.\n")
    run_openkb("--kb-dir", root, "add", src / "git-commit-2.md", check=True)
    assert slug in json.loads((root / ".openkb/registry/git-commit-2.json").read_text())["concepts"]
    lines = path.read_text().rstrip("\n").split("\n")
    assert lines[-1] == note, lines  # still last, under the bullets
    assert any(line.startswith("- [[summaries/git-commit-2]]") for line in lines)
    edit = git(root, "log", "--format=%h %s").splitlines()
    edit_sha = next(line.split()[0] for line in edit if " edit: " in f" {line}")
    proc = run_openkb("--kb-dir", root, "blame", f"wiki/concepts/{slug}.md", "--json", check=True)
    blamed = {entry["text"]: entry for entry in json.loads(proc.stdout)}
    assert blamed[note]["op"] == "edit" and blamed[note]["commit"].startswith(edit_sha[:7]), blamed[note]
    assert_consistent(root)


def test_a_date_added_by_hand_to_a_concept_pages_frontmatter_is_kept_by_the_next_ingest(tmp_path):
    """On main, `created: 2024-01-01` added by hand to a concept page's frontmatter failed every
    later document sharing the concept: "internal error while committing: TypeError: Object of
    type date is not JSON serializable", exit 1. The next ingest keeps the date, as a date."""
    root, src = tmp_path / "kb", tmp_path / "src"
    run_openkb("init", root, check=True)
    copy_tldr(src, ["git-commit.md"])
    run_openkb("--kb-dir", root, "add", src / "git-commit.md", check=True)
    slug = json.loads((root / ".openkb/registry/git-commit.json").read_text())["concepts"][0]
    path = root / f"wiki/concepts/{slug}.md"
    path.write_text(path.read_text().replace("---\n", "---\ncreated: 2024-01-01\nweight: 1e+3\n", 1))
    (src / "git-commit-2.md").write_text((src / "git-commit.md").read_text() + "\nOne more line about it.\n")
    proc = run_openkb("--kb-dir", root, "add", src / "git-commit-2.md")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert slug in json.loads((root / ".openkb/registry/git-commit-2.json").read_text())["concepts"]
    fm, _body = split(path.read_text())
    assert fm["created"] == __import__("datetime").date(2024, 1, 1) and fm["weight"] == "1e+3"
    assert "- [[summaries/git-commit-2]]" in path.read_text()
    assert_consistent(root)


@needs_openkb
def test_openkbs_list_status_visualize_and_remove_then_our_writer_leaves_fsck_clean(tmp_path):
    """OpenKB's `remove` deletes the document's files and prunes the pages (it rewrote nothing on
    main: `sources:` was a YAML block list); our next writer commits that as a `remove` whose
    shared pages are byte for byte those of a KB that never had the document."""
    root = build(tmp_path / "kb", tmp_path / "src")
    home = tmp_path / "home"
    listed = openkb045(root, "list", home=home)
    assert listed.returncode == 0 and "Documents (7):" in listed.stdout, listed.stdout + listed.stderr
    status = openkb045(root, "status", home=home)
    assert "Total indexed: 7 document(s)" in status.stdout, status.stdout + status.stderr
    shown = openkb045(root, "visualize", "--no-open", home=home)
    assert shown.returncode == 0 and "Graph written to" in shown.stdout, shown.stdout + shown.stderr
    assert openkb045(root, "lint", home=home).returncode == 0
    assert (root / "output").is_dir() and any((root / "wiki/reports").iterdir())
    assert git(root, "status", "--porcelain") == ""  # OpenKB's graph (output/) and lint reports are ignored
    removed = openkb045(root, "remove", "-y", "tar", home=home)
    assert "[OK] tar.md removed" in removed.stdout, removed.stdout + removed.stderr
    assert not (root / "wiki/summaries/tar.md").exists()
    copy_tldr(tmp_path / "more", ["zip.md"])
    run_openkb("--kb-dir", root, "add", tmp_path / "more" / "zip.md", check=True)
    assert git(root, "log", "-2", "--format=%s").splitlines()[1].startswith("remove: tar")
    assert git(root, "status", "--porcelain") == ""
    fsck = run_openkb("--kb-dir", root, "fsck")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    assert_consistent(root)
    # the shared pages: those of the same documents added without tar
    other = tmp_path / "other"
    build(other, tmp_path / "src2", names=[n for n in PAGES if n != "tar.md"])
    run_openkb("--kb-dir", other, "add", tmp_path / "more" / "zip.md", check=True)
    for folder in ("wiki/concepts", "wiki/entities"):
        ours = {p.name: p.read_bytes() for p in (root / folder).glob("*.md")}
        theirs = {p.name: p.read_bytes() for p in (other / folder).glob("*.md")}
        assert ours == theirs, folder
    assert (root / "wiki/index.md").read_bytes() == (other / "wiki/index.md").read_bytes()


def test_a_documents_own_double_brackets_are_no_wikilinks():
    """bash's `[[` page: its title and sentences hold `[[ … ]]`, which OpenKB's lint read as a
    broken wikilink running into the page's first real link."""
    summary = render_summary("document-797554ff", title="[[", doc_type="md", source_path="wiki/sources/x.md",
                             pages=None, concepts=["directory-exists"], summary=["Test if [[ -d path ]] holds."],
                             headings=[(1, "[[")], description="Test if [[ -d path ]] holds.").decode()
    assert re.findall(r"\[\[([^\]]+)\]\]", summary) == ["concepts/directory-exists"]
    assert split(summary)[0]["title"] == "\\[\\["  # (Markdown's escape: it reads as "[[")
    page = update_concept_page(None, "test", "x", Contribution("test", "Use [[ -f file ]] for files.")).decode()
    assert re.findall(r"\[\[([^\]]+)\]\]", page) == ["summaries/x"]
