"""Downstream tasks, one module each. ``get_task(name)`` returns the task class."""
from __future__ import annotations

import difflib
import importlib
from typing import Dict, List, Type

from .base import Example, Task

#: task id -> "module:Class"
TASKS: Dict[str, str] = {
    "ks": "superb.downstream.tasks.ks:KeywordSpotting",
    "asr": "superb.downstream.tasks.asr:SpeechRecognition",
    "sid": "superb.downstream.tasks.sid:SpeakerIdentification",
    "asv": "superb.downstream.tasks.asv:SpeakerVerification",
    "er": "superb.downstream.tasks.er:EmotionRecognition",
    "ic": "superb.downstream.tasks.ic:IntentClassification",
    "pr": "superb.downstream.tasks.pr:PhonemeRecognition",
    "qbe": "superb.downstream.tasks.qbe:QueryByExample",
    "sd": "superb.downstream.tasks.sd:SpeakerDiarization",
    "sf": "superb.downstream.tasks.sf:SlotFilling",
    "se": "superb.downstream.tasks.se:SpeechEnhancement",
    "ss": "superb.downstream.tasks.ss:SourceSeparation",
    "vc": "superb.downstream.tasks.vc:VoiceConversion",
    "st": "superb.downstream.tasks.st:SpeechTranslation",
    "ood_asr": "superb.downstream.tasks.ood_asr:OutOfDomainASR",
}


class UnknownTaskError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


def get_task(name: str) -> Type[Task]:
    key = name.strip().lower()
    if key not in TASKS:
        close = difflib.get_close_matches(key, list(TASKS), n=3, cutoff=0.4)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UnknownTaskError(f"unknown task {name!r}.{hint} Known tasks: {', '.join(sorted(TASKS))}")
    module, cls = TASKS[key].split(":")
    return getattr(importlib.import_module(module), cls)


def list_tasks() -> List[Type[Task]]:
    return [get_task(k) for k in sorted(TASKS)]


__all__ = ["Example", "Task", "TASKS", "UnknownTaskError", "get_task", "list_tasks"]
