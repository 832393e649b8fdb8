"""How every front (invoke tasks, deploy.py, scripts/) reports failures.

A HubfleetError becomes one line on stderr and exit code 1; a traceback only with --debug.
Anything else unexpected is also one line (with a hint to rerun with --debug) and exit 2.
"""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import NoReturn, TypeVar

from hubfleet.errors import HubfleetError

T = TypeVar("T")


class Exit(SystemExit):
    """Raised by fronts to end with a code after the message was printed."""


def fail(message: str, code: int = 1) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise Exit(code)


def run_front(action: Callable[[], T], debug: bool = False) -> T:
    """Run `action`, turning failures into one line and an exit code."""
    try:
        return action()
    except HubfleetError as err:
        if debug:
            traceback.print_exc()
        fail(str(err), 1)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exit:
        raise
    except Exception as err:  # an unexpected failure is a bug: keep it short unless asked
        if debug:
            traceback.print_exc()
            fail(f"unexpected {type(err).__name__}: {err}", 2)
        fail(f"unexpected {type(err).__name__}: {err} (rerun with --debug for the traceback)", 2)
