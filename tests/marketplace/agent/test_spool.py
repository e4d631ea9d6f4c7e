"""The spool and state files: durable, crash-safe, each record once, and one agent per state dir."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from marketplace.agent.spool import COMPACT_AFTER, RejectedLog, Spool, StateDirBusy, StateDirLock, StateStore


def _record(number: int, booking: str = "b1") -> dict:
    return {
        "id": f"node3-{booking}-{number:04d}",
        "booking": booking,
        "start": f"2026-11-03T10:{number:02d}:00Z",
        "end": f"2026-11-03T10:{number + 1:02d}:00Z",
        "devices": 8,
        "utilization": "0.80",
        "energy_kwh": None,
    }


AT = datetime(2026, 11, 3, 10, 5, tzinfo=UTC)


def test_records_survive_a_new_spool_in_order(tmp_path):
    spool = Spool(tmp_path)
    spool.add([_record(1), _record(2)], {"b1": AT})
    spool.add([_record(3)], {})

    reopened = Spool(tmp_path)

    assert reopened.pending() == [_record(1), _record(2), _record(3)]
    assert reopened.pending(2) == [_record(1), _record(2)]
    assert reopened.cursors() == {"b1": AT}


def test_an_id_is_spooled_once_and_the_first_payload_wins(tmp_path):
    spool = Spool(tmp_path)
    assert spool.add([_record(1)], {}) == 1

    changed = {**_record(1), "devices": 4}
    assert spool.add([_record(1), changed, _record(2)], {}) == 1

    assert Spool(tmp_path).pending() == [_record(1), _record(2)]


def test_remove_drops_only_answered_records_durably(tmp_path):
    spool = Spool(tmp_path)
    spool.add([_record(1), _record(2)], {})
    spool.add([_record(3)], {})

    spool.remove(["node3-b1-0001", "node3-b1-0003", "never-spooled"])

    assert [record["id"] for record in Spool(tmp_path).pending()] == ["node3-b1-0002"]
    assert len(list((tmp_path / "spool").glob("seg-*.jsonl"))) == 1  # the emptied segment is gone


def test_a_torn_temporary_file_from_a_crash_is_ignored_and_cleaned_up(tmp_path):
    spool = Spool(tmp_path)
    spool.add([_record(1)], {"b1": AT})
    # A crash in the middle of writing the next segment leaves only its temporary file, half written.
    torn = tmp_path / "spool" / ".seg-000000000002.jsonl.4242.1.tmp"
    torn.write_text('{"segment": 2, "cursors": {}}\n{"id": "node3-b1-00')

    reopened = Spool(tmp_path)

    assert reopened.pending() == [_record(1)]
    assert not torn.exists()


def test_a_corrupt_segment_is_moved_aside_not_fatal(tmp_path):
    spool = Spool(tmp_path)
    spool.add([_record(1)], {})
    spool.add([_record(2)], {})
    (tmp_path / "spool" / "seg-000000000001.jsonl").write_bytes(b"\x00\x01 not json")

    reopened = Spool(tmp_path)

    assert reopened.pending() == [_record(2)]
    assert (tmp_path / "spool" / "seg-000000000001.jsonl.corrupt").exists()


def test_compaction_keeps_every_record_and_the_latest_cursor(tmp_path):
    spool = Spool(tmp_path)
    for number in range(COMPACT_AFTER + 1):
        spool.add([_record(number % 60, booking=f"b{number // 60}")], {"b1": AT.replace(minute=number % 60)})

    files = list((tmp_path / "spool").glob("seg-*.jsonl"))
    reopened = Spool(tmp_path)

    assert len(files) == 1
    assert len(reopened) == COMPACT_AFTER + 1
    assert reopened.pending() == spool.pending()
    assert reopened.cursors() == {"b1": AT.replace(minute=59)}


def test_a_crash_during_compaction_leaves_duplicates_that_load_once(tmp_path):
    spool = Spool(tmp_path)
    spool.add([_record(1)], {})
    spool.add([_record(2)], {})
    merged = (tmp_path / "spool" / "seg-000000000001.jsonl").read_text()
    # The merged segment was written but the old ones were not deleted yet.
    (tmp_path / "spool" / "seg-000000000003.jsonl").write_text(merged)

    assert [record["id"] for record in Spool(tmp_path).pending()] == ["node3-b1-0001", "node3-b1-0002"]


def test_state_store_round_trips_and_survives_a_corrupt_file(tmp_path):
    store = StateStore(tmp_path)
    assert store.load() == {"format": 1}

    store.save({"cursors": {"b1": "2026-11-03T10:05:00Z"}})
    assert store.load()["cursors"] == {"b1": "2026-11-03T10:05:00Z"}

    (tmp_path / "state.json").write_text('{"cursors": ')
    assert store.load() == {"format": 1}
    assert list(tmp_path.glob("state.corrupt-*.json"))


def test_rejected_log_appends_lines_and_tolerates_a_torn_last_line(tmp_path):
    log = RejectedLog(tmp_path)
    log.append([{"code": "outside_window", "record": _record(1)}])
    log.append([{"code": "unknown_booking", "record": _record(2)}])
    with open(tmp_path / "rejected.jsonl", "a") as handle:
        handle.write('{"code": "torn')

    assert [entry["code"] for entry in log.read()] == ["outside_window", "unknown_booking"]
    assert json.loads((tmp_path / "rejected.jsonl").read_text().splitlines()[0])["record"]["id"] == "node3-b1-0001"


def test_a_state_dir_is_locked_by_one_agent_at_a_time(tmp_path):
    lock = StateDirLock(tmp_path)

    with pytest.raises(StateDirBusy, match="in use by another agent"):
        StateDirLock(tmp_path)

    lock.release()
    StateDirLock(tmp_path).release()
