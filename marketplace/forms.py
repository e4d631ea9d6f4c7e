"""Browser forms of the market. They check the shape of the input; every rule lives in the services.

The centers' site and offering forms run the inventory API's own input serializers in `clean()`, so a value the
API refuses is refused on the page too, with the same message, and the page can never drift from the API.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from accounts.forms import BootstrapMixin, UpperCaseField
from marketplace.external_ids import external_id_validator
from marketplace.models import AcceleratorModel, BookingStatus, Offering, OfferingStatus, Site
from marketplace.money import CURRENCY_MINOR_UNITS
from marketplace.selectors import facets
from marketplace.selectors.catalog import DEFAULT_ORDERING
from marketplace.serializers import (
    MAX_CPU_CORES_PER_NODE,
    MAX_DESCRIPTION_LENGTH,
    MAX_DEVICES,
    MAX_DEVICES_PER_NODE,
    MAX_DISK_GB_PER_NODE,
    MAX_HOURS,
    MAX_RAM_GB_PER_NODE,
    OfferingInputSerializer,
    SiteInputSerializer,
)

DATETIME_LOCAL_FORMAT = "%Y-%m-%dT%H:%M"

ORDERING_CHOICES = [
    ("price_per_device_hour", _("Price per device-hour, lowest first")),
    ("-price_per_device_hour", _("Price per device-hour, highest first")),
    ("price_per_pflop_hour", _("Price per PFLOP-hour, lowest first")),
    ("-price_per_pflop_hour", _("Price per PFLOP-hour, highest first")),
    ("carbon", _("Estimated carbon, lowest first")),
    ("-carbon", _("Estimated carbon, highest first")),
]

CURRENCY_CHOICES = [(code, code) for code in sorted(CURRENCY_MINOR_UNITS)]


def datetime_local(value: datetime) -> str:
    """A UTC instant as a `datetime-local` input value: the pages say these inputs are in UTC."""
    return value.astimezone(UTC).strftime(DATETIME_LOCAL_FORMAT)


class UtcDateTimeLocalField(forms.DateTimeField):
    """A `datetime-local` input read as UTC, whatever time zone the server or the browser is in."""

    input_formats = [DATETIME_LOCAL_FORMAT, "%Y-%m-%dT%H:%M:%S"]

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget", forms.DateTimeInput(attrs={"type": "datetime-local", "step": 60}, format=DATETIME_LOCAL_FORMAT)
        )
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> datetime | None:
        # The page tells people these times are UTC; the active time zone must not reinterpret them.
        with timezone.override(UTC):
            return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, datetime):
            return datetime_local(value)
        return value


# --- catalog ------------------------------------------------------------------------------------------------


class CatalogFilterForm(BootstrapMixin, forms.Form):
    """The catalog's filters, as query parameters: a search is a URL that can be shared.

    The rules are those of the catalog API's `CatalogFilterSerializer`; only the window is given as UTC
    `datetime-local` values instead of RFC 3339.
    """

    accelerator = forms.ChoiceField(label=_("Accelerator"), required=False)
    vendor = forms.ChoiceField(label=_("Vendor"), required=False)
    domestic = forms.ChoiceField(
        label=_("Chip origin"),
        required=False,
        choices=[("", _("Any")), ("true", _("Domestic chips only")), ("false", _("Imported chips only"))],
    )
    region = forms.ChoiceField(label=_("Region"), required=False)
    min_memory_gb = forms.IntegerField(
        label=_("Memory at least (GB)"), required=False, min_value=0, max_value=1_000_000
    )
    max_price_per_device_hour = forms.DecimalField(
        label=_("Price per device-hour at most"), required=False, min_value=0, max_digits=16, decimal_places=4
    )
    currency = forms.ChoiceField(label=_("Currency"), required=False, choices=[("", _("Any")), *CURRENCY_CHOICES])
    max_pue = forms.DecimalField(label=_("PUE at most"), required=False, min_value=1, max_digits=4, decimal_places=2)
    devices = forms.IntegerField(label=_("Devices"), required=False, min_value=1, max_value=MAX_DEVICES)
    start = UtcDateTimeLocalField(label=_("From (UTC)"), required=False)
    end = UtcDateTimeLocalField(label=_("Until (UTC)"), required=False)
    ordering = forms.ChoiceField(label=_("Sort by"), required=False, choices=ORDERING_CHOICES)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        any_choice = [("", _("Any"))]
        self.fields["accelerator"].choices = any_choice + [
            (chip.code, str(chip)) for chip in facets.catalog_accelerators()
        ]
        self.fields["vendor"].choices = any_choice + [(vendor, vendor) for vendor in facets.catalog_vendors()]
        regions = facets.catalog_regions()
        wanted = (self.data.get("region") or "").strip() if self.is_bound else ""
        if wanted and wanted not in regions and len(wanted) <= 64:
            # A shared search keeps working after the last offering of its region is withdrawn: it finds nothing.
            regions = sorted([*regions, wanted])
        self.fields["region"].choices = any_choice + [(region, region) for region in regions]
        for name in ("min_memory_gb", "max_price_per_device_hour", "max_pue", "devices"):
            self.fields[name].widget.attrs.setdefault("inputmode", "decimal")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if "start" in self.errors or "end" in self.errors:
            return cleaned
        if (start is None) != (end is None):
            missing = "end" if end is None else "start"
            self.add_error(missing, _("Give the start and the end of the window together."))
        elif start is not None and end <= start:
            self.add_error("end", _("The end must come after the start."))
        if cleaned.get("devices") is not None and start is None and end is None:
            self.add_error("start", _("Give a window (start and end) to search for free devices."))
        return cleaned

    def selector_filters(self) -> dict[str, Any]:
        """The validated filters as `catalog_offerings` keyword arguments (absent means "any")."""
        data = self.cleaned_data
        filters: dict[str, Any] = {
            "accelerator": data.get("accelerator") or None,
            "vendor": data.get("vendor") or None,
            "region": data.get("region") or None,
            "min_memory_gb": data.get("min_memory_gb"),
            "max_price_per_device_hour": data.get("max_price_per_device_hour"),
            "currency": data.get("currency") or None,
            "domestic": {"true": True, "false": False}.get(data.get("domestic") or ""),
            "max_pue": data.get("max_pue"),
            "devices": data.get("devices"),
            "start": data.get("start"),
            "end": data.get("end"),
            "ordering": data.get("ordering") or DEFAULT_ORDERING,
        }
        return filters

    def window_query(self) -> dict[str, str]:
        """The window of the search as offering-page query parameters, so a quote starts from it."""
        data = getattr(self, "cleaned_data", {})
        if not data.get("start"):
            return {}
        query = {"start": datetime_local(data["start"]), "end": datetime_local(data["end"])}
        if data.get("devices"):
            query["devices"] = str(data["devices"])
        return query


# --- quotes and bookings ------------------------------------------------------------------------------------


class QuoteForm(BootstrapMixin, forms.Form):
    """Devices and a window of one offering, for a quote or a booking. The booking service checks the rules."""

    devices = forms.IntegerField(label=_("Devices"), min_value=1, max_value=MAX_DEVICES)
    start = UtcDateTimeLocalField(label=_("Start (UTC)"))
    end = UtcDateTimeLocalField(label=_("End (UTC)"))

    def window(self) -> dict[str, Any]:
        data = self.cleaned_data
        return {"devices": data["devices"], "start": data["start"], "end": data["end"]}


class BookingStatusFilterForm(BootstrapMixin, forms.Form):
    status = forms.ChoiceField(
        label=_("Status"), required=False, choices=[("", _("All statuses")), *BookingStatus.choices]
    )


class CancelForm(forms.Form):
    # The fee the person saw on the confirmation page: a higher fee at the time of the POST is shown again first.
    expected_fee = forms.DecimalField(max_digits=20, decimal_places=4, min_value=0)


class RejectForm(BootstrapMixin, forms.Form):
    reason = forms.CharField(label=_("Reason"), max_length=500, required=False)


# --- centers' inventory -------------------------------------------------------------------------------------


def _serializer_errors(form: forms.Form, serializer: serializers.Serializer, field_map: Mapping[str, str]) -> None:
    for field, messages in serializer.errors.items():
        target = field_map.get(field, field)
        for message in messages if isinstance(messages, list) else [messages]:
            form.add_error(target if target in form.fields else None, str(message))


class JudgedByApiMixin:
    """A center's inventory form whose values are judged by the inventory API's own input serializer, so the
    page and the API refuse the same values with the same messages. `service_data` is what the service takes;
    `key` is the object's external id (the one it has, or the one typed for a new object)."""

    api_serializer: type[serializers.Serializer]
    existing_attribute: str

    def _service_input(self, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if self.errors:
            return cleaned
        data = self._service_input({name: value for name, value in cleaned.items() if name != "external_id"})
        serializer = self.api_serializer(data=data)
        if serializer.is_valid():
            self.service_data = dict(serializer.validated_data)
        else:
            _serializer_errors(self, serializer, {})
        return cleaned

    @property
    def key(self) -> str:
        existing = getattr(self, self.existing_attribute)
        return existing.external_id if existing is not None else self.cleaned_data["external_id"]


class SiteForm(JudgedByApiMixin, BootstrapMixin, forms.Form):
    """A center's site. `external_id` is asked for on creation only: it is the key the center's systems use."""

    service_data: dict[str, Any]  # set by a successful clean(): what `site_put` takes
    api_serializer = SiteInputSerializer
    existing_attribute = "site"

    external_id = forms.CharField(
        label=_("External id"),
        max_length=128,
        validators=[external_id_validator],
        help_text=_("Your own key for the site, as your inventory system names it, e.g. “hz-dc1”."),
    )
    name = forms.CharField(label=_("Name"), max_length=200)
    region = forms.CharField(label=_("Region"), max_length=64, help_text=_("Where the site is, e.g. cn-east."))
    pue = forms.DecimalField(
        label=_("PUE"),
        min_value=Decimal(1),
        max_value=Decimal(5),
        max_digits=4,
        decimal_places=2,
        help_text=_("Power usage effectiveness, e.g. 1.25."),
    )
    carbon_intensity_g_per_kwh = forms.DecimalField(
        label=_("Grid carbon intensity (gCO2e/kWh)"),
        min_value=Decimal(0),
        max_value=Decimal(2000),
        max_digits=7,
        decimal_places=1,
    )
    green_power_share = forms.DecimalField(
        label=_("Green power share"),
        min_value=Decimal(0),
        max_value=Decimal(1),
        max_digits=4,
        decimal_places=3,
        help_text=_("Share of the site's power from renewable sources, from 0 to 1, e.g. 0.40."),
    )
    hub = forms.CharField(
        label=_("Hub / cluster"),
        max_length=100,
        required=False,
        help_text=_("The national computing hub the site belongs to, if any."),
    )

    def __init__(self, *args: Any, site: Site | None = None, **kwargs: Any) -> None:
        if site is not None:
            kwargs.setdefault("initial", {name: getattr(site, name) for name in SiteInputSerializer().fields})
        super().__init__(*args, **kwargs)
        self.site = site
        if site is not None:
            del self.fields["external_id"]

    def _service_input(self, data: dict[str, Any]) -> dict[str, Any]:
        return data


def offering_service_data(offering: Offering) -> dict[str, Any]:
    """An offering as the inventory services take it (site and chip by key): what a PUT would send."""
    from marketplace.services.inventory import OFFERING_FIELDS

    data = {name: getattr(offering, name) for name in OFFERING_FIELDS}
    data["site"] = offering.site.external_id
    data["accelerator"] = offering.accelerator.code
    return data


class OfferingForm(JudgedByApiMixin, BootstrapMixin, forms.Form):
    """Every field of a center's offering. The status is chosen on creation; later it moves by its own buttons."""

    service_data: dict[str, Any]  # set by a successful clean(): what `offering_put` takes
    api_serializer = OfferingInputSerializer
    existing_attribute = "offering"

    external_id = forms.CharField(
        label=_("External id"),
        max_length=128,
        validators=[external_id_validator],
        help_text=_("Your own key for this pool, e.g. “h100-pool-a”. The inventory API uses it too."),
    )
    site = forms.ModelChoiceField(label=_("Site"), queryset=Site.objects.none(), to_field_name="external_id")
    accelerator = forms.ModelChoiceField(
        label=_("Accelerator"), queryset=AcceleratorModel.objects.none(), to_field_name="code"
    )
    devices = forms.IntegerField(label=_("Devices"), min_value=1, max_value=MAX_DEVICES)
    devices_per_node = forms.IntegerField(label=_("Devices per node"), min_value=1, max_value=MAX_DEVICES_PER_NODE)
    cpu_cores_per_node = forms.IntegerField(
        label=_("CPU cores per node"), required=False, min_value=1, max_value=MAX_CPU_CORES_PER_NODE
    )
    ram_gb_per_node = forms.IntegerField(
        label=_("RAM per node (GB)"), required=False, min_value=1, max_value=MAX_RAM_GB_PER_NODE
    )
    local_disk_gb_per_node = forms.IntegerField(
        label=_("Local disk per node (GB)"), required=False, min_value=1, max_value=MAX_DISK_GB_PER_NODE
    )
    interconnect = forms.CharField(
        label=_("Interconnect"), max_length=200, required=False, help_text=_("e.g. 8× NVLink, 400 Gb/s InfiniBand.")
    )
    software_stack = forms.CharField(
        label=_("Software stack"),
        max_length=500,
        required=False,
        help_text=_("Driver, CUDA/CANN versions, images."),
    )
    description = forms.CharField(
        label=_("Description"),
        max_length=MAX_DESCRIPTION_LENGTH,
        required=False,
        strip=False,
        widget=forms.Textarea(attrs={"rows": 4}),
    )
    price_per_device_hour = forms.DecimalField(
        label=_("Price per device-hour"), min_value=Decimal(0), max_digits=12, decimal_places=4
    )
    currency = UpperCaseField(label=_("Currency"), max_length=3, widget=forms.Select(choices=CURRENCY_CHOICES))
    min_hours = forms.IntegerField(label=_("Minimum hours"), min_value=1, max_value=MAX_HOURS, initial=1)
    max_hours = forms.IntegerField(label=_("Maximum hours"), min_value=1, max_value=MAX_HOURS, initial=720)
    lead_time_hours = forms.IntegerField(
        label=_("Lead time (hours)"),
        min_value=0,
        max_value=MAX_HOURS,
        initial=0,
        help_text=_("How long you need to provision a booking."),
    )
    cancel_notice_hours = forms.IntegerField(
        label=_("Cancellation notice (hours)"),
        min_value=0,
        max_value=MAX_HOURS,
        initial=24,
        help_text=_("Cancelling at least this long before the start costs nothing."),
    )
    min_commit_fraction = forms.DecimalField(
        label=_("Minimum commitment"),
        min_value=Decimal(0),
        max_value=Decimal(1),
        max_digits=4,
        decimal_places=3,
        initial=Decimal(0),
        help_text=_("Share of the booked device-hours charged even if unused, from 0 to 1, e.g. 0.50."),
    )
    requires_approval = forms.BooleanField(label=_("Bookings need our approval"), required=False)
    voucher_eligible = forms.BooleanField(label=_("Eligible for compute vouchers"), required=False, initial=True)
    status = forms.ChoiceField(
        label=_("Status"),
        choices=[(OfferingStatus.DRAFT, OfferingStatus.DRAFT.label), (OfferingStatus.PUBLISHED, _("Published"))],
        initial=OfferingStatus.DRAFT,
        help_text=_("Only published offerings appear in the catalog."),
    )

    def __init__(self, *args: Any, sites: Any, accelerators: Any, offering: Offering | None = None, **kwargs: Any):
        if offering is not None:
            initial = offering_service_data(offering)
            initial["site"], initial["accelerator"] = offering.site, offering.accelerator
            kwargs.setdefault("initial", initial)
        super().__init__(*args, **kwargs)
        self.offering = offering
        self.fields["site"].queryset = sites
        self.fields["accelerator"].queryset = accelerators
        self.fields["accelerator"].label_from_instance = _chip_label
        if offering is not None:
            del self.fields["external_id"]
            del self.fields["status"]

    def _service_input(self, data: dict[str, Any]) -> dict[str, Any]:
        # What `offering_put` takes: site and chip by their keys, and the status the offering already has.
        data["site"] = data["site"].external_id
        data["accelerator"] = data["accelerator"].code
        data["status"] = self.offering.status if self.offering is not None else data["status"]
        return data


def _chip_label(chip: AcceleratorModel) -> str:
    memory = f", {chip.memory_gb} GB" if chip.memory_gb else ""
    return f"{chip}{memory}"
