"""ChronoTrack Live (timing/scoring): adapter, field mapping and simulator."""

from racehub.providers.chronotrack.client import ChronoTrackAdapter

__all__ = ["ChronoTrackAdapter"]
