"""The unit every corpus reader returns and every task consumes (torch-free)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .audio import AudioSegment


@dataclass(frozen=True)
class Example:
    """One labelled utterance (or segment of a file)."""

    id: str
    audio: AudioSegment
    label: Any
