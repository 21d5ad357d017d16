"""Track: group the per-frame sightings of one vehicle into one pass, voted into one read.

``PlateTracker`` (tracker.py) associates sightings and decides when a pass is published;
``vote`` (vote.py) combines a track's reads character by character; motion.py holds the pure
geometry (box prediction, direction and angle, zones, sharpness).
"""

from edge.track.tracker import PlateTracker

__all__ = ["PlateTracker"]
