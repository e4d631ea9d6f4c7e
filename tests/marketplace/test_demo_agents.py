"""The demo's simulated agents: `seed_demo --agents-dir` writes one working agent configuration per demo center,
and the demo keeps a running booking for them to meter."""

from __future__ import annotations

import tomllib
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import ApiToken, Organization
from accounts.secrets import hash_secret
from marketplace.demo import seed_agents, seed_market
from marketplace.models import Booking, BookingStatus

CENTER_SLUGS = [
    "guizhou-highland-data-park",
    "lakeside-ai-computing-center",
    "pearl-bay-gpu-cloud",
    "ulanqab-grassland-compute-hub",
]


@pytest.fixture
def agents_dir(db, tmp_path):
    call_command("seed_demo", agents_dir=tmp_path / "agents")
    return tmp_path / "agents"


def config_of(path):
    with path.open("rb") as file:
        return tomllib.load(file)


def test_each_demo_center_gets_a_simulated_agent_with_a_working_agent_token(agents_dir):
    paths = sorted(agents_dir.glob("*.toml"))

    assert [path.stem for path in paths] == CENTER_SLUGS
    for path in paths:
        config = config_of(path)
        center = Organization.objects.get(slug=path.stem)
        assert (config["name"], config["collector"], config["state_dir"]) == (
            f"{path.stem}-sim",
            "simulated",
            f"state/{path.stem}",
        )
        token = ApiToken.objects.get(token_hash=hash_secret(config["token"]))
        assert (token.organization, token.scopes, token.revoked_at) == (center, ["agent"], None)
        assert path.stat().st_mode & 0o777 == 0o600


def test_seeding_again_keeps_working_files_and_replaces_broken_ones(agents_dir):
    before = {path.name: path.read_text() for path in agents_dir.glob("*.toml")}
    lost = agents_dir / "pearl-bay-gpu-cloud.toml"
    lost.unlink()
    revoked = agents_dir / "lakeside-ai-computing-center.toml"
    ApiToken.objects.filter(token_hash=hash_secret(config_of(revoked)["token"])).update(revoked_at=timezone.now())

    seed_agents(directory=agents_dir)

    after = {path.name: path.read_text() for path in agents_dir.glob("*.toml")}
    assert after["guizhou-highland-data-park.toml"] == before["guizhou-highland-data-park.toml"]
    assert after["ulanqab-grassland-compute-hub.toml"] == before["ulanqab-grassland-compute-hub.toml"]
    assert after["pearl-bay-gpu-cloud.toml"] != before["pearl-bay-gpu-cloud.toml"]
    assert after["lakeside-ai-computing-center.toml"] != before["lakeside-ai-computing-center.toml"]
    assert ApiToken.objects.filter(name="Demo simulated agent", revoked_at__isnull=True).count() == 4


def test_seed_demo_writes_no_agent_files_unless_asked(db, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    call_command("seed_demo")

    assert list(tmp_path.iterdir()) == []
    assert not ApiToken.objects.filter(name="Demo simulated agent").exists()


def test_the_demo_books_again_once_its_running_booking_has_ended(agents_dir):
    running = Booking.objects.get(status=BookingStatus.ACTIVE)
    later = running.end + timedelta(hours=1)
    Booking.objects.filter(pk=running.pk).update(status=BookingStatus.COMPLETED)

    created = seed_market(now=later)

    assert created["bookings"] == 2  # the running one and the upcoming one, both over by then
    fresh = Booking.objects.get(status=BookingStatus.ACTIVE)
    assert (fresh.offering, fresh.devices) == (running.offering, 32)
    assert fresh.start == later.replace(second=0, microsecond=0)
