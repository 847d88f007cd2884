"""Allow ``python -m lepton_robot``."""

import sys

from lepton_robot.cli import main

sys.exit(main())
