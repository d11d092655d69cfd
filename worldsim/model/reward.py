"""Reward and termination model: what DreamEnv reports for a step the world model dreamed.

A small conv net reads the VAE latents of the frame before and the frame after a transition, plus the action taken
between them, and predicts the transition's reward and a termination logit (stored alignment: `actions[t]` is taken
after `frames[t]`; `rewards[t]`, `terminated[t]` describe frames[t] -> frames[t + 1]).

A GRU state carries what one transition cannot show across an episode (`RewardConfig.state`, 0 = each transition
alone): a shaping reward such as navigate's "+0.05 per block closer to the goal" depends on where the goal is, often
off-screen, but it is the same bearing step after step, so the rewards seen so far and the turns since say most of it.
The state holds the GRU's hidden vector and the last reward; DreamEnv warms it on the context frames of a reset (their
recorded rewards when the context comes from a store) and then feeds each dreamed step its own predicted reward:

    model = load_reward("runs/dit/reward")                    # a run directory or one checkpoint
    state = model.warm(z_context, actions_between, rewards_between)          # (B, model.width)
    reward, terminated, state = model.predict(z_prev, z_next, action / scale, state)   # (B,) float, (B,) bool

Latents are the world model's own (its checkpoint's VAE, `vae.encode`: normalised), so a reward model belongs to the
latent space it was trained on: its checkpoint records the VAE digest, and `find_reward` refuses a mismatch.
Trained by `worldsim train-reward` (worldsim/train/train_reward.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worldsim.errors import InputError
from worldsim.model import checkpoint as C


@dataclass
class RewardConfig:
    latent_channels: int = 8
    action_dim: int = 0
    width: int = 64  # conv channels
    depth: int = 3  # conv layers; all but the first halve the latent grid
    hidden: int = 128  # MLP width (action embedding and head)
    state: int = 64  # GRU state carried along an episode (0: each transition alone, as before 2026-12-02)
    symlog: bool = True  # the head predicts symlog(reward / reward_scale) (False: reward / reward_scale)
    grid: int = 0  # > 0: also where things are: the conv map average-pooled to grid x grid, flattened, embedded
    actions: bool = True  # False: the action is not an input, the reward is read off the latents alone (a dream
                          # is then paid for what it shows changing, never for the button pressed)
    task_dim: int = 0  # > 0: the GRU state starts from the task's state (`data/task_state`, K = task_dim columns)
                       # at the sequence's first frame: what the engine knew when the dream began (navigate: where
                       # the goal is), which no frame may show
    track: bool = False  # with task_dim: a linear head reads the task's state after each transition off the GRU
                         # state (`tracked`), trained on the recorded one (an auxiliary target: the state keeps
                         # where the goal is through the turns and steps, not only what the reward needs now)
    odometry: bool = False  # with task_dim 2 (a point in the agent's horizontal frame: navigate's goal_forward,
                            # goal_right): each transition's features give the step's turn and move, the point is
                            # moved by them (exact geometry: rotate(point - move)) and carried in the state, and the
                            # head reads it before and after (`tracked`: it), trained on the recorded task state
    turn_column: int = -1  # with odometry: the flat action column that turns the camera by its value in degrees
                           # (right for positive; MineRL's camera_yaw): each step's turn is that value, exactly,
                           # and only the move is learned; -1: the turn is learned too (a game without such a
                           # column; reward models from before 2026-12-05). `worldsim train-reward` sets it from
                           # the stores' `camera_yaw` column
    turn_scale: float = 1.0  # the world model's action_scale of that column (the model reads actions / scale)
    state_reward: bool = False  # with odometry: the reward is read off the tracked point alone (before and after
                                # the step, their distances and its change), not off the frames' features: a reward
                                # that is a function of the task's state, as navigate's (+0.05 a block closer, +1 on
                                # arrival), is then paid wherever the odometry follows the point, also where the
                                # training data's frames never showed the goal (random walks). Termination still
                                # reads everything
    terminal_reward: bool = False  # the reward of a transition that ends the episode has its own head, reading
                                   # everything (the frames' features, the GRU state, the point); the reward head
                                   # (or the state head) learns only transitions that go on, and a step pays the
                                   # terminal head's reward where the model terminates it. Why: a state head pays
                                   # navigate's +1 on arrival about half, read off a tracked point 1.5-2 blocks off
                                   # when a walker arrives, while the termination reads arrival off the frames


def _conv(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(8, cout), cout), nn.SiLU())


class RewardModel(nn.Module):
    """(z_prev, z_next, action, state) -> (reward, termination logit, GRU state) of one transition.

    Convs over concat(z_prev, z_next, z_next - z_prev) (the difference makes "what changed" a first-layer
    feature), global mean and max pooling (max keeps small, local events such as a collected item) and an embedding
    of the scaled action make a transition's features; a GRU cell reads them with the reward before them (the
    state's last entry); an MLP head reads the features and the GRU's new hidden vector. The termination logit is
    corrected for the oversampling of terminated transitions in training, so sigmoid(logit) estimates the real
    probability.
    """

    def __init__(self, cfg: RewardConfig) -> None:
        super().__init__()
        if (cfg.latent_channels < 1 or cfg.action_dim < 0 or cfg.width < 1 or cfg.depth < 1 or cfg.hidden < 1
                or cfg.state < 0 or cfg.grid < 0 or cfg.task_dim < 0 or (cfg.task_dim and not cfg.state)
                or (cfg.track and not cfg.task_dim) or (cfg.odometry and (cfg.task_dim != 2 or cfg.track))
                or not -1 <= cfg.turn_column < max(cfg.action_dim, 0) or (cfg.turn_column >= 0 and not cfg.odometry)
                or not cfg.turn_scale > 0 or (cfg.state_reward and not cfg.odometry)):
            raise InputError(f"bad reward model config {asdict(cfg)}")
        self.cfg = cfg
        self.meta: dict[str, Any] = {}  # the checkpoint's meta.json once loaded (load_reward)
        convs = [_conv(3 * cfg.latent_channels, cfg.width, 1)]
        convs += [_conv(cfg.width, cfg.width, 2) for _ in range(cfg.depth - 1)]
        self.convs = nn.Sequential(*convs)
        self.action = nn.Sequential(nn.Linear(max(cfg.action_dim, 1), cfg.hidden), nn.SiLU())
        # mean and max pooling say what the transition shows, not where: the grid embedding keeps where (a goal
        # left of the view's centre is ahead after a left turn)
        self.grid = (nn.Sequential(nn.AdaptiveAvgPool2d(cfg.grid), nn.Flatten(),
                                   nn.Linear(cfg.width * cfg.grid * cfg.grid, cfg.hidden), nn.SiLU())
                     if cfg.grid else None)
        features = 2 * cfg.width + cfg.hidden + (cfg.hidden if cfg.grid else 0)
        # input: this transition's features and the last reward (/ scale); the head reads the features and the state
        self.cell = nn.GRUCell(features + 1, cfg.state) if cfg.state else None
        # odometry: features -> (turn in radians, move forward, move right in blocks); zeros at init (keep the point)
        self.odo = nn.Sequential(nn.Linear(features, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, 3)) \
            if cfg.odometry else None
        if self.odo is not None:
            nn.init.zeros_(self.odo[-1].weight)
            nn.init.zeros_(self.odo[-1].bias)
        # the state: GRU hidden vector, the tracked point (odometry), the last reward
        self.width = cfg.state + (2 if cfg.odometry else 0) + 1
        # the task's state (standardised by the training data's mean and std) -> the GRU's first hidden vector
        self.task = nn.Linear(cfg.task_dim, cfg.state) if cfg.task_dim else None
        if cfg.task_dim:  # only then: checkpoints of models without a task input load as they were saved
            self.register_buffer("task_mean", torch.zeros(cfg.task_dim))
            self.register_buffer("task_std", torch.ones(cfg.task_dim))
        # the GRU state -> the task's state after the transition, standardised (`tracked` undoes that)
        self.track = nn.Linear(cfg.state, cfg.task_dim) if cfg.track else None
        # odometry: the head also reads the point before and after, standardised, and its distance before, after
        # and the change
        self.head = nn.Sequential(nn.Linear(features + cfg.state + (7 if cfg.odometry else 0), cfg.hidden), nn.SiLU(),
                                  nn.Linear(cfg.hidden, cfg.hidden), nn.SiLU(),
                                  nn.Linear(cfg.hidden, 3 if cfg.terminal_reward else 2))
        # the unit of rewards inside the net (`unit`): the median non-zero training reward, so that dense shaping
        # rewards of 0.01 are ~1 and a rare +1 is ~4.6 (symlog), not 0.01 and 1 (their loss would vanish)
        self.register_buffer("reward_scale", torch.tensor(1.0))
        self.register_buffer("zero_below", torch.tensor(0.0))  # |reward| below this predicts exactly 0
        # log-odds of the data's termination rate minus those of the oversampled training batches (and of
        # pos_weight): added to the logit so that it estimates the real rate (prior correction, King & Zeng 2001)
        self.register_buffer("term_logit_offset", torch.tensor(0.0))
        # reward 0 and "not terminated" at init (rare events should start unlikely)
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        # state_reward: the reward of the point's geometry alone (the 7 inputs the head reads of it)
        self.state_head = nn.Sequential(nn.Linear(7, cfg.hidden), nn.SiLU(), nn.Linear(cfg.hidden, cfg.hidden),
                                        nn.SiLU(), nn.Linear(cfg.hidden, 1)) if cfg.state_reward else None
        if self.state_head is not None:
            nn.init.zeros_(self.state_head[-1].weight)
            nn.init.zeros_(self.state_head[-1].bias)
        with torch.no_grad():
            self.head[-1].bias[1] = -2.0

    def initial(self, batch: int, task: torch.Tensor | None = None) -> torch.Tensor:
        """The state before any transition, (batch, width) (GRU hidden vector, the tracked point with odometry, last
        reward): zeros, or with `task` (batch, task_dim), the task's state at the first frame, the hidden vector
        made from it and (odometry) the point itself (a model with task_dim > 0 given no task state starts from
        zeros: it then knows only what the frames show)."""
        state = self.reward_scale.new_zeros(batch, self.width)
        if task is not None and self.task is not None:
            if task.shape != (batch, self.cfg.task_dim):
                raise InputError(f"task state must be ({batch}, {self.cfg.task_dim}), got {tuple(task.shape)}")
            task = task.to(state.device).float()
            h = torch.tanh(self.task((task - self.task_mean) / self.task_std))
            state = torch.cat([h, *([task] if self.odo is not None else []), state[:, -1:]], dim=1)
        return state

    def tracked(self, h: torch.Tensor) -> torch.Tensor:
        """The task's state (..., task_dim) in its own units (navigate: blocks) that states without their last reward
        h (..., width - 1) hold: the tracked point (`odometry`) or the tracking head's reading (`track`)."""
        if self.odo is not None:
            return h[..., self.cfg.state :].float()
        if self.track is None:
            raise InputError("this reward model has no tracking head (trained without model.track=true or "
                             "model.odometry=true)")
        return self.track(h[..., : self.cfg.state].float()) * self.task_std + self.task_mean

    @property
    def tracks(self) -> bool:
        """Whether the model follows the task's state along an episode (`tracked`)."""
        return self.odo is not None or self.track is not None

    def forward(self, z_prev: torch.Tensor, z_next: torch.Tensor, action: torch.Tensor,
                state: torch.Tensor | None = None, parts: list[tuple[torch.Tensor, torch.Tensor]] | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """z_prev, z_next (B, C, h, w) normalised latents; action (B, A), already divided by the world model's
        action_scale; state (B, width) or None (the initial one). Returns the reward in the net's units (B,)
        (`reward` converts it), the termination logit (B,) and the new GRU hidden vector with the tracked point
        (odometry), (B, width - 1) (the next state is it and the reward that followed, `carry`); `parts` as `recur`."""
        state = self._check(z_prev, z_next, action, state)
        return self.recur(self.features(z_prev, z_next, action), state, self.turn(action), parts)

    def _check(self, z_prev: torch.Tensor, z_next: torch.Tensor, action: torch.Tensor,
               state: torch.Tensor | None) -> torch.Tensor:
        """The state (the initial one for None) once the shapes of a batch of transitions are checked."""
        if z_prev.shape != z_next.shape or z_prev.ndim != 4 or z_prev.shape[1] != self.cfg.latent_channels:
            raise InputError(f"z_prev and z_next must both be (B, {self.cfg.latent_channels}, h, w), got "
                             f"{tuple(z_prev.shape)} and {tuple(z_next.shape)}")
        b = z_prev.shape[0]
        if action.shape != (b, self.cfg.action_dim):
            raise InputError(f"action must be ({b}, {self.cfg.action_dim}), got {tuple(action.shape)}")
        state = self.initial(b) if state is None else state
        if state.shape != (b, self.width):
            raise InputError(f"state must be ({b}, {self.width}), got {tuple(state.shape)}")
        return state

    def features(self, z_prev: torch.Tensor, z_next: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        """What one transition shows, (B, features): pooled conv features and the action's embedding (no state:
        a sequence's transitions can go through the convs in one batch, `recur` then runs along it)."""
        x = torch.cat([z_prev, z_next, z_next - z_prev], dim=1).float()  # (B, 3C, h, w)
        f = self.convs(x)  # (B, width, h', w')
        pooled = torch.cat([f.mean(dim=(2, 3)), f.amax(dim=(2, 3))], dim=1)  # (B, 2 width)
        a = action.float() if self.cfg.action_dim else action.new_zeros(len(action), 1).float()
        if not self.cfg.actions:
            a = torch.zeros_like(a)
        parts = [pooled, self.action(a)] + ([self.grid(f)] if self.grid is not None else [])
        return torch.cat(parts, dim=1)

    def turn(self, action: torch.Tensor) -> torch.Tensor | None:
        """The camera's turn in radians (...,) of actions (..., A) scaled as the model reads them, from the action's
        own column (`turn_column`); None for a model that learns the turn."""
        if self.cfg.turn_column < 0:
            return None
        return torch.deg2rad(action[..., self.cfg.turn_column].float() * self.cfg.turn_scale)

    def odo_step(self, features: torch.Tensor, turn: torch.Tensor | None) -> torch.Tensor:
        """(B, 3) a transition's turn (radians) and move (forward, right in blocks) for `move`: all three learned,
        or the turn given (`turn`) and the move learned."""
        step = self.odo(features)
        return step if turn is None else torch.cat([turn.to(step.dtype)[:, None], step[:, 1:]], dim=1)

    def recur(self, features: torch.Tensor, state: torch.Tensor, turn: torch.Tensor | None = None,
              parts: list[tuple[torch.Tensor, torch.Tensor]] | None = None
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One step of the state along a sequence: `forward` after `features`; `turn` (B,) the step's turn from its
        action (`turn`), for a model that takes it from there. With `terminal_reward` the reward returned is the one
        paid under the model's own termination at probability 0.5 (`pay`); `parts`, if a list, gets its two heads'
        rewards (going on, ending), in the net's units (training fits each on its own transitions)."""
        n = self.cfg.state
        h = state[:, :n].float()
        if self.cell is not None:
            h = self.cell(torch.cat([features, self.unit(state[:, -1:].float())], dim=1), h)
        if self.odo is None:
            out = self.head(torch.cat([features, h], dim=1))  # (B, 2 or 3)
            reward, h_next = out[:, 0], h
        else:
            point = state[:, n : n + 2].float()
            moved = self.move(point, self.odo_step(features, turn))
            scale = self.task_std.norm()
            before, after = point.norm(dim=1, keepdim=True), moved.norm(dim=1, keepdim=True)
            seen = [(point - self.task_mean) / self.task_std, (moved - self.task_mean) / self.task_std,
                    before / scale, after / scale, before - after]
            out = self.head(torch.cat([features, h, *seen], dim=1))
            reward = out[:, 0] if self.state_head is None else self.state_head(torch.cat(seen, dim=1))[:, 0]
            h_next = torch.cat([h, moved], dim=1)
        logit = out[:, 1] + self.term_logit_offset
        if self.cfg.terminal_reward:
            if parts is not None:
                parts.append((reward, out[:, 2]))
            reward = self.pay(reward, out[:, 2], logit > 0)
        return reward, logit, h_next

    @staticmethod
    def pay(going: torch.Tensor, ending: torch.Tensor, ends: torch.Tensor) -> torch.Tensor:
        """A `terminal_reward` model's reward (net units): the ending head's where the step ends, else the other."""
        return torch.where(ends, ending, going)

    @staticmethod
    def move(point: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """A point (B, 2) in the agent's frame (forward, right) after the agent moves by step[:, 1:] (forward,
        right) and turns by step[:, 0] radians (towards the right for positive): rotate(point - move)."""
        turn, shifted = step[:, 0], point - step[:, 1:]
        c, s = torch.cos(turn), torch.sin(turn)
        # a turn to the right by a: forward' = cos a f + sin a r, right' = -sin a f + cos a r
        return torch.stack([c * shifted[:, 0] + s * shifted[:, 1], -s * shifted[:, 0] + c * shifted[:, 1]], dim=1)

    @classmethod
    def step_of(cls, before: torch.Tensor, after: torch.Tensor, turn: torch.Tensor) -> torch.Tensor:
        """The move (..., 2) (forward, right in blocks, in the frame before the step) that takes a point `before`
        (..., 2) to `after` (..., 2) under a turn of `turn` (...,) radians: `move` undone, before - rotate(-turn,
        after). Exact for any turn, so with the turn known (`turn_column`) a recorded task state gives each step's
        true move."""
        zero = torch.zeros_like(turn)
        back = cls.move(after.reshape(-1, 2), torch.stack([-turn, zero, zero], -1).reshape(-1, 3).to(after))
        return before - back.view_as(after)

    def unit(self, reward: torch.Tensor) -> torch.Tensor:
        """A reward in the net's own units (what the head outputs, what the loss compares, what the GRU reads)."""
        r = reward / self.reward_scale
        return torch.sign(r) * torch.log1p(r.abs()) if self.cfg.symlog else r

    def reward(self, unit: torch.Tensor) -> torch.Tensor:
        """The reward of a head output (the inverse of `unit`)."""
        r = torch.sign(unit) * torch.expm1(unit.abs()) if self.cfg.symlog else unit
        return r * self.reward_scale

    @staticmethod
    def carry(h: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
        """The state after a transition: its GRU hidden vector (B, state) and the reward it gave (B,)."""
        return torch.cat([h, reward[:, None].to(h.dtype)], dim=1)

    def snap(self, reward: torch.Tensor) -> torch.Tensor:
        """|reward| < `zero_below` -> exactly 0: sparse stays sparse (`zero_below`: at least half the smallest non-zero
        training reward, raised where that lowers the training MAE, worldsim/train/train_reward.py calibrate_snap)."""
        return torch.where(reward.abs() < self.zero_below, torch.zeros_like(reward), reward)

    @torch.no_grad()
    def predict(self, z_prev: torch.Tensor, z_next: torch.Tensor, action_scaled: torch.Tensor,
                state: torch.Tensor | None = None, threshold: float = 0.5
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reward (B,) float (snapped, `snap`), terminated (B,) bool (sigmoid(logit) > threshold) and the next state,
        which carries the predicted reward (a dreamed step has no other)."""
        parts: list[tuple[torch.Tensor, torch.Tensor]] = []
        unit, logit, h = self(z_prev, z_next, action_scaled, state, parts)  # no dropout or batch statistics
        ends = torch.sigmoid(logit) > threshold
        if parts:  # the reward paid under the termination returned, at this threshold
            unit = self.pay(*parts[0], ends)
        reward = self.snap(self.reward(unit))
        return reward, ends, self.carry(h, reward)

    def run(self, features: torch.Tensor, recorded: torch.Tensor | None, given: torch.Tensor | int,
            task: torch.Tensor | None = None, hidden: list[torch.Tensor] | None = None,
            actions: torch.Tensor | None = None, parts: list[torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The state stepped along sequences of transition features (B, N, F) (`features`), from the initial one
        (`initial`, of the task state (B, task_dim) at the first frame if given): after step t it carries the
        recorded reward (B, N) when t < given (B,) or int (a reset's context), else the model's own snapped
        prediction (detached: a dream has no other). Returns the rewards in the net's units and the termination
        logits, (B, N) each, and the last state; `hidden`, if a list, gets each step's state without its last reward
        (B, width - 1): the GRU vector and, with odometry, the point (`tracked` reads it). `actions` (B, N, A), scaled
        as the model reads them: needed by a model that takes each step's turn from its action (`turn_column`).
        `parts`, if a list, gets a `terminal_reward` model's two heads' rewards (going on, ending), (B, N) each."""
        b, n = features.shape[:2]
        if actions is None and self.cfg.turn_column >= 0:
            raise InputError(f"this reward model takes each step's turn from the action (turn_column "
                             f"{self.cfg.turn_column}): run needs the actions")
        turns = None if actions is None else self.turn(actions)
        state = self.initial(b, task)
        given = torch.as_tensor(given, device=features.device).expand(b)
        units, logits, both = [], [], []
        for t in range(n):
            unit, logit, h = self.recur(features[:, t], state, None if turns is None else turns[:, t], both)
            own = self.snap(self.reward(unit.detach()))
            state = self.carry(h, own if recorded is None else torch.where(t < given, recorded[:, t].to(h.device), own))
            units.append(unit)
            logits.append(logit)
            if hidden is not None:
                hidden.append(h)
        if parts is not None and both:
            parts.extend(torch.stack(x, 1) for x in zip(*both))
        return torch.stack(units, 1), torch.stack(logits, 1), state

    @torch.no_grad()
    def warm(self, z: torch.Tensor, actions_scaled: torch.Tensor, rewards: torch.Tensor | None = None,
             task: torch.Tensor | None = None, task_last: torch.Tensor | None = None) -> torch.Tensor:
        """The state after the transitions between context frames z (B, F, C, h, w), actions (B, F - 1, A) scaled
        as the model's input, and their recorded rewards (B, F - 1) (None: unknown, the model's own predictions
        are carried, as in a dream); task (B, task_dim): the task's state at the first of them (`initial`).
        task_last (B, task_dim), for a model with odometry: the task's state recorded at the last of them, which
        the tracked point is set to (a store records it at every frame; the point the odometry carried through the
        context is a few tenths of a block off already)."""
        b, n = z.shape[0], z.shape[1] - 1
        if n < 1:
            return self.with_point(self.initial(b, task), task_last)
        z_prev, z_next, acts = z[:, :-1].flatten(0, 1), z[:, 1:].flatten(0, 1), actions_scaled.flatten(0, 1)
        self._check(z_prev, z_next, acts, None)
        features = self.features(z_prev, z_next, acts).unflatten(0, (b, n))
        return self.with_point(self.run(features, rewards, n, task, actions=actions_scaled)[2], task_last)

    def with_point(self, state: torch.Tensor, point: torch.Tensor | None) -> torch.Tensor:
        """`state` (B, width) with its tracked point set to `point` (B, task_dim) (odometry); as it was for None or
        a model without odometry."""
        if point is None or self.odo is None:
            return state
        if point.shape != (state.shape[0], self.cfg.task_dim):
            raise InputError(f"task_last must be ({state.shape[0]}, {self.cfg.task_dim}), got {tuple(point.shape)}")
        n = self.cfg.state
        return torch.cat([state[:, :n], point.to(state), state[:, n + 2 :]], dim=1)


# -- checkpoints ------------------------------------------------------------------------------------------------
def default_out(dit_checkpoint: str | Path) -> Path:
    """Where `worldsim train-reward` writes by default, and where `find_reward` looks: `<run dir>/reward`."""
    return C.run_dir(C.resolve(dit_checkpoint)) / "reward"


def save_reward(out: str | Path, model: RewardModel, step: int, meta: dict[str, Any]) -> Path:
    """Write `model` (weights and its reward scale / zero threshold buffers) and `meta` as checkpoint `step` of the
    run directory `out`, atomically (worldsim/model/checkpoint.py). Returns the checkpoint folder."""
    return C.save(out, step, {"model": model.state_dict()}, {**meta, "kind": "reward", "model": asdict(model.cfg)})


def load_reward(path: str | Path, device: torch.device | str = "cpu") -> RewardModel:
    """A trained reward model (eval mode) from a run directory or a checkpoint folder; its meta as `model.meta`.

    Raises:
        CheckpointError: the path is missing, not a reward checkpoint, or its weights are corrupt (one line).
    """
    ck = C.resolve(path)
    meta = C.load_meta(ck, kind="reward")
    try:
        # a checkpoint from before the state and symlog options: a stateless model on a linear scale
        model = RewardModel(RewardConfig(**{"state": 0, "symlog": False, **meta["model"]}))
        model.load_state_dict(C.load_tensors(ck, "model"))
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise C.CheckpointError(f"{ck} does not hold a usable reward model: {first}") from err
    model.meta = {**meta, "path": str(ck), "digest": C.digest(ck)}
    return model.to(device).eval()


def find_reward(dit_checkpoint: str | Path) -> Path | None:
    """`<run dir>/reward` of a world-model checkpoint (run directory or checkpoint folder) if it holds a reward
    checkpoint (for a student of `worldsim distill` without one: its teacher's), else None.

    Raises:
        CheckpointError: the reward model there was trained on the latents of another VAE than this checkpoint's.
    """
    ck = C.resolve(dit_checkpoint)
    for out in (d / "reward" for d in C.run_dirs(ck)):
        found = C.latest(out)
        if found is not None:
            break
    else:
        return None
    meta = C.load_meta(found)
    if meta.get("kind") != "reward":
        return None
    want = C.load_meta(ck).get("vae", {}).get("digest")
    have = meta.get("vae", {}).get("digest")
    if want and have != want:
        raise C.CheckpointError(f"{out} was trained on the latents of VAE {str(have)[:12]}..., but {ck} uses VAE "
                                f"{want[:12]}...; run worldsim train-reward ckpt={ck} again")
    return out
