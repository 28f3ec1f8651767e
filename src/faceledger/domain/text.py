"""Checks for identifiers and free text that come from people or other systems (pure, no I/O).

Two kinds of text reach the store:

* **Identifiers** (usernames, subject ids, gallery names, case numbers, device ids) name
  things and are compared byte for byte, so they must not hide anything: characters of the
  Unicode categories Cc (control: escapes, newlines, NUL) and Cf (format: zero-width
  spaces and joiners, bidi overrides and isolates), plus the line and paragraph separators
  (Zl, Zp) and lone surrogates (Cs), are refused, and so are ``"."`` and ``".."``, which
  URLs and file systems read as "here" and "the parent". :func:`identifier` normalises to
  **NFC** (the canonical composition: the same letters typed on two keyboards compare
  equal) and never to NFKC, which would silently turn e.g. fullwidth digits into ASCII
  ones; where a pattern asks for digits, the pattern decides (the policy compiles its
  patterns with ``re.ASCII``).
* **Free text** (a justification, the agency a search is made for) is normalised to NFC and
  stripped. Blank means absent: text with nothing but whitespace and Cf characters is
  None. Single-line text refuses every hidden character above; multi-line text allows
  tabs and newlines, and the Cf characters some scripts need (zero-width joiners), but no
  other control character and no bidi override or isolate.

:func:`escape_control` is the other half: what a terminal shows of a stored value, with every
hidden character written as an escape (``\\x1b``, ``\\n``, ``\\u202e``) so that a stored value
can never draw or forge anything on screen.
"""

from __future__ import annotations

import unicodedata

from faceledger.errors import ValidationError

#: Unicode categories never allowed in an identifier or single-line text.
HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})

#: Bidi embedding, override and isolate controls, refused even in multi-line text.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")

#: Ids that mean "this folder" and "the parent" to URLs and file systems.
DOT_IDS = frozenset({".", ".."})

_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def is_hidden(char: str) -> bool:
    """True for a control, format, separator or surrogate character (see HIDDEN_CATEGORIES)."""
    return unicodedata.category(char) in HIDDEN_CATEGORIES


def first_hidden(value: str) -> str | None:
    """The first hidden character of ``value``, or None."""
    return next((c for c in value if is_hidden(c)), None)


def describe(char: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)``: a hidden character named for an error message."""
    name = unicodedata.name(char, "")
    return f"U+{ord(char):04X}" + (f" ({name})" if name else "")


def escape_control(value: str) -> str:
    """``value`` with every hidden character (and the backslash) written as an escape.

    Ordinary spaces and visible characters are kept as they are; a newline becomes ``\\n``,
    ESC becomes ``\\x1b``, a zero-width space ``\\u200b``. The result is a single line that
    shows every character the value holds.
    """
    out: list[str] = []
    for char in value:
        if char in _NAMED_ESCAPES:
            out.append(_NAMED_ESCAPES[char])
        elif is_hidden(char):
            code = ord(char)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
        else:
            out.append(char)
    return "".join(out)


def visible(value: str) -> str:
    """``value`` without whitespace and hidden characters: what a reader would actually see."""
    return "".join(c for c in value if not c.isspace() and not is_hidden(c))


def identifier(value: object, what: str, *, max_chars: int | None = None) -> str:
    """A checked identifier: NFC-normalised and stripped, not blank, no hidden character, not a dot id.

    ``what`` names the identifier in the error message ("subject id", "case number").
    Raises :class:`~faceledger.errors.ValidationError` with the reason.
    """
    if not isinstance(value, str):
        raise ValidationError(f"a {what} must be text")
    cleaned = unicodedata.normalize("NFC", value).strip()
    if not cleaned:
        raise ValidationError(f"a {what} must not be empty")
    hidden = first_hidden(cleaned)
    if hidden is not None:
        raise ValidationError(
            f"{what} {escape_control(cleaned[:60])!r} contains the invisible character {describe(hidden)}; "
            "control and format characters are not allowed"
        )
    if cleaned in DOT_IDS:
        raise ValidationError(f"{cleaned!r} is not allowed as a {what}: it means a folder, not a name")
    if max_chars is not None and len(cleaned) > max_chars:
        raise ValidationError(f"{what} {cleaned[:20]!r}… is {len(cleaned)} characters; at most {max_chars}")
    return cleaned


def optional_identifier(value: str | None, what: str, *, max_chars: int | None = None) -> str | None:
    """:func:`identifier` for one that may be absent: None, or blank (see :func:`visible`), is None."""
    if value is None or (isinstance(value, str) and not visible(value)):
        return None
    return identifier(value, what, max_chars=max_chars)


def optional_text(value: str | None, what: str, *, multiline: bool = False) -> str | None:
    """Free text that may be absent: NFC-normalised and stripped; blank (see :func:`visible`) is None.

    Single-line text refuses every hidden character; ``multiline`` text allows tabs,
    newlines and the format characters some scripts need, but no other control character
    and no bidi control (:data:`BIDI_CONTROLS`).
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValidationError(f"{what} must be text")
    cleaned = unicodedata.normalize("NFC", value.replace("\r\n", "\n")).strip()
    if not visible(cleaned):
        return None
    for char in cleaned:
        allowed = multiline and (
            char in "\n\t" or (unicodedata.category(char) == "Cf" and char not in BIDI_CONTROLS)
        )
        if is_hidden(char) and not allowed:
            raise ValidationError(
                f"{what} contains the invisible character {describe(char)}; "
                "control characters and bidi overrides are not allowed"
            )
    return cleaned
