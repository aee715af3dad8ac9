"""TensorBoard itself on a finished sweep (issue 21): its HTTP data API lists the sweep's jobs
and returns each job's HParams row, its settings and final metrics as ``results.json`` has them.

    python benchmarks/tensorboard_check.py --quick   # 4 steps per job (a few seconds)
    python benchmarks/tensorboard_check.py           # the tests' tiny run: 60 steps per job

A 2-job sweep (methods ``slp`` and ``pixel``, AlexNet conv2, random weights, 64 px) runs into a
temporary folder; ``tensorboard --logdir <sweep folder> --port 0`` serves it, and the script asks
what TensorBoard's frontend asks: ``/data/runs``, then the HParams plugin's ``experiment`` and
``session_groups`` (POST, the request protos of ``tensorboard/plugins/hparams/api.proto`` as
JSON). It prints what came back, and exits 1 on a mismatch. TensorBoard is stopped at the end,
whatever happens.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
from slp_lightning.cli.commands import main as cli  # noqa: E402

from helpers import tiny_args  # noqa: E402  (the tests' tiny run)

METHODS = ["slp", "pixel"]
SETTINGS = ("method", "layer", "pyramid_levels")  # the HParams columns checked against results.json
START_LIMIT_S = 60  # TensorBoard's start and first load of the logdir
STOP_LIMIT_S = 10
SERVING = re.compile(r"TensorBoard \S+ at (http://\S+?)/? \(Press CTRL\+C to quit\)")
# Every status the frontend's HParams table shows (tensorboard/plugins/hparams/api.proto).
STATUSES = ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"]


def run_sweep(root: Path, quick: bool) -> tuple[Path, dict[str, dict]]:
    """The 2-job sweep into ``root``: its folder, and each job's ``results.json`` by job name."""
    steps = ["--trainer.max_steps=4"] if quick else []
    args = tiny_args(root, "skimage:astronaut", f"--sweep.methods=[{', '.join(METHODS)}]", *steps)
    sweep_dir = cli(args).outcome.run_dir
    jobs = sorted(path.parent for path in sweep_dir.glob("*/results.json"))
    return sweep_dir, {job.name: json.loads((job / "results.json").read_text()) for job in jobs}


def start_tensorboard(logdir: Path) -> tuple[subprocess.Popen, list[str]]:
    """``tensorboard --logdir logdir --port 0`` (the venv's, beside this Python), and the list its
    stderr's lines go to as it writes them (read to its end: a full pipe would block it)."""
    command = [str(Path(sys.executable).with_name("tensorboard")), "--logdir", str(logdir),
               "--port", "0", "--host", "127.0.0.1"]  # fmt: skip
    process = subprocess.Popen(
        command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    said: list[str] = []
    threading.Thread(target=lambda: said.extend(process.stderr), daemon=True).start()
    return process, said


def served_url(process: subprocess.Popen, said: list[str]) -> str:
    """The URL TensorBoard says it serves on, once it says it."""
    deadline = time.monotonic() + START_LIMIT_S
    while process.poll() is None and time.monotonic() < deadline:
        if match := next(filter(None, map(SERVING.search, list(said))), None):
            return match[1]
        time.sleep(0.1)
    raise RuntimeError(
        f"TensorBoard did not say where it serves within {START_LIMIT_S} s "
        f"(exit code {process.poll()}); it said:\n{''.join(said[-20:])}"
    )


def stop(process: subprocess.Popen) -> None:
    """Stop TensorBoard: SIGTERM, then SIGKILL if it lingers."""
    process.terminate()
    try:
        process.wait(STOP_LIMIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ask(url: str, route: str, body: dict | None = None) -> object:
    """TensorBoard's JSON answer at ``route``: a GET, or a POST of ``body`` as JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + route, data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)


def loaded_runs(url: str, expected: set[str]) -> list[str]:
    """``/data/runs`` once it lists ``expected`` (TensorBoard loads the logdir in the background),
    or as it stands at the time limit."""
    deadline = time.monotonic() + START_LIMIT_S
    while True:
        runs = ask(url, "/data/runs")
        if expected <= set(runs) or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def session_groups(url: str, experiment: dict) -> list[dict]:
    """The HParams table's rows, asked as the frontend asks: every hparam and metric column of
    ``experiment``, every status, from the first row on."""
    columns = [
        {"hparam": info["name"], "includeInResult": True} for info in experiment["hparamInfos"]
    ]
    columns += [
        {"metric": info["name"], "includeInResult": True} for info in experiment["metricInfos"]
    ]
    request = {
        "experimentName": "",
        "allowedStatuses": STATUSES,
        "colParams": columns,
        "startIndex": 0,
        "sliceSize": 1000,
        "includeMetrics": True,
    }
    return ask(url, "/data/plugin/hparams/session_groups", request)["sessionGroups"]


def mismatches(
    runs: list[str], experiment: dict, groups: list[dict], jobs: dict[str, dict]
) -> list[str]:
    """What TensorBoard's answers get wrong about ``jobs`` (each job's ``results.json``)."""
    wrong = (
        [f"/data/runs lists {sorted(runs)}, not the jobs {sorted(jobs)}"]
        if set(runs) != set(jobs)
        else []
    )
    if sorted(results["method"] for results in jobs.values()) != sorted(METHODS):
        wrong.append(f"the sweep's jobs are {sorted(jobs)}, not one per method of {METHODS}")
    metrics = sorted(info["name"]["tag"] for info in experiment["metricInfos"])
    if not metrics or "hp_metric" in metrics:
        wrong.append(f"the experiment's metrics are {metrics}")
    sessions = {session["name"]: group for group in groups for session in group["sessions"]}
    for name, results in jobs.items():
        group = sessions.get(name)
        if group is None:
            wrong.append(f"{name}: no HParams row")
            continue
        for key in SETTINGS:
            if group["hparams"].get(key) != results[key]:
                wrong.append(
                    f"{name}: {key} {group['hparams'].get(key)!r}, results.json {results[key]!r}"
                )
        values = {metric["name"]["tag"]: metric["value"] for metric in group["metricValues"]}
        for tag in metrics:
            expected = results[f"mean_{tag.removeprefix('final/')}"]
            if tag not in values or not math.isclose(values[tag], expected, rel_tol=1e-5):
                wrong.append(f"{name}: {tag} {values.get(tag)}, results.json {expected}")
    return wrong


def placeholders(scalars: dict[str, dict]) -> list[str]:
    """The runs whose scalars (``/data/plugin/scalars/tags``: run -> tag -> ...) hold Lightning's
    ``hp_metric`` placeholder."""
    return [f"{run}: has hp_metric" for run, tags in scalars.items() if "hp_metric" in tags]


def show(url: str, runs: list[str], experiment: dict, groups: list[dict]) -> None:
    """What TensorBoard answered: its runs, the HParams columns and each row."""
    print(f"TensorBoard at {url}\n/data/runs: {runs}")
    print(f"hparams: {', '.join(info['name'] for info in experiment['hparamInfos'])}")
    print(f"metrics: {', '.join(info['name']['tag'] for info in experiment['metricInfos'])}")
    for group in groups:
        session = ", ".join(s["name"] for s in group["sessions"])
        settings = {k: group["hparams"].get(k) for k in (*SETTINGS, "max_steps")}
        values = " ".join(f"{m['name']['tag']}={m['value']:.4g}" for m in group["metricValues"])
        print(f"  {session}: {settings} {values}")


def check(sweep_dir: Path, jobs: dict[str, dict]) -> list[str]:
    """TensorBoard on ``sweep_dir``, asked for its runs and HParams table, stopped at the end;
    what it got wrong about ``jobs``."""
    process, said = start_tensorboard(sweep_dir)
    try:
        url = served_url(process, said)
        runs = loaded_runs(url, set(jobs))
        experiment = ask(
            url, "/data/plugin/hparams/experiment", {"experimentName": "", "includeMetrics": True}
        )
        groups = session_groups(url, experiment)
        scalars = ask(url, "/data/plugin/scalars/tags")
        show(url, runs, experiment, groups)
        return mismatches(runs, experiment, groups, jobs) + placeholders(scalars)
    finally:
        stop(process)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 steps per job")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as root:
        sweep_dir, jobs = run_sweep(Path(root), args.quick)
        wrong = check(sweep_dir, jobs)
    print(
        "\n".join(f"MISMATCH {line}" for line in wrong)
        or "ok: both jobs listed, with their hparams and final metrics"
    )
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
