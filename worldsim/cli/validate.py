"""worldsim validate PATH: check every array of a store against the schema and its recorded digest.

Prints JSON on stdout (valid, episodes, frames, resolutions, env_ids, digest, fps, action statistics) and exits 0;
a corrupt, truncated or foreign store gives one line naming the problem on stderr and exit status 1.

examples:
  worldsim validate outputs/dataset
  worldsim validate file:///data/voxel64
"""

from __future__ import annotations

import json
import sys


def main(raw) -> int:
    from store import StoreError, validate

    try:
        summary = validate(str(raw.path))
    except StoreError as err:
        print(f"worldsim validate: invalid store: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0
