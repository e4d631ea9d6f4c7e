"""The sample copies under `samples/` must stay identical to the shared originals they were taken from."""

from __future__ import annotations

from pathlib import Path

from tests.marketplace.agent.conftest import SAMPLES

SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "samples"


def test_sample_copies_match_the_shared_originals():
    copies = sorted(path.name for path in SAMPLES.iterdir() if path.name != "ORIGIN.md")
    assert copies == [
        "nvidia-smi-query-gpu.README",
        "nvidia-smi-query-gpu.csv",
        "sacct-parsable2.README",
        "sacct-parsable2.txt",
    ]
    # A fresh clone has no sibling `shared` checkout; the copies are then the only source and nothing to compare.
    if SHARED.is_dir():
        for name in copies:
            assert (SAMPLES / name).read_bytes() == (SHARED / name).read_bytes(), name
