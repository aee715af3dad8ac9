"""The package list, found: every package under slp_lightning/ (a new subpackage is picked up as
it is added), and the top-level configs/ as slp_lightning.configs. Everything else, including
configs/'s location and its *.yaml files, is in pyproject.toml. The list is here because
pyproject.toml cannot hold it: ``[tool.setuptools.packages.find]`` names packages by their
folders, so it never yields slp_lightning.configs (folder configs/), and a list written out by
hand there (as before) leaves out whatever is added later."""

from setuptools import find_packages, setup

setup(
    packages=[
        *find_packages(include=["slp_lightning", "slp_lightning.*"]),
        "slp_lightning.configs",
    ],
)
