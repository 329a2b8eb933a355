"""The wheel installs one top-level package, `reelflow`, never `flows` or `tasks`."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from tests.helpers import REPO


def test_wheel_has_only_namespaced_packages(tmp_path):
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(tmp_path), str(REPO)], check=True, capture_output=True, timeout=300)
    wheel = next(tmp_path.glob("reelflow-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.split("/")[0].endswith(".dist-info")}

    assert top_level == {"reelflow"}
    for module in ("reelflow/flows/render.py", "reelflow/tasks/luma.py", "reelflow/emulator/__init__.py",
                   "reelflow/cli.py", "reelflow/fonts/DejaVuSans.ttf", "reelflow/py.typed"):
        assert module in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "reelflow = reelflow.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()

