"""`openkb lint`: OpenKB 0.4.5's structural lint, offline (ops/lint.py). The findings below are
what OpenKB's own `run_structural_lint` reports on the same files (checked with OpenKB 0.4.5's
code; scripts/check_openkb_compat.sh compares the two reports on every run of it)."""

from __future__ import annotations

import json

from conftest import copy_tldr, git, run_openkb


def test_lint_reports_openkbs_six_sections_and_writes_nothing(tmp_path):
    """OpenKB's lint was missing ("No such command 'lint'"); ours is clean on a KB we compiled,
    names each seeded fault in OpenKB's words, exits 1, and leaves the work tree as it was
    (OpenKB saves its report under wiki/reports/, an untracked file in the KB)."""
    kb = tmp_path / "kb"
    run_openkb("init", kb, check=True)
    src = copy_tldr(tmp_path / "src", ["git-commit.md", "git-add.md"])
    run_openkb("--kb-dir", kb, "add", src, check=True)
    proc = run_openkb("--kb-dir", kb, "lint")
    assert proc.returncode == 0 and "### Broken Links (0)\nNo broken links found." in proc.stdout
    assert proc.stdout.count("### ") == 6 and "### OKF Conformance (0)" in proc.stdout

    with (kb / "wiki" / "concepts" / "git.md").open("a") as page:
        page.write("See [[concepts/no-such-page]].\n")
    (kb / "wiki" / "concepts" / "loose-page.md").write_text("---\ntitle: a: b\n---\n# Loose\n")
    (kb / "raw" / "dropped.txt").write_text("dropped\n")
    status = git(kb, "status", "--porcelain")
    proc = run_openkb("--kb-dir", kb, "lint", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    assert report == {"problems": 7, "sections": {
        "broken_links": ["Broken link [[concepts/no-such-page]] in concepts/git.md"],
        "orphans": ["concepts/loose-page"],
        "missing_entries": ["dropped.txt"],
        "index_sync": ["concepts/loose-page.md not mentioned in index.md"],
        "invalid_frontmatter": ["concepts/loose-page.md: mapping values are not allowed here"],
        "okf": ["concepts/loose-page.md: missing non-empty 'type'",
                "concepts/loose-page.md: missing non-empty 'description'"]}}
    secret = tmp_path / "secret.md"  # outside the KB
    secret.write_text("---\nkey: a: b\n---\n")
    (kb / "wiki" / "concepts" / "link.md").symlink_to(secret)  # a tampered clone's page
    linked = json.loads(run_openkb("--kb-dir", kb, "lint", "--json").stdout)["sections"]
    assert "concepts/link.md: missing non-empty 'type'" in linked["okf"]
    assert linked["invalid_frontmatter"] == report["sections"]["invalid_frontmatter"]  # not read through the link
    (kb / "wiki" / "concepts" / "link.md").unlink()
    text = run_openkb("--kb-dir", kb, "lint").stdout
    assert "### Raw Files Without Wiki Entry (1)\n- dropped.txt\n" in text
    assert git(kb, "status", "--porcelain") == status and not (kb / "wiki" / "reports").exists()
