"""``python -m ablate.pretrain``: self-supervised pretraining (ablate.training.pretrain), as ``ablate pretrain``."""

import sys

from ablate.training.pretrain import main

if __name__ == "__main__":
    sys.exit(main())
