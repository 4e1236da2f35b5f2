"""Run the ``webrun`` command: ``python -m webrun_async.cli --help``."""

from __future__ import annotations

import sys

from ._main import main

sys.exit(main())
