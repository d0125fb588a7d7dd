"""`openkb init`: layout, first commit, adoption of an existing OpenKB knowledge base."""

from __future__ import annotations

import json

from conftest import assert_consistent, git, run_openkb


def test_init_creates_layout_and_first_commit(tmp_path):
    root = tmp_path / "kb"
    proc = run_openkb("init", root)
    assert proc.returncode == 0, proc.stderr
    assert "Initialized empty knowledge base" in proc.stdout
    for path in (".gitignore", ".gitattributes", ".openkb/config.yaml", "wiki/index.md"):
        assert (root / path).is_file(), path
    assert git(root, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(root, "log", "--format=%s").strip() == "init: new knowledge base"
    assert (root / ".openkb" / "hashes.json").is_file() and (root / "wiki" / "log.md").is_file()
    assert_consistent(root)


def test_init_refuses_existing_repository(tmp_path):
    """A Git repository that is not a KB is refused; in a KB (a clone) init sets it up instead
    (tests/test_team_setup.py), changing nothing tracked when it is already set up."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    proc = run_openkb("init", root)
    assert proc.returncode == 1
    assert "already holds a Git repository" in proc.stderr and not (root / ".openkb").exists()
    kb = tmp_path / "kb"
    run_openkb("init", kb, check=True)
    head = git(kb, "rev-parse", "HEAD")
    again = run_openkb("init", kb)
    assert again.returncode == 0 and "Set up the knowledge base" in again.stdout, again.stderr
    assert git(kb, "rev-parse", "HEAD") == head
    assert_consistent(kb)


def test_init_adopts_openkb_knowledge_base(tmp_path):
    root = tmp_path / "old"
    (root / ".openkb").mkdir(parents=True)
    (root / "raw").mkdir()
    (root / "wiki" / "sources").mkdir(parents=True)
    (root / "wiki" / "summaries").mkdir(parents=True)
    (root / "raw" / "paper.md").write_text("# Paper\n\nText.\n")
    (root / "wiki" / "sources" / "paper.md").write_text("# Paper\n\nText.\n")
    (root / "wiki" / "summaries" / "paper.md").write_text("# Paper summary\n")
    (root / "wiki" / "log.md").write_text("# Operations Log\n\n## [2025-01-01 10:00:00] ingest | paper.md\n\n")
    (root / ".openkb" / "config.yaml").write_text("model: gpt-5.4\nlanguage: en\npageindex_threshold: 20\n")
    hashes = {"ab" * 32: {"name": "paper.md", "doc_name": "paper", "type": "md", "path": "raw/paper.md",
                          "raw_path": "raw/paper.md", "source_path": "wiki/sources/paper.md"}}
    (root / ".openkb" / "hashes.json").write_text(json.dumps(hashes))

    proc = run_openkb("init", root, "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["adopted_documents"] == 1
    record = json.loads((root / ".openkb" / "registry" / "paper.json").read_text())
    assert record["sha256"] == "ab" * 32 and record["doc_name"] == "paper"
    tracked = git(root, "ls-files").split()
    assert {"raw/paper.md", "wiki/sources/paper.md", "wiki/summaries/paper.md", ".openkb/registry/paper.json"} <= set(tracked)
    assert "wiki/log.md" not in tracked
    # The old log survives at the top of the rebuilt view, and the view names the same document.
    assert "ingest | paper.md" in (root / "wiki" / "log.md").read_text()
    assert json.loads((root / ".openkb" / "hashes.json").read_text())["ab" * 32]["doc_name"] == "paper"
    listing = run_openkb("list", "--json", cwd=root, check=True)
    assert [d["doc"] for d in json.loads(listing.stdout)] == ["paper"]
    assert_consistent(root)
