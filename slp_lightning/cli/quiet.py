"""Lightning's messages that cannot apply to an inversion, silenced by their exact text.

The command line silences them (``--verbose`` keeps them); from Python, ``silence_lightning()``
does the same for the rest of the process. Importing the package changes no filter: a process
that imports it may run other Lightning code, for which these messages may well apply. Every
other warning, the tool's own (random weights, a flat start, a model in training mode) above
all, is left as it is.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from lightning.fabric.utilities.warnings import PossibleUserWarning
from lightning_utilities.core import rank_zero as rank_zero_module

# (category, the start of the message as a regular expression, why it cannot apply).
LIGHTNING_WARNINGS = [
    (UserWarning, r"Your `IterableDataset` has `__len__` defined\. In combination with multi-process",
     "the step clock (data._Clock) is one tick a step, never split over workers; its length gives "
     "the progress bar its total"),
    (PossibleUserWarning, r"Found \d+ module\(s\) in eval mode at the start of training\.",
     "the feature network is frozen in eval mode on purpose; I_pre is the only parameter"),
    (FutureWarning, r"`isinstance\(treespec, LeafSpec\)` is deprecated",
     "Lightning's own use of a torch API (lightning.pytorch.utilities._pytree); nothing to change here"),
    (PossibleUserWarning, r"You're resuming from a checkpoint that ended before the epoch ended and "
     r"your dataloader is not resumable\.",
     "the clock's ticks carry no data: a resumed run ends bit-exactly where the uninterrupted one does"),
    (UserWarning, r"The dirpath has changed from .* therefore `best_model_score`",
     "a resume writes a new version folder, and no checkpoint is ranked by a monitored score"),
    (UserWarning, r"Checkpoint directory .* exists and is not empty\.",
     "every run claims a new folder: only a resumed sweep job or chunk goes on in its own"),
]  # fmt: skip
# Lightning's log records (its info messages) of the same kind.
LIGHTNING_LOGS = [
    re.compile(
        r"💡 Tip: For seamless cloud logging and experiment tracking, try installing \[litlogger\]"
    ),
    # The run's report says how many steps it took and why it ended; printed over the bar's line.
    re.compile(r"`Trainer\.fit` stopped: `max_steps=\d+` reached\."),
]


class _DropRecords(logging.Filter):
    """Drops the log records whose message starts with one of ``LIGHTNING_LOGS``."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(pattern.match(message) for pattern in LIGHTNING_LOGS)


_DROP = _DropRecords()


def _loggers() -> list[logging.Logger]:
    """The loggers Lightning's ``rank_zero_info`` writes to (the one lightning_utilities holds
    depends on which of lightning.fabric and lightning.pytorch was imported last)."""
    named = [
        logging.getLogger(f"lightning.{part}.utilities.rank_zero") for part in ("pytorch", "fabric")
    ]
    return list(dict.fromkeys([rank_zero_module.log, *named]))


def silence_lightning() -> None:
    """Silence ``LIGHTNING_WARNINGS`` and ``LIGHTNING_LOGS`` from now on (again: no effect)."""
    for category, message, _ in LIGHTNING_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)
    for logger in _loggers():
        logger.addFilter(_DROP)  # a logger holds a filter once


@contextmanager
def restored() -> Iterator[None]:
    """Within it, ``silence_lightning`` lasts only until the end: the warning filters and the
    loggers are as before afterwards (``cli.main`` called in-process, from tests or a notebook)."""
    before = [logger for logger in _loggers() if _DROP in logger.filters]
    with warnings.catch_warnings():
        try:
            yield
        finally:
            for logger in _loggers():
                if logger not in before:
                    logger.removeFilter(_DROP)
