"""worldsim info PATH: a human summary of a store (what is in it, where it came from, sample captions).

examples:
  worldsim info outputs/dataset
"""

from __future__ import annotations

import sys


def main(raw) -> int:
    from datagen import store as S

    try:
        root = S.open_root(str(raw.path), "r")
        a = dict(root.attrs)
        if a.get("worldsim_schema") != S.SCHEMA:
            raise S.StoreError(f"{raw.path} is not a worldsim store")
        if not a.get("finalized"):
            raise S.StoreError(f"{raw.path} is not finalized (run its generate command again to finish it)")
    except S.StoreError as err:
        print(f"worldsim info: {err}", file=sys.stderr)
        return 1
    st, job, gen = a["stats"], a["job"], a["generator"]
    print(f"worldsim store {raw.path}")
    print(f"  {st['episodes']} episodes, {st['frames']} frames at {', '.join(st['resolutions'])}, {a['fps']} fps")
    print(f"  engine {', '.join(a['env_ids'])} {job['env_kwargs']}, policy {job['policy']}, seed {job['seed']}, "
          f"{job['steps']} steps per episode")
    print(f"  made by worldsim {gen['version']} (git {gen['git_sha'][:12]}); licence: {a['licence']}")
    print(f"  digest {a['digest']}")
    print("  actions (fraction of steps non-zero): " +
          ", ".join(f"{k} {v['nonzero']:.2f}" for k, v in st["actions"].items()))
    for name in S.buckets(root):
        b = root[name]
        print(f"  {name}: {b['meta/episode_ends'].shape[0]} episodes, {b['meta/segment_bounds'].shape[0]} segments, "
              f"mean motion {float(b['meta/quality_motion'][...].mean()):.3f}")
        for i, (short, dense) in enumerate(zip(S.read_texts(b, "episode_short")[:2], S.read_texts(b, "episode_dense"))):
            print(f"    episode {i}: {short}\n      {dense[:240]}{'...' if len(dense) > 240 else ''}")
    return 0
