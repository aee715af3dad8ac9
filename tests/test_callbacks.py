"""PyramidSwitch (callbacks.py) on its own: when it switches levels and how it shares the budget."""

import pytest
import torch

from slp_lightning import PyramidSwitch


def test_switch_waits_for_convergence() -> None:
    """A plateau switches after min_steps + patience; steady progress runs to the phase budget."""

    class Module:
        def __init__(self) -> None:
            self.finest_on = torch.tensor([3, 3])
            self.phase_best = torch.full((2,), torch.inf)
            self.phase_start = torch.zeros(2, dtype=torch.long)
            self.last_improved = torch.zeros(2, dtype=torch.long)
            self.done = torch.zeros(2, dtype=torch.bool)
            self.device = torch.device("cpu")
            self.switched_at: list[tuple[int, list[bool]]] = []

        def switch_on_next_level(self, rows: torch.Tensor) -> None:
            self.switched_at.append((trainer.global_step, rows.tolist()))
            self.finest_on[rows] -= 1

    class Trainer:
        global_step = 0
        max_steps = 1000
        should_stop = False

        class strategy:  # noqa: N801 - one process: a reduction returns its input
            @staticmethod
            def reduce(tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:  # noqa: ARG004 - its signature
                return tensor

    trainer, module = Trainer(), Module()
    switch = PyramidSwitch(rel_tol=0.01, patience=10, min_steps=5, max_steps_per_level=40)
    for step in range(1, 41):
        trainer.global_step = step
        plateau, progress = 1.0, 0.9**step  # image 0 flat, image 1 improving 10 % a step
        switch.on_train_batch_end(trainer, module, {"per_image": torch.tensor([plateau, progress])}, None, step)
        assert module.switched_anywhere == (step in (11, 22, 40))  # what the other callbacks read
    assert module.switched_at[0] == (11, [True, False])  # last improvement at step 1, +10 patience
    assert module.switched_at[1] == (22, [True, False])
    assert module.switched_at[2] == (40, [False, True])  # budget, not convergence
    assert not trainer.should_stop
    trainer.global_step = 41
    switch.on_train_batch_end(trainer, module, {"per_image": torch.tensor([1.0, 1.0])}, None, 41)
    assert trainer.should_stop is False  # image 0 done (level 1 converged), image 1 not yet

def test_coarse_phases_take_a_share_of_the_step_budget() -> None:
    """Without ``max_steps_per_level`` each coarse phase may take ``phase_share`` of the run."""
    switch = PyramidSwitch(min_steps=5)
    assert switch.steps_per_level(1000) == 30 and switch.steps_per_level(200) == 6
    assert switch.steps_per_level(100) == 5  # never below min_steps
    assert switch.steps_per_level(-1) == float("inf")  # no budget: phases run to convergence
    assert PyramidSwitch(max_steps_per_level=15).steps_per_level(1000) == 15  # explicit cap wins
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="phase_share"):
            PyramidSwitch(phase_share=bad)
