"""Durable local state: the spool of unsent usage records, `state.json`, `rejected.jsonl` and the state-dir lock.

Layout of the state dir::

    agent.lock              held (flock) while an agent uses the dir: two agents never share one spool
    state.json              allocations seen, collector state, cursors (rewritten atomically)
    spool/seg-<n>.jsonl     unsent records; line 1 is a header with the cursors this segment advances to
    rejected.jsonl          records the server rejected for good, with code and detail (append-only)

Every rewrite goes to a temporary file in the same directory, is fsynced, then `os.replace`d over the target and
the directory fsynced: after a crash a file holds either its old or its new content, never a mix. Leftover
temporary files (`.*.tmp`) are ignored and removed on the next start.

Why the cursors travel with the records: a collector's cursor (the last instant reported per booking or per job)
must never run ahead of what is spooled, or a crash would lose usage; and it must never lag behind, or a restart
would regenerate an interval under a different id. Writing both in one segment file makes them one atomic step;
`state.json` is updated right after, and on start the agent takes the later of the two.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from marketplace.agent.timeutil import format_utc, parse_utc

logger = logging.getLogger("marketplace.agent")

STATE_FORMAT = 1
_SEGMENT_RE = re.compile(r"^seg-(\d{12})\.jsonl$")
# Past this many segments (a long outage writes one per iteration) they are merged, to bound file count.
COMPACT_AFTER = 64
_serials = itertools.count(1)  # distinct temporary names for concurrent writers in one process


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some filesystems cannot open directories; the replace itself is still atomic there
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new content, never a mix."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_serials)}.tmp")
    try:
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def remove_stale_temporaries(directory: Path) -> None:
    for leftover in directory.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()
            logger.info("removed leftover temporary file %s", leftover.name)


class StateDirBusy(Exception):
    """Another agent (process or thread) holds this state dir."""


class StateDirLock:
    """An exclusive `flock` on `<state dir>/agent.lock`, released on close or process exit."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "agent.lock"
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise StateDirBusy(f"state dir {directory} is in use by another agent") from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"{os.getpid()}\n".encode())

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class StateStore:
    """`state.json`: a JSON object rewritten atomically. A missing file is an empty state."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "state.json"

    def load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {"format": STATE_FORMAT}
        except (OSError, ValueError) as error:
            # Atomic writes make this a disk fault, not a crash artifact: keep the evidence, start clean.
            aside = self.path.with_name(f"state.corrupt-{os.getpid()}.json")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            logger.error("state.json unreadable (%s); moved to %s and starting with an empty state", error, aside.name)
            return {"format": STATE_FORMAT}
        if not isinstance(data, dict):
            return {"format": STATE_FORMAT}
        return data

    def save(self, state: Mapping[str, Any]) -> None:
        payload = json.dumps({**state, "format": STATE_FORMAT}, indent=1, sort_keys=True).encode()
        atomic_write(self.path, payload + b"\n")


@dataclass
class _Segment:
    seq: int
    path: Path
    cursors: dict[str, str]
    records: list[dict[str, Any]] = field(default_factory=list)


class Spool:
    """Unsent usage records, in the order they were collected, durable across crashes and restarts.

    Guarantees: `add` returns only after the records (and their cursors) are on disk; a record leaves the spool
    only through `remove`, which the agent calls after the server answered 200 for the batch holding it; a record
    id is spooled at most once (the first payload wins).
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory / "spool"
        self.directory.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.directory)
        self._segments: list[_Segment] = []
        self._ids: set[str] = set()
        self._load()

    def _load(self) -> None:
        for path in sorted(self.directory.iterdir()):
            match = _SEGMENT_RE.match(path.name)
            if not match:
                continue
            try:
                lines = path.read_bytes().splitlines()
                header = json.loads(lines[0])
                records = [json.loads(line) for line in lines[1:] if line.strip()]
                cursors = dict(header.get("cursors") or {})
            except (OSError, ValueError, IndexError, AttributeError) as error:
                aside = path.with_name(path.name + ".corrupt")
                with contextlib.suppress(OSError):
                    os.replace(path, aside)
                logger.error("spool segment %s unreadable (%s); moved aside to %s", path.name, error, aside.name)
                continue
            segment = _Segment(int(match.group(1)), path, cursors)
            for record in records:
                # A crash during compaction can leave a record in two segments: keep the first copy.
                if isinstance(record, dict) and isinstance(record.get("id"), str) and record["id"] not in self._ids:
                    segment.records.append(record)
                    self._ids.add(record["id"])
            self._segments.append(segment)

    def __len__(self) -> int:
        return len(self._ids)

    def pending(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The oldest `limit` unsent records (all when None), oldest first."""
        result: list[dict[str, Any]] = []
        for segment in self._segments:
            for record in segment.records:
                if limit is not None and len(result) >= limit:
                    return result
                result.append(record)
        return result

    def cursors(self) -> dict[str, datetime]:
        """The latest cursor per key over all segments still on disk."""
        merged: dict[str, datetime] = {}
        for segment in self._segments:
            for key, text in segment.cursors.items():
                instant = parse_utc(text)
                if key not in merged or instant > merged[key]:
                    merged[key] = instant
        return merged

    def add(self, records: Iterable[dict[str, Any]], cursors: Mapping[str, datetime]) -> int:
        """Durably append `records` and the `cursors` they advance to; returns how many records were new."""
        fresh: list[dict[str, Any]] = []
        seen: set[str] = set()
        for record in records:
            if record["id"] in self._ids or record["id"] in seen:
                logger.debug("record %s already spooled; keeping the first copy", record["id"])
                continue
            seen.add(record["id"])
            fresh.append(record)
        if not fresh:
            # Nothing new to keep: the cursors alone go to state.json, which the caller saves next.
            return 0
        seq = self._segments[-1].seq + 1 if self._segments else 1
        header = {key: format_utc(value) for key, value in cursors.items()}
        segment = _Segment(seq, self.directory / f"seg-{seq:012d}.jsonl", header, fresh)
        self._write(segment)
        self._segments.append(segment)
        self._ids.update(seen)
        if len(self._segments) > COMPACT_AFTER:
            self.compact()
        return len(fresh)

    def remove(self, ids: Iterable[str]) -> None:
        """Drop records the server has answered for; each touched segment is rewritten atomically or deleted.

        The caller must have saved the cursors of every segment (state.json) before: an emptied segment goes.
        """
        doomed = set(ids) & self._ids
        if not doomed:
            return
        kept: list[_Segment] = []
        for segment in self._segments:
            remaining = [record for record in segment.records if record["id"] not in doomed]
            if remaining and len(remaining) == len(segment.records):
                kept.append(segment)
                continue
            segment.records = remaining
            if remaining:
                self._write(segment)
                kept.append(segment)
            else:
                # The cursors of an emptied segment are already in state.json (saved right after `add`).
                segment.path.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        self._segments = kept
        self._ids -= doomed

    def compact(self) -> None:
        """Merge all segments into one. Write the merged one first: a crash then leaves duplicates, not gaps."""
        if len(self._segments) <= 1:
            return
        cursors: dict[str, str] = {key: format_utc(value) for key, value in self.cursors().items()}
        merged = _Segment(self._segments[-1].seq + 1, Path(), cursors, self.pending())
        merged.path = self.directory / f"seg-{merged.seq:012d}.jsonl"
        self._write(merged)
        for segment in self._segments:
            segment.path.unlink(missing_ok=True)
        _fsync_dir(self.directory)
        self._segments = [merged]

    def _write(self, segment: _Segment) -> None:
        lines = [json.dumps({"segment": segment.seq, "cursors": segment.cursors}, sort_keys=True)]
        lines += [json.dumps(record, sort_keys=True) for record in segment.records]
        atomic_write(segment.path, ("\n".join(lines) + "\n").encode())


class RejectedLog:
    """`rejected.jsonl`: one line per record the server refused for good, for a person to look at."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "rejected.jsonl"

    def append(self, entries: Iterable[dict[str, Any]]) -> None:
        lines = "".join(json.dumps(entry, sort_keys=True) + "\n" for entry in entries)
        if not lines:
            return
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(lines)
            handle.flush()
            os.fsync(handle.fileno())

    def read(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        entries = []
        for line in text.splitlines():
            # A crash during an append can leave a torn last line; the lines before it are intact.
            with contextlib.suppress(ValueError):
                entries.append(json.loads(line))
        return entries
