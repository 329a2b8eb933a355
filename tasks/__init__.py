"""reelflow.tasks."""
