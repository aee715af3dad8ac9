"""Command line: ``python -m slp_lightning fit --config configs/alexnet_conv5.yaml``.

The command line parses; ``runner.Runner`` runs. ``run`` is the same from Python, through the same
parser.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from jsonargparse import ActionYesNo
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI

from slp_lightning.callbacks import InversionCheckpoint, OutputWriter, PyramidSwitch, SemanticScore
from slp_lightning.cli import quiet
from slp_lightning.cli.config_files import with_shipped_configs
from slp_lightning.cli.exits import errors_as_one_line, signal_exit_codes
from slp_lightning.data.targets import TargetImages
from slp_lightning.module.lightning_model import FeatureInversion
from slp_lightning.networks import LAYER_OPTIONS, layer_listing
from slp_lightning.running.runner import Outcome, Runner
from slp_lightning.running.sweep import Sweep
from slp_lightning.running.trainers import CHECKPOINT_DEFAULTS, TRAINER_DEFAULTS, TrainerFactory

CALLBACK_KEYS = ("switch", "outputs", "eval", "checkpoint")
# The command line's group of each class whose arguments an ``errors.ArgumentError`` names ("":
# a top-level flag).
FLAG_GROUPS = {
    "FeatureInversion": "model", "TargetImages": "data", "PyramidSwitch": "switch", "OutputWriter": "outputs",
    "SemanticScore": "eval", "InversionCheckpoint": "checkpoint", "Sweep": "sweep", "Trainer": "trainer",
    "Runner": "",
}  # fmt: skip
CONSOLE_SCRIPT = "slp-lightning"  # pyproject.toml's [project.scripts]


class InversionCLI(LightningCLI):
    """LightningCLI with the method's callbacks, a ``sweep`` section and ``--verbose``; ``fit``
    is ``runner.Runner.fit`` (one run, a sweep or chunks), which makes the Trainers."""

    outcome: Outcome | None = None  # what ``fit`` produced

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(PyramidSwitch, "switch")
        parser.add_lightning_class_args(OutputWriter, "outputs")
        parser.add_lightning_class_args(SemanticScore, "eval")
        parser.add_lightning_class_args(InversionCheckpoint, "checkpoint")
        parser.add_class_arguments(Sweep, "sweep")
        parser.add_argument(
            "--verbose", action=ActionYesNo, default=False,
            help="Also show the messages of Lightning that cannot apply to an inversion (slp_lightning/quiet.py) "
            "and the model summary",
        )  # fmt: skip
        parser.set_defaults(
            {
                **{f"checkpoint.{key}": value for key, value in CHECKPOINT_DEFAULTS.items()},
                **{f"trainer.{key}": value for key, value in TRAINER_DEFAULTS.items()},
            }
        )
        # The model knows its network's input size once built (a user's model included).
        parser.link_arguments("model.image_size", "data.image_size", apply_on="instantiate")

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Only ``fit``: an inversion has no validation, test or predict step to run. Without
        ``--weights_only``: checkpoints are always read as tensors only (``fit``)."""
        return {"fit": LightningCLI.subcommands()["fit"] | {"weights_only"}}

    def parse_arguments(self, parser: LightningArgumentParser, args: Any) -> None:
        """LightningCLI's parsing, with ``--config NAME`` finding a shipped config by name."""
        if args is None or isinstance(args, list):
            self.config = parser.parse_args(
                with_shipped_configs(sys.argv[1:] if args is None else args)
            )
        else:
            super().parse_arguments(parser, args)

    def _parse_ckpt_path(self) -> None:
        """Keep the command line's settings. LightningCLI would copy the checkpoint's model
        settings over them, so that ``--model.image_size 72`` silently resumed at 64;
        ``FeatureInversion.on_load_checkpoint`` instead refuses a checkpoint of other settings or
        images and lists the differences. (LightningCLI calls this from its constructor, with no
        public way around it; ``tests/test_checkpoints.py::test_resume_refuses_another_image_size_
        and_leaves_no_run_folder`` fails if Lightning stops calling it.)"""

    def before_instantiate_classes(self) -> None:
        config = self.config[self.subcommand]
        if config.model.layer == "list":
            print_layers(config.model)
            sys.exit(0)
        if not config.verbose:
            quiet.silence_lightning()

    def instantiate_trainer(self, **kwargs: Any) -> Runner:
        """The runner, in the Trainer's place: ``fit`` runs it, and it makes a Trainer per run,
        job or chunk with the command line's settings and callbacks."""
        config = self.config_init[self.subcommand]
        trainers = TrainerFactory(
            {**config.trainer, **kwargs},
            callbacks=[config[key] for key in CALLBACK_KEYS],
            verbose=config.verbose,
        )
        return Runner(trainers, sweep=config.sweep, save_config=self._save_config)

    def _save_config(self, run_dir: Path) -> None:
        """``config.yaml`` in ``run_dir``: the whole resolved config, as parsed."""
        self._parser(self.subcommand).save(
            self.config[self.subcommand], run_dir / "config.yaml",
            skip_none=False, overwrite=True, multifile=False,
        )  # fmt: skip

    def fit(
        self, model: FeatureInversion, datamodule: TargetImages, ckpt_path: str | None = None
    ) -> None:
        self.outcome = self.trainer.fit(model, datamodule, ckpt_path)


def print_layers(model: Any) -> None:
    """``--model.layer list``: every layer of the network with its output shape at the run's
    image size, in execution order."""
    options = {k: model.get(k) for k in LAYER_OPTIONS if model.get(k) is not None}
    rows = layer_listing(model.network, model.image_size, model.arch, **options)
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {shape}" for name, shape in rows))


def main(args: list[str] | None = None, exit_on_error: bool = True) -> InversionCLI:
    """Run the CLI; ``args`` lets tests call it in-process (``None`` reads ``sys.argv``).
    Errors are raised, as from any Python function; ``command`` is the command line's. Lightning's
    messages that cannot apply are silenced (``quiet``) for the run, unless ``--verbose``. A bad
    option prints the usage and exits, as argparse does, unless not ``exit_on_error``: then it
    raises ``argparse.ArgumentError``."""
    exits = {"exit_on_error": exit_on_error}
    with quiet.restored():
        return InversionCLI(
            FeatureInversion,
            TargetImages,
            seed_everything_default=0,
            save_config_callback=None,  # the runner saves it, into the folder it claims
            auto_configure_optimizers=False,
            parser_kwargs={"prog": _program(), **exits, "fit": exits},
            args=args,
        )


def _program() -> str:
    """The name usage and errors give the program: how it was started."""
    return CONSOLE_SCRIPT if Path(sys.argv[0]).name == CONSOLE_SCRIPT else "python -m slp_lightning"


def command(args: list[str] | None = None) -> None:
    """``python -m slp_lightning``: ``main``, with user errors and a lost process as one line
    (exit 2, exit 1), and a run stopped by SIGINT or SIGTERM exiting 130 or 143 after saving
    (``exits``)."""
    with signal_exit_codes(), errors_as_one_line(flag):
        main(args)


def flag(argument: str) -> str:
    """The flag of a qualified argument name: ``FeatureInversion.image_size`` ->
    ``--model.image_size``, ``FeatureInversion.optimizer.lr`` -> ``--model.optimizer.lr``."""
    owner, name = argument.split(".", 1)
    if owner not in FLAG_GROUPS:
        return name
    return f"--{FLAG_GROUPS[owner]}.{name}" if FLAG_GROUPS[owner] else f"--{name}"


def run(config: str | Path | dict | None = None, *flags: str, **groups: Any) -> Outcome:
    """``python -m slp_lightning fit`` from Python, through the same parser: ``config`` (a
    shipped config's name such as ``alexnet_conv5``, a YAML file, or a dict of the same
    sections), then command-line ``flags`` (``"--model.layer=conv2"``), then ``groups``, each a
    section of the config (``trainer={"max_steps": 200}``, ``ckpt_path="..."``); later ones win.
    Prints what the command line prints, and returns it with the results (``runner.Outcome``):
    one run's ``results.json``, a sweep's ``summary.csv`` rows, a chunked run's summary. Errors
    are raised: a bad option as ``argparse.ArgumentError``, a bad value naming Python arguments
    (``errors.ArgumentError``)."""
    args = ["fit"]
    if config is not None:
        args += ["--config", json.dumps(config) if isinstance(config, dict) else str(config)]
    args += flags
    if groups:
        args += ["--config", json.dumps(groups, default=str)]
    return main(args, exit_on_error=False).outcome
