"""``python -m ablate.train``: one run without Ray (ablate.training.command), the same as ``ablate train``."""

import sys

from ablate.training.command import main

if __name__ == "__main__":
    sys.exit(main())
