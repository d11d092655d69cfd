"""Does the dream draw the goal where it is? Navigate's pillar in dreamed frames against the engine's, under the
recorded actions of held-out episodes, with and without goal maps (docs/world_model.md, "Goal-conditioned dreams").

    python benchmarks/goal_dream.py --checkpoint runs/rlnav/navgoal --reward runs/rlnav/reward_odo \
        --store runs/rlnav/close_held --baseline runs/rlnav/navdit2 --horizon 16

For each episode of the held-out frame store and each start (`--starts` evenly spaced), a DreamEnv resets on the
frames before the start (`options={"store", "episode", "start"}`, the reward model warmed on them with the store's
task state) and steps the episode's own actions for `--horizon` steps; the store holds the engine's frames of the
same actions. A pixel is the pillar's (navigate's goal: magenta with yellow edges) when red exceeds green by
RED_MARGIN and blue is at least BLUE_MIN: the engine's magenta, and the salmon pink a dream draws it in (a blend of
magenta and yellow); sand, grass, sky, bark and dirt fail it. Per dream (each row of the table):
  pillar IoU      intersection over union of the dreamed and the engine's pillar pixels, over the frames where
                  either shows one (1: drawn exactly where the engine draws it; 0: never where it is)
  recall          of the frames where the engine shows at least MIN_PIXELS of pillar, the share where the dream does
                  too, within COLUMN_SLACK columns of the engine's pillar
  new-goal recall the same, on frames whose pillar the dream's context did not show (the goal came into view: what a
                  model can draw only if it knows where the goal is)
  false pillar    of the frames where the engine shows none, the share where the dream shows at least MIN_PIXELS
  PSNR            dreamed against engine frames, all steps (dB)
  goal error      where the reward model puts the goal after each dreamed step against the engine's recorded task
                  state (mean distance, blocks; the maps are painted from it in RL)
  move error      its odometry's step against the engine's (mean distance, blocks a step; both with the turn from the
                  camera action, `RewardModel.step_of`), and the mean forward step of each (the odometry's / the
                  engine's): a move that regresses to the mean shows as the first shorter than the second
Rows: `--baseline` (a world model without goal maps, e.g. the parent the goal model was fine-tuned from), the goal
model with its maps turned off (`DreamCore.goal_maps = False`: the goal unknown), on (the reward model's
estimate, as in RL) and painted from the engine's own task state at each step (the store's: what the world model
draws when it is told where the goal really is; the gap to the row before is the reward model's tracking error).
Same starts, same seeds, same reward model for all. A last row runs no dream: the reward model reads the engine's
own frames of the same steps (its goal and move error there against the dream rows': what the dream's pictures
cost the tracking).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch

RED_MARGIN = 50
BLUE_MIN = 100
MIN_PIXELS = 6
COLUMN_SLACK = 4


def pillar(frames: np.ndarray) -> np.ndarray:
    """(..., H, W, 3) uint8 -> (..., H, W) bool: navigate's goal pillar, as the engine and a dream draw it."""
    f = frames.astype(np.int16)
    return (f[..., 0] - f[..., 1] > RED_MARGIN) & (f[..., 2] >= BLUE_MIN)


def centre(mask: np.ndarray) -> float:
    cols = np.nonzero(mask.any(0))[0]
    return float(cols.mean()) if len(cols) else float("nan")


def score(dream: np.ndarray, engine: np.ndarray, seen_before: bool) -> dict[str, list[float]]:
    """Per-frame tallies of one dream (N, H, W, 3) against the engine's frames (N, H, W, 3)."""
    out: dict[str, list[float]] = {"inter": [], "union": [], "hit": [], "new_hit": [], "false": [], "mse": []}
    for d, e in zip(dream, engine):
        md, me = pillar(d), pillar(e)
        out["inter"].append(float((md & me).sum()))
        out["union"].append(float((md | me).sum()))
        shown = md.sum() >= MIN_PIXELS
        if me.sum() >= MIN_PIXELS:
            hit = float(shown and abs(centre(md) - centre(me)) <= COLUMN_SLACK)
            out["hit"].append(hit)
            if not seen_before:
                out["new_hit"].append(hit)
        else:
            out["false"].append(float(shown))
        out["mse"].append(float(((d.astype(np.float32) - e.astype(np.float32)) / 255.0).__pow__(2).mean()))
    return out


@torch.no_grad()
def run(checkpoint: str, reward: str, store: str, episodes: list[int], starts: int, horizon: int,
        goal_maps: bool, kept: list | None = None, render: str = "carry", engine_goal: bool = False,
        engine_frames: bool = False) -> dict[str, float]:
    """The table's figures of one dream; `kept`, if a list, receives (engine frames, dreamed frames, the goal was
    in the context's last frame) of every start, in order. `engine_goal`: the maps are painted from the store's
    recorded task state at each step instead of the reward model's estimate (what the world model draws given
    where the goal really is: the reward model's tracking error left out). `engine_frames`: nothing is dreamed, the
    reward model follows the goal on the engine's own frames of the same steps (its tracking without the dream's
    pictures: only the goal and move error mean anything then)."""
    from store import read_episode
    from store.spaces import unflatten_action
    from worldsim.dream.env import DreamEnv

    env = DreamEnv.from_checkpoint(checkpoint, reward=reward, store=store, max_episode_steps=None,
                                  render=render)
    if env.core.goal.shape[2]:
        env.core.goal_maps = goal_maps
    context = env.core.context
    now: dict[str, np.ndarray] = {}
    estimate = env.task_estimate  # the reward model's own, whatever the maps are painted from
    if engine_goal:  # the estimate DreamEnv paints the maps from, replaced by the engine's own state
        env.task_estimate = lambda: np.concatenate([now["goal"], estimate()[:, 2:]], axis=1)
    tallies: dict[str, list[float]] = {}
    for e in episodes:
        ep = read_episode(store, e)
        n = len(ep["frames"])
        for s in np.linspace(0, n - context - horizon - 1, starts).round().astype(int):
            now["goal"] = np.asarray(ep["task_state"][s + context - 1 : s + context, :2], np.float32)
            env.reset(seed=int(e * 1000 + s), options={"store": store, "episode": int(e), "start": int(s)})
            frames, guessed = [], [estimate()[0, :2]]
            if engine_frames:  # the reward model reads the engine's frames of the same steps: no dream
                z = env.core.sampler.encode(ep["frames"][s + context - 1 : s + context + horizon])[0]
                state, model = env.reward_state, env.reward_model
                for k in range(horizon):
                    flat = torch.from_numpy(np.asarray(ep["actions"][s + context - 1 + k], np.float32))[None]
                    _, _, state = model.predict(z[k : k + 1].float(), z[k + 1 : k + 2].float(),
                                                flat / env.core.model.action_scale, state)
                    guessed.append(model.tracked(state[:, :-1])[0, :2].float().numpy())
                frames = list(ep["frames"][s + context : s + context + horizon])  # no picture to score
            for k in range(0 if engine_frames else horizon):
                flat = ep["actions"][s + context - 1 + k]
                now["goal"] = np.asarray(ep["task_state"][s + context - 1 + k : s + context + k, :2], np.float32)
                obs, *_ = env.step(unflatten_action(env.action_spec, env.action_space, flat))
                frames.append(obs)
                guessed.append(estimate()[0, :2])
            truth = np.asarray(ep["task_state"][s + context - 1 : s + context + horizon, :2], np.float32)
            if "camera_yaw" not in ep["action_keys"]:
                raise SystemExit(f"{store}: its actions have no camera_yaw column (a navigate store of the voxel "
                                 "engine has)")
            yaw = ep["actions"][s + context - 1 : s + context - 1 + horizon, ep["action_keys"].index("camera_yaw")]
            for k, v in tracking(np.stack(guessed), truth, np.asarray(yaw, np.float32)).items():
                tallies.setdefault(k, []).extend(v)
            engine = ep["frames"][s + context : s + context + horizon]
            seen = bool(pillar(ep["frames"][s + context - 1]).sum() >= MIN_PIXELS)
            if kept is not None:
                kept.append((engine, np.stack(frames), seen))
            for k, v in score(np.stack(frames), engine, seen).items():
                tallies.setdefault(k, []).extend(v)
    mse = np.mean(tallies["mse"])
    return {"iou": sum(tallies["inter"]) / max(sum(tallies["union"]), 1.0),
            "recall": float(np.mean(tallies["hit"])) if tallies["hit"] else float("nan"),
            "new_recall": float(np.mean(tallies["new_hit"])) if tallies["new_hit"] else float("nan"),
            "new_frames": len(tallies["new_hit"]), "frames": len(tallies["hit"]),
            "false": float(np.mean(tallies["false"])) if tallies["false"] else float("nan"),
            "psnr": float(10 * np.log10(1.0 / max(mse, 1e-10))),
            **{k: float(np.mean(tallies[k])) for k in ("goal_err", "move_err", "step_est", "step_true")}}


def tracking(guessed: np.ndarray, truth: np.ndarray, yaw: np.ndarray) -> dict[str, list[float]]:
    """Per-step tallies of the goal estimate along one dream: guessed and truth (N + 1, 2) (forward, right, blocks;
    from the reset on), yaw (N,) the camera action's turn in degrees at each step."""
    from worldsim.model.reward import RewardModel

    g, t, turn = torch.from_numpy(guessed), torch.from_numpy(truth), torch.deg2rad(torch.from_numpy(yaw))
    est, true = (RewardModel.step_of(x[:-1], x[1:], turn).numpy() for x in (g, t))
    return {"goal_err": np.linalg.norm(guessed[1:] - truth[1:], axis=1).tolist(),
            "move_err": np.linalg.norm(est - true, axis=1).tolist(),
            "step_est": est[:, 0].tolist(), "step_true": true[:, 0].tolist()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="a world model trained with model.goal_map=true")
    p.add_argument("--reward", required=True, help="a reward model that tracks the goal (model.odometry=true)")
    p.add_argument("--store", required=True, help="held-out navigate frame store (records data/task_state)")
    p.add_argument("--baseline", default=None, help="a world model without goal maps to compare with")
    p.add_argument("--episodes", type=int, default=16, help="the store's first N episodes")
    p.add_argument("--starts", type=int, default=3, help="dreams per episode, starts evenly spaced")
    p.add_argument("--horizon", type=int, default=16, help="dreamed steps per start")
    p.add_argument("--image", default=None, help="also write a PNG: engine and every dream, every 2nd step, for the "
                   "first --show starts where a goal the context did not show comes into view")
    p.add_argument("--show", type=int, default=3, help="starts in --image")
    p.add_argument("--render", choices=["carry", "latent"], default="carry",
                   help="how the dreams are drawn (DreamEnv's render): carry (what agents see) or the latents decoded")
    args = p.parse_args()
    from store import episode_indices

    episodes = episode_indices(args.store)[: args.episodes]
    rows = ([(f"baseline {Path(args.baseline).name}", args.baseline, True, False)] if args.baseline else []) + [
        ("goal model, maps off", args.checkpoint, False, False), ("goal model, maps on", args.checkpoint, True, False),
        ("goal model, engine's maps", args.checkpoint, True, True),
        ("reward model on the engine's frames", args.checkpoint, True, False, True)]
    print(f"# {platform.node()} {platform.processor() or platform.machine()}; store {args.store}, "
          f"{len(episodes)} episodes x {args.starts} starts x {args.horizon} steps, recorded actions")
    print("| dream | pillar IoU | recall | new-goal recall (frames) | false pillar | PSNR dB | goal error | move error "
          "(forward step) | time |")
    print("|---|---|---|---|---|---|---|---|---|")
    kept: list[list] = []
    for name, ckpt, maps, engine_goal, *engine_frames in rows:
        t0 = time.perf_counter()
        kept.append([])
        r = run(ckpt, args.reward, args.store, episodes, args.starts, args.horizon, maps, kept[-1], args.render,
                engine_goal, bool(engine_frames))
        picture = "| - | - | - | - | - " if engine_frames else (
            f"| {r['iou']:.3f} | {r['recall']:.2f} ({r['frames']}) | {r['new_recall']:.2f} ({r['new_frames']}) "
            f"| {r['false']:.2f} | {r['psnr']:.2f} ")
        print(f"| {name} {picture}| {r['goal_err']:.2f} | {r['move_err']:.3f} ({r['step_est']:.3f} / "
              f"{r['step_true']:.3f}) | {time.perf_counter() - t0:.0f}s |", flush=True)
    if args.image:
        contact_sheet(args.image, [name for name, *_ in rows[:-1]], kept[:-1], args.show)


def contact_sheet(path: str, names: list[str], kept: list[list], show: int) -> None:
    """Engine and dreams of the first `show` starts whose goal comes into view (not in the context's last frame,
    in some engine frame after it), every 2nd step, one row each."""
    from sheet import draw

    picks = [i for i, (engine, _, seen) in enumerate(kept[0])
             if not seen and any(pillar(f).sum() >= MIN_PIXELS for f in engine)][:show]
    if not picks:
        print("no start where the goal comes into view: no image")
        return
    steps = list(range(1, kept[0][0][0].shape[0], 2))
    rows = []
    for i in picks:
        for r, label in enumerate(["engine", *names]):
            frames = kept[0][i][0] if r == 0 else kept[r - 1][i][1]
            rows.append((label, [frames[k] for k in steps]))
    draw(path, rows, [f"t+{k + 1}" for k in steps], left=0.16, dpi=110)


if __name__ == "__main__":
    main()
