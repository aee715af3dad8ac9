"""Run folders (run_folders.py): each version is claimed by one run, however many start at once."""

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from slp_lightning.running.run_folders import claim_run_dir, logger_for


def test_runs_started_at_the_same_instant_get_distinct_folders(tmp_path: Path) -> None:
    (tmp_path / "alexnet_conv2" / "version_3").mkdir(parents=True)  # a run of before
    runs, claims = 8, 12
    start = threading.Barrier(runs)

    def run() -> list[Path]:
        start.wait()  # every "run" lists the folder before any has claimed
        return [claim_run_dir(tmp_path, "alexnet_conv2") for _ in range(claims)]

    with ThreadPoolExecutor(runs) as pool:
        claimed = [path for paths in pool.map(lambda _: run(), range(runs)) for path in paths]
    assert len(set(claimed)) == runs * claims and all(path.is_dir() for path in claimed)
    assert sorted(int(path.name.removeprefix("version_")) for path in claimed) == list(
        range(4, 4 + runs * claims)
    )
    # TensorBoard writes where the run claimed, not where its own listing would put it.
    assert {Path(logger_for(path).log_dir) for path in claimed} == set(claimed)
