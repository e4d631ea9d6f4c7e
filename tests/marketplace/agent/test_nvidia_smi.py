"""The nvidia-smi collector: the query parser against the real sample, malformed output, GPU assignment, usage."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from marketplace.agent.collectors import CollectorError, NvidiaSmiCollector, decode_output, parse_query_gpu
from marketplace.agent.config import NvidiaSmiConfig
from marketplace.agent.model import Allocation
from tests.marketplace.agent.conftest import SAMPLES, fake_command

SAMPLE = (SAMPLES / "nvidia-smi-query-gpu.csv").read_text()
BOOKING = "7c1e9a52-0000-4000-8000-000000000001"


def test_sample_parses_into_eight_devices_with_fractions():
    devices = parse_query_gpu(SAMPLE)

    assert [device.index for device in devices] == list(range(8))
    first = devices[0].to_heartbeat()
    assert first == {
        "index": 0,
        "uuid": "GPU-3b5e2c1a-8f0d-4c52-9d3e-1a2b3c4d5e01",
        "model": "NVIDIA H100 80GB HBM3",
        "utilization": "0.97",
        "memory_used_mb": 71234,
        "memory_total_mb": 81559,
        "healthy": True,
        "booking": None,
    }
    assert [device.to_heartbeat()["utilization"] for device in devices] == [
        "0.97", "0.95", "0.00", None, "0.88", "0.91", "0.12", "0.99"
    ]  # fmt: skip
    assert devices[0].power_w == Decimal("655.12")


def test_unreadable_device_is_unhealthy_with_null_readings():
    device = parse_query_gpu(SAMPLE)[3]

    assert device.healthy is False
    assert device.utilization is None
    assert device.memory_used_mb is None
    assert device.memory_total_mb == 81559
    assert device.power_w is None
    assert sum(1 for device in parse_query_gpu(SAMPLE) if device.healthy) == 7


def test_not_supported_power_keeps_the_device_healthy_and_whitespace_and_blank_lines_are_ignored():
    text = "\n  0 ,GPU-a ,  NVIDIA A800 80GB PCIe , 50 , 100 , 81920 , [Not Supported]  \n\n"

    (device,) = parse_query_gpu(text)

    assert device.healthy is True
    assert device.power_w is None
    assert device.model == "NVIDIA A800 80GB PCIe"
    assert device.to_heartbeat()["utilization"] == "0.50"


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        (SAMPLE + "8, GPU-x, NVIDIA H100, 97, 1\n", 9, "found 5 comma-separated values, expected 7"),
        ("0, GPU-a, H100, ninety, 1, 2, 3\n", 1, "utilization.gpu: 'ninety' is not a number"),
        ("0, GPU-a, H100, 50, 1.5, 2, 3\n", 1, "memory.used: 1.5 is not a whole number"),
        ("0, GPU-a, H100, 150, 1, 2, 3\n", 1, "over 100%"),
        ("0, GPU-a, H100, -5, 1, 2, 3\n", 1, "not a non-negative number"),
        ("x, GPU-a, H100, 5, 1, 2, 3\n", 1, "not a device index"),
        ("0, GPU-a, H100, 5, 1, 2, 3\n\n0, GPU-b, H100, 5, 1, 2, 3\n", 3, "index 0 appears twice"),
        ("0, GPU-a, H100, NaN, 1, 2, 3\n", 1, "not a non-negative number"),
        ("", 1, "no device in the output"),
        ("\n \n", 1, "no device in the output"),
        ("\x7fELF\x02\x01\x01garbage\n", 1, "found 1 comma-separated values, expected 7"),
    ],
)
def test_malformed_output_raises_a_collector_error_naming_the_line(text, line, fragment):
    with pytest.raises(CollectorError) as caught:
        parse_query_gpu(text)

    assert caught.value.line == line
    assert fragment in str(caught.value)
    assert f"nvidia-smi line {line}:" in str(caught.value)


def test_binary_junk_is_refused_before_parsing_with_its_line():
    with pytest.raises(CollectorError) as caught:
        decode_output(b"0, GPU-a, H100, 5, 1, 2, 3\n\xff\xfe\x00junk", what="nvidia-smi")
    assert caught.value.line == 2
    assert "not text" in str(caught.value)

    with pytest.raises(CollectorError) as caught:
        decode_output(b"ok\nok\nnul\x00here", what="nvidia-smi")
    assert caught.value.line == 3


def _collector(make_config, tmp_path, clock, output=SAMPLE, status=0):
    command = fake_command(tmp_path, output, status=status, name="nvidia-smi")
    config = make_config(collector="nvidia-smi", nvidia_smi=NvidiaSmiConfig(command=command))
    return NvidiaSmiCollector(config, {}, clock)


def _allocation(devices: int, booking_id: str = BOOKING) -> Allocation:
    return Allocation(
        id=booking_id,
        offering="h100",
        devices=devices,
        start=datetime(2026, 11, 3, 10, tzinfo=UTC),
        end=datetime(2026, 11, 3, 18, tzinfo=UTC),
        status="confirmed",
        consumer="blue-heron",
        action="provision",
    )


def test_the_command_is_run_with_the_query(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock)

    assert len(collector.devices()) == 8

    arguments = (tmp_path / "nvidia-smi.args").read_text().split()
    assert arguments == [
        "--query-gpu=index,uuid,name,utilization.gpu,memory.used,memory.total,power.draw",
        "--format=csv,noheader,nounits",
    ]


def test_provision_assigns_free_healthy_gpus_and_the_heartbeat_shows_them(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock)

    first = collector.provision(_allocation(4))
    second = collector.provision(_allocation(4, "2f441000-0000-4000-8000-000000000002"))

    assert first == {"host": "node3.lakeside.example", "gpus": "0,1,2,4", "cuda_visible_devices": "0,1,2,4"}
    assert second["gpus"] == "5,6,7"  # device 3 is unhealthy; only three healthy GPUs were left
    assert collector.provision(_allocation(4)) == first  # provisioning again changes nothing
    bookings = [device.booking for device in collector.devices()]
    assert bookings[:3] == [BOOKING] * 3 and bookings[3] is None


def test_provision_fails_when_no_healthy_gpu_is_free(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock)
    collector.provision(_allocation(8))

    with pytest.raises(CollectorError, match="no free healthy GPU"):
        collector.provision(_allocation(1, "2f441000-0000-4000-8000-000000000002"))

    collector.release(_allocation(8))
    assert collector.provision(_allocation(1, "2f441000-0000-4000-8000-000000000002"))["gpus"] == "0"


def test_usage_covers_the_interval_since_the_cursor_with_mean_utilization_and_energy(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock)
    allocation = _allocation(2)
    clock.now = datetime(2026, 11, 3, 11, 0, tzinfo=UTC)
    collector.provision(allocation)  # GPUs 0 and 1: 97% and 95%, 655.12 W and 648.70 W

    batch = collector.usage([allocation], {}, datetime(2026, 11, 3, 11, 30, tzinfo=UTC))

    assert batch.records == [
        {
            "id": "node3-7c1e9a52-20261103T110000Z-20261103T113000Z",
            "booking": BOOKING,
            "start": "2026-11-03T11:00:00Z",
            "end": "2026-11-03T11:30:00Z",
            "devices": 2,
            "utilization": "0.96",
            "energy_kwh": "0.652",  # (655.12 + 648.70) W x 0.5 h
        }
    ]
    assert batch.cursors == {BOOKING: datetime(2026, 11, 3, 11, 30, tzinfo=UTC)}

    later = collector.usage([allocation], batch.cursors, datetime(2026, 11, 3, 11, 31, tzinfo=UTC))
    assert [(record["start"], record["end"]) for record in later.records] == [
        ("2026-11-03T11:30:00Z", "2026-11-03T11:31:00Z")
    ]
    assert collector.usage([allocation], batch.cursors | later.cursors, later.cursors[BOOKING]).records == []


def test_usage_of_an_unreadable_gpu_has_no_energy_and_never_passes_the_booking_end(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock)
    allocation = _allocation(1)
    collector.state["assignments"] = {BOOKING: [3]}  # assigned while healthy, unreadable now
    collector.state["provisioned_at"] = {BOOKING: "2026-11-03T17:00:00Z"}

    (record,) = collector.usage([replace(allocation)], {}, datetime(2026, 11, 3, 19, tzinfo=UTC)).records

    assert (record["start"], record["end"]) == ("2026-11-03T17:00:00Z", "2026-11-03T18:00:00Z")
    assert record["utilization"] is None
    assert record["energy_kwh"] is None


def test_a_failing_command_is_a_collector_error(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock, output="", status=9)

    with pytest.raises(CollectorError, match="exited with status 9: failure from nvidia-smi"):
        collector.devices()

    missing = NvidiaSmiCollector(
        make_config(nvidia_smi=NvidiaSmiConfig(command=(str(tmp_path / "no-such-binary"),))), {}, clock
    )
    with pytest.raises(CollectorError, match="command not found"):
        missing.devices()
