"""A sweep's summaries: ``summary.csv`` (a row per job), ``summary.md`` (the paper's table shape)
and ``summary.png`` (error and PSNR against layer, a line per method)."""

from __future__ import annotations

import csv
from pathlib import Path

from slp_lightning.outputs import privacy_utility
from slp_lightning.outputs.privacy_utility import AUDIT_COLUMNS, audit_fields

SUMMARY_COLUMNS = [
    "method", "network", "layer", "compactness", "pyramid_levels", "images", "steps",
    "mean_normalized_error", "mean_relative_error", "mean_psnr", "mean_ssim", "mean_hf_ratio", "seconds",
    "job",
]  # fmt: skip
# A run scored by an evaluation classifier (callbacks.SemanticScore) also has these; the summary's
# columns include them only then.
SEMANTIC_COLUMNS = ["mean_top1_agreement", "mean_top5"]
# A visualisation's (objectives besides inversion) means.
VISUAL_COLUMNS = [
    "mean_activation",
    "mean_natural_share",
    "mean_transfer_top1",
    "mean_transfer_top5",
]


def summary_row(results: dict, job: str, label: str, column: str, seconds: float) -> dict:
    """One ``summary.csv`` row from a job's ``results.json`` (errors as fractions); ``label``
    and ``column`` place the job in ``summary.md``."""
    return {
        **{
            key: results[key]
            for key in [*SUMMARY_COLUMNS, *SEMANTIC_COLUMNS, *VISUAL_COLUMNS]
            if key in results
        },
        **audit_fields(results),
        **(
            {"units": [_unit(image) for image in results["images"]]}
            if "objective" in results
            else {}
        ),
        "images": len(results["images"]),
        "seconds": round(seconds, 1),
        "job": job,
        "label": label,
        "column": column,
    }


def _unit(image: dict) -> dict:
    """A visualisation row as ``summary.md``'s atlas lists it."""
    label = image.get("semantic")
    return {
        "name": image["name"], "objective": image["objective"], "activation": image["activation"],
        "natural_share": image["natural_share"], "label": label["top1"]["name"] if label else None,
    }  # fmt: skip


def _atlas(rows: list[dict]) -> list[str]:
    """Per visualising job, a line per row: its objective, activation, share of the best natural
    photograph's and the classifier's label, and where its sheet is."""
    lines = []
    for row in rows:
        if "units" not in row:
            continue
        lines += [
            f"**{row['job']}** ({row['job']}/sheet.png)",
            "",
            "| row | objective | activation | of the best natural photograph's | classifier's label |",
            "|---|---|---|---|---|",
        ]
        for unit in row["units"]:
            share = "" if unit["natural_share"] is None else f"{100 * unit['natural_share']:.0f} %"
            lines.append(
                f"| {unit['name']} | {unit['objective']} | {unit['activation']:.4g} | {share} | {unit['label'] or ''} |"
            )
        lines.append("")
    return lines


def write_summary(rows: list[dict], run_dir: Path) -> list[Path]:
    """``summary.csv`` (a row per job), ``summary.md`` (the paper's table shape: a column per
    layer, a row per method, mean normalised error in % and PSNR, and the evaluation
    classifier's top-1 agreement and top-5 in % when the jobs were scored) and ``summary.png``;
    for an audit (jobs with a defence) also its columns, its table in ``summary.md`` and the
    privacy–utility plot (``privacy_utility``)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    scored = [key for key in SEMANTIC_COLUMNS if any(row.get(key) is not None for row in rows)]
    audit = [key for key in AUDIT_COLUMNS if any(key in row for row in rows)]
    visual = [key for key in VISUAL_COLUMNS if any(row.get(key) is not None for row in rows)]
    with open(run_dir / "summary.csv", "w", newline="") as handle:
        # Before seconds and job.
        columns = [*SUMMARY_COLUMNS[:-2], *audit, *scored, *visual, *SUMMARY_COLUMNS[-2:]]
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)

    layers = list(dict.fromkeys(r["column"] for r in rows))
    labels = list(dict.fromkeys(r["label"] for r in rows))
    table = {(r["label"], r["column"]): r for r in rows}
    lines = []
    for title, key, scale, unit in [
        ("Mean normalised error (%)", "mean_normalized_error", 100, "{:.1f}"),
        ("Mean PSNR against the target (dB)", "mean_psnr", 1, "{:.1f}"),
        *[
            (title, key, 100, "{:.0f}")
            for title, key in [
                (
                    "Top-1 agreement with the target, evaluation classifier (%)",
                    "mean_top1_agreement",
                ),
                (
                    "Target's class in the reconstruction's top 5, evaluation classifier (%)",
                    "mean_top5",
                ),
            ]
            if key in scored
        ],
        *[
            entry
            for entry in [
                ("Mean activation of the objective", "mean_activation", 1, "{:.3g}"),
                (
                    "Share of the best natural photograph's activation (%)",
                    "mean_natural_share",
                    100,
                    "{:.0f}",
                ),
                (
                    "The class maximised in the classifier's top 5 (%)",
                    "mean_transfer_top5",
                    100,
                    "{:.0f}",
                ),
            ]
            if entry[1] in visual
        ],
    ]:
        if not any(row.get(key) is not None for row in rows):
            continue
        lines += [f"**{title}**", "", "| method | " + " | ".join(layers) + " |"]
        lines += ["|---|" + "---|" * len(layers)]
        for label in labels:
            cells = [unit.format(table[label, layer][key] * scale)
                     if (label, layer) in table and table[label, layer].get(key) is not None else ""
                     for layer in layers]  # fmt: skip
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    first = rows[0]
    networks = ", ".join(dict.fromkeys(r["network"] for r in rows))
    lines.append(f"{networks}, {first['images']} images; steps per job: "
                 + ", ".join(f"{r['job']} {r['steps']}" for r in rows) + ".")  # fmt: skip
    if audit:
        lines += ["", *privacy_utility.table(rows)]
    lines += _atlas(rows)
    (run_dir / "summary.md").write_text("\n".join(lines) + "\n")

    _plot(table, labels, layers, f"{networks}: per layer", run_dir / "summary.png")
    made = [run_dir / name for name in ("summary.csv", "summary.md", "summary.png")]
    plot = privacy_utility.plot(rows, run_dir / "privacy_utility.png") if audit else None
    return made + ([plot] if plot else [])


def _plot(table: dict, labels: list[str], layers: list[str], title: str, path: Path) -> None:
    """Mean normalised error and mean PSNR against layer, a line per method (label); PSNR only
    when the targets were known."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("mean_normalized_error", 100, "normalised error (%)"), ("mean_psnr", 1, "PSNR (dB)"),
              ("mean_activation", 1, "activation")]  # fmt: skip
    panels = [p for p in panels if any(row.get(p[0]) is not None for row in table.values())]
    figure, axes = plt.subplots(
        1, len(panels), figsize=(len(panels) * max(4.0, 0.5 * len(layers) + 2), 3.2)
    )
    for ax, (key, scale, unit) in zip([axes] if len(panels) == 1 else axes, panels):
        for label in labels:
            points = [
                (i, table[label, layer][key] * scale)
                for i, layer in enumerate(layers)
                if (label, layer) in table and table[label, layer].get(key) is not None
            ]
            if points:
                ax.plot(*zip(*points), marker="o", label=label)
        ax.set_xticks(range(len(layers)), layers, rotation=45, ha="right")
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    figure.suptitle(title)
    figure.axes[0].legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
