"""Track: group the per-frame sightings of one vehicle into one pass, voted into one read."""

from edge.track.tracker import PlateTracker

__all__ = ["PlateTracker"]
