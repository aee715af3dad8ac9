"""How a command ends: exit codes for signals, and user errors as one line."""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.utilities.exceptions import SIGTERMException

from slp_lightning.errors import ArgumentError, PeerLostError

# 128 + the signal's number: what shells, SLURM and Kubernetes report for a run a signal stopped.
EXIT_CODES = {"SIGINT": 128 + signal.SIGINT, "SIGTERM": 128 + signal.SIGTERM}
USAGE_ERROR = 2  # as argparse exits on a bad option
DEBUG_ENV = "SLP_LIGHTNING_DEBUG"
# How this package, torch and Lightning report bad input: a message that says what to change.
# Other exceptions (RuntimeError, TypeError, KeyError, …) are internal errors and keep their
# traceback.
USER_ERRORS = (ValueError, FileNotFoundError, MisconfigurationException)
# A run that stopped for a reason its message gives in full (its outputs are written already).
RUN_ERRORS = (PeerLostError,)


@contextmanager
def signal_exit_codes() -> Iterator[None]:
    """Exit 130 after SIGINT and 143 after SIGTERM, once the run has saved what it reached.

    Lightning handles both (SIGTERM at the next step boundary) and then exits 1 after SIGINT and
    0 after SIGTERM, which tells ``timeout``, SLURM or Kubernetes that the run finished. SIGUSR1
    (SLURM's requeue signal) is left to Lightning.
    """
    received = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        received.set()
        raise KeyboardInterrupt

    # Only where Python's own Ctrl-C handler is in place: a run started with SIGINT ignored
    # (nohup, a background job) keeps ignoring it.
    ours = (
        threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGINT) is signal.default_int_handler
    )
    if ours:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        yield
    except KeyboardInterrupt:  # before the run started: nothing to save
        sys.exit(EXIT_CODES["SIGINT"])
    except SIGTERMException:
        sys.exit(EXIT_CODES["SIGTERM"])
    except SystemExit:
        if received.is_set():  # Lightning's sys.exit(1) after it handled Ctrl-C
            sys.exit(EXIT_CODES["SIGINT"])
        raise
    finally:
        if ours:
            signal.signal(signal.SIGINT, signal.default_int_handler)


@contextmanager
def errors_as_one_line(flag: Callable[[str], str] = str) -> Iterator[None]:
    """Print a user error as ``error: <message>`` and exit 2 (a ``RUN_ERRORS`` error: exit 1),
    without the traceback that would bury the message (``SLP_LIGHTNING_DEBUG=1`` shows it). An
    ``ArgumentError`` names its arguments by ``flag(qualified name)``: their flags."""
    try:
        yield
    except USER_ERRORS + RUN_ERRORS as error:
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        message = error.named(flag) if isinstance(error, ArgumentError) else error
        print(f"error: {message}", file=sys.stderr)
        sys.exit(1 if isinstance(error, RUN_ERRORS) else USAGE_ERROR)
