"""Every process's rows of an inversion as Lightning hooks: each process inverts its own share of
the targets (``distributed``), a gather puts their rows back in target order, and checkpoints hold
every process's rows, the problem they solve (``resume.fingerprint``) and the transforms' draws,
without the frozen networks, rebuilt from their specs; ``FeatureInversion`` is one."""

from __future__ import annotations

import lightning.pytorch as pl
from torch import Tensor

from slp_lightning.module import distributed
from slp_lightning.module.resume import check_problem, migrated

# The frozen networks' entries of the state dict: rebuilt from their specs, never checkpointed.
_FROZEN = ("inversion.network.", "inversion.victim_network.")


class ProcessRows(pl.LightningModule):
    """The rows and checkpoint hooks of a module with ``inversion``, ``names`` (every target's),
    ``local_names`` (this process's) and ``problem``."""

    def gather(self, local: Tensor) -> Tensor:
        """All processes' rows of a per-image tensor, in target order (every process must call)."""
        if self._trainer is None or self.trainer.world_size == 1:
            return local
        return distributed.gather_rows(
            local, len(self.names), self.trainer.world_size, self.trainer.strategy.all_gather
        )

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["problem"] = self.problem
        # The frozen networks are rebuilt from their weights specs; keep checkpoints to I_pre and state.
        for key in [k for k in checkpoint["state_dict"] if k.startswith(_FROZEN)]:
            del checkpoint["state_dict"][key]
        if self.inversion.transforms is not None:  # a resume draws what the run would have
            checkpoint["transforms"] = self.inversion.transforms.state()
        partial = self.trainer.world_size > 1 and self.trainer.interrupted
        distributed.save_rows(checkpoint, len(self.local_names), self.gather, partial)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        check_problem(checkpoint, self.problem)
        if self.inversion.transforms is not None and "transforms" in checkpoint:
            self.inversion.transforms.restore(checkpoint["transforms"])
        state = migrated(checkpoint["state_dict"])
        total = len(self.names)
        distributed.own_rows(checkpoint, total, self._rows(total), "inversion.I_pre")
        state.update({k: v for k, v in self.state_dict().items() if k.startswith(_FROZEN)})

    def _rows(self, total: int) -> Tensor:
        """The targets this process inverts, of ``total``."""
        return distributed.shard(total, self.global_rank, self.trainer.world_size)
