"""Event-triggered uploads: upload only when the local update is significant."""

from __future__ import annotations

import math


def should_upload(delta_norm: float, reference_norm: float, threshold: float, mode: str) -> bool:
    """Whether a UE uploads its update rather than a short "no update" message.

    Args:
        delta_norm: ||w_local - w_last_uploaded||, the norm of the change since the UE's last upload.
        reference_norm: ||w_last_uploaded|| (used by the relative mode).
        threshold: the configured threshold (``event_trigger.threshold``), >= 0.
        mode: ``"absolute"``: upload iff ``delta_norm > threshold``; ``"relative"``: upload iff
            ``delta_norm > threshold * reference_norm``.

    A NaN or infinite ``delta_norm`` always uploads (the BS, not the trigger, rejects bad updates).
    """
    if not math.isfinite(delta_norm):
        return True
    if mode == "absolute":
        return delta_norm > threshold
    if mode == "relative":
        return delta_norm > threshold * reference_norm
    raise ValueError(f"unknown event-trigger mode {mode!r}; use 'absolute' or 'relative'")
