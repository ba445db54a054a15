import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sklearn_lts.prototypes._soft_labels import line_scores, solve_line_lp


def check_reference_constraints(pos, res, exact_midpoints=True):
    """The constraints of the reference LP, checked on the solution."""
    assert np.all(res.a >= -1e-12) and np.all(res.b >= -1e-12)
    np.testing.assert_allclose([res.a.sum(), res.b.sum()], 1.0, atol=1e-9)
    own = line_scores(res.a, res.b, pos)
    # every class wins at its own position, strictly
    for i in range(len(pos)):
        others = np.delete(own[i], i)
        assert own[i, i] > others.max() + 1e-12, (i, own[i])
    if exact_midpoints:
        mid = 0.5 * (pos[1:] + pos[:-1])
        s = line_scores(res.a, res.b, mid)
        for i in range(len(mid)):
            assert abs(s[i, i] - s[i, i + 1]) < 1e-8
            # and the two neighbours are the top two classes at the boundary
            assert s[i, i] >= np.delete(s[i], [i, i + 1]).max(initial=0) - 1e-9


@pytest.mark.parametrize(
    "pos",
    [[0.0, 1.0], [0.0, 0.5, 1.0], [0.0, 0.1, 0.2, 1.0], [0.0, 0.3, 0.35, 0.7, 0.9, 1.0]],
)
def test_lp_satisfies_constraints(pos):
    pos = np.array(pos)
    res = solve_line_lp(pos)
    assert res.status == "lp"
    check_reference_constraints(pos, res)


def test_two_classes_give_one_hot_labels():
    res = solve_line_lp(np.array([0.0, 1.0]))
    np.testing.assert_allclose(res.a, [1, 0], atol=1e-9)
    np.testing.assert_allclose(res.b, [0, 1], atol=1e-9)


def test_coincident_positions_are_infeasible():
    assert solve_line_lp(np.array([0.0, 0.5, 0.5, 1.0])) is None


def test_decision_regions_are_the_midpoint_intervals():
    pos = np.array([0.0, 0.2, 0.6, 1.0])
    res = solve_line_lp(pos)
    grid = np.linspace(0, 1, 2001)
    winners = line_scores(res.a, res.b, grid).argmax(1)
    mids = 0.5 * (pos[1:] + pos[:-1])
    expected = np.searchsorted(mids, grid)
    away = np.min(np.abs(grid[:, None] - mids[None]), axis=1) > 1e-3
    np.testing.assert_array_equal(winners[away], expected[away])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.01, 0.99), min_size=1, max_size=8, unique=True))
def test_lp_property_every_class_wins(inner):
    pos = np.array([0.0, *sorted(inner), 1.0])
    if np.min(np.diff(pos)) < 1e-6:
        return
    res = solve_line_lp(pos)
    assert res is not None
    check_reference_constraints(pos, res, exact_midpoints=res.status == "lp")
