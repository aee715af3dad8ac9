"""Command line: ``python -m slp_lightning fit --config configs/alexnet_conv5.yaml``."""

from __future__ import annotations

import sys
from typing import Any

from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import TensorBoardLogger

from slp_lightning.callbacks import InversionCheckpoint, OutputWriter, PyramidSwitch
from slp_lightning.data import TargetImages
from slp_lightning.distributed import IndependentDDPStrategy, needs_processes
from slp_lightning.inversion import FeatureInversion
from slp_lightning.networks import default_input_size, layer_names


def _image_size(network: str, image_size: int | None) -> int:
    return image_size or default_input_size(network)


class InversionCLI(LightningCLI):
    """LightningCLI with the method's callbacks always on and outputs under ``logs/``.

    With several devices or nodes and ``--trainer.strategy auto``, the strategy is
    ``IndependentDDPStrategy``: every process inverts its own share of the targets.
    """

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_lightning_class_args(PyramidSwitch, "switch")
        parser.add_lightning_class_args(OutputWriter, "outputs")
        parser.add_lightning_class_args(InversionCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.every_n_train_steps": 100,
                "checkpoint.save_last": True,
                "checkpoint.save_on_exception": True,
                "trainer.default_root_dir": "logs",
                "trainer.max_steps": 1000,
                "trainer.log_every_n_steps": 10,
            }
        )
        parser.link_arguments(
            ("model.network", "model.image_size"), "data.image_size", compute_fn=_image_size
        )

    def before_instantiate_classes(self) -> None:
        model = self.config[self.subcommand].model if self.subcommand else self.config.model
        if model.layer == "list":
            print("\n".join(layer_names(model.network, model.arch)))
            sys.exit(0)

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        config = self._get(self.config_init, "trainer", default={})
        if config.get("logger") in (None, True):
            # Runs land in <default_root_dir>/<network>_<layer>/version_<n>/.
            network = self.model.network
            kwargs["logger"] = TensorBoardLogger(
                save_dir=config.get("default_root_dir") or "logs",
                name=f"{network.network}_{network.layer}".replace("/", "_"),
            )
        strategy = config.get("strategy", "auto")
        if strategy == "auto" and needs_processes(
            config.get("accelerator", "auto"), config.get("devices", "auto"), config.get("num_nodes", 1)
        ):
            kwargs["strategy"] = IndependentDDPStrategy()
        return super().instantiate_trainer(**kwargs)


def main(args: list[str] | None = None) -> InversionCLI:
    """Run the CLI; ``args`` lets tests call it in-process (``None`` reads ``sys.argv``)."""
    return InversionCLI(
        FeatureInversion,
        TargetImages,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        auto_configure_optimizers=False,
        args=args,
    )
