"""`openkb lint`: OpenKB 0.4.5's structural checks of the wiki, offline (docs/compatibility.md).

The same six checks, with the same rules, as OpenKB's `openkb lint` runs without an API key
(its `run_structural_lint`), over the KB's work tree as OpenKB reads it:

- broken links: a `[[target]]` (or `[[target|text]]`) of a page that names no page of
  `wiki/`, by its path without `.md` or by its bare name; `sources/` and `reports/` are not
  read, nor `AGENTS.md`, `SCHEMA.md`, `log.md`;
- orphaned pages: a page no other page links to that links to none itself (the index and
  `sources/` are exempt);
- raw files without a wiki entry: a file of `raw/` whose document has neither a source nor
  a summary page — by our registry record when one owns the file, else by its name;
- index sync: an index link to a missing page, and a summary, concept or entity page the
  index does not mention;
- invalid frontmatter: a page whose frontmatter YAML does not load;
- OKF conformance: a summary, concept or entity page without a non-empty `type` and
  `description`.

Nothing is written: OpenKB saves its report under `wiki/reports/`, which would leave an
untracked file in the KB; ours goes to standard output (`--json` for scripts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

_LINK = re.compile(r"\[\[([^\]]+)\]\]")
_UNREAD = {"AGENTS.md", "SCHEMA.md", "log.md"}
KNOWLEDGE_DIRS = ("summaries", "concepts", "entities")

# (key of the section, OpenKB's heading, what OpenKB prints when it is empty)
SECTIONS = (
    ("broken_links", "Broken Links", "No broken links found."),
    ("orphans", "Orphaned Pages", "No orphaned pages found."),
    ("missing_entries", "Raw Files Without Wiki Entry", "All raw files have wiki entries."),
    ("index_sync", "Index Sync Issues", "Index is in sync."),
    ("invalid_frontmatter", "Invalid Frontmatter", "All frontmatter parses as valid YAML."),
    ("okf", "OKF Conformance", "All knowledge pages carry required OKF fields."),
)


@dataclass
class LintReport:
    sections: dict[str, list[str]] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return sum(len(issues) for issues in self.sections.values())

    def to_json(self) -> dict:
        return {"problems": self.count, "sections": {key: self.sections.get(key, []) for key, _h, _e in SECTIONS}}

    def text(self) -> str:
        lines = ["## Structural Lint Report", ""]
        for key, heading, empty in SECTIONS:
            issues = self.sections.get(key, [])
            lines.append(f"### {heading} ({len(issues)})")
            lines.extend(f"- {issue}" for issue in issues) if issues else lines.append(empty)
            lines.append("")
        return "\n".join(lines).rstrip("\n") + "\n"


def _read(path: Path) -> str:
    """A page's text; "" for a symbolic link (a clone's tree may point one anywhere: lint
    reads nothing outside the KB) or a file it cannot read."""
    if path.is_symlink():
        return ""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return ""


def _targets(text: str) -> list[str]:
    return [link.split("|")[0].strip() for link in _LINK.findall(text)]


def _rel(path: Path, wiki: Path) -> str:
    return path.relative_to(wiki).with_suffix("").as_posix()


def _frontmatter_yaml(text: str) -> str | None:
    """The YAML between a page's `---` lines (None: the page has no frontmatter block)."""
    if not text.startswith("---"):
        return None
    end = text.find("\n---", 3)
    if end == -1:
        return None
    after = text.find("\n", end + 1)
    block = text if after == -1 else text[:after + 1]
    inner = block[4:]
    close = inner.rfind("\n---")
    return inner[:close] if close != -1 else inner


def lint(root: Path, records: dict[str, dict] | None = None) -> LintReport:
    """Lint the wiki under ``root`` (a KB's work tree). ``records``: our registry records
    ({doc: record}), which say which document owns a raw file."""
    wiki, raw = root / "wiki", root / "raw"
    files = sorted(p for p in wiki.rglob("*.md") if p.is_file()) if wiki.is_dir() else []
    names: set[str] = set()
    for path in files:
        names.add(_rel(path, wiki))
        names.add(path.stem)
    texts = {path: _read(path) for path in files}

    def read_here(path: Path) -> bool:
        parts = path.relative_to(wiki).parts
        return path.name not in _UNREAD and parts[0] not in ("reports", "sources")

    report = LintReport()
    broken = []
    for path in files:
        if read_here(path):
            broken += [f"Broken link [[{t}]] in {path.relative_to(wiki).as_posix()}"
                       for t in _targets(texts[path]) if t.strip().strip("/") not in names]
    report.sections["broken_links"] = sorted(broken)

    linking = [p for p in files if p.name not in _UNREAD | {"index.md"} and "sources" not in p.relative_to(wiki).parts]
    outgoing = {_rel(p, wiki): set(_targets(texts[p])) for p in linking}
    incoming: set[str] = set()
    for links in outgoing.values():
        for link in links:
            cleaned = link.strip().strip("/")
            incoming.add(cleaned)
            if "/" not in cleaned:
                incoming.add(Path(cleaned).stem)
    report.sections["orphans"] = sorted(rel for rel, links in outgoing.items()
                                        if not links and rel not in incoming and Path(rel).stem not in incoming)

    pages_of = {"sources": set(), "summaries": set()}
    for folder in pages_of:
        if (wiki / folder).is_dir():
            pages_of[folder] = {p.stem for p in (wiki / folder).glob("*.md")}
    owner = {}
    for doc, record in (records or {}).items():
        if isinstance(record, dict) and isinstance(record.get("raw_path"), str):
            owner[record["raw_path"]] = doc
    missing = []
    if raw.is_dir():
        for path in sorted(raw.iterdir()):
            if not path.is_file():
                continue
            doc = owner.get(f"raw/{path.name}")
            if doc is not None:
                if not ((wiki / "sources" / f"{doc}.md").exists() or (wiki / "sources" / f"{doc}.json").exists()
                        or (wiki / "summaries" / f"{doc}.md").exists()):
                    missing.append(path.name)
            elif path.stem not in pages_of["sources"] | pages_of["summaries"]:
                missing.append(path.name)
    report.sections["missing_entries"] = sorted(missing)

    index = wiki / "index.md"
    if not index.exists():
        report.sections["index_sync"] = ["index.md does not exist"]
    else:
        text = texts[index] if index in texts else _read(index)
        links = set(_targets(text))
        sync = [f"index.md links to missing page: [[{link}]]" for link in links if link.strip().strip("/") not in names]
        stems = {Path(link.strip()).stem for link in links}
        lowered = text.lower()
        for folder in KNOWLEDGE_DIRS:
            if (wiki / folder).is_dir():
                sync += [f"{folder}/{p.stem}.md not mentioned in index.md" for p in sorted((wiki / folder).glob("*.md"))
                         if p.stem not in stems and p.stem.lower() not in lowered]
        report.sections["index_sync"] = sorted(sync)

    invalid, okf = [], []
    for path in files:
        if not read_here(path):
            continue
        rel = path.relative_to(wiki).as_posix()
        inner = _frontmatter_yaml(texts[path])
        data = None
        if inner is not None:
            try:
                data = yaml.safe_load(inner)
            except yaml.YAMLError as exc:
                invalid.append(f"{rel}: {str(exc).splitlines()[0]}")
        if path.relative_to(wiki).parts[0] in KNOWLEDGE_DIRS:
            fm = data if isinstance(data, dict) else {}
            for key in ("type", "description"):
                if not (isinstance(fm.get(key), str) and fm[key].strip()):
                    okf.append(f"{rel}: missing non-empty {key!r}")
    report.sections["invalid_frontmatter"] = invalid
    report.sections["okf"] = okf
    return report
