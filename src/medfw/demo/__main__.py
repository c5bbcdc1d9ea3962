"""``python -m medfw.demo``."""

import sys

from medfw.demo import main

sys.exit(main())
