"""Limits on what one input file may expand to while it is converted.

    limits = Limits.from_config(kb.config)
    limits.check_input(suffix, size)           # before the file is read
    with memory_limit(limits.max_worker_memory_mb, suffix):
        conv = convert_file(path, doc, limits=limits, data=data)

A small file can expand to gigabytes (a compressed EPUB chapter, a PDF of a million
pages): the sizes are checked before the file is opened where the format declares them
(a zip archive's entry sizes), and again while converting (page count, text so far), so a
bomb is refused early instead of after it has taken the memory. The memory cap (an
address-space limit for the conversion) catches what the checks cannot foresee: the file
fails with "exceeds the memory limit", the run goes on.
"""

from __future__ import annotations

import os

import io
import re
import resource
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Mapping

from ..errors import OpenKBError
from .base import ConversionError

MB = 1024 * 1024
CONFIG_FILE = ".openkb/config.yaml"
# Entries of a zip-based document that are laid out (markup, styles); images, fonts and
# media are decoded on demand and do not count towards the expanded text.
_MEDIA = re.compile(r"\.(?:png|jpe?g|gif|bmp|tiff?|webp|svgz|ico|jxr|wdp|ttf|otf|woff2?|odttf|eot|"
                    r"mp3|mp4|m4a|ogg|wav|webm|avi|mov|pdf)$", re.I)
_ALLOC_FAILED = re.compile(r"\b(?:m|c|re)alloc\b.*\bfailed\b|out of memory", re.I)


class LimitError(ConversionError):
    """The file would expand past a configured limit; the message names the limit and the
    config key that raises it."""


class LimitConfigError(OpenKBError):
    """A limit in the config is not a number (the message names the key)."""


@dataclass(frozen=True)
class Limits:
    """Per-file limits; 0 or None in a field means no limit."""

    max_file_mb: float = 200
    max_expanded_mb: float | None = 50
    max_pages: int | None = 5000
    max_expansion_ratio: float | None = 100
    max_worker_memory_mb: float | None = 2048

    @classmethod
    def from_config(cls, config: Mapping) -> "Limits":
        """The limits set in a KB's config (missing keys: the defaults)."""
        default = cls()

        def number(key: str, kind=float):
            value = config.get(key, getattr(default, key))
            if value is None or value is False:
                return None
            try:
                if isinstance(value, bool) or not isinstance(value, (int, float, str)) or kind(value) < 0:
                    raise ValueError(value)
                return kind(value) or None
            except (TypeError, ValueError):
                raise LimitConfigError(f"{CONFIG_FILE}: {key} is {value!r}, not a number of "
                                       f"{'pages' if kind is int else 'MB' if key.endswith('_mb') else 'times'}; "
                                       "set it to a number (0 for no limit)") from None

        max_file_mb = number("max_file_mb")
        return cls(max_file_mb=float("inf") if max_file_mb is None else max_file_mb,
                   max_expanded_mb=number("max_expanded_mb"), max_pages=number("max_pages", int),
                   max_expansion_ratio=number("max_expansion_ratio"),
                   max_worker_memory_mb=_capped_by_machine(number("max_worker_memory_mb")))

    @classmethod
    def unlimited(cls) -> "Limits":
        """No limits (for a file converted within the limits before)."""
        return cls(max_file_mb=float("inf"), max_expanded_mb=None, max_pages=None, max_expansion_ratio=None,
                   max_worker_memory_mb=None)

    # -- checks --------------------------------------------------------------
    def check_text_size(self, size: int, what: str = "text") -> None:
        """Refuse ``size`` bytes of ``what`` above max_expanded_mb."""
        if self.max_expanded_mb and size > self.max_expanded_mb * MB:
            raise LimitError(f"its {what} is larger than max_expanded_mb ({size / MB:.1f} MB > "
                             f"{self.max_expanded_mb:g} MB){_RAISE.format(key='max_expanded_mb')}")

    def check_input(self, suffix: str, size: int) -> None:
        """Checks that need only the file's type and size, before it is read: a text file is
        its own expanded text."""
        from .text import TEXT_SUFFIXES

        if suffix in TEXT_SUFFIXES:
            self.check_text_size(size, "text")

    def check_pages(self, pages: int) -> None:
        if self.max_pages and pages > self.max_pages:
            raise LimitError(f"it has {pages} pages, more than max_pages ({self.max_pages})"
                             f"{_RAISE.format(key='max_pages')}")

    def check_archive(self, data: bytes, kind: str, reflowable: bool) -> None:
        """For a zip-based document (EPUB, XPS): the sizes its entries declare, before any of
        it is decompressed or laid out. Refuses an archive expanding more than
        max_expansion_ratio times its own size and, when the document is ``reflowable``
        (EPUB: opening it lays out every chapter), markup larger than max_expanded_mb. An
        XPS's fixed pages are read one at a time, within the text limit."""
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as archive:
                entries = archive.infolist()
        except (zipfile.BadZipFile, ValueError, OSError, EOFError):
            return  # not a zip (or a broken one): the converter reports it
        total = sum(max(0, e.file_size) for e in entries)
        markup = sum(max(0, e.file_size) for e in entries if not _MEDIA.search(e.filename))
        if self.max_expansion_ratio and total > 1 * MB and total > self.max_expansion_ratio * len(data):
            raise LimitError(f"this {kind} expands to {total / MB:.1f} MB from {len(data) / MB:.2f} MB, more than "
                             f"max_expansion_ratio ({self.max_expansion_ratio:g}x): a compression bomb?"
                             f"{_RAISE.format(key='max_expansion_ratio')}")
        if reflowable:
            self.check_text_size(markup, f"{kind} text and markup (declared in the archive)")


_RAISE = "; raise {key} in " + CONFIG_FILE + " to add it"


def is_alloc_failure(exc: BaseException) -> bool:
    """A C library's allocation failure (MuPDF: "code=2: calloc (4104 x 1 bytes) failed")."""
    return isinstance(exc, MemoryError) or _ALLOC_FAILED.search(str(exc)) is not None


def _address_space_mb() -> float | None:
    """This process's current virtual memory size (Linux), or None when unknown."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _capped_by_machine(max_mb: float | None) -> float | None:
    """A tracked config may switch the memory limit off or set it above the machine's
    memory: one conversion is still held to the machine's physical memory."""
    try:
        ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1024 * 1024)
    except (ValueError, OSError, AttributeError):
        return max_mb
    return ram_mb if max_mb is None else min(max_mb, ram_mb)


@contextmanager
def memory_limit(max_mb: float | None, suffix: str | None = None) -> Iterator[None]:
    """Run the body with at most ``max_mb`` MB of memory beyond what the process already
    uses (an address-space limit, lifted again afterwards). Running out — a MemoryError or a
    C library's failed allocation — raises LimitError naming max_worker_memory_mb.

    ``suffix``: the type of file converted in the body; its converter's libraries are
    imported first, outside the limit (PyMuPDF imports numpy, whose BLAS threads cannot
    start under a tight address-space limit)."""
    previous = None
    if max_mb and suffix:
        from .pdf import PYMUPDF_SUFFIXES, _pymupdf

        if suffix in PYMUPDF_SUFFIXES:
            _pymupdf()
        from .office import MARKITDOWN_SUFFIXES, preload

        if suffix in MARKITDOWN_SUFFIXES:
            preload()  # markitdown's imports (onnxruntime, pandas) map far more than they use
    if max_mb:
        current = _address_space_mb()
        if current is not None:
            soft, hard = resource.getrlimit(resource.RLIMIT_AS)
            limit = int((current + max_mb) * MB)
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            if soft == resource.RLIM_INFINITY or limit < soft:
                try:
                    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
                    previous = (soft, hard)
                except (ValueError, OSError):
                    previous = None
    try:
        yield
    except MemoryError:
        raise _out_of_memory(max_mb) from None
    except ConversionError as exc:
        if isinstance(exc.__cause__ or exc.__context__, MemoryError):
            raise _out_of_memory(max_mb) from None
        raise
    finally:
        if previous is not None:
            resource.setrlimit(resource.RLIMIT_AS, previous)


def _out_of_memory(max_mb: float | None) -> LimitError:
    if max_mb:
        return LimitError(f"converting it exceeds the memory limit (max_worker_memory_mb: {max_mb:g} MB)"
                          f"{_RAISE.format(key='max_worker_memory_mb')}")
    return LimitError(f"converting it ran out of memory; set max_worker_memory_mb in {CONFIG_FILE} "
                      "to bound what one file may take")
