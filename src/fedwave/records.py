"""What a run records: one :class:`RoundRecord` per round and one :class:`UEEvent` per UE and round.

The round loop produces these; the results store, tables and plots consume them. Times are simulated
seconds (never host time), sizes are bytes actually produced by the codecs, energies are joules.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: Outcomes of one UE in one round (``UEEvent.status``).
UE_STATUSES = (
    "arrived",  # the update reached the BS and was aggregated
    "dropped",  # arrived after the round closed (deadline / first_k) and was discarded
    "lost",  # every transmission attempt failed (packet errors)
    "skipped",  # event-triggered: the UE sent a short "no update" message instead
    "rejected",  # the update decoded but held NaN or Inf: never aggregated
    "undecodable",  # the payload did not decode (PayloadError): treated as lost
    "silent",  # the UE received the model but never answered (a fault)
    "truncated",  # AirComp: its fading was below the truncation threshold, it stayed silent that round
    "rolled_back",  # aggregated, but the BS undid that aggregation (non-finite or exploding model)
    "unaggregated",  # arrived, but the round had too few updates for server.aggregator: no step
)


@dataclass
class RoundRecord:
    """Everything recorded about one round (simulated seconds, bytes, joules).

    The time split follows the UE that closed the round: ``time_downlink`` (receiving the model),
    ``time_compute``, ``time_queue`` (waiting for the TDMA channel or a unicast turn), ``time_uplink``
    (airtime, all attempts) and ``time_wait`` (the rest); the five sum to ``t_end - t_start``. Counts:
    ``arrived`` updates were aggregated; the others say why an update was not.
    """

    round: int
    t_start: float = 0.0
    t_end: float = 0.0
    time_compute: float = 0.0
    time_uplink: float = 0.0
    time_downlink: float = 0.0
    time_queue: float = 0.0
    time_wait: float = 0.0
    bytes_up: int = 0
    bytes_down: int = 0
    selected: int = 0
    arrived: int = 0
    dropped: int = 0
    lost: int = 0
    skipped: int = 0
    rejected: int = 0
    silent: int = 0
    rolled_back: int = 0
    samples: int = 0
    energy_j: float = 0.0
    accuracy: float = float("nan")
    loss: float = float("nan")
    epsilon: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def duration(self) -> float:
        """Simulated length of the round in seconds."""
        return self.t_end - self.t_start

    def as_dict(self) -> dict[str, Any]:
        """A flat dict (``extra`` merged in with an ``extra_`` prefix)."""
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        d.update({f"extra_{k}": v for k, v in extra.items()})
        return d


@dataclass
class UEEvent:
    """One UE's part in one round: phase times (simulated s), bytes, radio figures, energy (J).

    Phase boundaries: the UE receives the broadcast during ``[t_download_start, t_download_end]``,
    computes during ``[t_compute_start, t_compute_end]``, waits for the channel until
    ``t_upload_start`` and transmits until ``t_upload_end`` (all attempts included). ``rate_up_bps`` is
    the mean rate achieved (bits of all attempts / airtime), ``snr_up_db`` the mean (large-scale) SNR of
    the UE's band (at the upload's start: with ``cell.mobility`` it follows the UE's distance and
    shadowing); ``behaviour`` is ``honest`` or the fault or attack the UE was given; ``bandwidth_hz``
    is the uplink band the clock gave it (Hz) and ``cpu_hz`` its CPU frequency (``cycles`` devices, else 0).
    """

    round: int
    ue: int
    status: str
    t_download_start: float = 0.0
    t_download_end: float = 0.0
    t_compute_start: float = 0.0
    t_compute_end: float = 0.0
    t_upload_start: float = 0.0
    t_upload_end: float = 0.0
    bytes_up: int = 0
    bytes_down: int = 0
    samples: int = 0
    rate_up_bps: float = 0.0
    snr_up_db: float = 0.0
    attempts: int = 0
    staleness: int = 0
    energy_compute_j: float = 0.0
    energy_radio_j: float = 0.0
    behaviour: str = "honest"
    bandwidth_hz: float = 0.0
    cpu_hz: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """A flat dict of the fields (all scalars: no deep copy needed, unlike ``dataclasses.asdict``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
