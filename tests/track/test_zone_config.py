"""Zone polygons in the track config are checked once, at start-up, with errors that say what is allowed."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from edge.config.model import TrackConfig


def test_a_zone_needs_three_corners() -> None:
    with pytest.raises(ValidationError, match="a zone needs at least 3"):
        TrackConfig.model_validate({"zones": [{"name": "lane-1", "polygon": [[0, 0], [1, 1]]}]})


def test_corners_are_shares_of_the_frame() -> None:
    with pytest.raises(ValidationError, match=r"\[\[640.0, 10.0\]\] are outside 0..1"):
        TrackConfig.model_validate({"zones": [{"name": "lane-1", "polygon": [[0, 0], [640, 10], [0, 1]]}]})


def test_zone_names_are_unique_and_kinds_are_lane_or_exclude() -> None:
    square = [[0, 0], [1, 0], [1, 1]]
    with pytest.raises(ValidationError, match=r"repeated: \['a'\]"):
        TrackConfig.model_validate({"zones": [{"name": "a", "polygon": square}, {"name": "a", "polygon": square}]})
    with pytest.raises(ValidationError, match="'lane' or 'exclude'"):
        TrackConfig.model_validate({"zones": [{"name": "a", "kind": "car-park", "polygon": square}]})
