"""MkDocs hook: ``benchmarks/RESULTS.md`` (the lab notebook, kept beside its scripts) and its
figures under ``benchmarks/results/`` become the site's ``lab-notebook/`` pages, links intact."""

from __future__ import annotations

from pathlib import Path

from mkdocs.structure.files import File, Files

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def on_files(files: Files, config: object) -> Files:
    for path in [BENCHMARKS / "RESULTS.md", *sorted((BENCHMARKS / "results").iterdir())]:
        if path.suffix.lower() in (".md", ".png", ".jpg", ".jpeg", ".svg"):
            uri = f"lab-notebook/{path.relative_to(BENCHMARKS).as_posix()}"
            files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
