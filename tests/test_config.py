"""The settings of `.openkb/config.yaml`: each one openkb-git knows is read and does what
docs/layout.md says; OpenKB's own keys are kept and not used."""

from __future__ import annotations

import json
import re

from conftest import ROOT, TLDR, copy_tldr, git, run_openkb
from openkb_git.compiler import compile_document
from openkb_git.convert import convert_file
from openkb_git.kb import CONFIG_KEYS, DEFAULT_CONFIG, parse_config


def _set(kb, line: str) -> None:
    config = kb / ".openkb" / "config.yaml"
    config.write_text(config.read_text() + line + "\n")
    git(kb, "commit", "-qam", f"config: {line}")


def _concepts(kb) -> dict[str, list[str]]:
    return {d["doc"]: d["concepts"] for d in json.loads(run_openkb("list", "--json", cwd=kb, check=True).stdout)}


def test_concepts_per_doc_caps_the_concepts_of_each_document(tmp_path):
    src = copy_tldr(tmp_path / "src", ["tar.md", "git-commit.md"])
    found = {}
    for cap in (None, 2, 0):
        kb = tmp_path / f"kb-{cap}"
        run_openkb("init", kb, check=True)
        if cap is not None:
            _set(kb, f"concepts_per_doc: {cap}")
        run_openkb("add", src, cwd=kb, check=True)
        found[cap] = _concepts(kb)
        pages = sorted(p.stem for p in (kb / "wiki" / "concepts").glob("*.md"))
        assert pages == sorted({c for concepts in found[cap].values() for c in concepts})
        summary = (kb / "wiki" / "summaries" / "tar.md").read_text()
        assert all(f"[[concepts/{c}]]" in summary for c in found[cap]["tar"])
    # At most the cap: the compiler takes fewer, better concepts when a page has no more worth a page.
    assert all(2 < len(c) <= DEFAULT_CONFIG["concepts_per_doc"] for c in found[None].values())
    assert all(len(c) == 2 and set(c) <= set(found[None][doc]) for doc, c in found[2].items())
    assert found[0] == {"tar": [], "git-commit": []}


def test_the_compiler_takes_at_most_k_concepts():
    conv = convert_file(TLDR / "common" / "tar.md", "tar")
    counts = []
    caps = (0, 1, 3, 5, 8)
    for k in caps:
        result = compile_document("tar", title=conv.title, text=conv.text, headings=conv.headings,
                                  doc_type=conv.doc_type, source_path="wiki/sources/tar.md", pages=None, k=k)
        counts.append(len(result.concepts))
    # tar has three concepts worth a page (archive, compression, gzip): never more than k of them
    assert counts == [0, 1, 3, 3, 3] and all(count <= k for count, k in zip(counts, caps))


def test_a_compiler_this_version_does_not_have_is_refused(kb, tmp_path):
    config = kb / ".openkb" / "config.yaml"
    config.write_text(config.read_text().replace("compiler: offline", "compiler: gpt"))
    head = git(kb, "rev-parse", "HEAD")
    proc = run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md"]), cwd=kb)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert ("openkb: error: .openkb/config.yaml: compiler: 'gpt' is not supported by this version of openkb-git; "
            "set it to 'offline' or 'llm', or remove the line") in proc.stderr, proc.stderr
    assert git(kb, "rev-parse", "HEAD") == head
    assert parse_config(b"compiler: offline\n").compiler == "offline"


def test_openkb_keys_are_kept_and_not_used(kb, tmp_path):
    """`language` and `model` are OpenKB's (its LLM's output language and model): kept as read,
    any value accepted, the offline compiler's output the same."""
    _set(kb, "language: zh\nmodel: gpt-5.4")
    config = parse_config((kb / ".openkb" / "config.yaml").read_bytes())
    assert config.get("language") == "zh" and config.get("model") == "gpt-5.4"
    run_openkb("add", copy_tldr(tmp_path / "src", ["tar.md"]), cwd=kb, check=True)
    assert _concepts(kb)["tar"]
    assert "language" not in DEFAULT_CONFIG and "language" not in CONFIG_KEYS


def test_layout_documents_every_setting_and_no_other():
    """docs/layout.md's row for config.yaml names each key openkb-git reads, with its default."""
    row = next(line for line in (ROOT / "docs" / "layout.md").read_text().splitlines()
               if line.startswith("| `.openkb/config.yaml`"))
    settings, _, others = row.partition("Other keys")
    named = set(re.findall(r"`([a-z_]+)` \(", settings))  # each setting: `key` (what it does, default)
    assert named == set(CONFIG_KEYS), named ^ set(CONFIG_KEYS)
    assert set(DEFAULT_CONFIG) == set(CONFIG_KEYS)
    for key, value in DEFAULT_CONFIG.items():
        default = "one per CPU" if key == "jobs" else "null" if value is None else value
        assert re.search(rf"`{key}` \([^|]*?default {re.escape(str(default))}\b", settings), key
    assert "`language`" in others and "`language`" not in settings
