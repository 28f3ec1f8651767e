"""Identifier and free-text checks (faceledger.domain.text): what is refused, kept and shown."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faceledger.domain import text
from faceledger.errors import ValidationError

HIDDEN = [
    "\x00",
    "\x1b",
    "\n",
    "\r",
    "\t",
    "\x7f",
    "\x85",
    "\u200b",
    "\u200d",
    "\u202e",
    "\u2066",
    "\ufeff",
    "\u2028",
]


@pytest.mark.parametrize("char", HIDDEN)
def test_identifiers_refuse_control_and_format_characters_naming_them(char: str) -> None:
    with pytest.raises(ValidationError, match=r"invisible character U\+[0-9A-F]{4}") as caught:
        text.identifier(f"ab{char}cd", "subject id")
    assert not any(text.is_hidden(c) for c in str(caught.value))


@pytest.mark.parametrize("value", [".", "..", " . ", "\u3000..\u3000"])
def test_dot_ids_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="not allowed as a subject id"):
        text.identifier(value, "subject id")


@pytest.mark.parametrize("value", ["", "   ", None, 7])
def test_blank_or_non_text_identifiers_are_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        text.identifier(value, "subject id")


def test_identifiers_are_stripped_and_nfc_not_nfkc() -> None:
    assert text.identifier("  Jose\u0301 ", "subject id") == "Jos\u00e9"  # NFC composes
    assert text.identifier("２０２５", "case number") == "２０２５"  # NFKC would make it 2025
    assert text.identifier("...", "subject id") == "..."  # only "." and ".." name folders
    with pytest.raises(ValidationError, match="at most 5"):
        text.identifier("abcdef", "subject id", max_chars=5)


def test_optional_values_treat_blank_as_absent() -> None:
    for blank in (None, "", " ", "\t\n ", "\u200b", " \u2060\ufeff "):
        assert text.optional_text(blank, "the agency") is None
    for blank in (" ", "\t\n", "\u200b"):
        assert text.optional_identifier(blank, "case number") is None
    with pytest.raises(ValidationError):
        text.optional_identifier("\u200b1", "case number")
    assert text.optional_text("  Other Police ", "the agency") == "Other Police"


def test_single_line_text_refuses_hidden_characters_multiline_allows_lines_and_joiners() -> None:
    with pytest.raises(ValidationError, match="U\\+000A"):
        text.optional_text("Other\nPolice", "the agency")
    assert text.optional_text("line one\r\nline\ttwo", "why", multiline=True) == "line one\nline\ttwo"
    assert text.optional_text("\u0915\u094d\u200d\u0937", "why", multiline=True) == "\u0915\u094d\u200d\u0937"
    for bad in ("a\u202eb", "a\x1bb", "a\x00b", "a\u2067b"):
        with pytest.raises(ValidationError):
            text.optional_text(bad, "why", multiline=True)


def test_escape_control_shows_every_hidden_character_and_keeps_spaces() -> None:
    assert text.escape_control("eve\x1b[2J\nrow\u202e\\ ok") == "eve\\x1b[2J\\nrow\\u202e\\\\ ok"
    assert text.escape_control("caf\u00e9 \u4e2d") == "caf\u00e9 \u4e2d"
    assert text.visible(" a\u200b b\n") == "ab"


@given(st.text())
def test_escaped_text_is_one_visible_line(value: str) -> None:
    shown = text.escape_control(value)
    assert not any(text.is_hidden(c) for c in shown)
    assert "\n" not in shown
