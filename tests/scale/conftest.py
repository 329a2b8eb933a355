"""The scale tests' cluster fixture (tests/scale/cluster.py)."""

from tests.scale.cluster import cluster  # noqa: F401
