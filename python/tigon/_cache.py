"""The on-disk kernel cache (compiled kernels and tuning decisions)."""
import os
import pathlib


def cache_dir() -> pathlib.Path:
    """$TIGON_CACHE_DIR, else $XDG_CACHE_HOME/tigon, else ~/.cache/tigon."""
    if os.environ.get("TIGON_CACHE_DIR"):
        return pathlib.Path(os.environ["TIGON_CACHE_DIR"])
    if os.environ.get("XDG_CACHE_HOME"):
        return pathlib.Path(os.environ["XDG_CACHE_HOME"]) / "tigon"
    return pathlib.Path.home() / ".cache" / "tigon"


def clear_cache() -> int:
    """Removes every cache entry (and leftovers of interrupted writes); returns how many.
    Kernels already loaded in this process stay loaded."""
    d = cache_dir()
    if not d.is_dir():
        return 0
    removed = 0
    for p in d.iterdir():
        if p.suffix == ".tgc" or p.name.startswith(".tmp-"):
            p.unlink(missing_ok=True)
            removed += 1
    return removed
