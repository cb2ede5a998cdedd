import sys

from ablate.report.command import main

sys.exit(main())
