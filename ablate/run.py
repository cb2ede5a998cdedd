"""``python -m ablate.run``: the study command (ablate.sweep.driver), the same as ``ablate run``."""

import sys

from ablate.sweep.driver import main

if __name__ == "__main__":
    sys.exit(main())
