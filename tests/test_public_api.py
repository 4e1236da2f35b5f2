"""The public surface: what ``webrun_async``, ``webrun_async.types`` and
``webrun_async.emulator`` export, under which names and module paths."""

from __future__ import annotations

import copy
import inspect
import pickle
import re
import sys
import traceback
import types
import typing
from typing import Any

import pytest

import webrun_async
import webrun_async.emulator
import webrun_async.types
from webrun_async import (
    APIConnectionError,
    APIResponseValidationError,
    APIStatusError,
    APITimeoutError,
    AsyncWebRun,
    BudgetExceeded,
    ClientClosedError,
    ConfigurationError,
    GuardrailTriggered,
    InsufficientBalanceError,
    InvalidParameterError,
    NotFoundError,
    OutputValidationError,
    RateLimitError,
    SessionTerminated,
    TaskFailed,
    TaskHandle,
    TaskResult,
    TaskTimeoutError,
    Usage,
    WebRunError,
)

PACKAGE = "webrun_async"
EXPORTING = [webrun_async, webrun_async.types, webrun_async.emulator]


def isort_key(name: str) -> tuple[int, list[int | str]]:
    """The order ruff's RUF022 keeps ``__all__`` in ("isort-style"): SCREAMING_SNAKE_CASE
    first, then CamelCase, then the rest, each in natural order (digit runs as numbers)."""
    if len(name) > 1 and name.isupper():
        category = 0
    elif name[:1].isupper():
        category = 1
    else:
        category = 2
    parts = re.split(r"(\d+)", name)
    return category, [int(part) if part.isdigit() else part for part in parts]


def defined_outside_the_package(value: object) -> bool:
    """A name imported from elsewhere (``typing.Any``, ``from __future__ import ...``)."""
    if type(value).__module__ == "__future__":
        return True
    if inspect.isclass(value) or inspect.isfunction(value) or inspect.isbuiltin(value):
        module = value.__module__ or ""
        return module != PACKAGE and not module.startswith(f"{PACKAGE}.")
    return False


def public_names(module: types.ModuleType) -> set[str]:
    """What a user can reach in ``module``'s namespace that is the package's own, not a module."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and not defined_outside_the_package(value)
    }


@pytest.mark.parametrize("module", EXPORTING, ids=lambda module: module.__name__)
def test_all_is_sorted_like_ruff_and_has_no_duplicates(module: types.ModuleType) -> None:
    exported: list[str] = module.__all__
    assert len(exported) == len(set(exported)), "duplicates in __all__"
    assert exported == sorted(exported, key=isort_key)


@pytest.mark.parametrize("module", EXPORTING, ids=lambda module: module.__name__)
def test_every_listed_name_is_importable(module: types.ModuleType) -> None:
    missing = [name for name in module.__all__ if name not in vars(module)]
    assert not missing
    namespace: dict[str, Any] = {}
    exec(f"from {module.__name__} import *", namespace)
    assert set(module.__all__) <= set(namespace)


@pytest.mark.parametrize("module", EXPORTING, ids=lambda module: module.__name__)
def test_every_public_name_is_listed(module: types.ModuleType) -> None:
    assert public_names(module) - set(module.__all__) == set()


def test_the_root_reexports_the_same_objects_as_types() -> None:
    shared = set(webrun_async.__all__) & set(webrun_async.types.__all__)
    assert shared  # TaskResult, Usage, ...
    for name in shared:
        assert getattr(webrun_async, name) is getattr(webrun_async.types, name)


def test_the_emulator_shares_no_name_with_the_sdk() -> None:
    sdk = set(webrun_async.__all__) | set(webrun_async.types.__all__)
    assert set(webrun_async.emulator.__all__) & sdk == set()
    assert public_names(webrun_async.emulator) & sdk == set()


# --- Public module paths -------------------------------------------------------------------


def rewritable_exports() -> list[str]:
    """Exports of the root that are classes or functions (typing aliases have no module)."""
    return [
        name
        for name in webrun_async.__all__
        if inspect.isclass(getattr(webrun_async, name))
        or inspect.isfunction(getattr(webrun_async, name))
    ]


@pytest.mark.parametrize("name", rewritable_exports())
def test_exports_carry_their_public_module(name: str) -> None:
    obj = getattr(webrun_async, name)
    if obj.__module__.startswith(f"{PACKAGE}.types."):
        return  # the Structs of webrun_async.types keep their own public modules
    assert obj.__module__ == PACKAGE
    # What reprs, docs and pickle print must lead back to the object itself ...
    assert getattr(sys.modules[obj.__module__], obj.__qualname__) is obj
    # ... and annotations must still resolve (docs tools, msgspec.convert(..., RetryPolicy)).
    typing.get_type_hints(obj)


def test_public_paths_in_reprs_and_tracebacks() -> None:
    assert repr(AsyncWebRun) == "<class 'webrun_async.AsyncWebRun'>"
    assert TaskHandle.__module__ == "webrun_async"
    assert repr(TaskHandle[int]) == "webrun_async.TaskHandle[int]"
    assert TaskResult.__module__ == "webrun_async.types.tasks"  # a Struct: left alone
    error = NotFoundError("Task x not found", status=404, method="GET", path="/task/s/x")
    line = traceback.format_exception_only(error)[-1]
    assert line.startswith("webrun_async.NotFoundError: 404 Task x not found")
    # Typing aliases keep what typing gives them.
    assert typing.get_args(webrun_async.FollowMode) == ("auto", "socket", "poll")


async def _answer(text: str, stop: bool) -> None:
    pass


ERRORS = [
    WebRunError("something"),
    APIStatusError(
        "A task is already running",
        status=409,
        method="POST",
        path="/start/run-task",
        code="TASK_ALREADY_RUNNING",
        details={"sessionId": "s"},
    ),
    NotFoundError("Task x not found", status=404, method="GET", path="/task/s/x"),
    APIConnectionError("the answer was cut short", method="GET", path="/health"),
    APITimeoutError("timed out connecting", method="GET", path="/health"),
    APIResponseValidationError("could not decode", method="GET", path="/v1/models", status=200),
    TaskFailed(
        "Navigation timed out",
        code="NAVIGATION_TIMEOUT",
        session_id="s",
        task_id="t",
        usage=Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5, cost=0.01),
    ),
    SessionTerminated("the session ended", session_id="s"),
    BudgetExceeded("over budget", limit=0.05, spent=0.07, session_id="s", task_id="t"),
    TaskTimeoutError("still running past its deadline", session_id="s", task_id="t"),
    OutputValidationError(
        "not a list", result=TaskResult[Any](session_id="s", task_id="t", message="{}")
    ),
    ConfigurationError("no API key"),
    InvalidParameterError("max_duration", "must be at most 300 seconds"),
    ClientClosedError("the client is closed"),
]


def _rate_limited() -> RateLimitError:
    error = RateLimitError("slow down", status=429, method="POST", path="/start/run-task")
    error.retry_after = 2.5
    return error


def _out_of_money() -> InsufficientBalanceError:
    error = InsufficientBalanceError("Insufficient balance.", status=402, method="POST", path="/")
    error.balance = 0.15
    return error


ERRORS += [_rate_limited(), _out_of_money()]


@pytest.mark.parametrize("error", ERRORS, ids=lambda error: type(error).__name__)
def test_errors_pickle_with_their_attributes(error: WebRunError) -> None:
    copied = pickle.loads(pickle.dumps(error))
    assert type(copied) is type(error)
    assert copied.args == error.args
    assert str(copied) == str(error)
    assert vars(copied) == vars(error)
    assert pickle.dumps(error) == pickle.dumps(copied)


def test_a_guardrail_pickles_without_its_responder() -> None:
    error = GuardrailTriggered(
        "I need login credentials", kind="human_input_needed", session_id="s", responder=_answer
    )
    assert error.can_respond
    copied = pickle.loads(pickle.dumps(error))
    assert str(copied) == str(error) == "Guardrail triggered: I need login credentials"
    assert copied.value == "I need login credentials"
    assert (copied.kind, copied.session_id) == ("human_input_needed", "s")
    assert not copied.can_respond  # it reached a session of the process that pickled it
    assert copy.copy(error).can_respond  # a copy in this process still answers


# --- Renamed names -------------------------------------------------------------------------

RENAMED = [
    (webrun_async, "Mode", "FollowMode"),
    (webrun_async, "SessionStarter", "PendingSession"),
    (webrun_async, "HandleStatus", "TaskHandleStatus"),
    (webrun_async.emulator, "Session", "EmulatedSession"),
    (webrun_async.emulator, "Usage", "EmulatedUsage"),
    (webrun_async.emulator, "TaskStatus", "EmulatedTaskStatus"),
    (webrun_async.emulator, "TaskFile", "EmulatedTaskFile"),
    (webrun_async.emulator, "Environment", "EmulatedEnvironment"),
]


@pytest.mark.parametrize(
    ("module", "old", "new"),
    [pytest.param(*renamed, id=f"{renamed[0].__name__}.{renamed[1]}") for renamed in RENAMED],
)
def test_old_names_still_import_with_a_deprecation_warning(
    module: types.ModuleType, old: str, new: str
) -> None:
    assert old not in module.__all__
    assert old not in vars(module)
    with pytest.warns(DeprecationWarning, match=rf"{module.__name__}\.{new}\b"):
        value = getattr(module, old)
    assert value is getattr(module, new)
    with pytest.warns(DeprecationWarning, match=rf"\b{old} is deprecated"):
        exec(f"from {module.__name__} import {old}", {})


@pytest.mark.parametrize(
    "module", [webrun_async, webrun_async.emulator], ids=lambda module: module.__name__
)
def test_unknown_names_are_still_attribute_errors(module: types.ModuleType) -> None:
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchName'"):
        _ = module.NoSuchName
    assert not hasattr(module, "NoSuchName")
    with pytest.raises(ImportError):
        exec(f"from {module.__name__} import NoSuchName", {})
