"""`python -m worldsim.cli <command> ...`: the same as the `worldsim` command (used by torchrun)."""

import sys

from worldsim.cli import main

sys.exit(main())
