"""reelflow: a shot list in, a finished, edited video out, on Prefect."""
