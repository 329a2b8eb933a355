"""``python -m reelflow.emulator``: run the Luma API emulator in the foreground."""

import sys

from reelflow.emulator import main

if __name__ == "__main__":
    sys.exit(main())
