"""Text statistics of one document: Markdown stripped to prose, sentences, keyphrases.

Only the document's own text is used (no corpus statistics), so a document's
contribution never depends on what else is in the knowledge base.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache

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


def clip(text: str, limit: int = 240) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0]
    return cut + "…"


def snippet_for(phrase: str, doc_sentences: list[str]) -> str:
    """The document's best sentence about ``phrase`` (concept_sentences), else the first
    sentence containing it word for word, clipped; else the phrase."""
    best = concept_sentences(phrase, doc_sentences, 1)
    if best:
        return best[0]
    target = phrase.split()
    for sentence in doc_sentences:
        tokens = normalize_phrase(sentence).split()
        if _contains(tokens, target):
            return clip(sentence)
    return phrase


# -- the document read as units: headings, description lines, list items, paragraphs -------------

_FENCE_LINE = re.compile(r"^\s{0,3}(```|~~~)")
_WHOLE_CODE_LINE = re.compile(r"^\s*`[^`]*`\s*$")  # a tldr example: the whole line is code
_INLINE_CODE = re.compile(r"`([^`\n]*)`")
_MARKER = re.compile(r"^\s{0,3}(#{1,6}\s+|>\s?|[-*+]\s+|\d{1,3}[.)]\s+)")
_LEADER_DOTS = re.compile(r"(?:\.\s?){4,}|(?:…\s?){2,}")  # a table of contents' "Title . . . . 3"
_CODE_START = re.compile(
    r"^\s*(?:def |class \w+[(:]|import \w|from [\w.]+ import |return\b|elif\b|else:|try:|except\b|"
    r"for \w+(?:, ?\w+)* in |while .*:$|with .* as \w+:|print\(|var |let |const |function\b|"
    r"#\s*(?:include|define|if|ifdef|ifndef|endif|else|pragma)\b|endif\b|fi$|done$|esac$|\$ |>>> |\.\.\. )")
_ASSIGNMENT = re.compile(r"^\s*[A-Za-z_][\w.\[\]'\"]*\s*(?:[-+*/|&%]?=|:=)\s*\S")
_CALL = re.compile(r"\b[A-Za-z_]\w*\.[A-Za-z_]\w*\(|\b\w+\(\)|\w+_\w+\s*\(|->|::|;\s*$|^\s*[{}()\[\];]+\s*$")
_CODE_CHARS = set("=(){}[];<>#*/\\|&^%$@~`")
_BOILER_START = re.compile(
    r"(?i)(?:more information\b|see also\b|todo\b|copyright\b|©|\(c\)\s*\d|licensed under|arxiv:|doi:|https?:|www\.|"
    r"page \d+(?: of \d+)?$|provided proper attribution)")
_BOILER_ANY = re.compile(
    r"(?i)(?:all|some) rights reserved|grants? permission to reproduce|intentionally left blank|creative commons|"
    r"in any use of this work|this work is (?:available|licensed)|"
    r"\b(?:section|page|chapter)s? (?:in this page |of this page )?(?:was|were|has been|have been) moved\b")


def is_boilerplate(sentence: str) -> bool:
    """Notices and pointers, not content: "More information: …", "See also: …", copyright
    and licence lines, "This section was moved to …"."""
    return bool(_BOILER_START.match(sentence) or _BOILER_ANY.search(sentence))


_GARBAGE_CHARS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ue000-\uf8ff\ufffd]")
_ODD_CHARS = set("]`@?{}|~^\\[")
_SECTION_LINE = re.compile(r"^(?:\d+(?:\.\d+)+\.?|[A-Z]\.\d+(?:\.\d+)*)\s+\S")
# Function words of the most common Latin-script languages: a sentence has at least one.
FUNCTION_WORDS = frozenset("""
the a an is are was were be been of to in and for on with by from that this it as at or not we our you they can
der die das und ist ein eine zu von mit für den dem nicht sich auf im sind wird werden
le la les un une des et est du de en que qui pour dans sur au par
el los las y es del que por con para una un se lo al como
il lo gli di che è per con una del della nel sono
o os as um uma do da que é com para em no na
het een en van dat op te zijn voor met
och att det som är på för med av
""".split())
_ABBREVIATIONS = frozenset("e.g i.e etc vs al fig figs eq eqs no nos dr mr mrs ms st prof sec ch vol pp cf approx "
                           "inc ltd co corp jr sr resp ca ed eds ref refs".split())
_SENTENCE_END = re.compile(r"[.!?。！？](?:[\"'”’)\]]*)(?=\s+|$)")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uac00-\ud7af]")


def _inline(line: str) -> str:
    """One line's prose: placeholders, links, URLs and emphasis removed, inline code kept as
    its words (a command named in a description is part of the sentence)."""
    line = _PLACEHOLDER.sub(" ", line)
    line = _INLINE_CODE.sub(lambda m: m.group(1), line)
    line = re.sub(r"\[(\w{1,2})\](?=\w)|(?<=\w)\[(\w{1,2})\]", lambda m: m.group(1) or m.group(2), line)
    line = _LINK.sub(r"\1", line)
    line = _WIKILINK.sub(lambda m: m.group(2) or m.group(1), line)
    line = _URL.sub(" ", line)
    line = re.sub(r"<[^<>\s]*>", " ", line)
    line = re.sub(r"(?<!\w)[*_~]+|[*_~]+(?!\w)|\|", " ", line)
    return " ".join(line.split())


def is_code_line(line: str) -> bool:
    """A line of program text: a statement, an assignment, a call, a prompt, or mostly symbols."""
    text = line.strip()
    if not text:
        return False
    if _CODE_START.match(text) or _ASSIGNMENT.match(text) or _CALL.search(text):
        return True
    chars = text.replace(" ", "")
    symbols = sum(1 for c in chars if c in _CODE_CHARS)
    return symbols >= 3 and symbols >= 0.12 * len(chars)


@lru_cache(maxsize=16)
def _units(text: str) -> tuple[tuple[str, str], ...]:
    """The document as (kind, text) units in order: kind is "heading", "quote" (a `> `
    description line), "item" (a list item) or "para" (lines of a paragraph joined, words
    broken at a line's end rejoined). Code, tables of contents, page furniture (short lines
    repeated three or more times: running headers, page numbers) are left out."""
    text = unicodedata.normalize("NFKC", _FRONTMATTER.sub("", text[:MAX_TEXT_CHARS]))
    raw = text.split("\n")
    shapes = Counter(re.sub(r"\d+", "#", line.strip()) for line in raw if 0 < len(line.strip()) <= 80)
    furniture = {shape for shape, count in shapes.items() if count >= 3}
    lengths = sorted(len(line) for line in raw if len(line.strip()) > 20)
    wide = lengths[int(len(lengths) * 0.8)] if lengths else 80
    units: list[tuple[str, str]] = []
    para: list[str] = []

    def flush():
        if para:
            joined = para[0]
            for line in para[1:]:
                if re.search(r"[^\W\d_]-$", joined) and line[:1].islower():
                    joined = joined[:-1] + line
                else:
                    joined += " " + line
            units.append(("para", joined))
            para.clear()

    in_fence = False
    for line in raw:
        if _FENCE_LINE.match(line):
            in_fence = not in_fence
            flush()
            continue
        stripped = line.strip()
        if in_fence or not stripped:
            flush()
            continue
        if _GARBAGE_CHARS.search(stripped) or sum(1 for c in stripped if c in _ODD_CHARS) > 0.1 * len(stripped):
            flush()
            continue  # a font without a Unicode mapping, read as symbols
        if _WHOLE_CODE_LINE.match(line) or _LEADER_DOTS.search(stripped) \
                or re.sub(r"\d+", "#", stripped) in furniture or not re.search(r"[^\W\d_]", stripped):
            flush()
            continue
        marker = _MARKER.match(line)
        kind = None
        if marker:
            sign = marker.group(1).strip()
            kind = "heading" if sign.startswith("#") else "quote" if sign == ">" else "item"
            stripped = line[marker.end():].strip()
        if is_code_line(stripped):
            flush()
            continue
        content = _inline(stripped)
        if not content:
            continue
        if kind:
            flush()
            if kind == "quote" and units and units[-1][0] == "quote" and not units[-1][1].endswith(
                    (".", "!", "?", ":")):
                units[-1] = ("quote", units[-1][1] + " " + content)  # a description line wrapped
            else:
                units.append((kind, content))
            continue
        short = len(line.rstrip()) < 0.6 * wide
        if short and _SECTION_LINE.match(content) and len(content.split()) <= 12:
            flush()
            units.append(("heading", content))  # "1.2.4 Distributing Cython modules"
            continue
        if short and not para and not re.search(r"[.!?:;,]$", content) and len(content.split()) <= 12:
            units.append(("heading", content))  # a line of its own: a heading in a PDF
            continue
        para.append(content)
        if short or re.search(r"[.!?:]$", content) and short:
            flush()
    flush()
    return tuple(units)


def _split_sentences(paragraph: str) -> list[str]:
    out = []
    start = 0
    for match in _SENTENCE_END.finditer(paragraph):
        end = match.end()
        before = paragraph[start:match.start() + 1]
        word = re.search(r"(\S+)[.!?]$", before)
        token = word.group(1).lower().lstrip("(\"'") if word else ""
        if match.group().startswith(".") and (token in _ABBREVIATIONS or re.fullmatch(r"[a-z]", token)
                                              or re.fullmatch(r"(?:[a-z]\.)+[a-z]", token)):
            continue  # "e.g.", "et al.", an initial "J.", "U.S."
        rest = paragraph[end:].lstrip()
        if rest and not (rest[0].isupper() or rest[0].isdigit() or rest[0] in "\"'“‘([" or not rest[0].isascii()):
            continue  # "… 2.5 times", "Fig. 3a" – no new sentence
        out.append(paragraph[start:end].strip())
        start = end
    if paragraph[start:].strip():
        out.append(paragraph[start:].strip())
    return out


@lru_cache(maxsize=16)
def _all_sentences(text: str) -> tuple[str, ...]:
    out: list[str] = []
    seen: set[str] = set()
    for kind, unit in _units(text):
        if kind == "heading":
            continue
        for sentence in (_split_sentences(unit) if kind != "item" else [unit]):
            sentence = sentence.strip(" -–—")
            if len(_WORD.findall(sentence)) < 2 or is_boilerplate(sentence):
                continue
            key = normalize_phrase(sentence)
            if key in seen:
                continue
            seen.add(key)
            out.append(sentence)
            if len(out) >= MAX_SENTENCES:
                return tuple(out)
    return tuple(out)


def sentences(text: str) -> list[str]:
    """The document's sentences in document order, each once: paragraphs and description
    lines split into sentences, list items (tldr's example captions, ending in ":") whole;
    no code, headings, tables of contents, page furniture or boilerplate."""
    return list(_all_sentences(text))


@lru_cache(maxsize=50_000)
def is_complete(sentence: str, min_words: int = 4, max_words: int = 60) -> bool:
    """A whole sentence worth quoting: starts with a capital (or a digit, a quote, a letter
    of a caseless script), ends with . ! or ?, is no cut ("clinics,."), no code, no
    boilerplate, no label set in capitals, no address (it has a function word), mostly words."""
    if not sentence or len(sentence) > 12 * max_words or "_" in sentence:
        return False
    if is_boilerplate(sentence) or is_code_line(sentence):
        return False
    first = sentence[0]
    if not (first.isupper() or first.isdigit() or first in "\"“" or (first.isalpha() and not first.islower()
                                                                       and not first.isupper())):
        return False
    if not re.search(r"[.!?。！？][\"'”’)]*$", sentence) or re.search(r"[,;:(\-–]\s*[.!?]$|\s[.!?]$|\.\.\.$|…$",
                                                                      sentence):
        return False
    words = len(_WORD.findall(sentence)) if not _CJK.search(sentence) else len(sentence) // 2
    if not min_words <= words <= max_words:
        return False
    chars = sentence.replace(" ", "")
    letters = sum(1 for c in chars if c.isalpha())
    if re.search(r"\s[,.;:)\]]|[(\[]\s|\(\)", sentence):
        return False  # something was cut out of it ("wildcards like )")
    last = re.search(r"(\S+)[.!?][\"'”’)]*$", sentence)
    if last and (last.group(1).lower().strip("(") in _ABBREVIATIONS or re.fullmatch(r"[A-Z][a-z]?|(?:[A-Za-z]\.)+[A-Za-z]",
                                                                                      last.group(1))):
        return False  # "Citibank N.A.", "Villigen Fm."
    cased = [c for c in sentence if c.isalpha() and (c.isupper() or c.islower())]
    if cased and sum(1 for c in cased if c.isupper()) > 0.6 * len(cased):
        return False  # a form's label set in capitals, not a sentence
    if not _CJK.search(sentence) and min_words >= 4 and not any(
            w in FUNCTION_WORDS for w in _WORD.findall(sentence.lower())):
        return False  # no function word at all: an address, a list of names
    return letters >= 0.6 * len(chars) and sentence.count("(") == sentence.count(")")


# -- language and stop-words -----------------------------------------------------------------

# The languages whose stop-words are never a concept, whatever the document's language.
STOPWORD_LANGUAGES = ("en", "de", "fr", "es", "it", "pt", "nl", "sv", "da", "no", "fi", "pl", "cs", "ru", "tr", "id",
                      "ro", "hu", "ca", "la")
LOREM_IPSUM = frozenset("""
lorem ipsum dolor sit amet consectetur consectetuer adipiscing adipisicing elit sed eiusmod tempor incididunt labore
dolore magna aliqua enim minim veniam quis nostrud exercitation ullamco laboris nisi aliquip commodo consequat duis
aute irure reprehenderit voluptate velit esse cillum fugiat nulla pariatur excepteur sint occaecat cupidatat
proident sunt culpa officia deserunt mollit anim laborum accumsan aenean aliquam aliquet ante arcu auctor augue
bibendum blandit condimentum congue convallis cras cubilia curabitur curae cursus dapibus diam dictum dictumst
dignissim donec dui efficitur egestas eget eleifend elementum erat eros etiam euismod facilisi facilisis fames
faucibus felis fermentum feugiat finibus fringilla fusce gravida habitant habitasse hendrerit himenaeos iaculis
imperdiet inceptos integer interdum justo lacinia lacus laoreet lectus leo libero ligula litora lobortis luctus
maecenas magnis malesuada massa mattis mauris maximus metus molestie mollis montes morbi nascetur natoque neque
netus nibh nisl nostra nullam nunc odio orci ornare parturient pellentesque penatibus pharetra phasellus placerat
platea porta porttitor posuere potenti praesent pretium primis proin pulvinar purus quam quisque rhoncus ridiculus
risus rutrum sagittis sapien scelerisque semper senectus sociosqu sodales sollicitudin suscipit suspendisse taciti
tellus tempus tincidunt torquent tortor tristique turpis ullamcorper ultrices ultricies urna varius vehicula vel
venenatis vestibulum vitae vivamus viverra volutpat vulputate
""".split())
CODE_WORDS = frozenset("""
endif elif elsif ifdef ifndef endfor endwhile endforeach endswitch esac fi def nullptr sizeof typedef println printf
sprintf fprintf malloc calloc realloc strcpy strlen struct enum const void bool int uint char wchar float double
args argv argc kwargs stdin stdout stderr stdio iostream cout cin endl std namespace lambda async await return
boolean null nil undefined true false self this var let func foreach varchar xmlns href src
""".split())
# Words a tldr page (or any manual) uses for every command: no topic of their own.
GENERIC_WORDS = STOPWORDS | frozenset("""
create creates created creating delete deletes deleted deleting remove removes removed start starts started
starting stop stops output outputs input inputs directory directories folder folders display show list print
specific specify given current default run execute executes executing enable enables disable disables open opens
close write writes read reads find finds search view views check checks make generate install installs uninstall
update updates change changes add adds edit edits replace replaces copy copies move moves save saves load loads
send sends receive receives return returns select selects allow allows support supports provide provides perform
performs manage manages apply applies contents content text string strings line lines format formats mode modes
version versions help usage interactive verbose verbosity tool tools utility utilities program programs
application applications system systems user users data item items level levels time times argument arguments
parameter parameters flag flags setting settings config configuration configurations key keys local remote
multiple single specific particular certain entire whole full part parts result results output standard
enter press select type print prints printing execute running call calls called result
basic modern separate original stable simple advanced custom various available additional recursive quiet quick
fast faster lightweight powerful free based related similar alternative physical minimum maximum insensitive
optimize upgrade init follow ignore clean explore interact collect forget resemble deploy reload unload cleanup
specified optional optionally automatic automatically manual manually temporary permanent
method feature kind sort case step amount purpose detail basis manner aspect approach
""".split())


@lru_cache(maxsize=None)
def _stopwords(language: str) -> frozenset[str]:
    import stopwordsiso

    return frozenset(w.lower() for w in stopwordsiso.stopwords(language)) if stopwordsiso.has_lang(language) \
        else frozenset()


@lru_cache(maxsize=None)
def any_stopwords() -> frozenset[str]:
    """Stop-words of the ~20 most common languages of the web, lowercased."""
    out: set[str] = set()
    for language in STOPWORD_LANGUAGES:
        out |= _stopwords(language)
    return frozenset(out)


@lru_cache(maxsize=None)
def _short_stopwords() -> frozenset[str]:
    return frozenset(w for w in any_stopwords() if len(w) <= 4)


@lru_cache(maxsize=1)
def _identifier():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


LANGUAGE_SAMPLE = 6000
_ENGLISH = frozenset("the of and to a in is for on with that this as by are be it or from an at".split())


def _language_of(units: tuple[tuple[str, str], ...]) -> str:
    sample = " ".join(u for k, u in units if k != "heading")[:LANGUAGE_SAMPLE]
    letters = sum(1 for c in sample if c.isalpha())
    if letters < 60:
        return "en"
    tokens = _WORD.findall(sample.lower())
    if sum(1 for t in tokens if t in _ENGLISH) >= 0.12 * len(tokens) and sum(
            1 for c in sample if c.isalpha() and not c.isascii()) < 0.01 * letters:
        return "en"  # plainly English: no need to load the language model (~2 s)
    language, probability = _identifier().classify(sample)
    if probability < 0.8 or not _stopwords(language):
        return "en"
    return language


def detect_language(text: str) -> str:
    """ISO 639-1 code of the document's language, from its prose (py3langid, offline and
    deterministic); "en" when the text is too short or the guess unsure."""
    return _language_of(_units(text))


# -- keyphrases ------------------------------------------------------------------------------

YAKE_CHARS = 8_000  # YAKE reads the first 8 kB of prose and its first 100 headings (~0.2 s at most)
MAX_TEXT_CHARS = 200_000  # the text read at all: its first 200 kB
MAX_SENTENCES = 5000
SUMMARY_POOL = 600  # a summary is taken from the first 600 sentences
ENTITY_POOL = 1500
_TOKEN_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def _jumble(token: str) -> bool:
    """29a0, 33ajcpm7016k1za, abcd, aaaa: digits and letters mixed, or no word at all."""
    if token.isdigit():
        return True
    if re.search(r"\d", token):
        runs = re.findall(r"\d+|[^\W\d_]+", token)
        if len(runs) > 2 or (len(runs) == 2 and runs[0].isdigit()):
            return True  # "29a0", "3d" – a word with a number at its end ("qwen2", "x86") is one
    letters = re.sub(r"[\W\d_]", "", token)
    if len(set(letters)) == 1 and len(letters) >= 3:
        return True
    if len(letters) >= 3 and letters.isascii() and "".join(chr(ord(letters[0]) + i) for i in range(len(letters))) \
            == letters:
        return True  # abc, abcd
    return len(letters) >= 6 and letters.isascii() and not re.search(r"[aeiouy]", letters)


def _cjk_ok(phrase: str, language: str, raw: str) -> bool:
    if not _CJK.search(phrase):
        return True
    if language not in ("zh", "ja", "ko") or " " in phrase or not 2 <= len(phrase) <= 6:
        return False
    # A whole word: it stands alone (between spaces, punctuation or table cells) twice.
    alone = re.findall(r"(?:^|[\s\W\d])" + re.escape(phrase) + r"(?=$|[\s\W\d])", raw)
    return len(alone) >= 2


_ADJECTIVE_TAILS = frozenset("""level time readable sensitive insensitive compatible compliant platform based like aware
safe specific wide free only friendly enabled oriented style formatted zero dependent independent defined
""".split())


def acceptable_phrase(phrase: str, language: str = "en", raw: str = "") -> bool:
    """A concept worth a page: 1–3 words (a hyphenated word is one), none a stop-word of the
    document's language at either end, none lorem ipsum, a digit/letter jumble, code or
    shorter than 3 characters; a single word no stop-word of any of ~20 languages and no
    word every manual uses (create, directory, output …)."""
    words = _TOKEN_WORD.findall(phrase)
    if not 1 <= len(words) <= 3 or " ".join(words) != " ".join(phrase.split()).strip(" .,;:"):
        return False
    lower = [w.lower() for w in words]
    own = _stopwords(language)
    for word in lower:
        elided = re.split(r"['’]", word)
        if len(elided) > 1 and (elided[0] in any_stopwords() or len(elided[0]) <= 2):
            return False  # "dell’uomo", "l’image": an article glued on
        for part in re.split(r"['’-]", word):
            if len(part) < 3 and not (part.isdigit() and "-" in word) or part in LOREM_IPSUM or part in CODE_WORDS \
                    or _jumble(part):
                return False
    if not all(_cjk_ok(w, language, raw) for w in words):
        return False
    if len(lower) == 1 and "-" in lower[0] and lower[0].rsplit("-", 1)[1] in _ADJECTIVE_TAILS:
        return False  # "cross-platform", "human-readable", "real-time": an adjective
    if len(lower) == 1:
        if re.search(r"[^\W\d_]{3}ed$", lower[0]) or (re.search(r"[^\W\d_]{3}ing$", lower[0])
                                                      and lower[0] not in raw_nouns(raw)):
            return False  # "compressed", "archiving": a participle, no topic
        if len(lower[0]) >= 6 and lower[0].endswith("ly") and not lower[0].endswith(("ply", "bly")):
            return False  # "remotely", "temporarily": an adverb
        return lower[0] not in any_stopwords() and lower[0] not in GENERIC_WORDS and lower[0] not in own \
            and not (language != "en" and lower[0] in _stopwords("en"))
    if any(w in own or w in _short_stopwords() for w in lower):
        return False  # "manager for debian-based", "introduced by existing": no noun phrase
    if all(w in any_stopwords() or w in GENERIC_WORDS for w in lower):
        return False
    return " ".join(lower) not in any_stopwords()


_KEEP_S = frozenset("""windows kubernetes jenkins postgres news lens series species means always perhaps thanks
aws dns sms gps https ios macos chaos pros cons ops devops sass less ps ls ns yes gis css vs
""".split())
_IES_KEEP = frozenset("cookies movies zombies ties lies pies dies rookies selfies goodies hippies".split())


def _singular(word: str) -> str:
    """A plural's singular by English rules, the same for every document (so that two
    documents' "commits" and "commit" are one concept): repositories → repository,
    patches → patch, aliases → alias, commits → commit; words that only look plural
    (windows, kubernetes, status, analysis, physics) are kept."""
    if len(word) <= 3 or not word.endswith("s") or word in _KEEP_S or not word.isalpha() or not word.islower():
        return word
    if word.endswith(("ss", "us", "is", "os", "as", "ics", "fs", "acs")):
        return word
    if word.endswith("ies"):
        return word[:-1] if word in _IES_KEEP else word[:-3] + "y"
    if word.endswith(("sses", "xes", "zzes", "shes", "iases")) or (word.endswith("ches") and not word.endswith("aches")):
        return word[:-2]
    if word.endswith("uses") and len(word) > 6 and word[-5] in "rt":  # statuses, viruses
        return word[:-2]
    return word[:-1]


def _display(phrase: str) -> str:
    """YAKE's phrase as shown: a word capitalised only as a sentence starts it is lowercased,
    acronyms and names in mixed case (MuPDF, GitHub) are kept."""
    out = []
    for word in phrase.split():
        letters = re.sub(r"[\W\d_]", "", word)
        title_case = word[:1].isupper() and word[1:].islower() or word.istitle() and "-" in word
        out.append(word.lower() if title_case or (letters.isupper() and len(letters) > 5) else word)
    return " ".join(out)


@lru_cache(maxsize=1)
def _yake():
    import yake

    return yake


def _yake_input(units: tuple[tuple[str, str], ...]) -> str:
    parts: list[str] = []
    size = 0
    headings = []
    for kind, unit in units:
        if kind == "heading":
            headings.append(unit)
            if size >= YAKE_CHARS:
                continue
        elif size >= YAKE_CHARS:
            continue
        words = unit.split()
        if kind == "para" and len(words) >= 6 and sum(1 for w in words if w[:1].isupper()) > 0.6 * len(words):
            continue  # a list of authors, a line of labels
        piece = unit if re.search(r"[.!?:;]$", unit) else unit + "."
        parts.append(piece)
        size += len(piece) + 1
    if size >= YAKE_CHARS:
        parts += [h + "." for h in headings[:100] if h + "." not in parts]
    return "\n".join(parts)


@lru_cache(maxsize=64)
def _keyphrases(text: str, k: int) -> tuple[str, ...]:
    units = _units(text)
    language = _language_of(units)
    body = _yake_input(units)
    if not body.strip():
        return ()
    stop = set(_stopwords(language)) | (set(GENERIC_WORDS) if language == "en" else set())
    extractor = _yake().KeywordExtractor(lan=language, n=3, dedup_lim=1.0, top=max(20, 8 * k), stopwords=stop)
    try:
        found = extractor.extract_keywords(body)
    except Exception:  # YAKE on degenerate text (a single token, symbols only)
        return ()
    lowered = body.lower()
    leading_only = _leading_only(units)
    tokens = _TOKEN_WORD.findall(lowered)
    vocabulary = set(tokens)
    joined = " " + " ".join(tokens) + " "
    prominent = " " + " ".join(_TOKEN_WORD.findall(" ".join(
        u for kind, u in units[:50] if kind in ("heading", "quote")).lower())) + " "
    chosen: list[str] = []
    keys: list[set[str]] = []
    title = normalize_phrase(units[0][1]) if units and units[0][0] == "heading" else ""
    command = re.match(r"#\s+([a-z][a-z0-9.+_-]*(?: [a-z0-9][a-z0-9.+_-]*)+)\s*$", text.lstrip().split("\n", 1)[0])
    if command and acceptable_phrase(command.group(1).split()[0], language, body):
        # A tldr page of a subcommand ("git cherry-pick"): the command itself, which its
        # sibling pages share, is a concept; the page's own name is its summary page.
        chosen.append(command.group(1).split()[0])
        keys.append({command.group(1).split()[0]})
    for phrase, _score in found:
        display = _display(" ".join(phrase.split()))
        if normalize_phrase(display) == title:
            continue  # the document's own name: its summary page is that page
        if not acceptable_phrase(display, language, body):
            continue
        words = _TOKEN_WORD.findall(display.lower())
        last = words[-1]
        single = _singular(last) if display.split()[-1] == last else last  # "APIs", "AWS" as they are
        if single != last:
            display = display[: len(display) - len(last)] + single
            words[-1] = single
        needle = " " + " ".join(words) + " "
        plural = " " + " ".join(words[:-1] + [last if last != words[-1] else words[-1] + "s"]) + " "
        count = joined.count(needle) + (joined.count(plural) if plural != needle else 0)
        if (count < 3 if len(words) > 1 else count < 2 and needle not in prominent):
            continue  # a word said once (and not in a heading or the description), a phrase said twice
        if words[0] in leading_only:
            continue  # its first word only ever starts a sentence: an imperative ("extract", "follow logs")
        key = {_singular(p) for w in words for p in re.split(r"['’-]", w)}
        if any(key <= other or other <= key for other in keys):
            continue
        if slug_key(display) in {slug_key(c) for c in chosen}:
            continue
        chosen.append(display)
        keys.append(key)
        if len(chosen) >= k:
            break
    return tuple(chosen)


def raw_nouns(raw: str) -> frozenset[str]:
    """Words ending in -ed/-ing that the text uses as nouns ("the embedding", "a building")."""
    return frozenset(m.lower() for m in re.findall(r"\b(?:the|a|an|of|this|its)\s+([^\W\d_]{3,}(?:ed|ing))\b", raw,
                                                   flags=re.I))


def _leading_only(units: tuple[tuple[str, str], ...]) -> frozenset[str]:
    """Words that start sentences (and captions) but never occur inside one."""
    first: set[str] = set()
    inner: set[str] = set()
    for kind, unit in units[:3000]:
        if kind == "heading":
            continue
        for sentence in _split_sentences(unit):
            words = _TOKEN_WORD.findall(sentence.lower())
            if words:
                first.add(words[0])
                inner.update(words[1:])
    return frozenset(first - inner)


def slug_key(phrase: str) -> str:
    return "-".join(normalize_phrase(phrase).split())


def extract_keyphrases(text: str, k: int = 5) -> list[str]:
    """Up to ``k`` concepts of the document, best first: YAKE's multi-word keyphrases of its
    prose (the first 20 kB and every heading), in its detected language with that language's
    stop-words, filtered (see acceptable_phrase), singular and plural merged, a phrase
    said only once left out unless it is in a heading or the description."""
    if k <= 0:
        return []
    return list(_keyphrases(text, k))


# -- summary, description, concept sentences, entities ------------------------------------------


def _word_set(sentence: str) -> list[str]:
    return [_singular(w) for w in normalize_phrase(sentence).split()]


def extractive_summary(doc_sentences: list[str], keyphrases: list[str], n: int = 3) -> list[str]:
    """Up to ``n`` of the document's own whole sentences, in document order: its lead sentence
    (a tldr page's description, a paper's first) and those carrying the most keyphrase
    words; no code, boilerplate, cut sentences, example captions (":") or duplicates."""
    if n <= 0:
        return []
    pool = doc_sentences[:SUMMARY_POOL]
    candidates = [(i, s) for i, s in enumerate(pool) if is_complete(s, min_words=5)]
    lead = next(((i, s) for i, s in enumerate(pool[:6]) if is_complete(s, min_words=2 if i == 0 else 6)), None)
    key_words = Counter(_singular(w) for p in keyphrases for w in normalize_phrase(p).split())
    scored = []
    for index, sentence in candidates:
        tokens = _word_set(sentence)
        score = sum(key_words[t] for t in tokens) / (len(tokens) ** 0.5) + 1.0 / (1 + index)
        scored.append((-score, index, sentence))
    chosen: dict[int, str] = {}
    if lead:
        chosen[lead[0]] = lead[1]
    for _score, index, sentence in sorted(scored):
        if len(chosen) >= n:
            break
        chosen.setdefault(index, sentence)
    return [clip(chosen[i], 400) for i in sorted(chosen)]


_ABSTRACT = re.compile(r"(?i)^(?:a\s?bstract|summary|résumé|zusammenfassung|resumen|riassunto)\s*[.:—–-]?\s*")


def _description_lines(units) -> list[str]:
    """A tldr page's `> ` lines after its title, without "More information: <url>."."""
    out = []
    for kind, unit in units[:12]:
        if kind == "quote":
            out.append(unit)
        elif out or kind != "heading":
            break
    return [line for line in out if not is_boilerplate(line)]


def describe(text: str, doc_sentences: list[str], headings: list[tuple[int, str]]) -> str:
    """One sentence saying what the document is: its own stated description when it has one
    (a tldr page's `>` line, a description in its frontmatter, the first sentence of its
    abstract), else its lead sentence; "" when it has no whole sentence."""
    front = _FRONTMATTER.match(text)
    if front:
        found = re.search(r"(?m)^description:\s*['\"]?(.+?)['\"]?\s*$", front.group())
        if found and len(found.group(1).split()) >= 2:
            return found.group(1).strip()
    units = _units(text)
    lines = _description_lines(units)
    if lines:
        first = _split_sentences(lines[0])[0]
        return first if first.endswith((".", "!", "?")) else first + "."
    for position, (kind, unit) in enumerate(units[:400]):
        match = _ABSTRACT.match(unit)
        if not match or (kind != "heading" and not match.group().strip().endswith((".", ":", "—", "–", "-"))):
            continue
        rest = unit[match.end():] if kind != "heading" else ""
        following = [rest] if rest else []
        following += [u for k, u in units[position + 1:position + 6] if k == "para"]
        for paragraph in following:
            for sentence in _split_sentences(paragraph):
                if is_complete(sentence, min_words=5):
                    return clip(sentence, 400)
        break
    lead = extractive_summary(doc_sentences, [], n=1)
    return lead[0] if lead else ""


def _phrase_forms(phrase: str) -> list[list[str]]:
    words = normalize_phrase(phrase).split()
    if not words:
        return []
    forms = [words]
    last = words[-1]
    for variant in sorted({last + "s", last + "es", _singular(last), last[:-1] + "ies" if last.endswith("y") else last}):
        if variant != last:
            forms.append(words[:-1] + [variant])
    return forms


def _contains(tokens: list[str], target: list[str]) -> bool:
    n = len(target)
    return any(tokens[i:i + n] == target for i in range(len(tokens) - n + 1))


def concept_sentences(phrase: str, doc_sentences: list[str], n: int = 2) -> list[str]:
    """What the document says about ``phrase``: up to ``n`` of its own whole sentences that
    name it, best first (the phrase early in a sentence of a readable length, earlier in
    the document first); a tldr caption's ":" becomes ".". [] when no sentence names it."""
    forms = _phrase_forms(phrase)
    if not forms or n <= 0:
        return []
    scored = []
    stem = forms[0][-1][:max(3, len(forms[0][-1]) - 2)]  # "archiv" finds archive, archives, archiving
    for index, sentence in enumerate(doc_sentences[:MAX_SENTENCES]):
        if stem not in sentence.lower():
            continue
        candidate = sentence[:-1] + "." if sentence.endswith(":") else sentence
        if not is_complete(candidate, min_words=3, max_words=70):
            continue
        tokens = normalize_phrase(candidate).split()
        hit = next((i for form in forms for i in range(len(tokens) - len(form) + 1)
                    if tokens[i:i + len(form)] == form), None)
        if hit is None:
            continue
        length = len(tokens)
        score = (1.0 if 8 <= length <= 40 else 0.5) + 1.0 / (1 + hit) + 2.0 / (2 + index)
        scored.append((-score, index, clip(candidate, 400)))
    out: list[str] = []
    for _score, _index, sentence in sorted(scored):
        if sentence not in out:
            out.append(sentence)
        if len(out) >= n:
            break
    return out


_NAME_WORD = r"(?:[A-Z][a-z]+(?:[A-Z][a-z]+)*|[A-Z]{2,6}|[A-Z][a-z]*[A-Z][A-Za-z]*)"
_NAME = re.compile(rf"(?<![\w.-])({_NAME_WORD}(?:[ ](?:of |de |van |von |der |la |le |du )?{_NAME_WORD}){{1,3}})(?![\w-])")
_MIXED = re.compile(r"(?<![\w.-])((?:[A-Z][a-z]+[A-Z]|[A-Z]{1,3}[a-z]{2,}[A-Z]|[A-Z][a-z]*[A-Z][a-z]{2,})[A-Za-z]*)(?![\w-])")
_MONTHS_DAYS = frozenset("january february march april may june july august september october november december "
                         "monday tuesday wednesday thursday friday saturday sunday".split())


def extract_entities(text: str, k: int = 5) -> list[str]:
    """Up to ``k`` named entities (people, organisations, products, places) the document
    names, read only from its whole sentences: capitalised multi-word names (Google Brain,
    Robin Watts) said at least twice, and mixed-case names (MuPDF, GitHub) said three times,
    at least once inside a sentence (not starting it); never a heading, stop-words, a month,
    a sentence set mostly in capitals (a form's labels); none in German, where every noun is
    capitalised, but mixed-case names. Precision over recall: [] when unsure."""
    if k <= 0:
        return []
    units = _units(text)
    language = _language_of(units)
    headings = {u.lower() for kind, u in units if kind == "heading"}
    counts: Counter = Counter()
    inside: Counter = Counter()
    first_seen: dict[str, int] = {}
    patterns = ((_MIXED,),) if language == "de" else ((_NAME,), (_MIXED,))
    for sentence in _all_sentences(text)[:ENTITY_POOL]:
        if not is_complete(sentence, min_words=6, max_words=60):
            continue
        words_all = _WORD.findall(sentence)
        if sum(1 for w in words_all if w[:1].isupper()) > 0.5 * len(words_all):
            continue  # Title Case labels, a list of names
        for (pattern,) in patterns:
            for match in pattern.finditer(sentence):
                name = match.group(1)
                lower = [w.lower() for w in name.split()]
                if pattern is _NAME and (lower[0] in any_stopwords() or lower[-1] in any_stopwords()
                                         or any(w in GENERIC_WORDS for w in (lower[0], lower[-1]))):
                    continue
                if pattern is _MIXED and re.fullmatch(r"[A-Z]+s", name):
                    continue  # "APIs", "GPUs": plural acronyms
                if any(w in _MONTHS_DAYS or w in LOREM_IPSUM or _jumble(w) for w in lower) \
                        or name.lower() in headings:
                    continue
                counts[name] += 1
                first_seen.setdefault(name, len(first_seen))
                if match.start() > 0:
                    inside[name] += 1
    chosen: list[str] = []
    for name in sorted(counts, key=lambda name: (-counts[name], first_seen[name], name)):
        if counts[name] < (2 if " " in name else 3) or not inside[name]:
            continue
        if any(name in other or other in name for other in chosen):
            continue
        chosen.append(name)
        if len(chosen) >= k:
            break
    return chosen
