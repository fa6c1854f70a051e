"""One order for a revision graph: pure, from plain dicts."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from stairway.schema.histories.linear import NoSingleOrder, heads_after, linearise


def test_a_branch_runs_whole_before_the_next_and_ties_go_to_the_smaller_id() -> None:
    graph = {"base": (), "b1": ("base",), "a1": ("base",), "a2": ("a1",), "m": ("a2", "b1")}
    assert linearise(graph) == ["base", "a1", "a2", "b1", "m"]


def test_heads_are_what_alembic_version_holds_after_each_step() -> None:
    graph = {"base": (), "a1": ("base",), "b1": ("base",), "m": ("a1", "b1")}
    order = linearise(graph)
    assert heads_after(order, graph) == [("base",), ("a1",), ("a1", "b1"), ("m",)]


@pytest.mark.parametrize(
    ("graph", "said"),
    [
        ({"a": ("b",), "b": ("a",)}, "cycle"),
        ({"a": (), "b": ("a",), "c": ("a",)}, "2 heads"),
        ({"a": (), "b": ("gone",)}, "gone, which is not in the history"),
    ],
)
def test_a_graph_without_a_single_order_is_refused(
    graph: dict[str, tuple[str, ...]], said: str
) -> None:
    with pytest.raises(NoSingleOrder, match=said):
        linearise(graph)


@st.composite
def single_headed_graphs(draw: st.DrawFn) -> dict[str, tuple[str, ...]]:
    """Random DAGs over r0..rN whose every revision leads to the last one."""
    size = draw(st.integers(min_value=1, max_value=12))
    names = [f"r{i:02d}" for i in range(size)]
    graph: dict[str, tuple[str, ...]] = {names[0]: ()}
    for index in range(1, size):
        parents = draw(st.sets(st.sampled_from(names[:index]), min_size=1, max_size=3))
        graph[names[index]] = tuple(sorted(parents))
    revised = {p for ps in graph.values() for p in ps}
    open_ends = [n for n in names[:-1] if n not in revised]
    graph[names[-1]] = tuple(sorted(set(graph[names[-1]]) | set(open_ends)))
    return graph


@given(single_headed_graphs(), st.randoms())
def test_every_graph_with_one_head_gets_one_order_whatever_order_it_is_listed_in(
    graph: dict[str, tuple[str, ...]], random: object
) -> None:
    assume(len(graph) > 1)
    order = linearise(graph)
    assert sorted(order) == sorted(graph)
    placed = {r: i for i, r in enumerate(order)}
    assert all(placed[p] < placed[r] for r, ps in graph.items() for p in ps)
    shuffled = list(graph.items())
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert linearise(dict(shuffled)) == order
    assert heads_after(order, graph)[-1] == (order[-1],)
