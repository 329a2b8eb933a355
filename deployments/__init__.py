"""reelflow.deployments."""
