"""Where a user's model comes from when it is on a hub: ``timm:NAME`` (timm's model and its
pretrained weights from the Hugging Face cache, extra ``timm``) and ``hf:FOLDER`` (a transformers
vision model from local files, extra ``hf``), each turned into a ``Loaded`` model with the input
convention its configuration gives.
"""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from slp_lightning.networks.hooks import closest_names
from slp_lightning.networks.sources import IMAGENET_MEAN, IMAGENET_STD, Loaded, seeded
from slp_lightning.networks.torchvision_weights import OFFLINE_ENV
from slp_lightning.networks.weights import RANDOM_SEED, warn_random


def optional_import(module: str, extra: str, spec: str) -> Any:
    """The package ``module`` of the extra ``extra``, or an error saying how to install it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        raise ValueError(
            f'network {spec!r} needs {module}: pip install "slp_lightning[{extra}]"'
        ) from None


def from_timm(spec: str, weights: str, network_args: dict[str, Any] | None) -> Loaded:
    """``timm:NAME``: ``timm.create_model(NAME, **network_args)``; weights ``auto`` are timm's
    pretrained ones from its cache (never downloaded with ``SLP_LIGHTNING_OFFLINE=1``)."""
    timm = optional_import("timm", "timm", spec)
    name = spec.removeprefix("timm:")
    if name not in timm.list_models():
        closest = ", ".join(closest_names(name, timm.list_models()))
        raise ValueError(f"network {spec!r}: timm has no model {name!r}; closest: {closest}")
    args = dict(network_args or {})

    def build(pretrained: bool) -> nn.Module:
        return timm.create_model(name, pretrained=pretrained, **args)

    model, description = None, f"timm {name} random (seed {RANDOM_SEED})"
    if weights == "auto":
        try:
            with _hub_offline(bool(os.environ.get(OFFLINE_ENV))):
                model, description = build(True), f"timm {name} pretrained"
        except Exception as error:  # noqa: BLE001 - any failure to obtain the file is reported
            warn_random(f"timm {name}", f"pretrained weights are not available ({type(error).__name__})",
                        "Put them in the Hugging Face cache or pass --model.weights FILE.")  # fmt: skip
    if model is None:
        model = seeded(lambda: build(False))
    config = getattr(model, "pretrained_cfg", {}) or {}
    return Loaded(
        model, f"timm/{name}", description,
        mean=tuple(config.get("mean", IMAGENET_MEAN)), std=tuple(config.get("std", IMAGENET_STD)),
        input_size=int(config.get("input_size", (3, 224, 224))[-1]),
    )  # fmt: skip


class _hub_offline:  # noqa: N801 - used as a context manager, like contextlib's
    """Hugging Face hub offline (no request at all) while inside, when ``on``."""

    def __init__(self, on: bool) -> None:
        self.on = on

    def __enter__(self) -> None:
        if self.on:
            import huggingface_hub.constants as constants

            self.before = constants.HF_HUB_OFFLINE
            constants.HF_HUB_OFFLINE = True

    def __exit__(self, *exc: object) -> None:
        if self.on:
            import huggingface_hub.constants as constants

            constants.HF_HUB_OFFLINE = self.before


def from_huggingface(spec: str, weights: str) -> Loaded:
    """``hf:FOLDER_OR_NAME``: a transformers vision model (``AutoModel``) from a local folder or
    the cache, never downloaded; mean and std from its ``preprocessor_config.json`` when present."""
    transformers = optional_import("transformers", "hf", spec)
    source = spec.removeprefix("hf:")
    try:
        if weights == "random":
            config = transformers.AutoConfig.from_pretrained(source, local_files_only=True)
            model = seeded(lambda: transformers.AutoModel.from_config(config))
            description = f"{source} random (seed {RANDOM_SEED})"
        else:
            model = transformers.AutoModel.from_pretrained(source, local_files_only=True)
            description = f"{source} (its own)"
    except OSError as error:
        raise ValueError(
            f"network {spec!r}: no local model there ({error})".splitlines()[0]
        ) from None
    processor = Path(source) / "preprocessor_config.json"
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if processor.is_file():
        settings = json.loads(processor.read_text())
        mean, std = settings.get("image_mean", mean), settings.get("image_std", std)
    size = getattr(model.config, "image_size", 224)
    return Loaded(model, f"hf/{Path(source).name}", description, mean=tuple(mean), std=tuple(std),
                  input_size=int(size if isinstance(size, int) else size[-1]),
                  layer_aliases=hidden_state_paths(model))  # fmt: skip


def hidden_state_paths(model: nn.Module) -> dict[str, str]:
    """``{"0": embeddings, "1": first block, …}``: the module whose output is each entry of a
    transformers model's ``hidden_states``, found as its list of ``num_hidden_layers`` blocks."""
    count = getattr(model.config, "num_hidden_layers", None)
    blocks = next(
        (
            path
            for path, module in model.named_modules()
            if isinstance(module, nn.ModuleList) and len(module) == count
        ),
        None,
    )
    if blocks is None:
        return {}
    paths = {str(i + 1): f"{blocks}.{i}" for i in range(count)}
    if hasattr(model, "embeddings"):
        paths["0"] = "embeddings"
    return paths
