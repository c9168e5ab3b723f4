"""What the two trainers share (:mod:`vision.parser_train`, :mod:`vision.embedder_train`): one
configuration type, the data a run trains on, and how a new run is named.

Each trainer's configuration extends :class:`TrainConfig` with its own fields. Its :meth:`~TrainConfig.to_json`
is what a model card saves under ``"settings"``, and :meth:`~TrainConfig.from_json` reads it back (to
resume a run): the saved keys are the field names, so cards written before stay readable.
"""

from __future__ import annotations

import time
import typing
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Self


@dataclass
class TrainConfig:
    """A training run's settings: what every trainer has (each subclass sets its own defaults)."""

    epochs: int = 1
    batch_size: int = 1
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0

    def time_limit_s(self) -> float | None:
        """The run's time budget in seconds (None: none)."""
        return None

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON values (tuples become lists), keyed by field name."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The settings :meth:`to_json` saved (lists back to tuples where the field is a tuple)."""
        hints = typing.get_type_hints(cls)
        values = dict(data)
        for f in fields(cls):
            if f.name in values and typing.get_origin(hints[f.name]) is tuple:
                values[f.name] = tuple(values[f.name])
        return cls(**values)


@dataclass
class TrainData:
    """What a run trains on: each trainer adds its samples; ``sources`` says where they came from
    (written to the model card)."""

    sources: list[str] = field(default_factory=list)


def new_version(prefix: str, stamp: str = "%Y%m%d-%H%M%S") -> str:
    """A new run's version name: ``prefix`` and the time it starts (versions sort by time)."""
    return prefix + time.strftime(stamp)
