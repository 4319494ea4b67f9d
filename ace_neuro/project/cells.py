"""Parsing the text cells of the lab's CSV files into Python values.

Types depend only on the cell's own text, never on other rows:

=========================  ==========================
cell text                  value
=========================  ==========================
empty, None, NA, NaN, N/A  ``None`` (not set: use the default)
TRUE / false / True        ``bool``
12, -3, 1e3, 0.85          ``int`` or ``float``
(3, 3), [1, 2], (67,503, 555,61)  ``tuple`` of numbers (or strings)
anything else              ``str`` (stripped), e.g. ``corr_pnr``
=========================  ==========================
"""
from __future__ import annotations

import re
from typing import Any

MISSING_TOKENS = frozenset({"", "none", "na", "nan", "n/a", "null", "#n/a"})
_INT = re.compile(r"^[+-]?\d+$")
_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_cell(text: str | None) -> Any:
    """Parse one cell's text. See the module docstring for the rules."""
    if text is None:
        return None
    s = text.strip()
    if s.lower() in MISSING_TOKENS:
        return None
    low = s.lower()
    if low == "true":
        return True
    if low == "false":
        return False
    num = parse_number(s)
    if num is not None:
        return num
    if len(s) >= 2 and ((s[0], s[-1]) in (("(", ")"), ("[", "]"))):
        inner = s[1:-1].strip()
        if not inner:
            return ()
        return tuple(_parse_element(p) for p in inner.split(",") if p.strip() != "")
    return s


def parse_number(s: str) -> int | float | None:
    s = s.strip()
    if _INT.match(s):
        return int(s)
    if _FLOAT.match(s):
        return float(s)
    return None


def _parse_element(p: str) -> Any:
    p = p.strip().strip("'\"")
    num = parse_number(p)
    if num is not None:
        return num
    low = p.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in MISSING_TOKENS:
        return None
    return p


def format_tuple(values) -> str:
    """The text form written back to a CSV, read back by :func:`parse_cell` to the same tuple."""
    return "(" + ", ".join(str(int(v)) if float(v) == int(v) else repr(float(v)) for v in values) + ")"
