"""Contract suites you can run on your own plug-ins: the checks fedwave's own codecs and aggregators pass.

Call a checker directly (it raises :class:`ContractError` listing every broken rule, in words)::

    from fedwave.testing import check_codec
    check_codec("mypkg.codecs:Int8Codec", nmse_bound=1e-3)

or subclass a suite in your tests; pytest then runs one test per rule::

    from fedwave.testing import CodecContract

    class TestInt8(CodecContract):
        codec = "mypkg.codecs:Int8Codec"
        nmse_bound = 1e-3
"""

from fedwave.testing.aggregators import AggregatorContract, check_aggregator
from fedwave.testing.codecs import CodecContract, check_codec, sample_update
from fedwave.testing.common import ContractError

__all__ = [
    "AggregatorContract",
    "CodecContract",
    "ContractError",
    "check_aggregator",
    "check_codec",
    "sample_update",
]
