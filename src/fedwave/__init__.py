"""fedwave: federated learning over a simulated wireless cell.

The path of one round, module by module::

    data (partition) -> users (local update) -> codecs (encode) -> channel/sim (air, clock)
      -> server (decode, aggregate) -> evaluate -> report (record, plot)
"""

from fedwave.errors import ConfigError, DatasetUnavailable, FedwaveError, PayloadError

__version__ = "0.1.0"

__all__ = ["ConfigError", "DatasetUnavailable", "FedwaveError", "PayloadError", "__version__"]
