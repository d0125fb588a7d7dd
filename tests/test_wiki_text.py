"""Issue #16, the offline compiler worth reading: titles, descriptions, summaries, concepts.

Real documents from the shared corpus, converted and compiled by the product's own functions.
"""

from __future__ import annotations

import pytest

from openkb_git.convert import convert_file

from conftest import CORPUS

PDF = CORPUS / "pdf"

# Titles read off each document's first page (or its metadata), by looking at it.
TITLES = {
    "attention-is-all-you-need": "Attention Is All You Need",  # was "Introduction" (first outline entry)
    "mupdf_explored": "MuPDF Explored",  # was "Preface"
    "test_4751": "QWEN2 TECHNICAL REPORT",  # the Qwen2 report, set in small capitals; was "Introduction"
    "v110-changes": "MuPDF v1.10 Changes and their Implications for PyMuPDF",  # was "Pixmap" (a section)
    "cython": "Cython Reference Guide",  # metadata
    "2201.00069": "MeerKAT, e-MERLIN, Swift and H.E.S.S., observations of three localised FRBs",
    "test-3820": "UPDATED RECOMMENDATIONS ON TREATMENT OF ADOLESCENTS AND CHILDREN WITH CHRONIC HCV INFECTION, "
                 "AND HCV SIMPLIFIED SERVICE DELIVERY AND DIAGNOSTICS",  # was "ACKNOWLEDGEMENTS"
    "test_toc_count": "test_toc_count",  # no text at all, outline "1", "2", "2.1 collapsed": was "1"
    "test_4435": "The Logical Clarinet: Numerical Optimization of the Geometry of Woodwind Instruments",
    "test_4505": "A Simple PDF File",
    "test_3186": "Assicurazione sulla vita di tipo Unit Linked",
    "test_4965": "2025 Form 1040",  # metadata
    "bug1945": "Putin declares four areas of Ukraine as Russian in illegal annexation",  # not "News"
    "2": "PyMuPDF Documentation",
}


@pytest.mark.parametrize("stem", sorted(TITLES))
def test_pdf_title_is_the_documents_own(stem):
    assert convert_file(PDF / f"{stem}.pdf", stem).title == TITLES[stem]


def test_no_pdf_title_is_a_section_name():
    from openkb_git.convert.pdf import is_generic_title

    for name in ("Introduction", "Preface", "ABSTRACT", "Acknowledgements", "Contents", "Table of Contents", "1",
                 "2.1 collapsed", "Chapter 1", "1. Introduction", "Microsoft Word - report.doc", "untitled",
                 "RUBRIK_Editorial_01-06.indd", "70580A_JMC_INT.pdf"):
        assert is_generic_title(name), name
    for name in ("Attention Is All You Need", "MuPDF Explored", "2025 Form 1040", "Cython Reference Guide"):
        assert not is_generic_title(name), name
    assert is_generic_title("mupdf explored", "mupdf_explored")  # metadata that is the file's name
