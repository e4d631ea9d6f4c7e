"""Every write to centers' inventory (sites, offerings): one function per use case, owning its transaction.

Row locks on offerings are taken only through `offering_lock` / `offerings_lock`, in primary-key order, so the
inventory service and the booking service can never deadlock on each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from marketplace.models import Offering


def offering_lock(pk: UUID) -> Offering:
    """The offering, re-read under a row lock held until the caller's transaction ends.

    Every capacity decision (booking an offering, lowering its devices) runs under this lock, so two of them
    on one offering are serialized and each sees the other's committed bookings. Call it inside
    `transaction.atomic()`. Raises `Offering.DoesNotExist` when there is no such offering.
    """
    return Offering.objects.select_for_update().get(pk=pk)


def offerings_lock(pks: Iterable[UUID]) -> dict[UUID, Offering]:
    """Several offerings under row locks, taken in primary-key order so concurrent lockers cannot deadlock."""
    ordered = sorted(set(pks))
    locked = Offering.objects.select_for_update().filter(pk__in=ordered).order_by("pk")
    return {offering.pk: offering for offering in locked}
