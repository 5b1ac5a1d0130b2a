"""The errors fedwave raises on bad input.

Every error a user can cause (a config, a dataset, a payload) derives from :class:`FedwaveError`; the
command line prints its message without a traceback. Messages say what is wrong and how to fix it.
"""


class FedwaveError(Exception):
    """Base class of every error caused by input to fedwave (config, data, payloads)."""


class ConfigError(FedwaveError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


class DatasetUnavailable(FedwaveError):
    """A dataset's files are missing; the message says how to install them."""


class PayloadError(FedwaveError, ValueError):
    """Bytes handed to a codec's ``decode`` were not produced by that codec's ``encode``.

    Raised for truncated, corrupted, mislabelled or absurdly sized payloads. The base station treats
    the update that carried them as lost for the round.
    """
