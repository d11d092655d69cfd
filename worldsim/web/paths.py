"""The folders `worldsim serve` may read, and the one check every request path goes through."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from worldsim.errors import InputError


class Forbidden(Exception):
    """A request path that leaves the roots (`..`, an absolute path, a symlink out): answered with 403."""


class NotFound(Exception):
    """A request path under a root that does not exist: answered with 404."""


@dataclass(frozen=True)
class Roots:
    """Resolved root folders; an item is named by its root's index and a relative POSIX path (`0/data/voxel64`)."""

    dirs: tuple[Path, ...]

    @classmethod
    def of(cls, paths: list[str] | tuple[str, ...]) -> Roots:
        if not paths:
            raise InputError("give at least one folder to serve: worldsim serve root=DIR (or root=[DIR1,DIR2])")
        dirs = []
        for p in paths:
            d = Path(str(p)).expanduser()
            if not d.is_dir():
                raise InputError(f"root={p} is not a folder")
            dirs.append(d.resolve())
        return cls(tuple(dirs))

    def resolve(self, root: int, rel: str) -> Path:
        """The real path of `rel` under root `root`. Refuses (Forbidden) an unknown root, an absolute path, a `..`
        part, a NUL byte, and anything whose real path (symlinks followed) is outside that root."""
        if not 0 <= root < len(self.dirs):
            raise Forbidden(f"no root {root}")
        if "\x00" in rel or "\\" in rel:
            raise Forbidden("bad character in path")
        pure = PurePosixPath(rel)
        if pure.is_absolute() or ".." in pure.parts:
            raise Forbidden(f"{rel!r} leaves the served folders")
        base = self.dirs[root]
        path = Path(os.path.realpath(base.joinpath(*pure.parts)))
        if path != base and base not in path.parents:
            raise Forbidden(f"{rel!r} leaves the served folders")
        if not path.exists():
            raise NotFound(f"{rel!r} does not exist")
        return path
