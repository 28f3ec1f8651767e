"""Subject templates: which faces a template averages, and the unit mean itself."""

from __future__ import annotations

import numpy as np
import pytest

from faceledger.domain.templates import MAX_TEMPLATE_IMAGES, TemplateFace, template_members, unit_mean


def test_a_template_takes_the_best_quality_faces_then_the_older_ones() -> None:
    faces = [TemplateFace(10, 55.0), TemplateFace(3, 90.0), TemplateFace(7, 55.0), TemplateFace(1, 20.0)]
    assert template_members(faces, limit=3) == [3, 7, 10]
    assert template_members(faces[:1]) == [10]
    assert template_members([]) == []
    many = [TemplateFace(i, 50.0) for i in range(1, 10)]
    assert template_members(many) == list(range(1, MAX_TEMPLATE_IMAGES + 1))
    with pytest.raises(ValueError, match="at least one face"):
        template_members(faces, limit=0)


def test_the_unit_mean_of_unit_vectors() -> None:
    a = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    b = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    mean = unit_mean(np.stack([a, b]))
    assert mean.dtype == np.float32
    assert float(np.linalg.norm(mean)) == pytest.approx(1.0)
    np.testing.assert_allclose(mean, [2**-0.5, 2**-0.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(unit_mean(a[None, :]), a)  # one image: the template is the image


def test_vectors_that_cancel_or_are_missing_have_no_template() -> None:
    a = np.array([[1.0, 0.0], [-1.0, 0.0]])
    with pytest.raises(ValueError, match="no mean direction"):
        unit_mean(a)
    with pytest.raises(ValueError, match="at least one vector"):
        unit_mean(np.zeros((0, 2)))
    with pytest.raises(ValueError, match="at least one vector"):
        unit_mean(np.zeros(2))
