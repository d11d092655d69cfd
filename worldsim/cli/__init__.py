"""The `worldsim` command: `worldsim <command> [key=value ...]`, configured with Hydra.

Each command has a config in `configs/<command>.yaml` (with groups such as `env=voxel`); `key=value` arguments
override it. `worldsim <command> --help` lists the keys, their defaults and what they mean.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
import typing
from pathlib import Path
from typing import Any

from worldsim.errors import TrainingDiverged, UsageError, UserError

COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("worldsim.cli.demo", "the main job on tiny defaults: drive the voxel engine, write a video"),
    "generate": ("worldsim.cli.generate", "record captioned, action-labelled episodes into a zarr store"),
    "validate": ("worldsim.cli.validate", "check a store against the schema; print JSON (episodes, digest)"),
    "info": ("worldsim.cli.info", "a human summary of a store"),
    "play": ("worldsim.cli.play", "play an engine yourself with keyboard and mouse (pygame window)"),
    "export-video": ("worldsim.cli.export_video", "an MP4 of one stored episode with its captions and actions"),
    "train-vae": ("worldsim.cli.train_vae", "train the video compression network (VAE) on stores"),
    "cache-latents": ("worldsim.cli.cache_latents", "encode a store's frames once with a VAE (faster training)"),
    "train": ("worldsim.cli.train", "train the text- and action-conditioned video DiT on stores"),
    "train-reward": ("worldsim.cli.train_reward", "train the reward and termination model DreamEnv uses"),
    "distill": ("worldsim.cli.distill", "a smaller one-step student of a world model, for a faster DreamEnv"),
    "distill-decoder": ("worldsim.cli.distill_decoder", "a light decoder for DreamEnv, distilled from the VAE's"),
    "recipe": ("worldsim.cli.recipe", "the reference pipeline: data, VAE, DiT, held-out evaluation, report"),
    "scaling": ("worldsim.cli.scaling", "a scaling study: DiT sizes along a compute ladder, loss vs FLOPs, power law"),
    "probe": ("worldsim.cli.probe", "scripted engine episodes with ground truth: does the model simulate them?"),
    "sample": ("worldsim.cli.sample", "generate video with a trained model (t2v, i2v, extend, rollout, ...)"),
    "eval": ("worldsim.cli.eval", "score a model on a held-out store: PSNR/SSIM, rollouts, dPSNR, IDM, text"),
    "import": ("worldsim.cli.import_data", "recorded Minecraft play (MineRL v0.4, OpenAI VPT) as a store"),
    "export-lerobot": ("worldsim.cli.export_lerobot", "write a store as a LeRobot v3.0 dataset (parquet + mp4)"),
    "train-detector": ("worldsim.cli.train_detector", "learn to tell engine-made clips from model-made ones"),
    "detect": ("worldsim.cli.detect", "score a video as engine-made or model-made (a trained detector)"),
    "provenance": ("worldsim.cli.provenance", "read and verify the signed provenance (C2PA) of an MP4 or PNG"),
    "serve": ("worldsim.cli.serve", "a local web app: browse datasets and models, play engine and dream, generate"),
}
POSITIONAL = {"validate": "path", "info": "path", "export-video": "path", "import": "src",
              "export-lerobot": "path",
              "provenance": "path", "detect": "path"}  # `worldsim validate PATH`: path=PATH


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors caused by what the user asked for (worldsim.errors): printed as one line, never as a traceback.
    Anything else, a ValueError from inside torch or numpy included, is a bug and keeps its traceback."""
    from omegaconf.errors import MissingMandatoryValue

    from store import StoreError

    return UserError, StoreError, MissingMandatoryValue


def _checked_by_a_lower_layer(err: BaseException) -> bool:
    """A ValueError that a `raise` statement of the engines, data generation or the store raised on purpose (they
    follow gymnasium's convention and cannot import worldsim.errors): the user's input, said in one line. One raised
    inside numpy, torch or any other library, or by a failing expression of ours, is a bug and keeps its traceback."""
    import linecache
    from pathlib import Path

    tb = err.__traceback__
    if not isinstance(err, ValueError) or tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    path = Path(tb.tb_frame.f_code.co_filename).resolve()
    root = Path(__file__).resolve().parents[2]
    lower = any(path.is_relative_to(root / top) for top in ("envs", "renderers", "datagen", "store"))
    return lower and linecache.getline(str(path), tb.tb_lineno).strip().startswith("raise ")


def _disk_full(err: BaseException, cfg: Any) -> str | None:
    """The one line for a write that ran out of space (anywhere in the exception's chain), else None. The place is
    the file the error names, else the command's `out`."""
    import errno
    from pathlib import Path

    from store import free_space

    seen = err
    while seen is not None and not (isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT)):
        seen = seen.__cause__ or seen.__context__
    if seen is None:
        return None
    out = cfg.get("out") if cfg is not None and hasattr(cfg, "get") else None
    where = Path(str(seen.filename or out or ".")).absolute()
    free = free_space(where)[1] / 2**20
    return (f"no space left on the device writing {where} ({free:.1f} MB free there); what was complete is kept: "
            f"free some space and run the same command again to continue")


def _usage() -> str:
    lines = ["usage: worldsim <command> [key=value ...]   (worldsim <command> --help for its keys)", "", "commands:"]
    width = max(map(len, COMMANDS))
    lines += [f"  {name:<{width}}  {desc}" for name, (_, desc) in COMMANDS.items()]
    return "\n".join(lines)


_PLAIN = re.compile(r"[\w/\-+.:~%@*?|$\\]*", re.ASCII)  # what Hydra's grammar takes unquoted in a value


def _quoted(override: str) -> str:
    """`key=value` with the value quoted for Hydra when its grammar would not take it as it is (spaces, letters
    outside ASCII, quotes, commas, `=`...), as a shell user means it: `out="/data/my runs/é"` works. Lists, dicts and
    values the user already quoted are left alone."""
    key, _, value = override.partition("=")
    if not value or value[0] in "'\"[{" or _PLAIN.fullmatch(value):
        return override
    body = re.sub(r"(\\*)'", lambda m: m.group(1) * 2 + "\\'", value)  # escape quotes (and backslashes before them)
    body = re.sub(r"(\\+)$", lambda m: m.group(1) * 2, body)  # a trailing backslash must not escape the closing quote
    return f"{key}='{body}'"


def _game_overrides(overrides: list[str], config_dir: Any) -> list[str]:
    """`env=ID` where ID is no config of the env group (configs/env/) means another gymnasium game: the `game`
    group with that id; `env.kwargs.K=V` adds or sets a kwarg (Hydra's `++`), whatever the group has."""
    out = []
    for o in overrides:
        key, _, value = o.partition("=")
        if key == "env" and value and not (Path(config_dir) / "env" / f"{value}.yaml").is_file():
            out += ["env=game", f"env.id={value}"]
        elif key.startswith("env.kwargs.") and not key.startswith("+"):
            out.append(f"++{o}")
        else:
            out.append(o)
    return out


def compose(command: str, overrides: list[str]) -> Any:
    """The resolved Hydra config of a command with `key=value` overrides applied."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from configs import CONFIG_DIR

    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise UsageError(f"arguments must look like key=value, got {bad[0]!r} (see `worldsim {command} --help`)")
    overrides = _game_overrides(overrides, CONFIG_DIR)
    try:
        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3", job_name=command):
            return hydra_compose(config_name=command, overrides=[_quoted(o) for o in overrides])
    except (HydraException, OmegaConfBaseException) as err:
        first = str(err).strip().splitlines()[0]
        raise UsageError(f"bad override for `worldsim {command}`: {first}") from None


def build(cls: type, node: Any, where: str) -> Any:
    """Build a typed config dataclass from a config node, naming unknown keys and wrong types."""
    from omegaconf import OmegaConf

    data = OmegaConf.to_container(node, resolve=True) if not isinstance(node, dict) else node
    names = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UsageError(f"unknown key(s) {unknown} in {where}; valid keys: {sorted(names)}")
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        _check_value(key, hints.get(key), value, where)
    return cls(**data)


def _check_value(key: str, hint: Any, value: Any, where: str) -> None:
    """Refuse a value of the wrong kind for a plain int, float, bool or str key (`steps=abc`, `episodes=1e9`), and NaN
    or infinity for any number, naming the key; other kinds (lists, nested configs, Any) are left to their users."""
    import math
    import types

    allowed = set(typing.get_args(hint)) if isinstance(hint, types.UnionType) or typing.get_origin(hint) is \
        typing.Union else {hint}
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"{key}={value} in {where} is not a finite number")
    if value is None or not allowed <= {int, float, bool, str, type(None)}:
        return
    ok = ((int in allowed and isinstance(value, int) and not isinstance(value, bool))
          or (float in allowed and isinstance(value, int | float) and not isinstance(value, bool))
          or (bool in allowed and isinstance(value, bool)) or (str in allowed and isinstance(value, str)))
    if not ok:
        kinds = " or ".join(sorted(t.__name__ for t in allowed if t is not type(None)))
        raise UsageError(f"{key}={value!r} in {where} must be {'an' if kinds[0] in 'aeiou' else 'a'} {kinds}")


def _help(command: str) -> str:
    module = importlib.import_module(COMMANDS[command][0])
    cfg = compose(command, [])
    from omegaconf import OmegaConf

    doc = (module.__doc__ or "").strip()
    return f"{doc}\n\nconfig (override with key=value):\n{OmegaConf.to_yaml(cfg)}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"worldsim: unknown command {command!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    try:
        if "-h" in rest or "--help" in rest:
            print(_help(command))
            return 0
        if command in POSITIONAL and rest and "=" not in rest[0]:
            rest = [f"{POSITIONAL[command]}={rest[0]}", *rest[1:]]
        cfg = compose(command, rest)
        module = importlib.import_module(COMMANDS[command][0])
        return int(module.main(cfg) or 0)
    except TrainingDiverged as err:  # not the user's input, not a bug in the code: a result, said in one line
        print(f"worldsim {command}: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        full = _disk_full(err, locals().get("cfg"))
        if full is None:
            raise
        print(f"worldsim {command}: error: {full}", file=sys.stderr)
        return 1
    except Exception as err:
        if not isinstance(err, _user_errors()) and not _checked_by_a_lower_layer(err):
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if hasattr(err, "full_key") and "Missing mandatory value" in msg:  # omegaconf: a required `???` key
            msg = f"{err.full_key}= is required (worldsim {command} --help lists the keys)"
        print(f"worldsim {command}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"worldsim {command}: interrupted", file=sys.stderr)
        return 130
