"""The README's plugin example runs exactly as printed: two clips joined by reelflow's tasks."""

from __future__ import annotations

import re

import pytest

from tests.helpers import REPO, media_facts


def _example_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return next(block for block in blocks if "def two_clips" in block)


@pytest.mark.usefixtures("prefect_api")
def test_readme_plugin_example(tmp_path, home, luma_env):
    namespace: dict = {"__name__": "readme_example"}
    exec(compile(_example_source(), "README.md", "exec"), namespace)
    before = luma_env.created_count()

    result = namespace["two_clips"](out=str(tmp_path / "two.mp4"))

    assert luma_env.created_count() - before == 2
    facts = media_facts(tmp_path / "two.mp4")
    assert facts["frames"] == 10 * 24 - 12
    assert (facts["width"], facts["height"]) == (960, 540)
    assert result.path == tmp_path / "two.mp4"
