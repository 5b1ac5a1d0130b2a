"""The simulated clock: SimPy processes for the UEs and the BS, round policies, the driver protocol.

Start with :class:`Clock` and :class:`WirelessConfig`; the FL side implements :class:`Driver`.

A round (module by module): :mod:`.rounds` (or :mod:`.asyncfl`) asks the driver to select UEs, the BS
sends the model (:mod:`.ue` downlinks: broadcast at the worst receiver's rate, or unicasts one after
another), each UE's process computes (device time from :mod:`fedwave.devices`), waits for the channel
(TDMA, :mod:`.fifo`) and uploads (airtime x attempts, :mod:`fedwave.channel`), and the policy's BS
process (:mod:`.policies`) closes the round. Then ``Driver.aggregate`` and ``Driver.end_round`` get the
:class:`~fedwave.records.RoundRecord` built by :mod:`.timeline`.

Accounting (see :mod:`.timeline`): the time split follows the critical path, the UE whose arrival (or
loss) closed the round, and sums to the round's duration; ``bytes_up`` counts the payload bytes of every
message put on the air (headers and retransmissions cost airtime, not bytes); UEs still busy when a
round closes are "dropped", their timeline and energy cut at the close.
"""

from fedwave.sim.clock import Clock
from fedwave.sim.config import WirelessConfig
from fedwave.sim.describe import CellRow, describe_cell, format_cell
from fedwave.sim.policies import POLICIES, Policy, register_policy
from fedwave.sim.protocol import Arrival, Driver, LocalResult
from fedwave.sim.trigger import should_upload

__all__ = [
    "POLICIES",
    "Arrival",
    "CellRow",
    "Clock",
    "Driver",
    "LocalResult",
    "Policy",
    "WirelessConfig",
    "describe_cell",
    "format_cell",
    "register_policy",
    "should_upload",
]
