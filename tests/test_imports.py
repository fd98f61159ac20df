"""Every module imports on its own: no import cycle hides behind an import order.

A cycle between two of our modules only shows when one of them is the first
to be imported (a benchmark, a CLI entry point, a test run alone), so each
module is imported with none of ours loaded before it, in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys

_SCRIPT = r"""
import importlib, pkgutil, sys
import mailevents, mailevents_server
names = sorted(
    info.name
    for package in (mailevents, mailevents_server)
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + ".")
    if ".v1." not in info.name
)
ours = ("mailevents", "mailevents_server")
failed = []
for name in names:
    for loaded in [m for m in sys.modules if m.split(".")[0] in ours and ".v1" not in m]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception as exc:
        failed.append(f"{name}: {type(exc).__name__}: {exc}")
print(len(names))
print("\n".join(failed))
"""


def test_every_module_imports_first() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=300, check=True
    )
    count, *failures = done.stdout.strip().split("\n")
    assert int(count) > 80
    assert [f for f in failures if f] == []
