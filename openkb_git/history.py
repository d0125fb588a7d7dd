"""Reading the history: commits as operations (op, doc, trailers), newest first."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

from .kb import KB

TRAILER_PREFIX = "OpenKB-"


@dataclass
class Entry:
    sha: str
    time: int
    tz: int
    subject: str
    op: str
    doc: str | None
    trailers: dict[str, str] = field(default_factory=dict)
    parent: str | None = None
    author: str = ""

    @property
    def short(self) -> str:
        return self.sha[:7]


def parse_trailers(message: str) -> dict[str, str]:
    """The `OpenKB-*: value` trailers of a commit message (last paragraph)."""
    trailers: dict[str, str] = {}
    paragraphs = message.strip().split("\n\n")
    for line in paragraphs[-1].splitlines() if paragraphs else []:
        key, sep, value = line.partition(": ")
        if sep and key.startswith(TRAILER_PREFIX):
            trailers[key] = value.strip()
    return trailers


def entry_of(kb: KB, sha: bytes) -> Entry:
    commit = kb.objects.get(sha)
    message = commit.message.decode("utf-8", "replace")
    trailers = parse_trailers(message)
    subject = message.split("\n", 1)[0]
    return Entry(
        sha=sha.decode(),
        time=commit.commit_time,
        tz=commit.commit_timezone,
        subject=subject,
        op=trailers.get("OpenKB-Op", "commit"),
        doc=trailers.get("OpenKB-Doc"),
        trailers=trailers,
        parent=commit.parents[0].decode() if commit.parents else None,
        author=commit.author.decode("utf-8", "replace"),
    )


def iter_entries(kb: KB, head: bytes | None = None) -> Iterator[Entry]:
    """Operations from ``head`` (default HEAD) back to the first commit, following first parents."""
    sha = head if head is not None else kb.head()
    while sha:
        entry = entry_of(kb, sha)
        yield entry
        sha = entry.parent.encode() if entry.parent else None
