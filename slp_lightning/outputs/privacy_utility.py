"""An audit's report: what each defence costs the task against what the attacks still recover,
from a sweep's ``summary.csv`` rows (``summaries``): a table in ``summary.md`` and the
privacy–utility plot ``privacy_utility.png``."""

from __future__ import annotations

from pathlib import Path

# The columns of an audited job's row (results.json's threat, utility and victim error).
AUDIT_COLUMNS = [
    "defence", "strength", "defence_aware", "attacker_network", "mean_utility",
    "mean_victim_normalized_error",
]  # fmt: skip
# Leakage measures of the report: (row key, scale, how it is shown, its axis label).
LEAKAGE = [
    ("mean_psnr", 1, "{:.1f}", "PSNR against the photograph (dB)"),
    ("mean_top1_agreement", 100, "{:.0f}", "independent classifier's top-1 agreement (%)"),
]


def audit_fields(results: dict) -> dict:
    """The audit columns of a job's ``results.json`` (``{}`` for a job that audits nothing)."""
    threat = results.get("threat")
    if threat is None:
        return {}
    return {
        "defence": threat["spec"], "strength": threat["strength"], "defence_aware": threat["defence_aware"],
        "attacker_network": threat["attacker_network"], "mean_utility": results.get("mean_utility"),
        "mean_victim_normalized_error": results.get("mean_victim_normalized_error"),
    }  # fmt: skip


def attack(row: dict) -> str:
    """The attack of a row: its method, and whether it knew the defence."""
    if row["defence"] == "none":
        return row["method"]
    return f"{row['method']} {'aware' if row['defence_aware'] else 'unaware'}"


def _kind(row: dict) -> str:
    return row["defence"].split(":", 1)[0]


def _cell(row: dict | None, key: str, scale: float, form: str) -> str:
    value = None if row is None else row.get(key)
    return "" if value is None else form.format(value * scale)


def table(rows: list[dict]) -> list[str]:
    """``summary.md``'s audit: per layer a row per defence (its utility: the task's top-1
    agreement with the defended features put back), a column per attack with its PSNR, and its
    evaluator's top-1 agreement when scored; the highest leakage of a row in bold."""
    audited = [row for row in rows if row.get("defence") is not None]
    defended = [r for r in audited if r["defence"] != "none"]
    # A column per method and knowledge; the undefended row fills both of its method's.
    attacks = list(dict.fromkeys(attack(r) for r in defended)) or list(
        dict.fromkeys(r["method"] for r in audited)
    )

    def cell_row(rows_of_defence: list[dict], name: str) -> dict | None:
        return next(
            (
                r
                for r in rows_of_defence
                if attack(r) == name or (r["defence"] == "none" and name.split()[0] == r["method"])
            ),
            None,
        )

    lines = []
    for key, scale, form, title in LEAKAGE:
        if not any(r.get(key) is not None for r in audited):
            continue
        for layer in dict.fromkeys(r["column"] for r in audited):
            at = [r for r in audited if r["column"] == layer]
            lines += [
                f"**Audit at {layer}: {title}; utility = the task's top-1 agreement (%)**",
                "",
            ]
            lines += [
                "| defence | utility | " + " | ".join(attacks) + " |",
                "|---|---|" + "---|" * len(attacks),
            ]
            for defence in dict.fromkeys(r["defence"] for r in at):
                mine = [r for r in at if r["defence"] == defence]
                known = [r["mean_utility"] for r in mine if r.get("mean_utility") is not None]
                utility = known[0] if known else None
                values = [_cell(cell_row(mine, name), key, scale, form) for name in attacks]
                best = max((float(v) for v in values if v), default=None)
                shown = [f"**{v}**" if v and float(v) == best else v for v in values]
                lines.append(
                    f"| {defence} | {_cell({'u': utility}, 'u', 100, '{:.0f}')} | "
                    + " | ".join(shown)
                    + " |"
                )
            lines.append("")
    return lines


def plot(rows: list[dict], path: Path) -> Path | None:
    """``privacy_utility.png``: per layer and leakage measure (rows) and method (columns), the
    task's utility against what the attack recovers, a line per defence through its strengths
    (solid: the attacker knows it; dashed: it does not), the undefended point a star; a row's
    panels share their scale. ``None`` when no row has a utility."""
    audited = [
        r for r in rows if r.get("defence") is not None and r.get("mean_utility") is not None
    ]
    if not audited:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers = list(dict.fromkeys(r["column"] for r in audited))
    methods = list(dict.fromkeys(r["method"] for r in audited))
    measures = [m for m in LEAKAGE if any(r.get(m[0]) is not None for r in audited)]
    kinds = list(dict.fromkeys(_kind(r) for r in audited if r["defence"] != "none"))
    colours = dict(zip(kinds, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    panels = [(layer, measure) for layer in layers for measure in measures]
    # One scale per row: the methods' panels compare at a glance.
    figure, axes = plt.subplots(
        len(panels), len(methods), figsize=(3.6 * len(methods), 3.0 * len(panels)), squeeze=False,
        sharey="row",
    )  # fmt: skip
    for (layer, (key, scale, _, label)), row_axes in zip(panels, axes):
        for method, ax in zip(methods, row_axes):
            mine = [r for r in audited if r["column"] == layer and r["method"] == method]
            origin = [r for r in mine if r["defence"] == "none" and r.get(key) is not None]
            for kind in kinds:
                for aware in (True, False):
                    line = sorted(
                        (
                            r
                            for r in mine
                            if _kind(r) == kind
                            and r["defence_aware"] == aware
                            and r.get(key) is not None
                        ),
                        key=lambda r: -r["mean_utility"],
                    )
                    if not line:
                        continue
                    points = [*origin, *line]
                    ax.plot([100 * r["mean_utility"] for r in points], [scale * r[key] for r in points],
                            marker="o", color=colours[kind], linestyle="-" if aware else "--",
                            label=f"{kind} {'aware' if aware else 'unaware'}")  # fmt: skip
            for r in origin:
                ax.plot(100 * r["mean_utility"], scale * r[key], marker="*", markersize=14, color="black",
                        linestyle="none", label="undefended")  # fmt: skip
            ax.set_title(f"{method} at {layer}", fontsize=9)
            ax.set_xlabel("utility: task's top-1 agreement (%)", fontsize=8)
            ax.set_ylabel(label, fontsize=8)
            ax.grid(alpha=0.3)
    unique = {}
    for ax in axes.flat:
        unique |= dict(zip(*reversed(ax.get_legend_handles_labels())))
    figure.legend(
        unique.values(), unique.keys(), loc="lower center", ncol=min(len(unique), 5), fontsize=8
    )
    figure.tight_layout(rect=(0, 0.1, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
