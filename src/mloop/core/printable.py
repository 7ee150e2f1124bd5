"""Text from users and data, made safe to show on a terminal.

Names, messages, paths, column names and error text come from users (or from files
they did not write), so mloop prints them as *data*: never as markup (see
``cli/render.py``) and never as raw control characters. A run named
``"\\x1b[2J"`` would otherwise clear the screen of whoever lists the runs, and a
right-to-left override (U+202E) would make a name read backwards.

The rule: every control character (C0 and C1, DEL), every bidirectional-formatting
character and the Unicode line and paragraph separators are shown as a visible escape —
``\\x1b``, ``\\r``, ``\\u202e`` — rather than stripped, so two names that differ only in
such characters still look different. Newlines and tabs stay as they are in free text
(messages, logs, error explanations); a table cell or any one-line context shows them as
``\\n`` and ``\\t`` too, so one record stays on one line.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL and C1; bidi marks, embeddings, overrides and
# isolates; line and paragraph separators; the BOM/zero-width no-break space.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e"
                      "\u2066-\u2069\u2028\u2029\ufeff]")
_CONTROL_ONE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e"
                               "\u2066-\u2069\u2028\u2029\ufeff]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def printable(text: object, *, one_line: bool = False) -> str:
    """``text`` (any object, via ``str``) with control characters shown as escapes.

    Newlines and tabs are kept unless ``one_line``; a Windows line end (CRLF) in
    multi-line text is read as a newline rather than shown as ``\\r``.
    """
    value = str(text)
    if one_line:
        return _CONTROL_ONE_LINE.sub(_escape, value)
    if "\r\n" in value:
        value = value.replace("\r\n", "\n")
    return _CONTROL.sub(_escape, value)
