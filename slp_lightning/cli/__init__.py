"""The command line (``python -m slp_lightning fit``): LightningCLI parses (``main``), the
runner runs; ``run`` is the same from Python; ``command`` is the console script."""

from slp_lightning.cli.commands import command, flag, main, run

__all__ = ["command", "flag", "main", "run"]
