"""Package layout that pyproject.toml cannot express: ``assets/`` installs as ``splatops_assets``.

Everything else (metadata, dependencies, package data) is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["splat*", "operators*", "graph*", "splatops*"]) + ["splatops_assets"],
    package_dir={"splatops_assets": "assets"},
)
