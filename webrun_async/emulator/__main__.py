"""Run the emulator: `python -m webrun_async.emulator --help`."""

from __future__ import annotations

import sys

from ._cli import main

sys.exit(main())
