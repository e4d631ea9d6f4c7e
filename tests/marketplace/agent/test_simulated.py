"""The simulated collector: deterministic slot records inside the booking window, devices tagged with bookings."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from marketplace.agent.collectors import SimulatedCollector
from marketplace.agent.collectors.simulated import slot_utilization
from marketplace.agent.config import SimulatedConfig
from marketplace.agent.model import Allocation

BOOKING = "b7d2c4e1-aaaa-4bbb-8ccc-000000000001"


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def _allocation(start: datetime, end: datetime, devices: int = 8, booking_id: str = BOOKING) -> Allocation:
    return Allocation(
        id=booking_id,
        offering="h100",
        devices=devices,
        start=start,
        end=end,
        status="active",
        consumer="blue-heron",
        action="provision",
        slurm_account="bk-" + booking_id[:6],
    )


def _spans(batch):
    return [(record["id"], record["start"], record["end"]) for record in batch.records]


def test_records_cover_complete_five_minute_slots_from_the_booking_start(make_config, clock):
    collector = SimulatedCollector(make_config(), {}, clock)
    allocation = _allocation(_utc(2026, 11, 3, 10, 2), _utc(2026, 11, 3, 10, 28))

    batch = collector.usage([allocation], {}, _utc(2026, 11, 3, 10, 17, 30))

    assert _spans(batch) == [
        ("node3-b7d2c4e1-20261103T1000Z", "2026-11-03T10:02:00Z", "2026-11-03T10:05:00Z"),
        ("node3-b7d2c4e1-20261103T1005Z", "2026-11-03T10:05:00Z", "2026-11-03T10:10:00Z"),
        ("node3-b7d2c4e1-20261103T1010Z", "2026-11-03T10:10:00Z", "2026-11-03T10:15:00Z"),
    ]  # the 10:15 slot is still running
    assert batch.cursors == {BOOKING: _utc(2026, 11, 3, 10, 15)}

    rest = collector.usage([allocation], batch.cursors, _utc(2026, 11, 3, 11))
    assert _spans(rest) == [
        ("node3-b7d2c4e1-20261103T1015Z", "2026-11-03T10:15:00Z", "2026-11-03T10:20:00Z"),
        ("node3-b7d2c4e1-20261103T1020Z", "2026-11-03T10:20:00Z", "2026-11-03T10:25:00Z"),
        ("node3-b7d2c4e1-20261103T1025Z", "2026-11-03T10:25:00Z", "2026-11-03T10:28:00Z"),
    ]  # never past the booking end
    assert collector.usage([allocation], rest.cursors, _utc(2026, 11, 3, 12)).records == []


def test_a_slot_yields_the_same_record_whoever_computes_it_and_whenever(make_config, clock):
    allocation = _allocation(_utc(2026, 11, 3, 9), _utc(2026, 11, 3, 18))
    first = SimulatedCollector(make_config(), {}, clock).usage([allocation], {}, _utc(2026, 11, 3, 10))
    again = SimulatedCollector(make_config(), {}, clock).usage([allocation], {}, _utc(2026, 11, 3, 10, 4))

    assert len(first.records) == 12
    assert first.records == again.records


def test_record_values_are_plausible_and_derived_from_the_slot(make_config, clock):
    collector = SimulatedCollector(make_config(), {}, clock)
    allocation = _allocation(_utc(2026, 11, 3, 9), _utc(2026, 11, 3, 18))

    records = collector.usage([allocation], {}, _utc(2026, 11, 3, 15)).records

    for record in records:
        utilization = Decimal(record["utilization"])
        assert Decimal("0.55") <= utilization <= Decimal("0.98")
        expected_energy = (8 * Decimal("0.7") * Decimal(300) / 3600 * utilization).quantize(Decimal("0.001"))
        assert Decimal(record["energy_kwh"]) == expected_energy
        assert record["devices"] == 8
    assert len({record["utilization"] for record in records}) > 5  # it varies from slot to slot
    assert records[0]["utilization"] == str(slot_utilization(1, BOOKING, _utc(2026, 11, 3, 9)))


def test_backfill_starts_at_a_whole_slot_within_the_horizon(make_config, clock):
    collector = SimulatedCollector(make_config(simulated=SimulatedConfig(backfill_hours=1)), {}, clock)
    allocation = _allocation(_utc(2026, 11, 1), _utc(2026, 11, 5))

    records = collector.usage([allocation], {}, _utc(2026, 11, 3, 12, 2, 30)).records

    assert records[0]["start"] == "2026-11-03T11:05:00Z"  # 11:02:30 rounded up to the next slot
    assert records[-1]["end"] == "2026-11-03T12:00:00Z"
    assert len(records) == 11


def test_devices_carry_the_booking_they_serve(make_config, clock):
    collector = SimulatedCollector(make_config(simulated=SimulatedConfig(devices=4, seed=7)), {}, clock)
    allocation = _allocation(_utc(2026, 11, 3, 9), _utc(2026, 11, 3, 18), devices=3)

    access = collector.provision(allocation)
    devices = collector.devices()

    assert access == {
        "host": "sim-node3.local",
        "ssh": "ssh blue-heron@sim-node3.local",
        "slurm_account": "bk-b7d2c4",
    }
    assert [device.booking for device in devices] == [BOOKING, BOOKING, BOOKING, None]
    assert all(device.healthy and device.model == "NVIDIA H100 80GB HBM3" for device in devices)
    for device in devices[:3]:
        assert Decimal("0.55") <= device.utilization <= Decimal("0.98")
    assert devices[3].utilization == 0
    assert len({device.uuid for device in devices}) == 4

    collector.release(allocation)
    assert [device.booking for device in collector.devices()] == [None] * 4
