"""reelflow.emulator."""
