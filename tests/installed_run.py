"""``python -m slp_lightning ARGS`` from an installed copy of the package (a wheel unzipped, or
``pip install --target``), which must be whole: it exits 1 if a module of slp_lightning comes from
anywhere else. For test_configs.py's wheel test and .ci/run; from a folder outside the checkout:

    PYTHONPATH=SITE python .../tests/installed_run.py SITE [ARGS...]

First every module of the package is imported (``pkgutil.walk_packages``; ``__main__`` is the run)
and the shipped configs must be SITE's; then the run, in this process (runpy, as ``python -m``
does). Where slp_lightning also has an editable install (the tests' venv, CI's), PYTHONPATH wins
for ``import slp_lightning``: setuptools' editable finder sits on ``sys.meta_path`` after the path
finder. But that finder also answers for any child of slp_lightning the path finder did not find,
from the source tree: a subpackage the wheel lacks is imported from the checkout and the run
works. Hence the check of where every loaded module is, after the imports and after the run."""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import runpy
import sys
from pathlib import Path

PACKAGE = "slp_lightning"


def outside(site: Path) -> list[str]:
    """The package's loaded modules that are not in ``site``, each with where it is."""
    found = []
    for name, module in sorted(sys.modules.items()):
        if name == PACKAGE or name.startswith(f"{PACKAGE}."):
            file = getattr(module, "__file__", None)
            places = [file] if file else list(getattr(module, "__path__", []))
            if not places or not all(Path(p).resolve().is_relative_to(site) for p in places):
                found.append(f"{name}: {', '.join(map(str, places)) or 'nowhere'}")
    return found


def main() -> int | str | None:
    site, args = Path(sys.argv[1]).resolve(), sys.argv[2:]
    package = importlib.import_module(PACKAGE)
    modules = [m.name for m in pkgutil.walk_packages(package.__path__, f"{PACKAGE}.")]
    for name in modules:
        if name != f"{PACKAGE}.__main__":
            importlib.import_module(name)
    from slp_lightning.cli.config_files import shipped_configs, shipped_dir

    wrong = outside(site)
    if not shipped_dir().resolve().is_relative_to(site) or not shipped_configs():
        wrong.append(f"the shipped configs: {shipped_dir()}, {shipped_configs()}")
    main_module = importlib.util.find_spec(f"{PACKAGE}.__main__")
    if main_module is None or not Path(str(main_module.origin)).resolve().is_relative_to(site):
        wrong.append(f"{PACKAGE}.__main__: {main_module and main_module.origin}")
    if wrong:
        print(f"not from {site}:", *wrong, sep="\n  ", file=sys.stderr)
        return 1
    print(
        f"{len(modules)} modules and {len(shipped_configs())} configs from {site}", file=sys.stderr
    )
    sys.argv[1:] = args
    status: int | str | None = 0
    try:
        runpy.run_module(PACKAGE, run_name="__main__", alter_sys=True)
    except SystemExit as exit:
        status = exit.code
    wrong = outside(site)
    if wrong:
        print(f"the run used modules not from {site}:", *wrong, sep="\n  ", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
