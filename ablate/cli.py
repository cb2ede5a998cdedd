"""What every ablate command shares: a user's mistake is one line on stderr and exit code 2, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from ablate.errors import AblateError


def guarded(command: Callable[[Any], Any], args: Any) -> int:
    try:
        command(args)
    except AblateError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
