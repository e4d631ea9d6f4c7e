"""Running test calls truly at once: each on its own thread and PostgreSQL connection, released by a barrier."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run `calls` in parallel threads, each with its own database connection, released together.

    Returns each call's result, or the exception it raised, in the order given.
    """
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = call()
        except Exception as exc:  # handed back to the test, which asserts on it
            results[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def run_in_processes(*calls: Callable[[], Any], timeout: float = 60) -> list[Any]:
    """Run `calls` in forked processes, each with its own PostgreSQL connection, released together.

    The data they read must be committed (use `django_db(transaction=True)`). Returns each call's picklable
    result, or the text of the exception it raised, in the order given.
    """
    import multiprocessing
    import os

    from django.db import connections

    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(calls))
    queue = context.Queue()

    def run(index: int, call: Callable[[], Any]) -> None:
        # The parent's connections and pool were dropped unclosed by the fork guard (marketplace/db.py): this
        # process opens its own.
        try:
            barrier.wait(timeout=10)
            queue.put((index, call()))
        except Exception as exc:
            queue.put((index, f"{type(exc).__name__}: {exc}"))
        finally:
            connections.close_all()
            # Flush the result through the queue's feeder thread before leaving without pytest's exit handlers.
            queue.close()
            queue.join_thread()
            os._exit(0)

    processes = [context.Process(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for process in processes:
        process.start()
    results: list[Any] = [None] * len(calls)
    for _ in calls:
        index, result = queue.get(timeout=timeout)
        results[index] = result
    for process in processes:
        process.join(timeout=10)
    return results
