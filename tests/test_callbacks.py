"""The callbacks: when PyramidSwitch switches levels and how it shares the budget; listeners of
switches act whatever the order the Trainer was given them in."""

from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from slp_lightning import FeatureInversion, OutputWriter, PyramidSwitch, TargetImages
from slp_lightning.callbacks import SwitchListener
from slp_lightning.maths.schedule import SwitchSchedule


def test_switch_waits_for_convergence() -> None:
    """A plateau switches after min_steps + patience; steady progress runs to the phase budget."""

    class Module:
        schedule = SwitchSchedule(count=2, levels=3)
        device = torch.device("cpu")
        automatic_optimization = True  # one optimiser step per Lightning step

    class Heard(SwitchListener):
        def __init__(self) -> None:
            self.steps: list[int] = []

        def on_pyramid_switch(self, trainer: "Trainer", pl_module: Module) -> None:  # noqa: ARG002 - a hook
            self.steps.append(trainer.global_step)

    class Trainer:
        global_step = 0
        max_steps = 1000
        should_stop = False
        callbacks = [Heard()]

        class strategy:  # noqa: N801 - one process: a reduction returns its input
            @staticmethod
            def reduce(tensor: torch.Tensor, reduce_op: str) -> torch.Tensor:  # noqa: ARG004 - its signature
                return tensor

    trainer, module = Trainer(), Module()
    switch = PyramidSwitch(
        rel_tol=0.01, patience=10, min_steps=5, max_steps_per_level=40, contrast_scales=()
    )
    for step in range(1, 41):
        trainer.global_step = step
        plateau, progress = 1.0, 0.9**step  # image 0 flat, image 1 improving 10 % a step
        switch.on_train_batch_end(
            trainer, module, {"per_image": torch.tensor([plateau, progress])}, None, step
        )
    # Image 0: last improvement at step 1, + 10 patience; again 11 steps later. Image 1: the budget.
    assert module.schedule.switch_steps.tolist() == [[11, 22], [40, -1]]
    assert trainer.callbacks[0].steps == [11, 22, 40]  # what the other callbacks hear
    assert not trainer.should_stop
    trainer.global_step = 41
    switch.on_train_batch_end(trainer, module, {"per_image": torch.tensor([1.0, 1.0])}, None, 41)
    assert trainer.should_stop is False  # image 0 done (level 1 converged), image 1 not yet


def test_coarse_phases_take_a_share_of_the_step_budget() -> None:
    """Without ``max_steps_per_level`` each coarse phase may take ``phase_share`` of the run."""
    rule = PyramidSwitch(min_steps=5).rule
    assert rule.steps_per_level(1000) == 30 and rule.steps_per_level(200) == 6
    assert rule.steps_per_level(100) == 5  # never below min_steps
    assert rule.steps_per_level(-1) == float("inf")  # no budget: phases run to convergence
    assert (
        PyramidSwitch(max_steps_per_level=15).rule.steps_per_level(1000) == 15
    )  # explicit cap wins
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError, match="phase_share"):
            PyramidSwitch(phase_share=bad)


def test_a_batch_of_jobs_starts_each_at_its_k_and_freezes_a_job_when_all_its_images_are_done() -> (
    None
):
    """Two jobs of two images: K 3 and K 2 in one 3-level schedule; job 1 stops at its own step."""
    schedule = SwitchSchedule(
        4, 3, start=torch.tensor([3, 3, 2, 2]), jobs=torch.tensor([0, 0, 1, 1])
    )
    assert schedule.finest_on.tolist() == [3, 3, 2, 2] and schedule.batched
    schedule.switch_on_next_level(torch.tensor([False, False, True, True]), 7)
    assert schedule.switch_steps.tolist() == [
        [-1, -1],
        [-1, -1],
        [-1, 7],
        [-1, 7],
    ]  # K 2: one switch
    schedule.done.copy_(torch.tensor([True, False, True, False]))
    schedule.freeze_done_jobs(9)  # one image of each job done: no job stops
    assert schedule.job_stop.tolist() == [-1, -1] and not schedule.frozen.any()
    schedule.done[3] = True
    schedule.freeze_done_jobs(12)
    schedule.done[1] = True
    schedule.freeze_done_jobs(15)
    assert schedule.job_stop.tolist() == [15, 12] and schedule.frozen.all()
    rule = PyramidSwitch(min_steps=1, patience=1).rule  # a frozen image never switches again
    assert not rule.converged(schedule, torch.ones(4), 30, 100).any()
    assert (
        "frozen" not in SwitchSchedule(2, 3).state_dict()
    )  # a single run's checkpoint keys as before


def level_pngs(root: Path, writer_first: bool) -> dict[str, bytes]:
    switch = PyramidSwitch(min_steps=3, patience=3, max_steps_per_level=6)
    callbacks = [OutputWriter(), switch] if writer_first else [switch, OutputWriter()]
    pl.seed_everything(0, verbose=False)
    model = FeatureInversion(layer="conv2", weights="random", pyramid_levels=3, image_size=64)
    trainer = pl.Trainer(max_steps=20, callbacks=callbacks, logger=TensorBoardLogger(root, name="run"),
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(model, TargetImages("skimage:astronaut", image_size=64))
    return {
        p.name: p.read_bytes()
        for p in sorted(root.glob("run/version_0/reconstructions/*_level*.png"))
    }


@pytest.mark.slow
def test_phase_images_do_not_depend_on_the_callbacks_order(tmp_path: Path) -> None:
    switch_first, writer_first = level_pngs(tmp_path / "a", False), level_pngs(tmp_path / "b", True)
    # levels 3 and 2 end at switches (written by the listener), level 1 at the end of the run
    assert sorted(switch_first) == [
        "astronaut_level1.png",
        "astronaut_level2.png",
        "astronaut_level3.png",
    ]
    assert writer_first == switch_first
