"""The headless GL context of each rendering thread.

A GL context is expensive and drivers dislike many per process, so every renderer of a thread shares one,
created on first use. A context is current in one thread only, so a thread that renders (the main thread, or
each play session of `worldsim serve`) gets its own; a renderer must be used on the thread that made it.
`release_context` frees the calling thread's context. EGL is used so no display server is needed; with Mesa
installed this runs on the CPU (llvmpipe), and on a machine with GPUs `device_index` picks one.
"""

from __future__ import annotations

import os
import threading

import moderngl

_CONTEXTS: dict[int, moderngl.Context] = {}  # thread ident -> its context
_DEVICE: int | None = None

_MISSING_HELP = (
    "could not create a headless OpenGL 4.3 context through EGL ({err}). "
    "Install the EGL and Mesa system packages: `apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri "
    "libgles2` (or run `bash scripts/setup.sh`)."
)


class RendererUnavailable(RuntimeError):
    """Raised when no headless OpenGL context can be created on this machine."""


def get_context(device_index: int = 0, cpu_threads: int | None = None) -> moderngl.Context:
    """Return the calling thread's EGL context, creating it on first call in that thread.

    Args:
        device_index: which EGL device (GPU) to render on; ignored by Mesa's CPU renderer, which
            exposes a single device. Every renderer in a process must use the same index.
        cpu_threads: rasteriser threads of Mesa's CPU renderer (llvmpipe), read once at context creation.
            None keeps $LP_NUM_THREADS if set, else 0 (rasterise on the calling thread): for the small frames
            of datasets and RL this is measurably faster (benchmarks/engine_speed.py), and parallelism comes
            from running one env per process. Use more threads for large interactive windows.

    Raises:
        RendererUnavailable: EGL or Mesa is missing, or the driver lacks OpenGL 4.3.
        ValueError: a different device index was requested after the context was created.
    """
    global _DEVICE
    if device_index < 0:
        raise ValueError(f"device_index must be >= 0, got {device_index}")
    if _DEVICE is not None and device_index != _DEVICE:
        raise ValueError(
            f"this process already renders on EGL device {_DEVICE}; one device per process, "
            f"so device_index={device_index} needs a separate process"
        )
    ctx = _CONTEXTS.get(threading.get_ident())
    if ctx is not None:
        return ctx
    if cpu_threads is not None:
        os.environ["LP_NUM_THREADS"] = str(int(cpu_threads))
    else:
        os.environ.setdefault("LP_NUM_THREADS", "0")
    kwargs: dict = {"backend": "egl", "require": 430}
    if device_index:
        kwargs["device_index"] = device_index
    try:
        ctx = moderngl.create_standalone_context(**kwargs)
    except Exception as err:  # glcontext raises plain Exceptions with the loader's message
        raise RendererUnavailable(_MISSING_HELP.format(err=str(err).strip() or type(err).__name__)) from err
    _CONTEXTS[threading.get_ident()] = ctx
    _DEVICE = device_index
    return ctx


def release_context() -> None:
    """Release the calling thread's context (after its renderers are closed); the next call makes a new one."""
    ctx = _CONTEXTS.pop(threading.get_ident(), None)
    if ctx is not None:
        ctx.release()


def renderer_name() -> str:
    """The GL renderer string of this process's context (e.g. 'llvmpipe ...')."""
    return get_context(_DEVICE or 0).info["GL_RENDERER"]


def _fork_guard() -> None:
    # A forked child must not reuse the parent's contexts (EGL state does not survive fork).
    global _DEVICE
    _CONTEXTS.clear()
    _DEVICE = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_fork_guard)
