"""YAML frontmatter of Markdown pages: the one split and the one dump (docs/layout.md).

A page has frontmatter when its first line is `---` and a later line is `---`: the text
between them is YAML, the text after the closing line is the body. Lines end with `\\n`
or `\\r\\n` (a page edited on Windows keeps its frontmatter); the closing line may end the
text. The first closing line wins: a `---` further down (a Markdown rule) is body. A page
whose block is not closed, is not valid YAML, or holds something other than a mapping has
no frontmatter: all of it is body, so nothing of it is dropped. An empty block is `{}`.

PyYAML is imported on first use (`openkb show` reads pages without it where it can).
"""

from __future__ import annotations

import re
from typing import Callable

_OPEN = re.compile(r"---\r?\n")
_CLOSE = re.compile(r"^---(?:\r?\n|\Z)", re.MULTILINE)


def parts(text: str) -> tuple[str, str] | None:
    """(the YAML text between the delimiters, the body), or None when ``text`` has no
    frontmatter block (see the module docstring)."""
    opening = _OPEN.match(text)
    if opening is None:
        return None
    closing = _CLOSE.search(text, opening.end())
    if closing is None:
        return None
    return text[opening.end():closing.start()], text[closing.end():]


def load_yaml(text: str):
    """PyYAML's safe load (libyaml when present); raises ValueError for text that is not YAML."""
    import yaml

    try:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from None


def split(text: str, load: Callable[[str], object] = load_yaml) -> tuple[dict | None, str]:
    """(frontmatter mapping, body), or (None, ``text``) when the page has none.

    ``load`` reads the YAML text and raises ValueError when it cannot."""
    found = parts(text)
    if found is None:
        return None, text
    block, body = found
    try:
        data = load(block) if block.strip() else {}
    except ValueError:
        return None, text
    if data is None:
        data = {}  # a block of comments only
    if not isinstance(data, dict):
        return None, text
    return data, body


def dump(data: dict) -> str:
    """The frontmatter block for ``data``, delimiters included: keys in the given order,
    block style, Unicode as is, no line wrapping."""
    import yaml

    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    return "---\n" + yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True,
                                default_flow_style=False, width=1_000_000) + "---\n"
