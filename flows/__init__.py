"""reelflow.flows."""
