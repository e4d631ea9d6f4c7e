"""Every write to centers' inventory (sites, offerings): one function per use case, owning its transaction.

PUT semantics (API.md, Inventory): a site or offering is created or fully replaced under the center's own
external id; a replace that changes nothing does not save, so `updated_at` and the audit log stay as they were.

Row locks on offerings are taken only through `offering_lock` / `offerings_lock`, in primary-key order, so the
inventory service and the booking service can never deadlock on each other.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID

from django.db import IntegrityError, models, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.actor import Actor
from accounts.errors import Conflict, DomainError, InvalidInput
from accounts.services import audit_record
from marketplace.models import AcceleratorModel, Offering, OfferingStatus, Site
from marketplace.selectors.capacity import peak_devices_from

logger = logging.getLogger(__name__)

Outcome = Literal["created", "updated", "unchanged"]

# What a PUT replaces; everything else (center, external id, timestamps) is the platform's.
SITE_FIELDS = ("name", "region", "pue", "carbon_intensity_g_per_kwh", "green_power_share", "hub")
OFFERING_FIELDS = (
    "site",
    "accelerator",
    "devices",
    "devices_per_node",
    "cpu_cores_per_node",
    "ram_gb_per_node",
    "local_disk_gb_per_node",
    "interconnect",
    "software_stack",
    "description",
    "price_per_device_hour",
    "currency",
    "min_hours",
    "max_hours",
    "lead_time_hours",
    "cancel_notice_hours",
    "min_commit_fraction",
    "requires_approval",
    "voucher_eligible",
    "status",
)


# --- locks --------------------------------------------------------------------------------------------------


def offering_lock(pk: UUID) -> Offering:
    """The offering, re-read under a row lock held until the caller's transaction ends.

    Every capacity decision (booking an offering, lowering its devices) runs under this lock, so two of them
    on one offering are serialized and each sees the other's committed bookings. Call it inside
    `transaction.atomic()`. Raises `Offering.DoesNotExist` when there is no such offering.
    """
    # With its center (read by every caller that answers with the booking), locking the offering's row only.
    return Offering.objects.select_for_update(of=("self",)).select_related("center").get(pk=pk)


def offerings_lock(pks: Iterable[UUID]) -> dict[UUID, Offering]:
    """Several offerings under row locks, taken in primary-key order so concurrent lockers cannot deadlock."""
    ordered = sorted(set(pks))
    locked = Offering.objects.select_for_update().filter(pk__in=ordered).order_by("pk")
    return {offering.pk: offering for offering in locked}


# --- helpers ------------------------------------------------------------------------------------------------


def _audit_value(value: Any) -> Any:
    if isinstance(value, Site):
        return value.external_id
    if isinstance(value, AcceleratorModel):
        return value.code
    if isinstance(value, Decimal):
        return str(value)
    return value


def _changes(obj: models.Model, values: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    changed = {}
    for name, new in values.items():
        if isinstance(new, models.Model):
            # Related rows compare by key: no query to load the current one.
            old_pk = getattr(obj, f"{name}_id")
            if old_pk != new.pk:
                changed[name] = (getattr(obj, name), new)
        # Decimals compare by value ("12.5" == "12.5000"), so a repeated PUT is recognized as changing nothing.
        elif getattr(obj, name) != new:
            changed[name] = (getattr(obj, name), new)
    return changed


def _audit_diff(changes: Mapping[str, tuple[Any, Any]]) -> tuple[dict, dict]:
    before = {name: _audit_value(old) for name, (old, _new) in changes.items()}
    after = {name: _audit_value(new) for name, (_old, new) in changes.items()}
    return before, after


def _snapshot(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _audit_value(value) for name, value in values.items()}


# --- sites --------------------------------------------------------------------------------------------------


def site_put(
    *, actor: Actor, external_id: str, data: Mapping[str, Any], now: datetime | None = None
) -> tuple[Site, Outcome]:
    """Create or fully replace the acting center's site `external_id` with `data` (validated input)."""
    now = now or timezone.now()
    center = actor.organization
    values = {name: data[name] for name in SITE_FIELDS}
    with transaction.atomic():
        site = Site.objects.select_for_update().filter(center=center, external_id=external_id).first()
        if site is None:
            try:
                with transaction.atomic():
                    site = Site.objects.create(center=center, external_id=external_id, **values)
            except IntegrityError:
                # A concurrent PUT of the same key committed first: replace what it created instead.
                site = Site.objects.select_for_update().filter(center=center, external_id=external_id).first()
                if site is None:
                    raise
            else:
                audit_record(
                    action="site.created",
                    organization=center,
                    actor=actor,
                    target=site,
                    after={"external_id": external_id, **_snapshot(values)},
                    now=now,
                )
                return site, "created"
        changes = _changes(site, values)
        if not changes:
            return site, "unchanged"
        for name, (_old, new) in changes.items():
            setattr(site, name, new)
        site.save()
        before, after = _audit_diff(changes)
        audit_record(
            action="site.updated", organization=center, actor=actor, target=site, before=before, after=after, now=now
        )
        return site, "updated"


# --- offerings ----------------------------------------------------------------------------------------------


@dataclass
class _References:
    """The center's sites and the chips an upsert may name, loaded once per operation."""

    sites: dict[str, Site]
    accelerators: dict[str, AcceleratorModel]

    @classmethod
    def load(cls, *, actor: Actor, site_ids: Iterable[str], codes: Iterable[str]) -> _References:
        sites = Site.objects.filter(center=actor.organization, external_id__in=set(site_ids))
        accelerators = AcceleratorModel.objects.filter(code__in=set(codes))
        return cls(
            sites={site.external_id: site for site in sites},
            accelerators={chip.code: chip for chip in accelerators},
        )

    def resolve(self, data: Mapping[str, Any]) -> dict[str, Any]:
        errors: dict[str, list[str]] = {}
        site = self.sites.get(data["site"])
        if site is None:
            errors["site"] = [_("No site of yours has this external id; PUT /sites/{external_id} first.")]
        accelerator = self.accelerators.get(data["accelerator"])
        if accelerator is None:
            errors["accelerator"] = [_("Unknown accelerator code; see GET /accelerators.")]
        if errors:
            raise InvalidInput(_("Some fields are invalid."), code="invalid", errors=errors)
        return {**{name: data[name] for name in OFFERING_FIELDS}, "site": site, "accelerator": accelerator}


def _check_capacity(offering: Offering, devices: int, now: datetime) -> None:
    # Runs under the offering's row lock, so no booking can slip in between this check and the save.
    in_use = peak_devices_from(offering.pk, now)
    if devices < in_use:
        raise Conflict(
            _(
                "Bookings hold up to %(in_use)s devices of this offering at some instant from now on, so its "
                "devices cannot be lowered from %(current)s to %(requested)s."
            )
            % {"in_use": in_use, "current": offering.devices, "requested": devices},
            code="capacity_in_use",
            errors={"devices": [_("Must be at least %(n)s, the devices booked.") % {"n": in_use}]},
            extra={"devices_in_use": in_use, "devices_requested": devices},
        )


def _offering_apply(
    *,
    actor: Actor,
    external_id: str,
    values: dict[str, Any],
    locked: Offering | None,
    now: datetime,
) -> tuple[Offering, Outcome]:
    """Create or replace one offering. `locked` is the existing row, already under its lock, or None."""
    center = actor.organization
    offering = locked
    if offering is None:
        try:
            with transaction.atomic():
                offering = Offering.objects.create(center=center, external_id=external_id, **values)
        except IntegrityError:
            # A concurrent PUT of the same key committed first: replace what it created instead.
            pk = Offering.objects.filter(center=center, external_id=external_id).values_list("pk", flat=True).first()
            if pk is None:
                raise
            offering = offering_lock(pk)
        else:
            audit_record(
                action="offering.created",
                organization=center,
                actor=actor,
                target=offering,
                after={"external_id": external_id, **_snapshot(values)},
                now=now,
            )
            return offering, "created"

    changes = _changes(offering, values)
    if not changes:
        return offering, "unchanged"
    if "devices" in changes and values["devices"] < offering.devices:
        _check_capacity(offering, values["devices"], now)
    # Bookings keep the terms they snapshotted: a price change here reaches only bookings made after it.
    for name, (_old, new) in changes.items():
        setattr(offering, name, new)
    offering.save()
    before, after = _audit_diff(changes)
    retired = "status" in changes and values["status"] == OfferingStatus.RETIRED
    audit_record(
        action="offering.retired" if retired else "offering.updated",
        organization=center,
        actor=actor,
        target=offering,
        before=before,
        after=after,
        now=now,
    )
    return offering, "updated"


def offering_put(
    *, actor: Actor, external_id: str, data: Mapping[str, Any], now: datetime | None = None
) -> tuple[Offering, Outcome]:
    """Create or fully replace the acting center's offering `external_id` with `data` (validated input).

    Refuses an unknown site (or another center's) or chip with InvalidInput, and lowering `devices` below what
    holding bookings use at any instant from now on with Conflict `capacity_in_use`; nothing changes then.
    """
    now = now or timezone.now()
    with transaction.atomic():
        references = _References.load(actor=actor, site_ids=[data["site"]], codes=[data["accelerator"]])
        values = references.resolve(data)
        pk = (
            Offering.objects.filter(center=actor.organization, external_id=external_id)
            .values_list("pk", flat=True)
            .first()
        )
        locked = offering_lock(pk) if pk is not None else None
        offering, outcome = _offering_apply(actor=actor, external_id=external_id, values=values, locked=locked, now=now)
    logger.info("inventory.offering_put", extra={"offering": str(offering.pk), "outcome": outcome})
    return offering, outcome


@dataclass
class SyncResult:
    offerings: list[Offering] = field(default_factory=list)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    retired: list[str] = field(default_factory=list)


def _item_error(exc: DomainError, index: int, external_id: str) -> DomainError:
    prefix = f"offerings[{index}]"
    errors = {f"{prefix}.{name}": messages for name, messages in (exc.errors or {}).items()}
    detail = _("Offering %(index)s (external id “%(external_id)s”): %(detail)s") % {
        "index": index,
        "external_id": external_id,
        "detail": exc.detail,
    }
    return type(exc)(detail, code=exc.code, errors=errors or None, extra={**exc.extra, "index": index})


def inventory_sync(
    *, actor: Actor, items: Sequence[Mapping[str, Any]], prune: bool = False, now: datetime | None = None
) -> SyncResult:
    """Upsert every offering in `items` (validated input, each with its `external_id`) all or nothing.

    With `prune`, the center's offerings missing from `items` are retired (never deleted: bookings point at
    them). The first refused item aborts the whole sync with its error, named `offerings[<index>].<field>`.
    """
    now = now or timezone.now()
    center = actor.organization
    seen: dict[str, int] = {}
    for index, item in enumerate(items):
        first = seen.setdefault(item["external_id"], index)
        if first != index:
            raise InvalidInput(
                _("Offering %(index)s repeats the external id “%(external_id)s” of offering %(first)s.")
                % {"index": index, "external_id": item["external_id"], "first": first},
                code="duplicate_external_id",
                errors={f"offerings[{index}].external_id": [_("Duplicate of offerings[%(n)s].") % {"n": first}]},
            )

    result = SyncResult()
    with transaction.atomic():
        existing = dict(Offering.objects.filter(center=center).values_list("external_id", "pk"))
        to_retire = []
        if prune:
            to_retire = list(
                Offering.objects.filter(center=center)
                .exclude(external_id__in=list(seen))
                .exclude(status=OfferingStatus.RETIRED)
                .values_list("pk", flat=True)
            )
        # Every row this sync may write is locked up front, in primary-key order: two syncs of one center, or a
        # sync and a booking, then always queue in the same order instead of deadlocking.
        locked = offerings_lock([existing[e] for e in seen if e in existing] + to_retire)
        references = _References.load(
            actor=actor,
            site_ids=[item["site"] for item in items],
            codes=[item["accelerator"] for item in items],
        )
        for index, item in enumerate(items):
            external_id = item["external_id"]
            try:
                values = references.resolve(item)
                pk = existing.get(external_id)
                offering, outcome = _offering_apply(
                    actor=actor,
                    external_id=external_id,
                    values=values,
                    locked=locked.get(pk) if pk is not None else None,
                    now=now,
                )
            except DomainError as exc:
                raise _item_error(exc, index, external_id) from exc
            result.offerings.append(offering)
            setattr(result, outcome, getattr(result, outcome) + 1)
        for pk in sorted(to_retire):
            offering = locked[pk]
            before = {"status": offering.status}
            offering.status = OfferingStatus.RETIRED
            offering.save(update_fields=["status", "updated_at"])
            audit_record(
                action="offering.retired",
                organization=center,
                actor=actor,
                target=offering,
                before=before,
                after={"status": OfferingStatus.RETIRED.value},
                now=now,
            )
            result.retired.append(offering.external_id)
    logger.info(
        "inventory.synced",
        extra={
            "organization": str(center.pk),
            # `created` is a LogRecord attribute: these keys must not shadow it.
            "offerings_created": result.created,
            "offerings_updated": result.updated,
            "offerings_unchanged": result.unchanged,
            "offerings_retired": len(result.retired),
        },
    )
    return result
