"""The ``webrun`` command: run tasks, chat, manage profiles, environments and files.

Installed as the ``webrun`` console script and runnable as ``python -m webrun_async.cli``;
``webrun --help`` lists the commands. Results go to stdout, progress (on a terminal only) and
errors to stderr; see :mod:`webrun_async.cli._main` for the exit codes.
"""

from __future__ import annotations

from ._main import main

__all__ = ["main"]
