"""reelflow.deployments: serve or register reelflow's Prefect deployments.

``PREFECT_YAML`` is the installed ``prefect.yaml`` (for ``prefect deploy --prefect-file``);
``reelflow.deployments.serve`` holds ``serve_deployments``, ``deploy_to_pool`` and the
``reelflow serve`` / ``reelflow deploy`` entry functions. Importing this package does not
import Prefect.
"""

from pathlib import Path

__all__ = ["PREFECT_YAML"]

#: The packaged prefect.yaml with the ``render`` and ``produce`` deployments.
PREFECT_YAML = Path(__file__).with_name("prefect.yaml")
