"""Score normalisations: what turns a raw comparison into the score a result carries.

Every 1:N candidate score and every 1:1 comparison score is produced under exactly one
normalisation, and each stored result names it (its :attr:`ScoreNormalisation.key`), so that a
record read years later, or a discovery package, says how its scores were made: a
threshold or an estimated false match rate only means something on the scale it was
calibrated on.

There are two:

- ``none``: the cosine similarity of two unit embeddings as the model produced them. Every 1:1
  comparison uses it, and so did every search before subject templates; in such a search a
  subject's score is that of its best image.
- ``mean-template``: a search's subject scores are the cosine similarity of the probe's
  embedding to the subject's mean template (:mod:`faceledger.domain.templates`), read on the
  calibration of the template's size, and subjects are ranked by that estimated FMR; each
  candidate says how many images its template averages. The per-face candidate list of the same
  search keeps raw cosine scores of single images.

A later normalisation (for example cohort T-norm) is one more entry in :data:`KNOWN`, with its
own key and description; the key of a stored result is never reinterpreted, so a key once used
keeps its meaning.

Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from faceledger.errors import ValidationError

#: The most characters a key may have (the stored column is this wide).
MAX_KEY_CHARS = 32
_KEY = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


@dataclass(frozen=True, slots=True)
class ScoreNormalisation:
    """One way of producing scores: a stable ``key`` (stored with every result) and its words."""

    key: str
    description: str

    def __post_init__(self) -> None:
        if len(self.key) > MAX_KEY_CHARS or _KEY.fullmatch(self.key) is None:
            raise ValueError(
                f"a score normalisation key is up to {MAX_KEY_CHARS} lower-case letters and digits, "
                f"in words joined by '-': {self.key!r}"
            )
        if not self.description.strip():
            raise ValueError(f"score normalisation {self.key!r} needs a description")

    def says(self) -> str:
        """How outputs word it: the description, then the key a record stores."""
        return f'scores are the {self.description} (score normalisation "{self.key}")'


#: The raw score: cosine similarity of the two unit embeddings, nothing applied to it.
NONE = ScoreNormalisation("none", "cosine similarity of unit embeddings; no normalisation")

#: Subject scores of a search from mean templates, each read on its template size's calibration.
MEAN_TEMPLATE = ScoreNormalisation(
    "mean-template",
    "cosine similarity of the probe to the unit mean of up to 4 of the subject's enrolled embeddings, "
    "ranked by the estimated FMR of that template size; the per-face list keeps single-image scores",
)

#: Every normalisation this version knows, by key.
KNOWN: Mapping[str, ScoreNormalisation] = MappingProxyType({n.key: n for n in (NONE, MEAN_TEMPLATE)})

#: The normalisation 1:1 comparisons use, and searches when the model has no template calibrations.
IN_USE = NONE


def by_key(key: str) -> ScoreNormalisation:
    """The normalisation named ``key``; :class:`ValidationError` for one this version does not know."""
    found = KNOWN.get(key)
    if found is None:
        raise ValidationError(
            f"unknown score normalisation {key!r} (this version knows {', '.join(sorted(KNOWN))})"
        )
    return found
