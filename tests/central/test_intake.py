"""The centre's intake: a message that could mean two things, or names another read, is a dead letter."""

from __future__ import annotations

import json

from support.reads import SettableClock, make_read, node_config

from edge.central.intake import Intake
from edge.central.records import ReadRecord, Rejected

NODE = node_config("site1", "cam1")
TOPIC = "anpr/site1/cam1/reads"


def _judge(payload: bytes) -> object:
    return Intake(SettableClock()).judge(TOPIC, payload)


def test_a_read_whose_id_names_another_seq_is_a_dead_letter_naming_both() -> None:
    body = json.loads(make_read(NODE, 5).payload)
    assert isinstance(_judge(json.dumps(body).encode()), ReadRecord)
    body["seq"] = 6  # was stored: receivers dropping repeats by id then lose read 5 or this one
    record = _judge(json.dumps(body).encode())
    assert isinstance(record, Rejected)
    assert "names site/camera/seq site1/cam1/5" in record.reason and "site1/cam1/6" in record.reason


def test_a_key_given_twice_is_a_dead_letter_whatever_its_values() -> None:
    text = make_read(NODE, 7).payload.decode()
    for twice in ('"plate": "AB07CDE", "plate": "ZZ99ZZZ"', '"plate": "AB07CDE", "plate": "AB07CDE"'):
        payload = text.replace('"plate": "AB07CDE"', twice).encode()  # was: the last value won
        record = _judge(payload)
        assert isinstance(record, Rejected)
        assert "key 'plate' appears twice" in record.reason
