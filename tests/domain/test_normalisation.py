"""The score normalisations the system knows, as every stored result names them."""

from __future__ import annotations

import pytest

from faceledger.domain import normalisation
from faceledger.domain.templates import MAX_TEMPLATE_IMAGES
from faceledger.errors import ValidationError


def test_comparisons_use_none_the_raw_cosine_similarity() -> None:
    assert list(normalisation.KNOWN) == ["none", "mean-template"]
    assert normalisation.IN_USE is normalisation.NONE is normalisation.by_key("none")
    assert normalisation.NONE.description == "cosine similarity of unit embeddings; no normalisation"
    assert normalisation.NONE.says() == (
        'scores are the cosine similarity of unit embeddings; no normalisation (score normalisation "none")'
    )


def test_mean_template_says_how_many_images_a_template_may_average() -> None:
    """A stored key keeps its meaning: a larger template limit would need a new key."""
    template = normalisation.by_key("mean-template")
    assert template is normalisation.MEAN_TEMPLATE
    assert (
        f"unit mean of up to {MAX_TEMPLATE_IMAGES} of the subject's enrolled embeddings"
        in template.description
    )
    assert "estimated FMR of that template size" in template.description
    assert template.says().endswith('(score normalisation "mean-template")')


def test_an_unknown_key_is_refused_and_names_the_known_ones() -> None:
    with pytest.raises(
        ValidationError, match=r"unknown score normalisation 'cohort-tnorm' .*knows mean-template, none"
    ):
        normalisation.by_key("cohort-tnorm")
    with pytest.raises(TypeError):
        normalisation.KNOWN["x"] = normalisation.NONE  # type: ignore[index]


@pytest.mark.parametrize(
    "key", ["", " none", "None", "cohort tnorm", "cohort-", "x" * (normalisation.MAX_KEY_CHARS + 1), "normé"]
)
def test_a_key_is_a_short_lower_case_word_list_that_fits_the_stored_column(key: str) -> None:
    with pytest.raises(ValueError, match="key"):
        normalisation.ScoreNormalisation(key, "something")
    assert normalisation.ScoreNormalisation("cohort-tnorm-2", "something").key == "cohort-tnorm-2"


def test_a_normalisation_says_what_it_is() -> None:
    with pytest.raises(ValueError, match="needs a description"):
        normalisation.ScoreNormalisation("cohort-tnorm", " ")
