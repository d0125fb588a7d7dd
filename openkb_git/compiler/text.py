"""Text statistics of one document: Markdown stripped to prose, sentences, keyphrases.

Only the document's own text is used (no corpus statistics), so a document's
contribution never depends on what else is in the knowledge base.
"""

from __future__ import annotations

import re
from collections import Counter

STOPWORDS = frozenset("""
a about above according across after afterwards again against all almost alone along already also although
always am among amongst an and another any anyhow anyone anything anyway anywhere are around as at back be
became because become becomes becoming been before beforehand behind being below beside besides between beyond
both but by can cannot could did do does doing done down due during each eg either else elsewhere enough etc
even ever every everyone everything everywhere except few for former formerly from further had has have having
he hence her here hereafter hereby herein hereupon hers herself him himself his how however i ie if in indeed
instead into is it its itself just keep last latter latterly least less like made make many may me meanwhile
might mine more moreover most mostly much must my myself namely neither never nevertheless next no nobody none
noone nor not nothing now nowhere of off often on once one only onto or other others otherwise our ours
ourselves out over own per perhaps please put quite rather re really same see seem seemed seeming seems several
she should show since so some somehow someone something sometime sometimes somewhere still such than that the
their theirs them themselves then thence there thereafter thereby therefore therein thereupon these they this
those though through throughout thru thus to together too toward towards under until up upon us use used uses
using very via was we well were what whatever when whence whenever where whereafter whereas whereby wherein
whereupon wherever whether which while whither who whoever whole whom whose why will with within without would
yet you your yours yourself yourselves
example examples information specific specified given default defaults way ways new set sets get gets run runs
file files command commands option options path paths value values name names number numbers type types list
lists display displays print prints current currently instead within without able various several including
include includes included following follows shown show shows see also e.g i.e etc www http https com org html
page pages section sections chapter figure fig table tables thing things lot lots use usage usually often
first second third one two three four five six seven eight nine ten may might can could would should
""".split())

_CODE_FENCE = re.compile(r"```.*?```", re.S)
_CODE_SPAN = re.compile(r"`[^`\n]*`")
_PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}")
_URL = re.compile(r"<?(?:https?|ftp)://\S+|www\.\S+")
_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_WIKILINK = re.compile(r"\[\[([^\]|]*)(?:\|([^\]]*))?\]\]")
_FRONTMATTER = re.compile(r"\A---\n.*?\n---\n", re.S)
_WORD = re.compile(r"[^\W_]+")
_TOKEN = re.compile(r"[^\W_]+|[^\w\s]")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


def prose(text: str) -> str:
    """The document's prose: Markdown markup, code, placeholders and URLs removed."""
    text = _FRONTMATTER.sub("", text)
    text = _CODE_FENCE.sub("\n", text)
    text = _CODE_SPAN.sub(" ", text)
    text = re.sub(r"\[(\w{1,2})\](?=\w)|(?<=\w)\[(\w{1,2})\]", lambda m: m.group(1) or m.group(2), text)
    text = _PLACEHOLDER.sub(" ", text)
    text = _LINK.sub(r"\1", text)
    text = _WIKILINK.sub(lambda m: m.group(2) or m.group(1), text)
    text = _URL.sub(" ", text)
    text = re.sub(r"^\s{0,3}(?:#{1,6}|>|[-*+]|\d+[.)])\s+", "", text, flags=re.M)
    text = re.sub(r"[*_~|]+", " ", text)
    return text


def normalize_phrase(phrase: str) -> str:
    """Lowercase words of letters/digits joined by single spaces."""
    return " ".join(_WORD.findall(phrase.lower()))


def _is_word(token: str) -> bool:
    return bool(_WORD.fullmatch(token)) and len(token) >= 3 and not token.isdigit() and token not in STOPWORDS


def extract_keyphrases(text: str, k: int = 5) -> list[str]:
    """Up to ``k`` keyphrases: runs of 1–3 content words between stopwords and punctuation,
    scored by frequency (multiword phrases weigh more), ties broken alphabetically."""
    body = prose(text).lower()
    phrases: Counter = Counter()
    words: Counter = Counter()
    run: list[str] = []
    is_word: dict[str, bool] = {}
    # One pass over the tokens, counting as it goes: memory stays bounded by the vocabulary
    # (a list of every token took ~15x the text's size).
    for match in _TOKEN.finditer(body):
        token = match.group()
        word = is_word.get(token)
        if word is None:
            word = is_word[token] = _is_word(token)
        if word:
            run.append(token)
            words[token] += 1
        elif run:
            if 2 <= len(run) <= 3:
                phrases[" ".join(run)] += 1
            run = []
    if 2 <= len(run) <= 3:
        phrases[" ".join(run)] += 1
    minimum = 2  # a phrase said once is no concept of the document
    candidates: dict[str, float] = {}
    for phrase, count in phrases.items():
        if count >= minimum:
            candidates[phrase] = count * (1.0 + 0.5 * (phrase.count(" ")))
    for word, count in words.items():
        if count >= minimum and len(word) >= 4:
            candidates[word] = float(count)
    chosen: list[str] = []
    for phrase, _score in sorted(candidates.items(), key=lambda item: (-item[1], item[0])):
        if len(chosen) >= k:  # also k = 0: no concepts
            break
        parts = {_singular(w) for w in phrase.split()}
        if any(parts <= c or c <= parts for c in ({_singular(w) for w in c.split()} for c in chosen)):
            continue
        chosen.append(phrase)
    return chosen


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 4 and word.endswith("s") and not word.endswith("ss") else word


def sentences(text: str) -> list[str]:
    """Sentences of the prose, one line each, in document order."""
    out = []
    for part in _SENTENCE_SPLIT.split(prose(text)):
        sentence = " ".join(part.split()).strip(" :;-")
        if len(_WORD.findall(sentence)) >= 3:
            out.append(sentence)
    return out


def clip(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def snippet_for(phrase: str, doc_sentences: list[str]) -> str:
    """The first sentence containing ``phrase`` (word for word), clipped; else the phrase."""
    target = phrase.split()
    for sentence in doc_sentences:
        tokens = normalize_phrase(sentence).split()
        for i in range(len(tokens) - len(target) + 1):
            if tokens[i:i + len(target)] == target:
                return clip(sentence)
    return phrase


def extractive_summary(doc_sentences: list[str], keyphrases: list[str], n: int = 3) -> list[str]:
    """The ``n`` sentences that carry the most keyphrase words, in document order."""
    key_words = Counter(w for p in keyphrases for w in p.split())
    scored = []
    long_enough = [s for s in doc_sentences[:2000] if len(s.split()) >= 6]
    for index, sentence in enumerate(long_enough or doc_sentences[:2000]):
        tokens = normalize_phrase(sentence).split()
        if not tokens:
            continue
        score = sum(key_words[t] for t in tokens) / (len(tokens) ** 0.5)
        scored.append((-score, index, sentence))
    best = sorted(scored)[:n]
    chosen = [clip(sentence, 400) for _score, _index, sentence in sorted(best, key=lambda item: item[1])]
    return [s if s.endswith((".", "!", "?", "…")) else s + "." for s in chosen]


# -- the interface the page renderer uses (issue #16: improved behind these names) -----------


def detect_language(text: str) -> str:
    """ISO 639-1 code of the document's language ("en" when it cannot tell)."""
    return "en"


def describe(text: str, doc_sentences: list[str], headings: list[tuple[int, str]]) -> str:
    """One sentence saying what the document is (its own stated description when it has one)."""
    summary = extractive_summary(doc_sentences, extract_keyphrases(text, 5), n=1)
    return summary[0] if summary else ""


def concept_sentences(phrase: str, doc_sentences: list[str], n: int = 2) -> list[str]:
    """What the document says about ``phrase``: up to ``n`` of its own sentences, best first."""
    snippet = snippet_for(phrase, doc_sentences)
    return [snippet] if snippet != phrase else []


def extract_entities(text: str, k: int = 5) -> list[str]:
    """Up to ``k`` named entities (people, organisations, products) the document names."""
    return []
