"""Helpers of the world-model tests: tiny stores, tiny model overrides, and a torchrun entry that records each rank's
trained weights (importable from tests because pytest puts tests/ on the path; runnable as a script under torchrun).
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

# A DiT, text encoder and VAE small enough for two shared CPU cores (seconds per run).
TINY_MODEL = ["model.width=48", "model.depth=2", "model.heads=2", "text.width=32", "text.depth=1", "text.heads=2"]
TINY_VAE = ["vae.channels=[8,16,16]", "vae.latent_channels=4"]


def tiny_store(path: str | Path, width: int = 32, height: int = 32, episodes: int = 3, steps: int = 12,
               seed: int = 0, task: str = "explore") -> dict:
    """A finalized voxel store of `episodes` short episodes at one resolution; returns its attributes."""
    from datagen.job import run
    from datagen.rollout import Job

    job = Job(env_id="worldsim/Voxel-v0", env_kwargs={"task": task}, width=width, height=height,
              episodes=episodes, steps=steps, seed=seed)
    return run(job, str(path), workers=1)


def train_args(store: str | Path, vae: str | Path, out: str | Path, steps: int, *extra: str) -> list[str]:
    """`worldsim train` arguments of a tiny CPU run that logs every step."""
    return ["train", f"store={store}", f"vae={vae}", f"out={out}", f"steps={steps}", "frames=4", "batch_size=2",
            "log_every=1", "warmup=2", "device=cpu", *TINY_MODEL, *extra]


def one_line_error(capsys, cli, argv: list[str]) -> str:
    """Run the CLI `cli(argv)` in this process; assert exit status 2 and one line on stderr without a traceback."""
    capsys.readouterr()
    code = cli(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err and err.count("\n") == 1, err
    return err


def _ddp_main(argv: list[str]) -> int:
    """Run `python -m worldsim.cli ARGV` in this process (exactly what `torchrun -m worldsim.cli` does), then save
    this rank's trained (non-EMA) weights as OUT/rank<R>.safetensors so a test can compare the ranks (with
    `adv_weight`, the adversarial critic's weights too, under `critic.`)."""
    from safetensors.torch import save_file

    import worldsim.train.train_dit as T

    made: list[T.WorldModel] = []

    class Recorded(T.WorldModel):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            made.append(self)

    critics: list[T.Adversary] = []

    class RecordedAdversary(T.Adversary):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            critics.append(self)

    T.WorldModel = Recorded
    T.Adversary = RecordedAdversary
    sys.argv = ["worldsim", *argv]
    code = 0
    try:
        runpy.run_module("worldsim.cli", run_name="__main__", alter_sys=True)
    except SystemExit as err:
        code = int(err.code or 0)
    out = next(a.split("=", 1)[1] for a in argv if a.startswith("out="))
    if made:
        sd = {k: v.detach().contiguous().cpu() for k, v in made[0].state_dict().items()}
        for c in critics:
            sd.update({f"critic.{k}": v.detach().contiguous().cpu() for k, v in c.critic.state_dict().items()})
        save_file(sd, str(Path(out) / f"rank{os.environ.get('RANK', '0')}.safetensors"))
    return code


if __name__ == "__main__":
    sys.exit(_ddp_main(sys.argv[1:]))
