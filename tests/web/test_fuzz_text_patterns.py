"""The text patterns the API document states say what the services enforce, character by character.

The services check text themselves (faceledger.domain.text, ``str.strip``); the document only
states those rules as regular expressions (faceledger.web.models.common), so that schemathesis
and clients generate what the server takes. These tests hold the two together over every code
point, so that a new Python (a new Unicode version) that moves a character shows up here.
"""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from faceledger.domain import text
from faceledger.services import accounts  # noqa: F401 - first: services.devices alone meets an import cycle
from faceledger.services.devices import DeviceCredential
from faceledger.web.deps import DEVICE_CREDENTIAL
from faceledger.web.models.common import HIDDEN_CHARS, HIDDEN_IN_TEXT, NOT_BLANK, SPACES

#: Every code point but the surrogates (which no UTF-8 text carries, and the patterns leave out).
EVERY = [chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]


def python(pattern: str) -> re.Pattern[str]:
    """The document's pattern as Python reads it (``\\x{...}`` is PCRE's spelling of a code point)."""
    return re.compile(re.sub(r"\\x\{([0-9a-f]+)\}", lambda m: f"\\U{int(m[1], 16):08x}", pattern))


def test_the_hidden_characters_are_those_the_services_refuse() -> None:
    hidden = python(f"[{HIDDEN_CHARS}]")
    wrong = [f"U+{ord(c):04X}" for c in EVERY if bool(hidden.fullmatch(c)) != text.is_hidden(c)]
    assert not wrong, f"unicodedata {unicodedata.unidata_version}: {wrong[:20]}"


def test_the_characters_multi_line_text_refuses() -> None:
    refused = python(f"[{HIDDEN_IN_TEXT}]")
    wrong = []
    for char in EVERY:
        try:
            text.optional_text(f"a{char}b", "text", multiline=True)
            accepted = True
        except Exception:
            accepted = False
        # A lone CR is refused; the pattern refuses every CR (a CR LF is read as LF, and stated as LF).
        if bool(refused.fullmatch(char)) == accepted and char != "\r":
            wrong.append(f"U+{ord(char):04X}")
    assert not wrong, wrong[:20]


def test_whitespace_is_either_a_space_or_hidden() -> None:
    spaces, hidden = python(f"[{SPACES}]"), python(f"[{HIDDEN_CHARS}]")
    assert [c for c in EVERY if c.isspace() and not (spaces.fullmatch(c) or hidden.fullmatch(c))] == []
    assert [c for c in EVERY if spaces.fullmatch(c) and not c.isspace()] == []


def test_not_blank_is_what_strip_leaves_something_of() -> None:
    visible = python(NOT_BLANK)
    assert [f"U+{ord(c):04X}" for c in EVERY if bool(visible.fullmatch(c)) == c.isspace()] == []


@settings(max_examples=200, deadline=None)
@given(st.from_regex(python(DEVICE_CREDENTIAL), fullmatch=True))
def test_a_device_header_of_the_documented_shape_parses(value: str) -> None:
    if value.strip():
        DeviceCredential.parse(value)


@pytest.mark.parametrize("value", ["ws-01", ":secret", "ws-01:", " : ", "ws 01:x"])
def test_a_device_header_of_another_shape_is_not_documented(value: str) -> None:
    assert python(DEVICE_CREDENTIAL).fullmatch(value) is None
