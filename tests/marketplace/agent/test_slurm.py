"""The Slurm collector: sacct parsing against the real sample, GPU-seconds per booking, accounts and commands."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from marketplace.agent.collectors import CollectorError, SlurmCollector, parse_sacct
from marketplace.agent.collectors.slurm import parse_elapsed, parse_gpus
from marketplace.agent.config import SlurmConfig
from marketplace.agent.model import Allocation
from tests.marketplace.agent.conftest import SAMPLES, fake_command

SAMPLE = (SAMPLES / "sacct-parsable2.txt").read_text()
FIRST = "7c1e9a30-5d2b-4c1e-9f00-0000000000a1"  # account bk-7c1e9a
SECOND = "2f441077-1b3c-4e5f-8a00-0000000000b2"  # account bk-2f4410
NOW = datetime(2026, 11, 4, 12, 42, 41, tzinfo=UTC)  # job 81204 started 09:30:00 and has run 03:12:41


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def _allocation(booking_id: str, devices: int, start: datetime, end: datetime) -> Allocation:
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


FIRST_BOOKING = _allocation(FIRST, 8, _utc(2026, 11, 3, 9), _utc(2026, 11, 3, 18))
SECOND_BOOKING = _allocation(SECOND, 32, _utc(2026, 11, 3, 8), _utc(2026, 11, 5))


def _collector(make_config, tmp_path, clock, output=SAMPLE, **slurm) -> SlurmCollector:
    command = fake_command(tmp_path, output, name="sacct")
    config = make_config(collector="slurm", slurm=SlurmConfig(sacct_command=command, **slurm))
    return SlurmCollector(config, {}, clock)


def _gpu_seconds(records):
    return {
        record["id"]: (
            record["devices"],
            int((datetime.fromisoformat(record["end"]) - datetime.fromisoformat(record["start"])).total_seconds()),
        )
        for record in records
    }


def test_sample_parses_every_job_with_utc_times_and_gpus():
    output = parse_sacct(SAMPLE)

    assert output.problems == []
    assert [(job.job_id, job.account, job.gpus, job.elapsed_seconds) for job in output.jobs] == [
        ("81201", "bk-7c1e9a", 8, 9000),
        ("81202", "bk-7c1e9a", 2, 300),
        ("81203", "bk-2f4410", 32, 86400),
        ("81204", "bk-2f4410", 16, 11561),
        ("81205", "bk-7c1e9a", 1, 0),
        ("81206", "research-lab", 4, 3600),
    ]
    running, never_started = output.jobs[3], output.jobs[4]
    assert running.start == _utc(2026, 11, 4, 9, 30) and running.end is None and running.state == "RUNNING"
    assert never_started.start is None and never_started.state == "CANCELLED by 1001"


def test_usage_reports_gpu_seconds_per_job_of_each_provisioned_booking(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock)

    batch = collector.usage([FIRST_BOOKING, SECOND_BOOKING], {}, NOW)

    assert _gpu_seconds(batch.records) == {
        "node3-job81201-20261103T100000Z-20261103T123000Z": (8, 9000),
        "node3-job81202-20261103T111507Z-20261103T112007Z": (2, 300),  # typed gres/gpu:h100=2
        "node3-job81203-20261103T090000Z-20261104T090000Z": (32, 86400),  # 4 nodes, 32 GPUs in total
        "node3-job81204-20261104T093000Z-20261104T124241Z": (16, 11561),  # running: up to now
    }  # 81205 never started, 81206 belongs to no booking
    assert {record["booking"] for record in batch.records} == {FIRST, SECOND}
    assert batch.records[0] == {
        "id": "node3-job81201-20261103T100000Z-20261103T123000Z",
        "booking": FIRST,
        "start": "2026-11-03T10:00:00Z",
        "end": "2026-11-03T12:30:00Z",
        "devices": 8,
        "utilization": None,
        "energy_kwh": None,
    }
    assert batch.cursors == {
        f"{FIRST}/81201": _utc(2026, 11, 3, 12, 30),
        f"{FIRST}/81202": _utc(2026, 11, 3, 11, 20, 7),
        f"{SECOND}/81203": _utc(2026, 11, 4, 9),
        f"{SECOND}/81204": NOW,
    }


def test_sacct_is_asked_for_allocations_since_the_earliest_booking(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock)

    collector.usage([FIRST_BOOKING, SECOND_BOOKING], {}, NOW)

    assert (tmp_path / "sacct.args").read_text().split() == [
        "--allusers",
        "--allocations",
        "--parsable2",
        "--format=JobID,Account,User,Partition,Start,End,Elapsed,AllocTRES,State",
        "--starttime=2026-11-03T07:59:00",
        "--endtime=now",
    ]


def test_jobs_are_clipped_to_the_booking_window(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock)
    short = _allocation(SECOND, 32, _utc(2026, 11, 3, 12), _utc(2026, 11, 4, 10))

    batch = collector.usage([short], {}, NOW)

    assert _gpu_seconds(batch.records) == {
        "node3-job81203-20261103T120000Z-20261104T090000Z": (32, 75600),
        "node3-job81204-20261104T093000Z-20261104T100000Z": (16, 1800),
    }


def test_a_running_job_is_reported_incrementally_and_nothing_twice(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock)
    cursors: dict[str, datetime] = {}

    first = collector.usage([SECOND_BOOKING], cursors, _utc(2026, 11, 4, 10))
    cursors |= first.cursors
    second = collector.usage([SECOND_BOOKING], cursors, _utc(2026, 11, 4, 10, 30))
    cursors |= second.cursors
    again = collector.usage([SECOND_BOOKING], cursors, _utc(2026, 11, 4, 10, 30))

    assert _gpu_seconds(first.records) == {
        "node3-job81203-20261103T090000Z-20261104T090000Z": (32, 86400),
        "node3-job81204-20261104T093000Z-20261104T100000Z": (16, 1800),
    }
    assert _gpu_seconds(second.records) == {"node3-job81204-20261104T100000Z-20261104T103000Z": (16, 1800)}
    assert again.records == []


def test_sacct_local_times_are_read_in_the_configured_zone(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock, timezone="Asia/Shanghai")
    booking = _allocation(FIRST, 8, _utc(2026, 11, 3, 0), _utc(2026, 11, 3, 18))

    batch = collector.usage([booking], {}, NOW)

    assert [(record["start"], record["end"]) for record in batch.records] == [
        ("2026-11-03T02:00:00Z", "2026-11-03T04:30:00Z"),
        ("2026-11-03T03:15:07Z", "2026-11-03T03:20:07Z"),
    ]
    assert "--starttime=2026-11-03T07:59:00" in (tmp_path / "sacct.args").read_text()  # 23:59 UTC, in Shanghai


@pytest.mark.parametrize(
    ("tres", "gpus"),
    [
        ("billing=64,cpu=64,gres/gpu=8,mem=512G,node=1", 8),
        ("billing=16,cpu=16,gres/gpu:h100=2,mem=128G,node=1", 2),
        ("gres/gpu:a100=2,gres/gpu:h100=3", 5),
        ("gres/gpu=4,gres/gpu:h100=4", 4),
        ("billing=256,cpu=256,gres/gpu=32,mem=2048G,node=4", 32),
        ("cpu=8,mem=16G", 0),
        ("", 0),
    ],
)
def test_gpus_from_alloc_tres(tres, gpus):
    assert parse_gpus(tres) == gpus


@pytest.mark.parametrize(
    ("text", "seconds"), [("02:30:00", 9000), ("1-00:00:00", 86400), ("05:00", 300), ("3-01:02:03", 262923)]
)
def test_elapsed(text, seconds):
    assert parse_elapsed(text) == seconds


def test_bad_data_lines_are_skipped_and_reported_with_their_line_number():
    header = SAMPLE.splitlines()[0]
    text = "\n".join(
        [
            header,
            "81301|bk-7c1e9a|alice|h100|2026-11-03T10:00:00|2026-11-03T11:00:00|01:00:00|gres/gpu=8|COMPLETED",
            "81302|bk-7c1e9a|alice|h100|2026-11-03T10:00:00|01:00:00|gres/gpu=8|COMPLETED",
            "81303|bk-7c1e9a|alice|h100|yesterday|2026-11-03T11:00:00|01:00:00|gres/gpu=8|COMPLETED",
            "81304|bk-7c1e9a|alice|h100|2026-11-03T10:00:00|2026-11-03T11:00:00|1 hour|gres/gpu=8|COMPLETED",
            "81305|bk-7c1e9a|alice|h100|2026-11-03T10:00:00|2026-11-03T11:00:00|01:00:00|gres/gpu=eight|COMPLETED",
            "81306.batch|bk-7c1e9a|alice|h100|2026-11-03T10:00:00|2026-11-03T11:00:00|01:00:00|gres/gpu=8|COMPLETED",
            "",
            "\x00\x01\x02",
        ]
    )

    output = parse_sacct(text)

    assert [job.job_id for job in output.jobs] == ["81301"]
    assert [(problem.line, problem.message) for problem in output.problems] == [
        (3, "expected 9 '|'-separated values, found 8"),
        (4, "Start 'yesterday' is not YYYY-MM-DDTHH:MM:SS"),
        (5, "elapsed '1 hour' is not [D-]HH:MM:SS"),
        (6, "AllocTRES gres/gpu='eight' is not a whole number"),
        (9, "expected 9 '|'-separated values, found 1"),
    ]
    assert str(output.problems[0]) == "sacct line 3: expected 9 '|'-separated values, found 8"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "no header line (empty output)"),
        ("\n81201|bk-7c1e9a\n", "no header line"),
        ("JobID|Account|User\n81201|bk-7c1e9a|alice\n", "bad header"),
        ("81201|bk-7c1e9a|alice|h100|2026-11-03T10:00:00|2026-11-03T12:30:00|02:30:00|gres/gpu=8|COMPLETED\n",
         "bad header"),
        ("\x7fELF\x02\x01\x01\x00garbage", "bad header"),
    ],
)  # fmt: skip
def test_a_missing_or_bad_header_is_a_collector_error_on_line_one(text, fragment):
    with pytest.raises(CollectorError) as caught:
        parse_sacct(text)

    assert caught.value.line == 1
    assert fragment in str(caught.value)
    assert str(caught.value).startswith("sacct line 1: ")


def test_columns_are_found_by_name_in_any_order():
    text = "State|JobID|AllocTRES|Account|User|Partition|Start|End|Elapsed\n" + (
        "COMPLETED|9|gres/gpu=2|bk-7c1e9a|u|p|2026-11-03T10:00:00|2026-11-03T10:01:00|00:01:00\n"
    )

    (job,) = parse_sacct(text).jobs

    assert (job.job_id, job.gpus, job.end) == ("9", 2, _utc(2026, 11, 3, 10, 1))


def test_bad_lines_do_not_stop_the_good_ones_from_being_reported(make_config, tmp_path, clock):
    collector = _collector(make_config, tmp_path, clock, output=SAMPLE + "81299|bk-7c1e9a|broken\n")

    batch = collector.usage([FIRST_BOOKING], {}, NOW)

    assert len(batch.records) == 2


def test_provision_and_release_run_the_configured_commands_with_the_account(make_config, tmp_path, clock):
    manager = fake_command(tmp_path, "", name="sacctmgr")
    collector = _collector(
        make_config,
        tmp_path,
        clock,
        partition="h100",
        provision_command=(*manager, "-i", "add", "account", "{account}", "Description={booking}"),
        release_command=(*manager, "-i", "delete", "account", "{account}"),
    )

    access = collector.provision(FIRST_BOOKING)
    collector.release(FIRST_BOOKING)

    assert access == {"slurm_account": "bk-7c1e9a", "partition": "h100"}
    assert (tmp_path / "sacctmgr.args").read_text().splitlines() == [
        f"-i add account bk-7c1e9a Description={FIRST}",
        "-i delete account bk-7c1e9a",
    ]
    assert collector.devices() == []


def test_a_failing_provision_command_is_a_collector_error(make_config, tmp_path, clock):
    manager = fake_command(tmp_path, "", status=1, name="sacctmgr")
    collector = _collector(make_config, tmp_path, clock, provision_command=(*manager, "add", "{account}"))

    with pytest.raises(CollectorError, match="exited with status 1: failure from sacctmgr"):
        collector.provision(FIRST_BOOKING)
