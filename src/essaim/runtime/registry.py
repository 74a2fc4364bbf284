"""The OCI runtimes this daemon can run containers with (`docker run --runtime NAME`),
each driven through conmon with a state directory of its own.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from essaim.errors import InvalidParameter
from essaim.runtime.base import OCIRuntime
from essaim.runtime.conmon import ConmonRuntime

# Runtimes offered when their binary is installed, in the order `docker info` lists them.
KNOWN_RUNTIMES = ("runc", "crun")


class Runtimes:
    def __init__(self, runtimes: dict[str, OCIRuntime], default: str) -> None:
        if default not in runtimes:
            raise ValueError(f"default runtime {default!r} is not installed")
        self._runtimes = runtimes
        self.default = default

    @classmethod
    def discover(cls, *, default: str, state_root: Path, socket_dir: Path) -> Runtimes:
        """Every known runtime found on PATH, each with its state under `state_root/NAME`;
        `default` must be one of them."""
        found: dict[str, OCIRuntime] = {
            name: ConmonRuntime(runtime=name, runtime_root=state_root / name, socket_dir=socket_dir)
            for name in KNOWN_RUNTIMES
            if shutil.which(name)
        }
        if default not in found:
            installed = ", ".join(found) or "none"
            raise ValueError(
                f"default runtime {default!r} is not installed (installed: {installed})"
            )
        return cls(found, default)

    def get(self, name: str) -> OCIRuntime:
        """The runtime called `name` ("" is the default), or Docker's 400."""
        runtime = self._runtimes.get(name or self.default)
        if runtime is None:
            raise InvalidParameter(f"unknown or invalid runtime name: {name}")
        return runtime

    def __iter__(self) -> Iterator[OCIRuntime]:
        return iter(self._runtimes.values())

    def paths(self) -> dict[str, str]:
        return {name: runtime.runtime_path for name, runtime in self._runtimes.items()}
