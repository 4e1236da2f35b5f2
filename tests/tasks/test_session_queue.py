"""The per-session queue of handles (and its index by task id, against a plain scan).

The poll scheduler's bound on polls in flight is in ``test_poller.py``."""

from __future__ import annotations

from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from webrun_async._tasks.runtime import _INDEX_FROM, SessionState
from webrun_async.types import TaskResult


class Queued:
    """The three attributes of a handle the queue reads and writes."""

    def __init__(self, number: int, task_id: str | None) -> None:
        self.number = number
        self.task_id = task_id
        self._queued = False
        self._server_final = False

    def __repr__(self) -> str:
        return f"Queued({self.number}, {self.task_id!r})"


def as_handle(item: Queued) -> Any:
    return cast(Any, item)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.sampled_from([None, "a", "b", "c", "d", "e"]), st.booleans()),
        st.tuples(st.just("pop"), st.just(0), st.just(False)),
        st.tuples(st.just("name"), st.integers(0, 200), st.sampled_from(["a", "b", "f"])),
        st.tuples(st.just("remove"), st.integers(0, 200), st.just(False)),
        st.tuples(st.just("pop"), st.just(0), st.just(False)),
    ),
    max_size=120,
)


task_ids = st.sampled_from([None, "a", "b", "c", "d", "e"])


@settings(max_examples=300, deadline=None)
@given(st.lists(task_ids, min_size=0, max_size=_INDEX_FROM + 8), operations)
def test_the_index_always_agrees_with_a_scan_of_the_queue(
    start: list[str | None], ops: list[tuple[str, Any, Any]]
) -> None:
    """Starting from a short or a long queue (indexed), any sequence of changes."""
    state = SessionState("s")
    made: list[Queued] = []
    for task_id in start:
        made.append(Queued(len(made), task_id))
        state.add(as_handle(made[-1]))
    for op, arg, flag in ops:
        if op == "add":
            item = Queued(len(made), arg)
            made.append(item)
            state.add(as_handle(item), first=flag)
        elif op == "name" and made:
            item = made[arg % len(made)]
            if item.task_id is None:
                item.task_id = flag
                state.named(as_handle(item))
        elif op == "remove" and made:
            state.remove(as_handle(made[arg % len(made)]))
        elif op == "pop" and state.handles:
            state.pop_first()
        for task_id in "abcdef":
            expected = [h for h in state.handles if h.task_id == task_id]
            assert state.with_task(task_id) == expected
        assert all(h._queued for h in state.handles)
        assert sum(item._queued for item in made) == len(state.handles)
        if not state.handles:
            assert state.index is None


def final(task_id: str) -> TaskResult[Any]:
    return TaskResult(session_id="s", task_id=task_id, message="done")


def test_routing_in_a_long_queue_reaches_every_handle_of_the_task_and_retires_up_to_it() -> None:
    state = SessionState("s")
    items = [Queued(n, f"t{n}") for n in range(_INDEX_FROM * 4)]
    for item in items:
        state.add(as_handle(item))
    assert state.index is not None  # the long queue is indexed
    twin = Queued(999, "t5")  # a second handle following task t5, attached later
    state.add(as_handle(twin))

    routed = state.route(final("t5"))
    assert routed == [items[5], twin]
    missed = state.retire(routed)
    # everything up to the twin left the queue; the tasks before t5 were missed
    assert missed == [*items[:5], *items[6:]]
    assert state.handles == []
    assert state.index is None
    assert not any(item._queued for item in [*items, twin])


def test_an_unknown_task_id_routes_to_the_oldest_unnamed_handle() -> None:
    state = SessionState("s")
    items = [Queued(n, f"t{n}" if n != 20 else None) for n in range(_INDEX_FROM * 2)]
    for item in items:
        state.add(as_handle(item))
    assert state.route(final("new-task")) == [items[20]]
    state.done_ids = None
    assert state.route(final("t3")) == [items[3]]
