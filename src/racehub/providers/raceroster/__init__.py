"""Race Roster (registration): adapter, field mapping and simulator."""

from racehub.providers.raceroster.client import RaceRosterAdapter

__all__ = ["RaceRosterAdapter"]
