"""Puts ``schemas/`` (the event and API contracts, kept at the repository's root as
their one source) into the built package as ``riskstream/_schemas``, so an installed
wheel validates events and serves its OpenAPI document without the repository.

Everything else about the package is in ``pyproject.toml``.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SCHEMAS = Path(__file__).resolve().parent / "schemas"


class BuildPyWithSchemas(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the repository's schemas/ itself
        target = Path(self.build_lib) / "riskstream" / "_schemas"
        target.mkdir(parents=True, exist_ok=True)
        for path in sorted(SCHEMAS.iterdir()):
            if path.is_file():
                shutil.copy2(path, target / path.name)


setup(cmdclass={"build_py": BuildPyWithSchemas})
