"""executor=ray: the same job on Ray actors gives the same store (digest) as the process executor; clear errors."""

from __future__ import annotations

import sys

import pytest

import store as S
from datagen.job import ExecutorError, run
from datagen.rollout import Job

JOB = Job(env_id="worldsim/Voxel-v0", env_kwargs={"task": "explore"}, width=32, height=24, steps=12, episodes=3,
          seed=1)


def test_ray_executor_gives_the_process_executors_digest(tmp_path):
    ray = pytest.importorskip("ray")
    ref = run(JOB, str(tmp_path / "process"), workers=1)["digest"]
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning")
    try:
        attrs = run(JOB, f"file://{tmp_path / 'ray'}", workers=2, executor="ray")
    finally:
        ray.shutdown()
    assert attrs["digest"] == ref
    assert S.validate(str(tmp_path / "ray"))["episodes"] == 3
    assert not (tmp_path / "ray" / "staging").exists()


def test_ray_executor_refuses_a_memory_store():
    pytest.importorskip("ray")
    with pytest.raises(ExecutorError, match="memory:// store lives in one process"):
        run(JOB, "memory://ray-test", workers=2, executor="ray")


def test_missing_ray_and_unknown_executor_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if Ray were not installed
    with pytest.raises(ExecutorError, match=r'pip install "worldsim\[ray\]"'):
        run(JOB, str(tmp_path / "s"), workers=2, executor="ray")
    with pytest.raises(ExecutorError, match="unknown executor 'dask'"):
        run(JOB, str(tmp_path / "s"), executor="dask")
    assert not (tmp_path / "s").exists()  # refused before the store was created
