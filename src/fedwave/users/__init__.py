"""The user (client) layer of users.md: ``construct_user`` and the three user types."""

from fedwave.users.aggregate import MultiUserAggregate
from fedwave.users.base import User, make_setup
from fedwave.users.config import LocalDPConfig, UserConfig
from fedwave.users.construct import USER_TYPES, construct_user
from fedwave.users.datasource import UserDataSource
from fedwave.users.multi import UserMultiStep
from fedwave.users.single import UserSingleStep

__all__ = [
    "USER_TYPES",
    "LocalDPConfig",
    "MultiUserAggregate",
    "User",
    "UserConfig",
    "UserDataSource",
    "UserMultiStep",
    "UserSingleStep",
    "construct_user",
    "make_setup",
]
