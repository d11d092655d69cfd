"""worldsim play: play an engine yourself in a window (pygame), with the frame rate shown; with `ckpt=`, play inside
a learned world model (DreamEnv) beside the real engine, both started from the same frames and driven by the same keys.

controls (voxel): mouse looks around (click the window to capture it, Esc releases it), W A S D move,
Space jumps / swims, Left Shift sneaks, Left Ctrl sprints, left mouse breaks, right mouse places,
1-9 pick a hotbar slot, F3 toggles the info overlay, Esc twice (or closing the window) quits.
controls (physics, control=both): W A S D push the puck (screen directions), arrow keys orbit the camera,
Q / E zoom, R starts a new scene.

examples:
  worldsim play env=voxel
  worldsim play env=voxel width=960 height=540 env.kwargs.task=navigate seed=7
  worldsim play env=physics env.kwargs.spawn=tower
  worldsim play ckpt=outputs/demo/dit scale=6          # left: the engine, right: the model (at the model's size)
  worldsim play ckpt=outputs/demo/dit dream_steps=4    # more Euler steps per frame: slower, sharper, lower PSNR
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from worldsim.cli import build
from worldsim.cli.common import EnvConfig, make_env
from worldsim.errors import InputError
from worldsim.web import controls


@dataclass
class PlayConfig:
    env: EnvConfig = field(default_factory=EnvConfig)
    width: int = 640
    height: int = 360
    scale: int = 1
    seed: int = 0
    mouse_sensitivity: float = 0.15
    max_frames: int = 0
    ckpt: str | None = None  # a world-model run or checkpoint: play the dream beside the engine
    dream_steps: int | None = None  # Euler steps per dreamed frame (None: the checkpoint's default)


_KEY_NAMES = (("K_w", "w"), ("K_a", "a"), ("K_s", "s"), ("K_d", "d"), ("K_q", "q"), ("K_e", "e"), ("K_SPACE", " "),
              ("K_LSHIFT", "shift"), ("K_LCTRL", "control"), ("K_LEFT", "arrowleft"), ("K_RIGHT", "arrowright"),
              ("K_UP", "arrowup"), ("K_DOWN", "arrowdown"))


def _pressed_names(pygame, pressed) -> set[str]:
    """pygame's key state as the key names of `worldsim.web.controls` (the browser's)."""
    return {name for attr, name in _KEY_NAMES if pressed[getattr(pygame, attr)]}


def _load_dream(cfg: PlayConfig):
    import warnings

    from worldsim.dream.env import DreamEnv

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # no reward model: irrelevant when playing
        return DreamEnv.from_checkpoint(cfg.ckpt, steps=cfg.dream_steps, max_episode_steps=None)


@dataclass
class _Input:
    """Mouse capture and key state between frames."""

    captured: bool = False
    overlay: bool = True
    escapes: int = 0
    running: bool = True


def _events(pygame, state: _Input) -> int:
    """Handle this frame's window events (quit, mouse capture, Esc, F3, number keys); returns the hotbar slot
    pressed (0: none)."""
    hotbar = 0
    for ev in pygame.event.get():
        if ev.type == pygame.QUIT:
            state.running = False
        elif ev.type == pygame.MOUSEBUTTONDOWN and not state.captured:
            state.captured = True
            pygame.event.set_grab(True)
            pygame.mouse.set_visible(False)
            pygame.mouse.get_rel()
        elif ev.type == pygame.KEYDOWN:
            if ev.key == pygame.K_ESCAPE:  # the first Esc releases the mouse, the second (or an uncaptured one) quits
                state.escapes += 1
                state.running = state.captured or state.escapes < 2
                state.captured = False
                pygame.event.set_grab(False)
                pygame.mouse.set_visible(True)
            elif ev.key == pygame.K_F3:
                state.overlay = not state.overlay
            elif pygame.K_1 <= ev.key <= pygame.K_9:
                hotbar = ev.key - pygame.K_1 + 1
    return hotbar


def _draw(pygame, screen, font, cfg: PlayConfig, panes: list[np.ndarray], lines: list[str]) -> None:
    """Blit the engine (and the dream) side by side, upscaled, with a crosshair and the text lines."""
    for i, frame in enumerate(panes):
        surf = pygame.surfarray.make_surface(np.ascontiguousarray(frame.swapaxes(0, 1)))
        if cfg.scale != 1:
            surf = pygame.transform.scale(surf, (cfg.width * cfg.scale, cfg.height * cfg.scale))
        screen.blit(surf, (i * cfg.width * cfg.scale, 0))
    cx, cy = cfg.width * cfg.scale // 2, screen.get_height() // 2
    pygame.draw.line(screen, (255, 255, 255), (cx - 6, cy), (cx + 6, cy))
    pygame.draw.line(screen, (255, 255, 255), (cx, cy - 6), (cx, cy + 6))
    for i, text in enumerate(lines):
        screen.blit(font.render(text, True, (255, 255, 255)), (6, 6 + 18 * i))
    pygame.display.flip()


def _voxel_lines(info: dict[str, Any], captured: bool) -> list[str]:
    pos = info["pose"]["position"]
    inv = info["inventory"]
    return [f"xyz {pos[0]:.1f} {pos[1]:.1f} {pos[2]:.1f}  {info['biome']}  {info['time_of_day']:.1f} h",
            f"slot {inv['selected'] + 1}: {inv['hotbar'][inv['selected']]} x{inv['counts'][inv['selected']]}",
            "click to capture the mouse" if not captured else "Esc releases the mouse"]


def main(raw) -> int:
    cfg = build(PlayConfig, raw, "play config")
    cfg.env = build(EnvConfig, raw.env, "env config")
    if cfg.scale < 1:
        raise InputError(f"scale must be >= 1, got {cfg.scale}")
    os.environ.setdefault("LP_NUM_THREADS", str(os.cpu_count() or 1))  # big frames: rasterise on every core
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    import pygame

    dream = _load_dream(cfg) if cfg.ckpt else None
    if dream is not None:
        cfg.width, cfg.height = dream.sampler.width, dream.sampler.height
        cfg.scale = cfg.scale if cfg.scale > 1 else max(1, 384 // cfg.height)  # small model frames, a usable window
    env = make_env(cfg.env, width=cfg.width, height=cfg.height, render_mode="rgb_array")
    voxel = cfg.env.id == "worldsim/Voxel-v0"
    obs, info = env.reset(seed=cfg.seed)
    if dream is not None:
        if env.action_space != dream.action_space:
            raise InputError(f"{cfg.ckpt} learned another game than {cfg.env.id} (its action space differs)")
        dream_obs, _ = dream.reset(seed=cfg.seed, options={"frames": obs})
    pygame.display.init()  # not pygame.init(): no audio device is needed (or present on servers)
    pygame.font.init()
    screen = pygame.display.set_mode(((2 if dream is not None else 1) * cfg.width * cfg.scale, cfg.height * cfg.scale))
    pygame.display.set_caption("worldsim play")
    font, clock, state = pygame.font.Font(None, 20), pygame.time.Clock(), _Input()
    frames, fps_shown, t_last, n_last = 0, 0.0, time.perf_counter(), 0
    while state.running:
        hotbar = _events(pygame, state)
        rel = pygame.mouse.get_rel() if state.captured else (0, 0)
        pressed = pygame.key.get_pressed()
        keys = _pressed_names(pygame, pressed)
        if voxel:
            buttons = pygame.mouse.get_pressed(3) if state.captured else (0, 0, 0)
            keys -= {"arrowleft", "arrowright", "arrowup", "arrowdown"}  # the mouse looks around in the window
            action = controls.voxel_action(keys, [i for i, b in enumerate(buttons) if b], rel,
                                           cfg.mouse_sensitivity, hotbar)
        else:
            action = controls.physics_action(keys, info["camera"]["azimuth"], env.action_space.shape[0])
        obs, _, terminated, truncated, info = env.step(action)
        if dream is not None:
            dream_obs, *_ = dream.step(action)
        if terminated or truncated or (not voxel and pressed[pygame.K_r]):
            obs, info = env.reset()
            if dream is not None:
                dream_obs, _ = dream.reset(options={"frames": obs})
        frames += 1
        now = time.perf_counter()
        if now - t_last >= 0.5:
            fps_shown, t_last, n_last = (frames - n_last) / (now - t_last), now, frames
        lines = [f"{fps_shown:5.1f} fps" + ("   left: engine, right: model" if dream is not None else "")]
        lines += _voxel_lines(info, state.captured) if state.overlay and voxel else []
        _draw(pygame, screen, font, cfg, [obs] if dream is None else [obs, dream_obs], lines)
        clock.tick(env.metadata.get("render_fps", 20))  # real time: 20 Hz voxel, 15 fps physics
        if cfg.max_frames and frames >= cfg.max_frames:
            state.running = False
    pygame.quit()
    env.close()
    print(f"played {frames} frames" + (f" beside the model {cfg.ckpt}" if dream is not None else ""))
    return 0
