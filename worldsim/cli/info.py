"""worldsim info PATH | ckpt=PATH: a human summary of a store, or of a model checkpoint.

A store: what is in it, where it came from, sample captions. A checkpoint (a VAE or world-model run directory, or
one checkpoint): parameters, configuration, and exactly which stores it was trained on (digests, generator
versions, seeds).

examples:
  worldsim info outputs/dataset
  worldsim info ckpt=runs/dit64
"""

from __future__ import annotations

import sys

from worldsim.errors import InputError


def main(raw) -> int:
    if raw.get("ckpt"):
        return checkpoint_info(str(raw.ckpt))
    if not raw.get("path"):
        raise InputError("give a store (worldsim info PATH) or a checkpoint (worldsim info ckpt=PATH)")
    import store as S

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


def checkpoint_info(path: str) -> int:
    from worldsim.model import checkpoint as C

    ck = C.resolve(path)
    meta = C.load_meta(ck)
    kind = meta.get("kind")
    weights = C.load_tensors(ck, "ema" if kind == "dit" else "model")
    params = sum(int(v.numel()) for k, v in weights.items() if "latent_" not in k and "action_scale" not in k)
    print(f"worldsim {'world model' if kind == 'dit' else 'VAE'} checkpoint {ck}")
    print(f"  step {meta['step']}, {params / 1e6:.2f}M parameters, digest {C.digest(ck)}")
    if kind == "dit":
        spec = meta["spec"]
        d = spec["dit"]
        from worldsim.model.dit import DiTConfig

        width, depth, heads = DiTConfig(**d).resolved()
        print(f"  DiT preset {d['preset']} (width {width}, depth {depth}, heads {heads}), "
              f"{d['attention']} attention, patch {d['patch']}; text encoder {spec['text']['encoder']}, "
              f"vocabulary {len(spec['vocab'])} words")
        from worldsim.model.flow import FlowConfig
        from worldsim.model.sampler import dream_steps_for

        flow = FlowConfig(**meta.get("train", {}).get("flow", {}))
        print(f"  objective {flow.objective}, prediction {spec.get('prediction', 'velocity')}, "
              f"{flow.p_pure_noise:.0%} of frames trained at pure noise; DreamEnv default {dream_steps_for(flow)} "
              f"Euler step(s)")
        print(f"  window {meta['frames']} frames at {meta['width']}x{meta['height']}, {meta['fps']} fps, "
              f"actions {len(spec['action_scale'])} columns: {', '.join(meta['action_spec'].get('flat_keys', []))}")
        v = meta["vae"]
        print(f"  VAE {v['path']} (digest {v['digest'][:16]}..., held-out PSNR {v.get('val_psnr')})")
    else:
        print(f"  VAE config {meta['vae']}; held-out reconstruction PSNR {meta.get('val_psnr')}")
    print("  trained on:")
    for s in meta.get("stores", []):
        gen = s.get("generator", {})
        job = s.get("job", {})
        print(f"    {s['url']}: digest {s['digest']}, {', '.join(s.get('env_ids', []))}, made by worldsim "
              f"{gen.get('version')} (git {str(gen.get('git_sha'))[:12]}), job seed {job.get('seed')}, "
              f"episodes {s['episodes']}")
    if kind == "dit":
        held = meta.get("heldout", {})
        print(f"  held out: the last {held.get('val_episodes')} episode(s) of each store")
    return 0
