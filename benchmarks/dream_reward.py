"""What the dream pays: the reward a DreamEnv gives under different action streams, from the same real starts,
beside the return the engine recorded. Run it before spending CPU hours on RL in the dream.

    python benchmarks/dream_reward.py --checkpoint runs/nav-dit --store data/nav-heldout --episodes 16 --horizon 32

For each of `--episodes` episodes of a held-out frame store: DreamEnv resets on the episode's first frames
(`options={"store", "episode", "start": 0}`), then dreams the largest `--horizon` steps under
  recorded  the episode's own actions,
  solver    the actions datagen's scripted navigate solver takes in the engine from there (it reads the goal's
            position: the behaviour an agent should learn, so the dream should pay it the most),
  random    uniformly drawn entries of the NAVIGATE table (worldsim.dream.wrappers),
  no-op     nothing pressed,
  forward   always forward;
and sums the reward model's rewards (a dream ends early when the model says terminated). The engine plays the
same streams from the same frame: it is rebuilt from the store's job and the episode's seed, replays the recorded
actions up to the dream's start (checked: its frame must equal the stored one, else that episode only gets its
recorded return) and then each stream. Three columns per stream: the dream's return, the reward model alone along
the engine's own frames of the same stream (no dreaming: its gap to the engine is the reward model's error, the
dream's gap to it the world model's), and the engine's return. Two more rows feed the reward model the reset's
last latent, unchanged, as every step's next latent (`still, no-op`, `still, forward`: nothing moved, the engine
would pay 0): what it pays there is its own bias, whatever the world model dreams.

An agent learns in the dream what this table ranks: if the rows do not rank as the engine's do (say `forward` above
the recorded goal-seeking actions where the engine has it below), or the dream's return does not follow the
engine's episode by episode (Pearson r), PPO in the dream climbs the reward model's bias, not the task. The line
under each table is the one margin that decides navigate: what the solver earns over walking straight ahead.
Several `--horizon` values report the same dreams cut at each (`--horizon 8 16 32`): how long a dreamed episode may
be before the dream stops paying as the engine does (docs/rl.md).
"""

from __future__ import annotations

import argparse
import platform
from typing import Any

import numpy as np
import torch


def engine_for(store: str) -> tuple[Any, Any]:
    """The store's engine, rebuilt from its job (one per run: `engine_play` resets it), and its action spec."""
    import zarr

    from datagen.rollout import Job, make_env

    attrs = zarr.open_group(store, mode="r").attrs
    job = Job(**{k: v for k, v in attrs["job"].items() if k in Job.__dataclass_fields__ and k != "ppo_state"})
    return make_env(job), attrs["action_spec"]


def engine_play(engine: tuple[Any, Any], ep: dict, seen: int, stream: np.ndarray | None, steps: int = 0
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The engine's rewards, step by step, over `stream` (flat actions (N, A)) from episode `ep`'s frame seen - 1,
    or, with stream None, over `steps` actions of the task's scripted solver (privileged: it reads the goal from the
    engine), the flat actions played (N, A) and the engine's frames (N + 1, H, W, 3), the first the one before them.
    The engine (`engine_for`) is reset with the episode's seed and driven by its recorded actions up to that frame;
    None when that replay does not reproduce the stored frame (an engine that is not deterministic from its seed)."""
    from datagen.policies import make_policy_for
    from datagen.rollout import flat_action
    from store.spaces import unflatten_action

    env, spec = engine
    obs, info = env.reset(seed=int(ep["seed"]))
    for t in range(seen - 1):
        obs, _, _, _, info = env.step(unflatten_action(spec, env.action_space, ep["actions"][t]))
    if not np.array_equal(obs, ep["frames"][seen - 1]):
        return None
    solver = make_policy_for("solver", np.random.default_rng(ep["index"]), env, "navigate") if stream is None else None
    rewards, played, frames = [], [], [obs]
    for t in range(steps if stream is None else len(stream)):
        action = solver.act(info) if solver is not None else unflatten_action(spec, env.action_space, stream[t])
        obs, r, terminated, truncated, info = env.step(action)
        frames.append(obs)
        played.append(flat_action(env, action) if solver is not None else stream[t])
        rewards.append(float(r))
        if terminated or truncated:
            break
    return np.asarray(rewards), np.stack(played), np.stack(frames)


def reward_along(env: Any, z: torch.Tensor, flat: np.ndarray) -> np.ndarray:
    """The reward model alone (no dreaming) along latents z (N + 1, C, h, w) under flat actions (N, A), from the
    state DreamEnv's last reset warmed: its rewards step by step, up to the first step it says terminated."""
    scaled = torch.from_numpy(flat).to(z.device) / env.core.model.action_scale
    state, out = env.reward_state, []
    for t in range(len(scaled)):
        r, terminated, state = env.reward_model.predict(z[t : t + 1], z[t + 1 : t + 2], scaled[t : t + 1], state)
        out.append(float(r[0]))
        if bool(terminated[0]):
            break
    return np.asarray(out)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="world model run (DreamEnv finds its reward model)")
    ap.add_argument("--store", required=True, help="held-out frame store of the same game (with rewards)")
    ap.add_argument("--episodes", type=int, default=16, help="episodes scored, the first N (default 16)")
    ap.add_argument("--horizon", type=int, nargs="+", default=[32],
                    help="dreamed steps per episode; several values (8 16 32) report the same dreams cut at each "
                         "(default 32)")
    ap.add_argument("--reward", default=None, help="reward model (default: the checkpoint's)")
    ap.add_argument("--dream-steps", type=int, default=None,
                    help="Euler steps per dreamed frame (default: the checkpoint's, as DreamEnv picks it)")
    ap.add_argument("--no-engine", action="store_true",
                    help="skip the engine's replays (only the recorded return, from the store)")
    ap.add_argument("--frames", default=None, metavar="PNG",
                    help="write the solver's stream, engine frames above dreamed ones, every 4th step (needs the "
                         "engine)")
    ap.add_argument("--show", type=int, default=4, help="episodes in --frames (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.dream_steps is not None and args.dream_steps < 1:
        ap.error(f"--dream-steps must be >= 1, got {args.dream_steps}")
    if args.episodes < 1 or min(args.horizon) < 1:
        ap.error(f"--episodes and --horizon must be >= 1, got {args.episodes} and {args.horizon}")
    horizons = sorted(set(args.horizon))
    torch.set_num_threads(args.threads)

    from store.spaces import flatten_action, unflatten_action
    from worldsim import DreamEnv
    from worldsim.dream.wrappers import NAVIGATE, action_table
    from worldsim.eval.metrics import read_episode

    env = DreamEnv.from_checkpoint(args.checkpoint, reward=args.reward, store=args.store, max_episode_steps=None,
                                   **({"steps": args.dream_steps} if args.dream_steps else {}))
    if env.reward_model is None:
        raise SystemExit(f"{args.checkpoint} has no reward model (worldsim train-reward): nothing to measure")
    table = action_table(env.action_space, NAVIGATE)
    flat_of = [flatten_action(env.action_spec, env.action_space, a) for a in table]
    rng = np.random.default_rng(args.seed)
    kinds = ("recorded", "solver", "random", "no-op", "forward")
    still = ("still, no-op", "still, forward")
    # per episode, the rewards step by step (None: not measured): in the dream, from the reward model along the
    # engine's own frames of the same stream, and from the engine
    dream: dict[str, list[np.ndarray | None]] = {k: [] for k in kinds + still}
    along: dict[str, list[np.ndarray | None]] = {k: [] for k in kinds}
    engine: dict[str, list[np.ndarray | None]] = {k: [] for k in kinds}
    diverged = 0
    engine_env = None if args.no_engine else engine_for(args.store)
    pictures: list[tuple[str, np.ndarray]] = []  # the solver's stream, engine and dream (--frames)
    for i in range(args.episodes):
        ep = read_episode(args.store, i)
        seen = min(env.source.context, len(ep["frames"]))  # context frames given: frames[0:seen]
        steps = min(horizons[-1], len(ep["frames"]) - seen)  # actions[t] leads from frame t to t + 1
        streams = {"recorded": ep["actions"][seen - 1 : seen - 1 + steps],
                   "random": np.stack([flat_of[int(k)] for k in rng.integers(len(table), size=steps)]),
                   "no-op": np.stack([flat_of[0]] * steps), "forward": np.stack([flat_of[1]] * steps)}
        real = {"recorded": np.asarray(ep["rewards"][seen - 1 : seen - 1 + steps], np.float64)}
        real_frames = {"recorded": ep["frames"][seen - 1 : seen + steps]}
        if engine_env is not None:
            solved = engine_play(engine_env, ep, seen, None, steps)
            if solved is None:
                diverged += 1
            else:
                real["solver"], streams["solver"], real_frames["solver"] = solved
                for kind in ("random", "no-op", "forward"):
                    real[kind], _, real_frames[kind] = engine_play(engine_env, ep, seen, streams[kind])
        for kind in kinds:
            if kind not in streams:  # the solver, where the engine did not reproduce the start
                for rows in (dream, along, engine):
                    rows[kind].append(None)
                continue
            env.reset(seed=args.seed + i, options={"store": args.store, "episode": i, "start": 0})
            rewards, seen_frames = [], [env.core.frames()[0]]
            for flat in streams[kind]:
                obs, r, terminated, _, _ = env.step(unflatten_action(env.action_spec, env.action_space, flat))
                seen_frames.append(obs)
                rewards.append(r)
                if terminated:
                    break
            dream[kind].append(np.asarray(rewards))
            if kind == "solver" and len(pictures) < 2 * args.show:
                pictures += [(f"ep {i} engine {real['solver'].sum():+.2f}", real_frames["solver"]),
                             (f"ep {i} dream {sum(rewards):+.2f}", np.stack(seen_frames))]
            if kind not in real:  # --no-engine, or a replay that diverged
                along[kind].append(None)
                engine[kind].append(None)
                continue
            # the reward model alone along the engine's own frames of this stream: no dreaming
            env.reset(seed=args.seed + i, options={"store": args.store, "episode": i, "start": 0})
            z = env.sampler.encode(real_frames[kind])[0].float()  # (N + 1, C, h, w)
            along[kind].append(reward_along(env, z, streams[kind][: len(z) - 1]))
            engine[kind].append(real[kind])
        for kind in still:  # the reward model alone, on the reset's last latent, unchanged
            env.reset(seed=args.seed + i, options={"store": args.store, "episode": i, "start": 0})
            z = env.core.last.float().expand(steps + 1, *env.core.last.shape[1:])
            dream[kind].append(reward_along(env, z, streams["no-op" if kind == "still, no-op" else "forward"]))

    def corr(a: list[float], b: list[float]) -> float:
        a, b = np.asarray(a), np.asarray(b)
        ok = ~np.isnan(a) & ~np.isnan(b)
        return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 1 and a[ok].std() > 0 and b[ok].std() > 0 \
            else float("nan")

    def cell(v: list[float]) -> str:
        v = np.asarray(v)
        v = v[~np.isnan(v)]
        return f"{v.mean():+.3f} +- {v.std():.3f}" if len(v) else "-"

    def upto(rows: dict[str, list[np.ndarray | None]], h: int) -> dict[str, list[float]]:
        """Each episode's return over the first h steps (nan where not measured)."""
        return {k: [float("nan") if v is None else float(np.sum(v[:h])) for v in vs] for k, vs in rows.items()}

    def gap(rows: dict[str, list[float]]) -> float:
        """Mean over episodes of the solver's return minus walking forward's, where both were measured."""
        d = np.asarray(rows["solver"]) - np.asarray(rows["forward"])
        return float(np.mean(d[~np.isnan(d)])) if (~np.isnan(d)).any() else float("nan")

    print(f"{args.checkpoint} on {args.store}: {args.episodes} episodes, {horizons[-1]} dreamed steps, "
          f"{env.core.steps} Euler step(s) per frame ({platform.processor() or platform.machine()}, "
          f"torch {torch.__version__})")
    by_horizon = {}
    for h in horizons:
        d, a, e = upto(dream, h), upto(along, h), upto(engine, h)
        pairs = corr(sum((d[k] for k in kinds), []), sum((e[k] for k in kinds), []))
        by_horizon[h] = {"dream": d, "engine_frames": a, "engine": e, "r": {k: corr(d[k], e[k]) for k in kinds},
                         "r_pairs": pairs, "gap": {"dream": gap(d), "engine_frames": gap(a), "engine": gap(e)}}
        print(f"\nreturns over the first {h} steps, mean +- std over episodes")
        print("| actions | dream (reward model) | reward model on the engine's frames | engine, same actions from the "
              "same frame | r, dream vs engine, across episodes |")
        print("|---|---|---|---|---|")
        for kind in kinds:
            print(f"| {kind} | {cell(d[kind])} | {cell(a[kind])} | {cell(e[kind])} | {corr(d[kind], e[kind]):+.2f} |")
        for kind in still:
            print(f"| {kind} (nothing moved) | {cell(d[kind])} | - | 0 | - |")
        g = by_horizon[h]["gap"]
        print(f"solver minus forward: dream {g['dream']:+.3f}, reward model on the engine's frames "
              f"{g['engine_frames']:+.3f}, engine {g['engine']:+.3f}; Pearson r, dream vs engine, over every "
              f"(episode, actions) pair: {pairs:+.2f}")
    if args.frames and pictures:
        from PIL import Image

        from worldsim.eval.sim_probes import strip

        n = max(len(f) for _, f in pictures)
        padded = [(label, np.concatenate([f, np.repeat(f[-1:], n - len(f), 0)])) for label, f in pictures]
        Image.fromarray(strip(padded, [(f"t={t}", t) for t in range(0, n, 4)], scale=2)).save(args.frames)
        print(f"frames: {args.frames}")
    if engine_env is not None:
        engine_env[0].close()
    if diverged:
        print(f"{diverged} of {args.episodes} episodes: the engine's replay did not reproduce the stored frame; "
              "only their recorded return is used")
    return {**by_horizon[horizons[-1]], "by_horizon": by_horizon, "diverged": diverged,
            "context": int(env.source.context)}


if __name__ == "__main__":
    main()
