"""`ssl-zoo` subcommands of this job (filled in by its issue)."""

from __future__ import annotations

import argparse
from typing import Any


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add this module's subcommands to the `ssl-zoo` parser."""
