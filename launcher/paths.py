"""Where launcher keeps its files (XDG through platformdirs). Overridable for tests."""
from __future__ import annotations

import os
from pathlib import Path


def _dirs():
    import platformdirs

    return platformdirs.PlatformDirs("launcher", appauthor=False)


def config_dir() -> Path:
    env = os.environ.get("LAUNCHER_CONFIG_DIR")
    return Path(env) if env else Path(_dirs().user_config_dir)


def state_dir() -> Path:
    env = os.environ.get("LAUNCHER_STATE_DIR")
    return Path(env) if env else Path(_dirs().user_state_dir)


def cache_dir() -> Path:
    env = os.environ.get("LAUNCHER_CACHE_DIR")
    return Path(env) if env else Path(_dirs().user_cache_dir)


def shipped_dir() -> Path:
    """Recipes and hosts shipped with the package (wheel) or the repo (editable install)."""
    here = Path(__file__).resolve().parent
    packaged = here / "_shipped"
    if packaged.is_dir():
        return packaged
    return here.parent
