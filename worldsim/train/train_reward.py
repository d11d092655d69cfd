"""Train the reward and termination model on a world model's latents; report it on held-out episodes.

    cfg = TrainRewardConfig(ckpt="runs/dit", store=["data/voxel64"], steps=2000)
    result = train_reward(cfg)     # {"metrics": {...}, "checkpoint": "runs/dit/reward/checkpoints/step_..."}

Data path: every transition (frames[t], actions[t], frames[t + 1]) inside an episode of the stores -> the world
model's own VAE encodes each frame once (normalised latents, as the DiT sees them) -> batches of `seq_len`
consecutive transitions of one episode, drawn so that rare transitions (non-zero reward, terminated) make up at least
a set share of the transitions, and in `still_fraction` of them a pause (a frame repeated, paid what standing
still pays in the data: `insert_pauses`) -> the model unrolled along each sequence as DreamEnv runs it: its state
starts empty, the first `given` transitions (drawn per sequence, up to `max_given`) carry their recorded rewards (a
reset's context), the rest carry the model's own predictions (a dream) -> Huber loss on the reward + BCE on
termination.
Held-out scores unroll whole episodes the same way, with the first `val_given` rewards given, and score the rest.
Everything stays in memory (float16 latents: C x h x w x 2 bytes per frame, 4 KB at 64 px with 8 channels).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from store import StoreError
from worldsim.errors import InputError
from worldsim.model import checkpoint as C
from worldsim.model.frames import to_model
from worldsim.model.reward import RewardConfig, RewardModel, default_out, save_reward
from worldsim.model.vae import VAEConfig, VideoVAE
from worldsim.runtime import autocast, pick_device
from worldsim.train.data import StoreSet, batch_rng, verify_stores
from worldsim.train.loop import Loop, Metrics, Schedule

# the reward loss on the net's units (TrainRewardConfig.reward_loss)
REWARD_LOSSES = {"huber": F.smooth_l1_loss, "l1": F.l1_loss}


@dataclass
class TrainRewardConfig:
    ckpt: str = ""  # world-model (DiT) run directory or checkpoint: its VAE makes the latents
    store: list[str] = field(default_factory=list)
    out: str | None = None  # default: <run dir of ckpt>/reward (where DreamEnv looks)
    steps: int = 2000
    batch_size: int = 16  # sequences per step
    seq_len: int = 16  # consecutive transitions per sequence (1 for a stateless model: model.state=0)
    max_given: int = 8  # each sequence starts with 0..max_given transitions whose recorded rewards the state gets
    val_given: int = 4  # held-out episodes: recorded rewards given for the first val_given transitions (DreamEnv's
                        # default context of 5 frames has 4), scored on the rest
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 1e-4
    grad_clip: float = 1.0
    reward_fraction: float = 0.3  # least share of drawn transitions with a non-zero reward (when any)
    term_fraction: float = 0.2  # least share drawn from terminated transitions (when any)
    pos_weight: float = 1.0  # BCE weight of terminated transitions, on top of the oversampling
    term_weight: float = 1.0  # termination loss relative to the reward loss
    reward_loss: str = "huber"  # on the net's units: "huber" (the mean where unsure) or "l1" (the median: 0 where
                                # the sign is a coin flip, what the held-out MAE rewards)
    still_fraction: float = 0.5  # share of training sequences in which the agent stands still for a while
                                 # (`insert_pauses`): unchanged latents pay what standing still pays (0: off)
    task_state: bool = False  # start the reward model's state from the task's state at the first frame (the stores'
    # `data/task_state`: navigate's goal position; DreamEnv gives it on resets from such a store; docs/world_model.md)
    track_weight: float = 1.0  # with task_state and model.track or model.odometry: weight of the tracking loss (the
    # task's state after each transition as the model tracks it against the recorded one, squared error in
    # standardised units; odometry: Huber) against the reward's
    move_weight: float = 1.0  # with model.odometry and an exact turn (`exact_turn`): weight of a loss on each step's
    # move itself (the odometry's forward and right step against the one the recorded task states imply, Huber in
    # units of the data's mean step), beside the tracking loss on the point; 0: the point's loss alone (as before
    # 2026-12-05). Why: a step's error is ~1% of the point's spread, so the point's loss barely sees it
    exact_turn: bool = True  # with model.odometry: each step's turn is the stores' `camera_yaw` action (degrees,
    # exact in worldsim's voxel engine and MineRL) and only the move is learned (`RewardConfig.turn_column`); false,
    # or stores without that column: the turn is learned too
    dreams: int = 0  # > 0: also train on this many dreams along recorded actions (worldsim/dream/replay.py: the
    # world model's own latents, what the reward model reads in RL, paid what the engine paid), beside the stores'
    dream_ckpt: str | None = None  # the world model that dreams them (default: ckpt; e.g. the one RL dreams with)
    dream_store: list[str] = field(default_factory=list)  # where they start (default: the training stores)
    dream_horizon: int = 16  # dreamed steps after each dream's context
    skip_policies: list[str] = field(default_factory=list)  # recording policies (as the stores name them, e.g.
    # NavigateSolver) whose episodes are left out of training (`collect`); the held-out score keeps every episode
    val_store: str | None = None  # held-out store; default: the last `val_episodes` episodes of each store
    val_episodes: int = 1
    seed: int = 0
    device: str = "auto"
    precision: str = "bf16"  # autocast of the VAE encoder; the reward model trains in fp32
    encode_batch: int = 256  # frames per VAE call
    log_every: int = 50
    model: RewardConfig = field(default_factory=RewardConfig)


@dataclass
class Transitions:
    """Transitions with shared frame latents: transition i goes latents[prev[i]] -> latents[next[i]]."""

    latents: torch.Tensor  # (F, C, h, w) float16
    prev: torch.Tensor  # (N,) int64
    next: torch.Tensor  # (N,) int64
    actions: torch.Tensor  # (N, A) float32, divided by the world model's action_scale
    rewards: torch.Tensor  # (N,) float32
    terminated: torch.Tensor  # (N,) bool
    follows: torch.Tensor | None = None  # (N,) bool: transition i is the one after i - 1 in the same episode
    task: torch.Tensor | None = None  # (N, K) float32: the task's state at frame prev[i] (stores with task_state)
    task_next: torch.Tensor | None = None  # (N, K) float32: ... at frame next[i]

    def __len__(self) -> int:
        return len(self.prev)

    def to(self, device: torch.device) -> Transitions:
        fields = ("latents", "prev", "next", "actions", "rewards", "terminated")
        return Transitions(*(getattr(self, f).to(device) for f in fields), self.chained().to(device),
                           *(None if t is None else t.to(device) for t in (self.task, self.task_next)))

    def cat(self, other: Transitions) -> Transitions:
        """These transitions, then `other`'s (its latents appended, its runs kept apart from these)."""
        if (self.task is None) != (other.task is None):
            raise InputError("transitions with and without the task state cannot be trained on together")
        n = len(self.latents)
        first = other.chained().clone()
        first[:1] = False  # other's first transition does not follow this one's last
        task = None if self.task is None else (torch.cat([self.task, other.task]),
                                               torch.cat([self.task_next, other.task_next]))
        return Transitions(torch.cat([self.latents, other.latents]), torch.cat([self.prev, other.prev + n]),
                           torch.cat([self.next, other.next + n]), torch.cat([self.actions, other.actions]),
                           torch.cat([self.rewards, other.rewards]), torch.cat([self.terminated, other.terminated]),
                           torch.cat([self.chained(), first]), *(task or (None, None)))

    def chained(self) -> torch.Tensor:
        return self.follows if self.follows is not None else torch.zeros(len(self), dtype=torch.bool)

    def runs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """first[i], last[i]: the first and last transition of the episode run holding transition i."""
        follows = self.chained().cpu()
        run = torch.cumsum(~follows, 0) - 1  # run index of each transition
        starts = torch.nonzero(~follows).flatten()
        ends = torch.cat([starts[1:], torch.tensor([len(self)])]) - 1
        return starts[run], ends[run]

    def take(self, idx: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """z_prev, z_next (B, C, h, w) float32, actions (B, A), rewards (B,), terminated (B,) of rows `idx`."""
        idx = idx.to(self.prev.device)
        return (self.latents[self.prev[idx]].float(), self.latents[self.next[idx]].float(), self.actions[idx],
                self.rewards[idx], self.terminated[idx])


# -- data ---------------------------------------------------------------------------------------------------------
def load_world_vae(ckpt: str | Path, device: torch.device) -> tuple[VideoVAE, dict[str, Any], Path]:
    """The VAE inside a world-model checkpoint (eval mode), the checkpoint's meta and its folder."""
    ck = C.resolve(ckpt)
    meta = C.load_meta(ck, kind="dit")
    vae = VideoVAE(VAEConfig(**meta["vae"]["config"]))
    vae.load_state_dict(C.load_tensors(ck, "vae"))
    if vae.cfg.temporal != 1:
        raise InputError(f"{ck} uses a temporal VAE (temporal={vae.cfg.temporal}); the reward model needs "
                         "per-frame latents (a world model trained with vae.temporal=1)")
    return vae.to(device).eval().requires_grad_(False), meta, ck


def check_stores(stores: StoreSet, meta: dict[str, Any], ckpt: Path) -> None:
    """The stores must be of the world model's game, at its resolution, and (latent stores) of its VAE."""
    first = stores.readers[0].url
    if stores.action_spec != meta.get("action_spec"):
        raise InputError(f"{first} has another action spec than {ckpt} was trained on; train the reward model on "
                         "stores of the world model's game")
    want = (int(meta["height"]), int(meta["width"]))
    for h, w in stores.resolutions():
        if (h, w) != want:
            raise InputError(f"{first} holds {h}x{w} frames but {ckpt} was trained at {want[0]}x{want[1]}; "
                             "use a store at the world model's resolution")
    for r in stores.readers if stores.latents else []:
        made_by = r.attrs["latents"]["vae"].get("digest", "")
        if made_by != meta["vae"]["digest"]:
            raise InputError(f"{r.url} holds latents of another VAE ({made_by[:12]}...) than {ckpt}'s "
                             f"({meta['vae']['digest'][:12]}...); use the frame store")


def episode_policies(stores: StoreSet) -> list[dict[str, list[str]]]:
    """Per store, per resolution bucket: the recording policy of each episode, as the store names it."""
    from store import open_store, read_texts

    out = []
    for reader in stores.readers:
        root = open_store(reader.url)
        out.append({b: read_texts(root[b], "episode_policy") for b in root.group_keys() if b.startswith("b_")})
    return out


def task_state_keys(stores: StoreSet) -> list[str]:
    """The task state's column names that every store of `stores` records (`data/task_state`), else []."""
    keys = {tuple(r.task_state_keys) for r in stores.readers}
    return list(keys.pop()) if len(keys) == 1 else []


def collect(stores: StoreSet, encode: Callable[[np.ndarray], torch.Tensor], action_scale: list[float],
            block: int = 256, desc: str = "encode", skip_policies: list[str] | tuple[str, ...] = ()) -> Transitions:
    """Every transition of `stores` (windows of 2 frames: never across an episode end), each frame encoded once,
    but those of episodes recorded by a policy in `skip_policies`; with the task's state at each transition's
    first frame where every store records it (`task_state_keys`).

    encode: uint8 frames (n, H, W, 3) or float16 latents (n, C, h, w) of a latent store -> float16 (n, C, h, w).

    Why skip a policy: a privileged scripted policy (navigate's solver reads the goal's position) chooses its actions
    by what the frames may not show, so in its episodes the action itself says where the reward is (the solver walks
    straight ahead only towards the goal). A reward model that reads actions learns that pressing forward pays,
    whatever the frames show, and a dream agent climbs that (docs/world_model.md, "Reward runs", fifth session).
    """
    names = episode_policies(stores) if skip_policies else []
    if names:
        known = {n for per in names for b in per.values() for n in b}
        unknown = sorted(set(skip_policies) - known)
        if unknown:
            raise InputError(f"skip_policies {unknown}: no episode of the training stores was recorded by "
                             f"{'it' if len(unknown) == 1 else 'them'}; they hold {sorted(known)}")
    rows: dict[tuple[int, str, int], int] = {}
    pending: list[np.ndarray] = []
    parts: list[torch.Tensor] = []
    prev, nxt, acts, rews, terms, follows, task, task_next = [], [], [], [], [], [], [], []
    with_task = bool(task_state_keys(stores))
    last: tuple | None = None

    def flush() -> None:
        if pending:
            parts.append(encode(np.stack(pending)).to(torch.float16).cpu())
            pending.clear()

    def row(key: tuple[int, str, int], pixels: np.ndarray) -> int:
        if key not in rows:
            rows[key] = len(rows)
            pending.append(pixels)
            if len(pending) >= block:
                flush()
        return rows[key]

    pixels = "latents" if stores.latents else "frames"
    for k, reader in enumerate(stores.readers):
        for i in tqdm(range(len(reader)), desc=desc, unit="transition", delay=1.0):
            if names:  # decided before reading the window's frames
                bucket, pos = reader.locate(i)
                b = reader.buckets[bucket]
                if names[k][b.name][int(b.episode[pos])] in skip_policies:
                    continue
            w = reader.read(i)  # frames [start, start + 1] of one episode; actions[0] leads from one to the other
            here = (k, w["bucket"], w["episode"], w["start"])
            follows.append(last is not None and here == (*last[:3], last[3] + 1))
            last = here
            prev.append(row((k, w["bucket"], w["start"]), w[pixels][0]))
            nxt.append(row((k, w["bucket"], w["start"] + 1), w[pixels][1]))
            acts.append(w["actions"][0])
            rews.append(w["rewards"][0])
            terms.append(w["terminated"][0])
            if with_task:
                task.append(w["task_state"][0])
                task_next.append(w["task_state"][1])
    flush()
    if not prev:
        left = f" once episodes by {list(skip_policies)} are left out" if skip_policies else ""
        raise StoreError(f"{stores.readers[0].url} holds no transitions (episodes of at least 2 frames){left}")
    scale = torch.tensor(action_scale, dtype=torch.float32)
    return Transitions(torch.cat(parts), torch.tensor(prev), torch.tensor(nxt),
                       torch.from_numpy(np.stack(acts).astype(np.float32)) / scale,
                       torch.from_numpy(np.asarray(rews, np.float32)), torch.from_numpy(np.asarray(terms, bool)),
                       torch.tensor(follows, dtype=torch.bool),
                       *(torch.from_numpy(np.stack(t).astype(np.float32)) if with_task else None
                         for t in (task, task_next)))


def dreamed(runs: list[dict[str, Any]], action_scale: list[float], task_keys: list[str] | None) -> Transitions:
    """Transitions of dreams along recorded actions (`worldsim.dream.replay.dream_runs`: latents (F, C, h, w),
    the recorded actions, rewards, terminated (F - 1,) and task_state (F, K)), one run per dream; with `task_keys`
    (the stores' task state) each dream must record the same."""
    if not runs:
        raise InputError("no dreams to train on")
    lat, prev, nxt, acts, rews, terms, follows, task, task_next = [], [], [], [], [], [], [], [], []
    n = 0
    for run in runs:
        f = len(run["latents"])
        lat.append(torch.from_numpy(np.asarray(run["latents"])).to(torch.float16))
        prev.append(torch.arange(n, n + f - 1))
        nxt.append(torch.arange(n + 1, n + f))
        follows.append(torch.arange(f - 1) > 0)
        acts.append(torch.from_numpy(np.asarray(run["actions"], np.float32)))
        rews.append(torch.from_numpy(np.asarray(run["rewards"], np.float32)))
        terms.append(torch.from_numpy(np.asarray(run["terminated"], bool)))
        if task_keys:
            if list(run.get("task_state_keys") or []) != list(task_keys):
                raise InputError(f"the dreams' stores record the task state {run.get('task_state_keys')}, the "
                                 f"training stores {list(task_keys)}")
            state = torch.from_numpy(np.asarray(run["task_state"], np.float32))
            task.append(state[:-1])
            task_next.append(state[1:])
        n += f
    scale = torch.tensor(action_scale, dtype=torch.float32)
    return Transitions(torch.cat(lat), torch.cat(prev), torch.cat(nxt), torch.cat(acts) / scale, torch.cat(rews),
                       torch.cat(terms), torch.cat(follows),
                       *((torch.cat(task), torch.cat(task_next)) if task_keys else (None, None)))


def draw_probabilities(rewards: torch.Tensor, terminated: torch.Tensor, reward_fraction: float,
                       term_fraction: float) -> np.ndarray:
    """Per-transition drawing probability: terminated and non-zero-reward transitions get at least
    `term_fraction` and `reward_fraction` of the mass (their natural share if larger); uniform within each group."""
    term = terminated.cpu().numpy()
    rew = (rewards.cpu().numpy() != 0) & ~term
    plain = ~term & ~rew
    groups = [(term, term_fraction), (rew, reward_fraction), (plain, 0.0)]
    n = len(term)
    mass = [max(g.mean(), f) if g.any() else 0.0 for g, f in groups[:2]]
    mass.append(max(0.0, 1.0 - sum(mass)) if plain.any() else 0.0)
    p = np.zeros(n)
    for (g, _), m in zip(groups, mass):
        if g.any():
            p[g] = m / g.sum()
    return p / p.sum()


# -- training and evaluation -------------------------------------------------------------------------------------
def unroll(model: RewardModel, data: Transitions, idx: torch.Tensor, given: torch.Tensor,
           pause: torch.Tensor | None = None, rewards: torch.Tensor | None = None,
           hidden: list[torch.Tensor] | None = None, parts: list[torch.Tensor] | None = None
           ) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `model` along sequences of transitions idx (B, L) as DreamEnv does: the state starts empty; after step t
    it carries the recorded reward (`rewards` (B, L) if given, else the data's) when t < given[b] (a reset's
    context), else the model's own snapped prediction (detached: a dream has no other). pause (B, L)
    (`insert_pauses`): those steps repeat their frame before, with the zero action for PAUSE_ZERO. Returns rewards
    in the net's units (`model.reward` converts them) and termination logits, (B, L) each; `hidden` (a list) gets
    each step's state without its last reward, `parts` a terminal_reward model's two heads (`RewardModel.run`)."""
    b, n = idx.shape
    z_prev, z_next, action, recorded, _ = data.take(idx.flatten())
    if rewards is not None:
        recorded = rewards.flatten()
    if pause is not None:
        p = pause.flatten().to(z_prev.device)
        z_next = torch.where((p != NO_PAUSE)[:, None, None, None], z_prev, z_next)
        action = torch.where((p == PAUSE_ZERO)[:, None], torch.zeros_like(action), action)
    features = model.features(z_prev, z_next, action).unflatten(0, (b, n))  # the convs: one batch
    # the task's state at each sequence's first frame (a pause repeats a frame: the first one is still its own)
    task = data.task[idx[:, 0].to(data.task.device)] if model.cfg.task_dim and data.task is not None else None
    units, logits, _ = model.run(features, recorded.view(b, n), given.to(idx.device), task, hidden,
                                 action.view(b, n, -1), parts)
    return units, logits


def draw_sequences(rng: np.random.Generator, p: np.ndarray, first: np.ndarray, last: np.ndarray, batch: int,
                   length: int) -> tuple[np.ndarray, np.ndarray]:
    """`batch` sequences of `length` transitions: each holds a transition drawn with probability p at a uniformly
    drawn place, starting no earlier than its episode's first transition. Returns idx (B, L) (clamped to the
    episode's last transition) and valid (B, L) (False past the episode's end)."""
    j = rng.choice(len(p), size=batch, p=p)
    start = np.maximum(j - rng.integers(0, length, size=batch), first[j])
    idx = start[:, None] + np.arange(length)[None]
    valid = idx <= last[j][:, None]
    return np.minimum(idx, last[j][:, None]), valid


def turn_column(model: RewardConfig, exact: bool, keys: list[str], scale: list[float]) -> RewardConfig:
    """`model` with its turn taken from the action (`turn_column`, `turn_scale`): with odometry, `exact` and no
    column chosen, the stores' `camera_yaw` when their actions have one (flat keys `keys`, the world model's
    action_scale `scale`)."""
    col = model.turn_column
    if col < 0 and model.odometry and exact and "camera_yaw" in keys:
        col = keys.index("camera_yaw")
    if col < 0:
        return model
    return replace(model, turn_column=col, turn_scale=float(scale[col]))


def check_config(cfg: TrainRewardConfig) -> None:
    """The drawing shares and the loss of a training config; InputError (one line) naming what is wrong."""
    for name in ("reward_fraction", "term_fraction"):
        if not 0.0 <= getattr(cfg, name) < 1.0:
            raise InputError(f"{name} must be in [0, 1), got {getattr(cfg, name)}")
    if cfg.reward_fraction + cfg.term_fraction >= 1.0:
        raise InputError("reward_fraction + term_fraction must stay below 1 (the rest are ordinary transitions)")
    if not 0.0 <= cfg.still_fraction <= 1.0:
        raise InputError(f"still_fraction must be in [0, 1], got {cfg.still_fraction}")
    if not all(isinstance(n, str) and n for n in cfg.skip_policies):
        raise InputError(f"skip_policies must be a list of policy names (e.g. [NavigateSolver]), got "
                         f"{list(cfg.skip_policies)}")
    if cfg.dreams < 0 or cfg.dream_horizon < 1:
        raise InputError(f"dreams must be >= 0 and dream_horizon >= 1, got {cfg.dreams} and {cfg.dream_horizon}")
    for name in ("track_weight", "move_weight"):
        if not getattr(cfg, name) >= 0:
            raise InputError(f"{name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.model.state_reward and not cfg.model.odometry:
        raise InputError("model.state_reward=true reads the reward off the odometry's tracked point: it needs "
                         "model.odometry=true")
    for name in ("track", "odometry"):
        if getattr(cfg.model, name) and not cfg.task_state:
            raise InputError(f"model.{name}=true follows the task's state from the first frame's: it needs "
                             "task_state=true")
    if cfg.reward_loss not in REWARD_LOSSES:
        raise InputError(f"reward_loss must be one of {', '.join(REWARD_LOSSES)}, got {cfg.reward_loss!r}")


# pause steps: none, the frame before repeated under the step's own action, under the zero action (`insert_pauses`)
NO_PAUSE, PAUSE_OWN, PAUSE_ZERO = 0, 1, 2


def paused_task(model: RewardModel, data: Transitions, idx: torch.Tensor, pause: torch.Tensor) -> torch.Tensor:
    """The tracking target (B, L, K) of pause steps (`insert_pauses`): the task's state before the step, which a
    model that takes its turn from the action (`turn_column`) sees turned by the pause's action (a camera turn
    happens whatever the frame shows; the zero action turns nothing), the move left out."""
    before = data.task[idx]
    if model.cfg.turn_column < 0:
        return before
    turn = pause_turns(model, data, idx, pause)
    step = torch.stack([turn, torch.zeros_like(turn), torch.zeros_like(turn)], dim=-1)
    return model.move(before.flatten(0, 1), step.flatten(0, 1).to(before)).view_as(before)


def pause_turns(model: RewardModel, data: Transitions, idx: torch.Tensor, pause: torch.Tensor | None
                ) -> torch.Tensor:
    """Each step's turn (B, L) in radians, from its action (`turn_column`); a pause step under the zero action
    (PAUSE_ZERO, `insert_pauses`) turns nothing."""
    turn = model.turn(data.actions[idx])
    return turn if pause is None else torch.where(pause == PAUSE_ZERO, torch.zeros_like(turn), turn)


def true_moves(model: RewardModel, data: Transitions, idx: torch.Tensor, pause: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Each step's turn (B, L) (radians, from the action: `turn_column`) and the move (B, L, 2) the recorded task
    states imply under it (`RewardModel.step_of`): the odometry's target. A pause step (`insert_pauses`) turns by
    its own action or not at all (PAUSE_ZERO) and moves nothing."""
    moved = model.step_of(data.task[idx], data.task_next[idx], model.turn(data.actions[idx]))
    turn = pause_turns(model, data, idx, pause)
    if pause is None:
        return turn, moved
    return turn, torch.where((pause != NO_PAUSE)[..., None], torch.zeros_like(moved), moved)


def model_moves(model: RewardModel, data: Transitions, idx: torch.Tensor, path: torch.Tensor, turn: torch.Tensor
                ) -> torch.Tensor:
    """The odometry's own move (B, L, 2) at each step of sequences idx (B, L), from the tracked points after each
    step `path` (B, L, 2) and the point each sequence started from (the recorded one at its first frame)."""
    before = torch.cat([data.task[idx[:, :1]].to(path), path[:, :-1]], dim=1)
    return model.step_of(before, path, turn)


def mean_step(model: RewardModel, data: Transitions) -> float:
    """The mean length (blocks) of the data's recorded steps (`true_moves`), the move loss's unit; 1 for none."""
    _, moved = true_moves(model, data, torch.arange(len(data), device=data.actions.device), None)
    length = moved.norm(dim=-1)
    return float(length.mean()) if len(length) and float(length.mean()) > 0 else 1.0


def insert_pauses(rng: np.random.Generator, idx: np.ndarray, valid: np.ndarray, fraction: float
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """In a `fraction` of the sequences idx (B, L), a pause of 1..L/2 steps at a uniformly drawn place: the frame
    before that place repeated (z -> z), each pause step under the zero action or the step's own (half each), the
    rest of the sequence shifted later and cut at L. Returns idx, valid and pause (B, L) (NO_PAUSE / PAUSE_OWN /
    PAUSE_ZERO); a pause step's idx is the transition it stands before (its z_prev is the repeated frame).

    Why: in recorded data the agent rarely stands still where it matters (navigate: hardly ever with the goal in
    view), so a reward model can learn "goal in view, pay" instead of "goal got closer, pay", and a dream agent that
    stops in front of the goal is paid for every step it waits (docs/world_model.md, "Reward runs")."""
    b, n = idx.shape
    pause = np.zeros((b, n), np.int8)
    hit = rng.random(b) < fraction
    at = rng.integers(0, n, size=b)
    length = rng.integers(1, max(1, n // 2) + 1, size=b)
    zero = rng.random((b, n)) < 0.5
    j = np.arange(n)[None]
    inside = hit[:, None] & (j >= at[:, None]) & (j < (at + length)[:, None])
    after = hit[:, None] & (j >= (at + length)[:, None])
    src = np.where(inside, at[:, None], np.where(after, j - length[:, None], j))
    idx, valid = np.take_along_axis(idx, src, 1), np.take_along_axis(valid, src, 1)
    pause[inside] = np.where(zero[inside], PAUSE_ZERO, PAUSE_OWN)
    return idx, valid, pause


def still_reward(data: Transitions, share: float = 0.01, least: int = 32, agree: float = 0.75,
                 chunk: int = 4096) -> float | None:
    """What standing still pays in `data`: the median reward of the `share` (at least `least`) of transitions whose
    latent changed least (mean |z_next - z_prev|), or None where fewer than `agree` of them paid exactly that (the
    data do not say: a reward that standing still does not decide, e.g. one whose sign depends on what is unseen).
    Navigate: 0, paid by 83% of its stillest 1%."""
    change = torch.cat([(data.latents[data.next[i : i + chunk]].float() - data.latents[data.prev[i : i + chunk]]
                         .float()).abs().mean(dim=(1, 2, 3)) for i in range(0, len(data), chunk)])
    stillest = torch.argsort(change.cpu())[: min(len(data), max(least, int(share * len(data))))]
    rewards = data.rewards.cpu()[stillest]
    median = rewards.median()
    return float(median) if float((rewards == median).float().mean()) >= agree else None


def fit(model: RewardModel, data: Transitions, cfg: TrainRewardConfig, device: torch.device,
        metrics: Metrics | None = None, out: Path | None = None) -> float:
    """Train `model` in place for cfg.steps steps; batch s is a pure function of (seed, s). Returns the last loss."""
    check_config(cfg)
    data = data.to(device)
    nonzero = data.rewards[data.rewards != 0].abs()
    typical = float(nonzero.median()) if len(nonzero) else 1.0
    model.reward_scale.fill_(typical if model.cfg.symlog else float(nonzero.max()) if len(nonzero) else 1.0)
    model.zero_below.fill_(0.5 * float(nonzero.min()) if len(nonzero) else 0.5)
    if model.cfg.task_dim:
        model.task_mean.copy_(data.task.mean(0))
        model.task_std.copy_(data.task.std(0).clamp_min(1e-6))
    p = draw_probabilities(data.rewards, data.terminated, cfg.reward_fraction, cfg.term_fraction)
    first, last = (x.numpy() for x in data.runs())
    length = cfg.seq_len if model.cfg.state else 1  # a stateless model gains nothing from sequences
    # the share of terminated transitions the batches show, measured on 4096 sequences drawn aside
    idx, valid = draw_sequences(np.random.default_rng(cfg.seed), p, first, last, 4096, length)
    real, drawn = float(data.terminated.float().mean()), float(data.terminated.cpu().numpy()[idx][valid].mean())
    if 0 < real < 1 and 0 < drawn < 1:  # batches see terminations `drawn` of the time, the data `real`
        model.term_logit_offset.fill_(math.log(real / (1 - real)) - math.log(drawn / (1 - drawn))
                                      - math.log(cfg.pos_weight))
    still = still_reward(data) if cfg.still_fraction > 0 else None
    if cfg.still_fraction > 0 and still is None:
        tqdm.write("train-reward: the stillest transitions disagree on what standing still pays; no pauses")
    # the move loss: with odometry, a turn taken from the action and recorded task states (`true_moves`)
    move_unit = mean_step(model, data) if (cfg.move_weight > 0 and model.odo is not None
                                           and model.cfg.turn_column >= 0 and data.task is not None) else None
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    pos_weight = torch.tensor(cfg.pos_weight, device=device)
    model.train()
    loop = Loop(opt, model.parameters(), Schedule(cfg.steps, cfg.lr, cfg.warmup, cfg.grad_clip), out,
                "train-reward")
    loss_value, t0 = float("nan"), time.perf_counter()
    for step in loop:
        rng = batch_rng(cfg.seed, step)
        idx, valid = draw_sequences(rng, p, first, last, cfg.batch_size, length)
        given = torch.from_numpy(rng.integers(0, cfg.max_given + 1, size=cfg.batch_size))
        pause = None
        if still is not None:  # drawn only then: batches without pauses are those of before
            idx, valid, pause_np = insert_pauses(rng, idx, valid, cfg.still_fraction)
            pause = torch.from_numpy(pause_np).to(device)
        idx, valid = torch.from_numpy(idx).to(device), torch.from_numpy(valid).to(device)
        reward, term = data.rewards[idx], data.terminated[idx].float()
        if pause is not None:  # a pause pays what standing still pays and does not end the episode
            reward = torch.where(pause != NO_PAUSE, torch.full_like(reward, still), reward)
            term = torch.where(pause != NO_PAUSE, torch.zeros_like(term), term)
        hidden: list[torch.Tensor] | None = [] if model.tracks else None
        parts: list[torch.Tensor] = []
        pred, logit = unroll(model, data, idx, given, pause, reward, hidden, parts)
        w = valid.float() / valid.sum()
        if parts:  # terminal_reward: each head on its own transitions (the recorded termination says which)
            pred = model.pay(*parts, term > 0)
        reward_loss = (REWARD_LOSSES[cfg.reward_loss](pred, model.unit(reward), reduction="none") * w).sum()
        raw = logit - model.term_logit_offset  # the logit under the batches' own termination rate
        term_loss = (F.binary_cross_entropy_with_logits(raw, term, pos_weight=pos_weight, reduction="none")
                     * w).sum()
        loss = reward_loss + cfg.term_weight * term_loss
        if hidden is not None:  # where the goal is after each step (a pause step: where it was before it)
            after = data.task_next[idx] if pause is None else torch.where(
                (pause != NO_PAUSE)[..., None], paused_task(model, data, idx, pause), data.task_next[idx])
            path = model.tracked(torch.stack(hidden, 1))  # (B, L, K) the task's state after each step
            got = (path - after) / model.task_std
            lose = F.smooth_l1_loss(got, torch.zeros_like(got), reduction="none") if model.odo is not None \
                else got**2  # a moved point's error grows along the sequence: Huber keeps far-off ones in check
            track_loss = (lose.mean(-1) * w).sum()
            loss = loss + cfg.track_weight * track_loss
            if move_unit is not None:  # each step's move against the one the recorded states imply
                turn, truth = true_moves(model, data, idx, pause)
                err = (model_moves(model, data, idx, path, turn) - truth) / move_unit
                move_loss = (F.smooth_l1_loss(err, torch.zeros_like(err), reduction="none").mean(-1) * w).sum()
                loss = loss + cfg.move_weight * move_loss
        loop.update(loss)
        if loop.due(cfg.log_every):
            loss_value = loss.item()
            rate = loop.done * int(valid.numel()) / (time.perf_counter() - t0)
            if metrics is not None:
                metrics.log(loop.done, {"loss": loss_value, "reward_loss": reward_loss.item(),
                                        "term_loss": term_loss.item(), "grad_norm": loop.grad_norm, "lr": loop.lr,
                                        **({"track_loss": track_loss.item()} if hidden is not None else {}),
                                        **({"move_loss": move_loss.item()} if move_unit is not None else {}),
                                        "transitions_per_s": rate})
            loop.show(f"loss {loss_value:.4f} reward {reward_loss.item():.4f} term {term_loss.item():.4f}")
    model.eval()
    calibrate_snap(model, data, cfg, device, typical)
    return loss_value


# fractions of the typical non-zero |reward| tried as the snap threshold (`calibrate_snap`)
SNAP_FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5)


@torch.no_grad()
def calibrate_snap(model: RewardModel, data: Transitions, cfg: TrainRewardConfig, device: torch.device,
                   typical: float, sequences: int = 512) -> float:
    """Set `model.zero_below` to the threshold that minimises the reward MAE on `sequences` training sequences
    drawn uniformly (the data's own mix, not the oversampled batches), run as in training: half the smallest
    non-zero reward (the floor `fit` set) or a fraction of the typical non-zero |reward| (SNAP_FRACTIONS), the
    smallest on a tie. A dense shaping reward has non-zero values down to float noise, so the floor snaps nothing,
    and a prediction that is never exactly 0 pays a little for every step an agent stands still (navigate:
    docs/world_model.md, "Reward runs (2026-12-03)"); where snapping small predictions costs MAE, the floor stays.
    Returns the threshold."""
    floor = float(model.zero_below)
    first, last = (x.numpy() for x in data.runs())
    rng = np.random.default_rng([cfg.seed, 1])
    length = cfg.seq_len if model.cfg.state else 1
    idx, valid = draw_sequences(rng, np.full(len(data), 1.0 / len(data)), first, last, sequences, length)
    given = torch.from_numpy(rng.integers(0, cfg.max_given + 1, size=sequences))
    idx, valid = torch.from_numpy(idx).to(device), torch.from_numpy(valid).to(device)
    units = torch.cat([unroll(model, data, idx[i : i + 64], given[i : i + 64])[0] for i in range(0, sequences, 64)])
    raw, recorded = model.reward(units)[valid], data.rewards[idx][valid]
    best, best_mae = floor, float("inf")
    for t in sorted({floor, *(f * typical for f in SNAP_FRACTIONS)}):
        mae = float((torch.where(raw.abs() < t, torch.zeros_like(raw), raw) - recorded).abs().mean())
        if mae < best_mae - 1e-12:
            best, best_mae = t, mae
    model.zero_below.fill_(max(best, floor))
    return float(model.zero_below)


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


@torch.no_grad()
def run_episodes(model: RewardModel, data: Transitions, device: torch.device, given: int = 4,
                 hidden: list[torch.Tensor] | None = None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every episode of `data` run from its start as DreamEnv runs it (`unroll`: the first `given` transitions carry
    their recorded rewards, the rest the model's own). Returns, one row per episode in the order of `data`, the
    transitions idx (E, L) (padded with the episode's last), which are scored (E, L) bool (inside the episode and
    not given), the rewards in the net's units and the termination logits (E, L) each, on the CPU; `hidden` (a
    list) gets each step's state without its last reward (`RewardModel.run`)."""
    if model.cfg.task_dim and data.task is None:
        raise InputError("this reward model starts from the task state (trained with task_state=true), but the "
                         "held-out stores do not record it (data/task_state); score it on stores that do")
    data = data.to(device)
    first, last = data.runs()
    starts = torch.unique(first)
    lengths = last[starts] - starts + 1
    idx = torch.minimum(starts[:, None] + torch.arange(int(lengths.max()))[None], last[starts][:, None])
    scored = (torch.arange(idx.shape[1])[None] < lengths[:, None]) & (torch.arange(idx.shape[1])[None] >= given)
    reward, logit = unroll(model, data, idx.to(device), torch.full((len(starts),), given), hidden=hidden)
    return idx, scored, reward.cpu(), logit.cpu()


def evaluate(model: RewardModel, data: Transitions, device: torch.device, given: int = 4) -> dict[str, Any]:
    """Held-out scores of the model run along each episode as DreamEnv runs it (`run_episodes`; the `given` first
    transitions are not scored): `scores`, with `track_scores` for a model with a tracking head."""
    hidden: list[torch.Tensor] | None = [] if model.tracks else None
    ran = run_episodes(model, data, device, given, hidden)
    out = scores(model, data, given, *ran)
    if hidden is not None:
        out.update(track_scores(model, data, ran[0], ran[1], hidden))
    return out


@torch.no_grad()
def track_scores(model: RewardModel, data: Transitions, idx: torch.Tensor, scored: torch.Tensor,
                 hidden: list[torch.Tensor]) -> dict[str, Any]:
    """How well a tracking head (`RewardModel.tracked`) keeps the task's state along held-out episodes: the mean
    absolute error of each column after each scored transition (in the state's units: navigate, blocks), and that of
    assuming it stays what it was at the episode's first frame (what the model was given). With odometry and the
    turn from the action: each step's move against the recorded one (`true_moves`), its mean absolute error
    (forward, right; blocks) and the mean forward step of both (the model's, the data's: a move that regresses to
    the mean shows as the first below the second)."""
    path = model.tracked(torch.stack(hidden, 1)).cpu()  # (E, L, K)
    data = data.to(torch.device("cpu"))
    tracked = path[scored]  # (n, K)
    truth, start = data.task_next[idx][scored], data.task[idx[:, :1].expand_as(idx)][scored]
    out = {"task_mae": (tracked - truth).abs().mean(0).tolist(),
           "task_mae_start": (start - truth).abs().mean(0).tolist()}
    if model.odo is not None and model.cfg.turn_column >= 0:
        turn, moved = true_moves(model, data, idx, None)
        step = model_moves(model, data, idx, path, turn)[scored]
        out.update(move_mae=(step - moved[scored]).abs().mean(0).tolist(),
                   move_forward=[float(step[:, 0].mean()), float(moved[scored][:, 0].mean())])
    return out


@torch.no_grad()
def scores(model: RewardModel, data: Transitions, given: int, idx: torch.Tensor, scored: torch.Tensor,
           reward: torch.Tensor, logit: torch.Tensor) -> dict[str, Any]:
    """Scores of one `run_episodes` result: reward MAE (and of always predicting 0), MAE on the non-zero rewards,
    precision / recall of "reward != 0", termination precision / recall / F1. A ratio whose denominator is 0 (e.g.
    recall without any terminated transition) is None."""
    device = model.reward_scale.device
    data = data.to(torch.device("cpu"))
    r_hat = model.snap(model.reward(reward.to(device))).cpu()[scored]
    t_hat = (torch.sigmoid(logit) > 0.5)[scored]
    r, t = data.rewards[idx][scored], data.terminated[idx][scored]
    err = (r_hat - r).abs()
    nz, nz_hat = r != 0, r_hat != 0
    tp_r, tp_t = int((nz & nz_hat).sum()), int((t & t_hat).sum())
    precision, recall = _ratio(tp_t, int(t_hat.sum())), _ratio(tp_t, int(t.sum()))
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "transitions": int(scored.sum()), "given": given, "reward_nonzero": int(nz.sum()),
        "terminated": int(t.sum()),
        "reward_mae": float(err.mean()) if len(r) else None,
        "reward_mae_zero_baseline": float(r.abs().mean()) if len(r) else None,
        "reward_mae_nonzero": float(err[nz].mean()) if nz.any() else None,
        "reward_nonzero_predicted": int(nz_hat.sum()), "term_predicted": int(t_hat.sum()),
        "reward_nonzero_precision": _ratio(tp_r, int(nz_hat.sum())),
        "reward_nonzero_recall": _ratio(tp_r, int(nz.sum())),
        "term_precision": precision, "term_recall": recall, "term_f1": f1,
    }


def _data(cfg: TrainRewardConfig) -> tuple[StoreSet, StoreSet]:
    verify_stores([*cfg.store, cfg.val_store, *(cfg.dream_store if cfg.dreams > 0 else [])])
    if cfg.dreams > 0 and cfg.dream_ckpt:  # refused before minutes of encoding, not after
        C.resolve(cfg.dream_ckpt)
    if cfg.val_store:
        return StoreSet(cfg.store, 2, "all"), StoreSet([cfg.val_store], 2, "all")
    return StoreSet(cfg.store, 2, "train", cfg.val_episodes), StoreSet(cfg.store, 2, "val", cfg.val_episodes)


def train_reward(cfg: TrainRewardConfig, dreamer: Callable[..., list[dict[str, Any]]] | None = None
                 ) -> dict[str, Any]:
    """Train and score a reward model (module docstring). With cfg.dreams > 0, `dreamer` makes the dreams
    (`worldsim.dream.replay.dream_runs`; the CLI passes it: this layer does not dream)."""
    device = pick_device(cfg.device)
    vae, meta, ck = load_world_vae(cfg.ckpt, device)
    out = Path(cfg.out) if cfg.out else default_out(ck)
    C.resume_point(out, "reward")  # refuses an out that holds another kind of run
    stores, val = _data(cfg)
    for s in (stores, val):
        check_stores(s, meta, ck)
    scale = [float(v) for v in meta["spec"]["action_scale"]]

    @torch.no_grad()
    def encode(pixels: np.ndarray) -> torch.Tensor:
        if pixels.dtype != np.uint8:  # a latent store: already the VAE's normalised latents
            return torch.from_numpy(pixels)
        with autocast(device, cfg.precision):
            return vae.encode(to_model(torch.from_numpy(pixels))[:, None].to(device))[:, 0].float()  # (n, C, h, w)

    keys = task_state_keys(stores)
    if cfg.task_state:
        for name, s in (("store", stores), ("val_store" if cfg.val_store else "store", val)):
            if not keys or task_state_keys(s) != keys:
                have = sorted({tuple(r.task_state_keys) for r in s.readers})
                raise InputError(f"task_state=true needs {name} stores that all record the same task state "
                                 f"(data/task_state; regenerate them with this version: worldsim generate), they "
                                 f"record {have}")
    train_data = collect(stores, encode, scale, cfg.encode_batch, "encode train", cfg.skip_policies)
    if cfg.dreams > 0:
        if dreamer is None:
            raise InputError("dreams > 0 needs a dreamer (worldsim.dream.replay.dream_runs); the CLI passes it")
        runs = dreamer(cfg.dream_ckpt or cfg.ckpt, list(cfg.dream_store or cfg.store), cfg.dreams,
                       cfg.dream_horizon, seed=cfg.seed, vae_digest=meta.get("vae", {}).get("digest"),
                       skip_policies=list(cfg.skip_policies))
        train_data = train_data.cat(dreamed(runs, scale, keys if train_data.task is not None else None))
    val_data = collect(val, encode, scale, cfg.encode_batch, "encode held-out")
    torch.manual_seed(cfg.seed)
    mcfg = replace(cfg.model, latent_channels=vae.cfg.latent_channels, action_dim=len(scale),
                   task_dim=len(keys) if cfg.task_state else 0)
    mcfg = turn_column(mcfg, cfg.exact_turn, list(stores.action_spec.get("flat_keys") or []), scale)
    model = RewardModel(mcfg).to(device)
    metrics = Metrics(out)
    loss = fit(model, train_data, cfg, device, metrics, out)
    held = evaluate(model, val_data, device, cfg.val_given)
    metrics.log(cfg.steps, {f"val_{k}": v for k, v in held.items() if v is not None})
    metrics.close()
    train_counts = {"transitions": len(train_data), "reward_nonzero": int((train_data.rewards != 0).sum()),
                    "terminated": int(train_data.terminated.sum())}
    info = {"train": asdict(cfg), "metrics": held, "loss": loss, "task_state_keys": keys if cfg.task_state else [],
            "train_counts": train_counts, "action_scale": scale, "action_spec": meta.get("action_spec"),
            "height": meta["height"], "width": meta["width"],
            "dit": {"path": str(ck), "digest": C.digest(ck), "step": meta.get("step")},
            "vae": {"digest": meta["vae"]["digest"], "config": meta["vae"]["config"]},
            "stores": [i.as_dict() for i in stores.infos], "val_stores": [i.as_dict() for i in val.infos]}
    saved = save_reward(out, model, cfg.steps, info)
    return {"metrics": held, "checkpoint": str(saved), "out": str(out)}
