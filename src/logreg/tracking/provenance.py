"""Where a run comes from: the project root, the git commit and the hashes of its files.

Plain standard library: nothing here imports mlflow, so the stages can record
provenance (in ``reports/`` and the model's metadata) with tracking switched off.
"""

from __future__ import annotations

import functools
import hashlib
import os
import subprocess
from pathlib import Path


def project_root() -> Path:
    """The project's own root, absolute: ``$DVC_ROOT`` when DVC runs the stage, else cwd.

    ``dvc exp run --queue`` / ``--temp`` run stages in a throwaway copy under
    ``<project>/.dvc/tmp/exps/``, and ``$DVC_ROOT`` is that copy. The store and the
    artifacts must outlive it, so the root is the project that holds the copy.
    """
    root = Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()
    parts = root.parts
    for index in range(len(parts) - 3):
        if parts[index : index + 3] == (".dvc", "tmp", "exps"):
            return Path(*parts[:index])
    return root


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The file's SHA-256, hex; a file unchanged since it was last hashed is not read again.

    A stage tags its run with the hash of a split and logs the split as a dataset with
    the same hash as its digest: hundreds of MB read once, not twice.
    """
    file = Path(path).resolve()
    if file.is_dir():  # a partitioned split (engines.partitions): its parts' digests, in order
        parts = sorted(file.glob("part-*.parquet"))
        listing = "".join(f"{part.name} {file_sha256(part)}\n" for part in parts)
        return hashlib.sha256(listing.encode()).hexdigest()
    stat = file.stat()
    return _sha256(file, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(file: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def git_info(root: Path) -> dict[str, str]:
    """Commit and dirty flag of the repository at ``root``; empty outside git."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    sha = commit.stdout.strip()
    info = {"git.commit": sha, "mlflow.source.git.commit": sha}
    if status.returncode == 0:
        info["git.dirty"] = str(bool(status.stdout.strip())).lower()
    return info
