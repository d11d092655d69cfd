"""Batched next-frame stepping of a world model: what DreamEnv and DreamVectorEnv run on.

Each row (one env) holds the latents of its recent frames. A step draws the next frame by a few Euler steps of the
rectified flow over a sliding context of `context` latent frames, the newest given the action (docs/architecture.md
section 4). Context frames carry a little noise, as in training (GameNGen's context-noise augmentation).

With a frame-causal model (`model.attention=causal`) the keys and values of clean context frames do not depend on
later frames, so they are computed once and cached (Diffusion Forcing; Oasis): a step costs `steps` passes over the
new frame's tokens only, the first of which also records the previous frame into the cache. Other models recompute
the whole window at every Euler step (correct, slower).

A model with goal maps (`model.goal_map`, worldsim/model/goal_map.py) also reads where a tracked goal would appear
in each frame: context frames from the task state their store recorded, a new frame from the goal point the caller
passes to `step` (DreamEnv: its reward model's estimate), turned by the step's action; rows without one get the
map "unknown".

Every row has its own torch generator, so a row's frames do not depend on which other rows share the batch.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from worldsim.errors import InputError
from worldsim.model.flow import euler_grid, shift_for, token_count
from worldsim.model.frames import to_model, to_uint8
from worldsim.model.goal_map import CHANNELS as GOAL_CHANNELS
from worldsim.model.goal_map import paint, prior, window_maps
from worldsim.model.memory import MEMORY_BANK, MEMORY_EXTRA, chain, recall, window_memory
from worldsim.model.render import Source, render_frame
from worldsim.model.sampler import WorldSampler, check_guidance
from worldsim.runtime import autocast

MEMORY_CONTEXT = 4  # default context (latent frames) of a model with pose memory


def default_context(sampler: WorldSampler) -> int:
    """DreamEnv's context by default: the trained window minus one; at most MEMORY_CONTEXT with pose memory (the bank,
    not the context, brings back what was seen earlier: docs/benchmarks.md, 1.4x faster with the quality targets and
    revisit held)."""
    window = max(sampler.window - 1, 1)
    return min(window, MEMORY_CONTEXT) if sampler.model.spec.dit.memory else window


class DreamCore:
    """Rows of dreamed trajectories stepped in one batched model call.

    Args:
        sampler: a loaded world model (`WorldSampler.load`).
        rows: how many trajectories.
        steps: Euler steps per frame (each is one model pass); None: the checkpoint's `WorldSampler.dream_steps`
            (1 for a model trained at pure noise, whose one step is its estimate of the next frame's mean; else 4).
        cfg_actions: classifier-free guidance scale on the new frame's action (1 = off; > 1 doubles the batch).
        context: latent frames the new frame sees (default: the trained window minus one; at most MEMORY_CONTEXT for
            a model with pose memory, whose bank carries what is older).
        context_t: noise level of context frames (training draws U(0, flow.context_noise)).
        precision: bf16 (autocast) or fp32.
        render: how `frames` turns the new latents into pixels: "carry" (pixel carry, worldsim/model/render.py,
            where the model can: `WorldSampler.can_carry`) or "latent" (decoded only); default the sampler's.
    """

    def __init__(self, sampler: WorldSampler, rows: int, steps: int | None = None, cfg_actions: float = 1.0,
                 context: int | None = None, context_t: float = 0.02, precision: str = "bf16",
                 render: str | None = None) -> None:
        if sampler.k != 1:
            raise InputError(f"DreamEnv steps one frame at a time and needs a per-frame VAE; this checkpoint's VAE "
                             f"compresses {sampler.k} frames per latent (vae.temporal={sampler.k})")
        steps = sampler.dream_steps if steps is None else steps
        if steps < 1:
            raise InputError(f"steps must be >= 1, got {steps}")
        self.sampler, self.model, self.device = sampler, sampler.model, sampler.device
        check_guidance(cfg_actions=cfg_actions)
        self.rows, self.steps, self.context_t, self.precision = rows, steps, context_t, precision
        self.cfg_actions = cfg_actions
        self.memory = bool(self.model.spec.dit.memory)
        self.context = int(context) if context is not None else default_context(sampler)  # 0 is refused, not 7
        if not 1 <= self.context <= 64:
            raise InputError(f"context must be between 1 and 64 latent frames, got {self.context}")
        self.cached = self.model.spec.dit.attention == "causal"
        self.h, self.w = sampler.height // sampler.vae.cfg.spatial, sampler.width // sampler.vae.cfg.spatial
        tokens = token_count((1, self.context + 1, 1, self.h, self.w), self.model.spec.dit.patch)
        self.grid = euler_grid(steps, shift_for(tokens, sampler.flow))
        self.n_tokens = (self.h // self.model.spec.dit.patch) * (self.w // self.model.spec.dit.patch)
        self.gens = [torch.Generator().manual_seed(i) for i in range(rows)]
        c = self.model.spec.latent_channels
        a = self.model.spec.action_dim
        # recent latents, newest last, with their context noise (drawn once, when a frame enters the context)
        self.z = torch.zeros(rows, self.context, c, self.h, self.w, device=self.device)
        self.last = torch.zeros(rows, c, self.h, self.w, device=self.device)  # the newest frame, clean
        self.before = torch.zeros(rows, c, self.h, self.w, device=self.device)  # the frame before the context
        self.acts = torch.zeros(rows, self.context, a, device=self.device)  # scaled action that led into each
        self.has_act = torch.zeros(rows, self.context, dtype=torch.bool, device=self.device)
        # goal maps (model.goal_map) of the context frames, "unknown" until a reset or step gives a goal; `goal_maps`
        # False feeds "unknown" always (what the model draws without them: an ablation)
        dit = self.model.spec.dit
        self.goal_maps = bool(dit.goal_map)
        self.goal = torch.zeros(rows, self.context, GOAL_CHANNELS if dit.goal_map else 0, self.h, self.w,
                                device=self.device)
        max_len = self.model.spec.text.max_len
        self.text: torch.Tensor | None = None  # (rows, max_len, Dt) padded text features, mask, pooled
        self.text_mask = torch.zeros(rows, max_len, dtype=torch.bool, device=self.device)
        self.pooled: torch.Tensor | None = None
        self.cache: list | None = None  # per block (k, v) (rows, H, (context - 1) N, hd): frames before the newest
        # pose memory (model.memory, worldsim/model/memory.py): up to MEMORY_BANK earlier clean frames per row, newest
        # last, with the map from the newest frame's view into each; and the memory each context frame was given
        # The bank is a ring buffer (a step writes one slot instead of copying the whole bank: 67 MB at batch 32):
        # `head` is the slot of the newest frame, `_order()` the slots from oldest to newest.
        k = MEMORY_BANK if self.memory else 0
        self.head = k - 1
        self.bank = torch.zeros(rows, k, c, self.h, self.w, device=self.device)
        self.bank_map = torch.eye(3, device=self.device).repeat(rows, k, 1, 1)
        self.bank_ok = torch.zeros(rows, k, dtype=torch.bool, device=self.device)
        self.mem = torch.zeros(rows, self.context if self.memory else 0, c + MEMORY_EXTRA, self.h, self.w,
                               device=self.device)
        # pixel carry: each row's last frame as rendered (3, H, W) in [-1, 1]; the steps not rendered yet (the new
        # latents, their `render.Source`, the bank slot they took: `frames` renders them in order); with memory, the
        # rendered pixels of the bank's frames (float16, slot for slot), for recalled views
        self.carry = sampler.carries(render)
        self.pix = torch.zeros(rows, 3, sampler.height, sampler.width, device=self.device)
        self.pending: list[tuple[torch.Tensor, Source, int]] = []
        self.pix_bank = torch.zeros(rows, k if self.carry else 0, 3, sampler.height, sampler.width,
                                    dtype=torch.float16, device=self.device)

    # -- state ---------------------------------------------------------------------------------------------
    def _noise(self, rows: list[int], shape: tuple[int, ...]) -> torch.Tensor:
        return torch.stack([torch.randn(shape, generator=self.gens[r]) for r in rows]).to(self.device)

    @torch.no_grad()
    def reset_rows(self, rows: list[int], frames: list[np.ndarray], actions: list[np.ndarray | None],
                   prompts: list[str], seeds: list[int], goals: list[np.ndarray | None] | None = None
                   ) -> list[torch.Tensor]:
        """Start rows from real frames: frames[i] (F, H, W, 3) uint8, F >= 1 (fewer than `context` frames are
        padded by repeating the first, a still history); actions[i] (F, A) stored-aligned or None (no actions);
        goals[i] (F, 2) the goal's forward and right offsets at each frame (the store's task state) or None
        (unknown), read by a model with goal maps.
        Returns each row's context latents (F', C, h, w), F' = min(F, context), unpadded (e.g. to warm the reward
        model's state)."""
        if self.pending:  # the other rows' steps not rendered yet are rendered from the frames they followed
            self.frames()
        for r, s in zip(rows, seeds):
            self.gens[r].manual_seed(int(s))
        zs, acts, has, seen_ctx = [], [], [], []
        for r, f, a in zip(rows, frames, actions):
            # each frame encoded once: the context, or the whole memory bank it is the end of
            seen = self.sampler.encode(np.asarray(f)[-(MEMORY_BANK if self.memory else self.context) :])
            if self.memory:
                self._reset_memory(r, seen, a, np.asarray(f)[-seen.shape[1] :])
            f = np.asarray(f)[-self.context :]
            a = None if a is None else np.asarray(a, np.float32)[-len(f) :]
            pad = self.context - len(f)
            z = seen[0, -len(f) :]  # (F, C, h, w)
            into = torch.zeros(self.context, self.model.spec.action_dim)
            ok = torch.zeros(self.context, dtype=torch.bool)
            if a is not None and len(f) > 1:  # the action into frame j is the one taken after frame j - 1
                into[pad + 1 :] = torch.from_numpy(a[:-1]) / self.model.action_scale.cpu()
                ok[pad + 1 :] = True
            seen_ctx.append(z)
            zs.append(torch.cat([z[:1].repeat(pad, 1, 1, 1), z]) if pad else z)
            acts.append(into)
            has.append(ok)
        idx = torch.tensor(rows, device=self.device)
        self.pix[idx] = torch.stack([to_model(np.asarray(f)[-1]) for f in frames]).to(self.device)
        clean = torch.stack(zs).to(self.device)
        self.last[idx] = clean[:, -1]
        self.before[idx] = 0.0
        self.z[idx] = self._noisy_context(rows, clean)
        self.acts[idx] = torch.stack(acts).to(self.device)
        self.has_act[idx] = torch.stack(has).to(self.device)
        if self.goal.shape[2]:
            self.goal[idx] = torch.stack([self._context_goals(f, a, g) for f, a, g in
                                          zip(frames, actions, goals or [None] * len(rows))]).to(self.device)
        self._set_text(rows, prompts)
        if self.cached:
            self._fill_cache(rows)
        return seen_ctx

    def _context_goals(self, frames: np.ndarray, actions: np.ndarray | None, goals: np.ndarray | None
                       ) -> torch.Tensor:
        """The goal maps (context, 2, h, w) of a row's last `context` starting frames (padded in front by the first,
        as the frames are), from their goals (F, 2) and stored-aligned actions; "unknown" without goals."""
        n = min(len(frames), self.context)
        if goals is None or not self.goal_maps:
            return torch.zeros(self.context, GOAL_CHANNELS, self.h, self.w)
        g = torch.from_numpy(np.asarray(goals, np.float32)[-n:, :2])[None]
        a = torch.zeros(1, n, self.model.spec.action_dim) if actions is None else \
            torch.from_numpy(np.asarray(actions, np.float32)[-n:])[None]
        d = self.model.spec.dit
        maps = window_maps(g, a, torch.ones(1, dtype=torch.bool), self.h, self.w, d.goal_fov, d.goal_yaw)[0]
        return torch.cat([maps[:1].repeat(self.context - n, 1, 1, 1), maps]) if n < self.context else maps

    def new_goal(self, actions: torch.Tensor, goal: torch.Tensor | None, known: torch.Tensor | None
                 ) -> torch.Tensor:
        """The goal maps (rows, 2, h, w) of the frames `actions` (rows, A) unscaled lead into: `goal` (rows, 2) the
        goal at each row's newest frame, turned by the action (`goal_map.prior`); "unknown" where `known` (rows,)
        is False or no goal is given."""
        d = self.model.spec.dit
        if goal is None or not self.goal_maps:
            return torch.zeros(self.rows, GOAL_CHANNELS, self.h, self.w, device=self.device)
        ok = torch.ones(self.rows, dtype=torch.bool) if known is None else torch.as_tensor(known, dtype=torch.bool)
        point = prior(torch.as_tensor(goal, dtype=torch.float32).cpu(), actions.float().cpu(), d.goal_yaw)
        return paint(point, ok.cpu(), self.h, self.w, d.goal_fov).to(self.device)

    def _reset_memory(self, row: int, z: torch.Tensor, actions: np.ndarray | None, frames: np.ndarray) -> None:
        """A row's memory bank from the latents (1, F, C, h, w) of its last MEMORY_BANK starting frames (uint8
        `frames`, F of them), posed by their actions (none: a still history), and the memories of its context frames
        (none for the padding before a short start)."""
        n, n_ctx = z.shape[1], min(z.shape[1], self.context)
        a = np.zeros((n, self.model.spec.action_dim), np.float32) if actions is None else \
            np.asarray(actions, np.float32)[-n:]
        into, mask = self.model.frame_actions(torch.from_numpy(a).to(self.device)[None])
        if actions is None:
            mask = torch.zeros_like(mask)
        with autocast(self.device, self.precision):
            steps = self.model.dit.step_affines(into, mask).float()
        self.bank[row] = 0.0
        self.bank_ok[row] = False
        self.bank_map[row] = torch.eye(3, device=self.device)
        newest = self._order()[MEMORY_BANK - n :]
        self.bank[row, newest] = z[0]
        if self.carry:
            self.pix_bank[row, newest] = to_model(frames).to(self.device, torch.float16)
        self.bank_ok[row, newest] = True
        self.bank_map[row, newest] = chain(steps)[0, -1]
        self.mem[row] = 0.0
        self.mem[row, self.context - n_ctx :] = window_memory(z, steps, n - n_ctx)[0]

    def _set_text(self, rows: list[int], prompts: list[str]) -> None:
        with autocast(self.device, self.precision):
            tokens, mask, pooled = self.model.text_features(prompts)
        cap = self.text_mask.shape[1]
        tokens, mask = tokens[:, :cap].float(), mask[:, :cap]
        if self.text is None:
            self.text = torch.zeros(self.rows, cap, tokens.shape[-1], device=self.device)
            self.pooled = torch.zeros(self.rows, pooled.shape[-1], device=self.device)
        for j, r in enumerate(rows):
            self.text[r].zero_()
            self.text_mask[r] = False
            self.text[r, : tokens.shape[1]] = tokens[j]
            self.text_mask[r, : mask.shape[1]] = mask[j]
            self.pooled[r] = pooled[j].float()

    def _cond(self, rows: torch.Tensor | slice, acts: torch.Tensor, has: torch.Tensor, prev: torch.Tensor,
              memory: torch.Tensor | None = None, goal: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Conditioning of `rows`; `prev` (B, C, h, w) is the frame before the first one passed to the model;
        `memory` (B, T, C + 2, h, w) the recalled memory of each frame passed (models with memory); `goal`
        (B, T, 2, h, w) their goal maps (models with goal maps)."""
        n = int(self.text_mask[rows].sum(1).max())  # trim padding shared by all rows
        cond = {"text": self.text[rows][:, :n], "text_mask": self.text_mask[rows][:, :n],
                "text_pooled": self.pooled[rows], "actions": acts, "action_mask": has, "prev": prev}
        if memory is not None and self.memory:
            cond["memory"] = memory
        if goal is not None and goal.shape[2]:
            cond["goal"] = goal
        return cond

    def _doubled(self, cond: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Conditioning for the [with action; without] guidance branches (actions and their mask already are)."""
        if self.cfg_actions == 1.0:
            return cond
        keys = ("text", "text_mask", "text_pooled", "prev", "memory", "goal")
        return {**cond, **{k: torch.cat([cond[k], cond[k]]) for k in keys if k in cond}}

    def _noisy_context(self, rows: list[int], z: torch.Tensor) -> torch.Tensor:
        return (1 - self.context_t) * z + self.context_t * self._noise(rows, tuple(z.shape[1:]))

    def _fill_cache(self, rows: list[int]) -> None:
        """Keys and values of each row's context frames but the newest (those are recorded by the next step)."""
        idx = torch.tensor(rows, device=self.device)
        n_old = self.context - 1
        if n_old == 0:
            return
        x = self.z[idx, :n_old]
        t = torch.full(x.shape[:2], self.context_t, device=self.device)
        kv_out: list = []
        with autocast(self.device, self.precision):
            self.model(x, t, self._cond(idx, self.acts[idx, :n_old], self.has_act[idx, :n_old], self.before[idx],
                                        self.mem[idx, :n_old], self.goal[idx, :n_old]), kv_out=kv_out)
        if self.cache is None:
            self.cache = [(k.new_zeros((self.rows, *k.shape[1:])), v.new_zeros((self.rows, *v.shape[1:])))
                          for k, v in kv_out]
        for (ck, cv), (k, v) in zip(self.cache, kv_out):
            ck[idx], cv[idx] = k.to(ck.dtype), v.to(cv.dtype)

    # -- stepping ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, actions: torch.Tensor, goal: torch.Tensor | np.ndarray | None = None,
             known: torch.Tensor | np.ndarray | None = None) -> torch.Tensor:
        """actions (rows, A) flat, unscaled -> the new latent frames (rows, C, h, w), appended to the context.
        With goal maps: `goal` (rows, 2) where the goal is at each row's newest frame and `known` (rows,) bool which
        rows know it (`new_goal`)."""
        rows = list(range(self.rows))
        new_goal = self.new_goal(actions, goal, known)[:, None] if self.goal.shape[2] else self.goal[:, :0]
        a = (actions.to(self.device).float() / self.model.action_scale)[:, None]  # (B, 1, A)
        x = self._noise(rows, tuple(self.z.shape[2:]))  # (B, C, h, w), t = 1
        with autocast(self.device, self.precision):
            chosen: list = []
            new_mem, step_map = self._recall(a, chosen) if self.memory else (None, None)
            if self.cached:
                x = self._step_cached(rows, x, a, new_mem, new_goal)
            else:
                x = self._step_window(rows, x, a, new_mem, new_goal)
        if self.carry:
            self._trace(x, a, new_mem, chosen[0] if chosen else None, new_goal)
        if self.memory:
            self._remember(x, new_mem, step_map)
        self.last = x
        self.before = self.z[:, 0]
        self.z = torch.cat([self.z[:, 1:], self._noisy_context(rows, x[:, None])], dim=1)
        self.acts = torch.cat([self.acts[:, 1:], a], dim=1)
        self.has_act = torch.cat([self.has_act[:, 1:], torch.ones_like(self.has_act[:, :1])], dim=1)
        self.goal = torch.cat([self.goal[:, 1:], new_goal], dim=1)
        return x

    def _trace(self, x: torch.Tensor, a: torch.Tensor, new_mem: torch.Tensor | None, chosen: Any,
               new_goal: torch.Tensor) -> None:
        """Keep what pixel carry needs of the new frames x (B, C, h, w): their base (from the newest context frame,
        as the model saw it), its source, the warp of action a (B, 1, A) and the memory's choice (`Recalled`, its
        `best` a slot of the bank)."""
        has = torch.ones(a.shape[:2], dtype=torch.bool, device=self.device)
        cond = self._cond(slice(None), a, has, self.z[:, -1], None if new_mem is None else new_mem[:, None], new_goal)
        bases = self.model.dit.frame_bases(x[:, None], cond)
        b = x.shape[0]
        if chosen is None:
            slot, to_slot = torch.full((b,), -1, device=self.device), torch.eye(3, device=self.device).repeat(b, 1, 1)
        else:
            slot, to_slot = torch.where(chosen.found, chosen.best, -1), chosen.map
        src = Source(bases.base[:, 0].float(), bases.from_prev[:, 0], bases.steps[:, 0].float(), slot, to_slot)
        self.pending.append((x.float(), src, (self.head + 1) % MEMORY_BANK))
        if len(self.pending) >= 64:  # a caller that never looks: render anyway, so what is pending stays bounded
            self.frames()

    def _recall(self, a: torch.Tensor, chosen: list | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The new frame's memory (B, C + 2, h, w) from the bank, and its step map (B, 3, 3) from action a (B, 1, A)
        (scaled). The newest frame is its base, not a recall candidate. `chosen` receives the choice (`Recalled`),
        its `best` turned into a slot of the bank."""
        step = self.model.dit.step_affines(a, torch.ones(a.shape[:2], dtype=torch.bool, device=self.device))
        step = step[:, 0].float()
        order = self._order()  # scored from oldest to newest, as the bank was trained and read before
        maps = (self.bank_map @ step[:, None])[:, order]
        ok = self.bank_ok[:, order]
        ok[:, -1] = False
        age = (MEMORY_BANK - torch.arange(MEMORY_BANK, device=self.device)).expand_as(ok)
        picked: list = []
        mem = recall(self.bank, maps, ok, age, slots=order, chosen=picked)
        if chosen is not None:
            chosen.append(picked[0]._replace(best=order[picked[0].best]))
        return mem, step

    def _order(self) -> torch.Tensor:
        """The bank's slots from the oldest frame to the newest."""
        return (torch.arange(MEMORY_BANK, device=self.device) + self.head + 1) % MEMORY_BANK

    def _remember(self, x: torch.Tensor, new_mem: torch.Tensor, step: torch.Tensor) -> None:
        """The new frame x (B, C, h, w) joins the bank as its newest, in the oldest one's slot; every map now starts
        from its view."""
        slot = (self.head + 1) % MEMORY_BANK
        self.bank[:, slot] = x.float()
        self.bank_map = self.bank_map @ step[:, None]
        self.bank_map[:, slot] = torch.eye(3, device=self.device)
        self.bank_ok[:, slot] = True
        self.head = slot
        self.mem = torch.cat([self.mem[:, 1:], new_mem[:, None].float()], dim=1)

    def _guided(self, v: torch.Tensor) -> torch.Tensor:
        """v stacked [with action; without] -> the CFG velocity (or v itself when guidance is off)."""
        if self.cfg_actions == 1.0:
            return v
        cond, uncond = v.chunk(2)
        return cond + (self.cfg_actions - 1.0) * (cond - uncond)

    def _branches(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.cfg_actions == 1.0 else torch.cat([t, t])

    def _step_cached(self, rows: list[int], x: torch.Tensor, a: torch.Tensor, new_mem: torch.Tensor | None,
                     new_goal: torch.Tensor) -> torch.Tensor:
        b = len(rows)
        newest = self.z[:, -1]
        pair_acts = torch.cat([self.acts[:, -1:], a], dim=1)  # (B, 2, A): into the newest frame, into the new one
        pair_has = torch.stack([self.has_act[:, -1], torch.ones(b, dtype=torch.bool, device=self.device)], dim=1)
        if self.cfg_actions != 1.0:
            no_act = pair_has.clone()
            no_act[:, 1] = False
            pair_has = torch.cat([pair_has, no_act])
            pair_acts = torch.cat([pair_acts, pair_acts])
        older = self.z[:, -2] if self.context > 1 else self.before  # the frame before the newest
        pair_mem = torch.stack([self.mem[:, -1], new_mem], dim=1) if new_mem is not None else None
        pair_goal = torch.cat([self.goal[:, -1:], new_goal], dim=1)
        cond = self._doubled(self._cond(slice(None), pair_acts, pair_has, older, pair_mem, pair_goal))
        past = None if self.cache is None else [(self._branches(k), self._branches(v)) for k, v in self.cache]
        full: list | None = None
        for i, (t_now, t_next) in enumerate(zip(self.grid[:-1], self.grid[1:])):
            if i == 0:  # the newest context frame and the new frame together; record the former's keys/values
                xin = self._branches(torch.stack([newest, x], dim=1))
                t = torch.tensor([[self.context_t, t_now]], device=self.device).expand(xin.shape[0], 2)
                kv_out: list = []
                v = self.model(xin, t, cond, past=past, kv_out=kv_out)[:, 1]
                n = self.n_tokens
                new_kv = [(k[:, :, :n], vv[:, :, :n]) for k, vv in kv_out]
                full = new_kv if past is None else [(torch.cat([pk, k], 2), torch.cat([pv, vv], 2))
                                                     for (pk, pv), (k, vv) in zip(past, new_kv)]
                one = {**cond, "actions": cond["actions"][:, 1:], "action_mask": cond["action_mask"][:, 1:],
                       "prev": self._branches(newest)}
                for key in ("memory", "goal"):
                    if key in cond:
                        one[key] = cond[key][:, 1:]
            else:
                t = torch.full((xin.shape[0], 1), t_now, device=self.device)
                v = self.model(self._branches(x[:, None]), t, one, past=full)[:, 0]
            x = x + (t_next - t_now) * self._guided(v.float())
        # slide: the cache keeps the context - 1 frames before the (new) newest frame
        keep_frames = self.context - 1
        if keep_frames > 0:
            n = self.n_tokens
            self.cache = [(k[:b, :, k.shape[2] - keep_frames * n :].contiguous(),
                           vv[:b, :, vv.shape[2] - keep_frames * n :].contiguous()) for k, vv in full]
        return x

    def _step_window(self, rows: list[int], x: torch.Tensor, a: torch.Tensor, new_mem: torch.Tensor | None,
                     new_goal: torch.Tensor) -> torch.Tensor:
        ctx = self.z  # (B, context, C, h, w)
        acts = torch.cat([self.acts, a], dim=1)
        has = torch.cat([self.has_act, torch.ones_like(self.has_act[:, :1])], dim=1)
        if self.cfg_actions != 1.0:
            no_act = has.clone()
            no_act[:, -1] = False
            has, acts = torch.cat([has, no_act]), torch.cat([acts, acts])
        mem = torch.cat([self.mem, new_mem[:, None]], dim=1) if new_mem is not None else None
        cond = self._doubled(self._cond(slice(None), acts, has, self.before, mem, torch.cat([self.goal, new_goal], 1)))
        for t_now, t_next in zip(self.grid[:-1], self.grid[1:]):
            xin = self._branches(torch.cat([ctx, x[:, None]], dim=1))
            t = torch.full(xin.shape[:2], self.context_t, device=self.device)
            t[:, -1] = t_now
            v = self.model(xin, t, cond)[:, -1]
            x = x + (t_next - t_now) * self._guided(v.float())
        return x

    # -- pixels --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> np.ndarray:
        """Latent frames (B, C, h, w) -> uint8 (B, H, W, 3)."""
        with autocast(self.device, self.precision):
            return to_uint8(self.sampler.decode_frames(z[:, None])[:, 0])

    @torch.no_grad()
    def frames(self) -> np.ndarray:
        """The newest frame of every row as the player sees it, uint8 (B, H, W, 3): with pixel carry, every step
        since the last call rendered in order from the frame before it (so a caller may step several times and
        look once); else the newest latents decoded."""
        if not self.carry:
            return self.decode(self.last)
        steps, self.pending = self.pending, []
        if steps:
            with autocast(self.device, self.precision):
                decoded = self.sampler.decode_frames(torch.stack([p[0] for p in steps], dim=1)).float()
            rows = torch.arange(self.rows, device=self.device)
            for j, (x, src, slot) in enumerate(steps):
                recalled = self.pix_bank[rows, src.recall.clamp_min(0)].float() if self.memory else None
                self.pix = render_frame(x, decoded[:, j], self.pix, src, recalled)
                if self.memory:
                    self.pix_bank[:, slot] = self.pix.to(torch.float16)
        return to_uint8(self.pix)
