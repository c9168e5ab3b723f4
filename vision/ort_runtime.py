"""ONNX Runtime for every model the shop runs, with its usage telemetry off.

onnxruntime 1.32 on Linux records usage events for Microsoft by default: a device id and an event
store under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime``, and one more thread in every process
(2.8 MB resident, measured); it skips this only on CI services (``CI`` set). A shop's servers send
nothing to a third party, so ``ORT_DISABLE_TELEMETRY`` is set before onnxruntime is first imported (an
explicit setting in the environment wins).
"""

from __future__ import annotations

import os
from types import ModuleType


def onnxruntime() -> ModuleType:
    """The ``onnxruntime`` module, imported with telemetry off."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime as ort

    return ort
