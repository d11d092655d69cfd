"""The exceptions worldsim raises for bad input: the command line prints them as one line with exit status 2.

Every other exception is a bug (ours or a library's) and keeps its traceback. The store's `StoreError` (a store is
missing, corrupt or not what was asked for) belongs to the same family; it lives in the store package, which
imports nothing of worldsim.

    UserError                 anything the user can fix by changing what they asked for
    ├── InputError            a bad value in a config, an argument or an input file (also a ValueError)
    ├── UsageError            a malformed command line
    └── CheckpointError       a checkpoint path that is missing, unfinished or of another kind
    TrainingDiverged          the loss became NaN or infinite (one line naming the last good checkpoint, exit 1)
"""

from __future__ import annotations


class UserError(Exception):
    """Bad input: printed by the command line as one line, exit status 2."""


class InputError(UserError, ValueError):
    """A bad value in a config key, an argument or an input file; the message names it and what would do."""


class UsageError(UserError):
    """A malformed command line (not `key=value`, an unknown key, a required key left out)."""


class CheckpointError(UserError):
    """A checkpoint path is missing or not a worldsim checkpoint (of the kind asked for); the message names it."""


class TrainingDiverged(Exception):
    """The loss became NaN or infinite: training stops before the bad step touches the weights or a checkpoint."""
