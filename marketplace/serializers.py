"""The JSON shapes of the inventory and catalog API: input serializers validate, output serializers render.

Input serializers check shape only (types, ranges, lengths, enum values), so that every bad value is a 400 naming
its field before a service runs; rules that need the database (the site is the caller's, the chip exists, the
bookings fit) live in `marketplace.services.inventory`. Unknown keys are refused, as in the accounts API.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.serializers import StrictInputSerializer
from marketplace.external_ids import external_id_validator
from marketplace.models import AcceleratorModel, Offering, OfferingStatus, Site
from marketplace.money import CURRENCY_MINOR_UNITS, format_money
from marketplace.selectors.catalog import CATALOG_ORDERINGS, DEFAULT_ORDERING
from marketplace.services.inventory import OFFERING_FIELDS

# Upper bounds that no real pool reaches: they turn absurd inputs into a 400 instead of a database overflow.
MAX_DEVICES = 1_000_000
MAX_DEVICES_PER_NODE = 1_024
MAX_HOURS = 87_600  # ten years
MAX_CPU_CORES_PER_NODE = 100_000
MAX_RAM_GB_PER_NODE = 1_000_000
MAX_DISK_GB_PER_NODE = 100_000_000
MAX_DESCRIPTION_LENGTH = 10_000
MAX_SYNC_ITEMS = 1_000

# --- fields -------------------------------------------------------------------------------------------------


class ExactDecimalField(serializers.DecimalField):
    """A decimal sent as a JSON string (or an integer). JSON numbers with a fraction are refused: a client's
    float may already have lost the exact value (ARCHITECTURE.md, invariant 5), and the contract says strings."""

    default_error_messages = {
        "float": _('Send this decimal as a string, e.g. "12.50".'),
    }

    def to_internal_value(self, data: Any) -> Decimal:
        if isinstance(data, float | bool):
            self.fail("float")
        return super().to_internal_value(data)


@extend_schema_field({"type": "string", "format": "decimal", "example": "12.50"})
class MoneyField(serializers.Field):
    """An amount in its sibling `currency`, shown with at least the currency's minor-unit digits."""

    def __init__(self, currency_source: str = "currency", **kwargs: Any) -> None:
        kwargs.setdefault("read_only", True)
        self.currency_source = currency_source
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> tuple[Decimal | None, str]:
        return super().get_attribute(instance), getattr(instance, self.currency_source)

    def to_representation(self, value: tuple[Decimal | None, str]) -> str | None:
        amount, currency = value
        return None if amount is None else format_money(amount, currency)


# --- accelerators -------------------------------------------------------------------------------------------


class AcceleratorSerializer(serializers.ModelSerializer):
    fp16_tflops = serializers.DecimalField(
        max_digits=9, decimal_places=2, read_only=True, help_text="FP16/BF16 dense TFLOPS of one device."
    )
    memory_gb = serializers.IntegerField(read_only=True, allow_null=True, help_text="Null when unknown.")
    tdp_watts = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="Null when the vendor does not publish it."
    )

    class Meta:
        model = AcceleratorModel
        fields = ["code", "vendor", "model", "memory_gb", "fp16_tflops", "tdp_watts", "domestic"]
        read_only_fields = fields


# --- sites --------------------------------------------------------------------------------------------------


class SiteInputSerializer(StrictInputSerializer):
    """PUT /sites/{external_id}. Full replace: an omitted `hub` becomes empty."""

    name = serializers.CharField(max_length=200)
    region = serializers.CharField(max_length=64, help_text="Where the site is, e.g. `cn-east`.")
    pue = ExactDecimalField(
        max_digits=4, decimal_places=2, min_value=Decimal(1), max_value=Decimal(5), help_text='e.g. "1.25"'
    )
    carbon_intensity_g_per_kwh = ExactDecimalField(
        max_digits=7,
        decimal_places=1,
        min_value=Decimal(0),
        max_value=Decimal(2000),
        help_text='Grid carbon intensity in gCO2e/kWh, e.g. "520".',
    )
    green_power_share = ExactDecimalField(
        max_digits=4,
        decimal_places=3,
        min_value=Decimal(0),
        max_value=Decimal(1),
        help_text='Share of the site\'s power from renewable sources, 0 to 1, e.g. "0.40".',
    )
    hub = serializers.CharField(
        max_length=100, required=False, allow_blank=True, default="", help_text="National computing hub."
    )
    external_id = serializers.CharField(
        max_length=128,
        required=False,
        validators=[external_id_validator],
        help_text="Optional; when sent it must equal the one in the URL.",
    )


class SiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = [
            "id",
            "external_id",
            "name",
            "region",
            "pue",
            "carbon_intensity_g_per_kwh",
            "green_power_share",
            "hub",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


# --- offerings ----------------------------------------------------------------------------------------------


def _hours(default: int, *, minimum: int, help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=minimum, max_value=MAX_HOURS, required=False, default=default, help_text=help_text
    )


def _per_node(maximum: int, help_text: str) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=1, max_value=maximum, required=False, allow_null=True, default=None, help_text=help_text
    )


class OfferingInputSerializer(StrictInputSerializer):
    """PUT /offerings/{external_id}. Full replace: every omitted optional field goes back to its default."""

    site = serializers.CharField(max_length=128, help_text="The external id of one of the center's sites.")
    accelerator = serializers.CharField(max_length=64, help_text="A code from GET /accelerators.")
    devices = serializers.IntegerField(min_value=1, max_value=MAX_DEVICES, help_text="Devices in the pool.")
    devices_per_node = serializers.IntegerField(min_value=1, max_value=MAX_DEVICES_PER_NODE)
    price_per_device_hour = ExactDecimalField(
        max_digits=12,
        decimal_places=4,
        min_value=Decimal(0),
        help_text='In `currency`, as a string, e.g. "12.50". Applies to bookings made after the change only.',
    )
    currency = serializers.CharField(
        help_text="ISO 4217 code, one of: " + ", ".join(sorted(CURRENCY_MINOR_UNITS)) + "."
    )
    min_hours = _hours(1, minimum=1, help_text="Shortest booking, in hours. Default 1.")
    max_hours = _hours(720, minimum=1, help_text="Longest booking, in hours; at least `min_hours`. Default 720.")
    cancel_notice_hours = _hours(
        24, minimum=0, help_text="Cancelling at least this long before start costs nothing. Default 24."
    )
    lead_time_hours = _hours(0, minimum=0, help_text="How long the center needs to provision. Default 0.")
    min_commit_fraction = ExactDecimalField(
        max_digits=4,
        decimal_places=3,
        min_value=Decimal(0),
        max_value=Decimal(1),
        required=False,
        default=Decimal(0),
        help_text='Share of the booked device-hours charged even if unused, 0 to 1, e.g. "0.50". Default "0".',
    )
    requires_approval = serializers.BooleanField(required=False, default=False)
    voucher_eligible = serializers.BooleanField(required=False, default=True)
    status = serializers.ChoiceField(
        choices=OfferingStatus.choices,
        required=False,
        default=OfferingStatus.DRAFT,
        help_text="Only `published` offerings appear in the catalog. Default `draft`.",
    )
    cpu_cores_per_node = _per_node(MAX_CPU_CORES_PER_NODE, "Default null (not stated).")
    ram_gb_per_node = _per_node(MAX_RAM_GB_PER_NODE, "Default null (not stated).")
    local_disk_gb_per_node = _per_node(MAX_DISK_GB_PER_NODE, "Default null (not stated).")
    interconnect = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    software_stack = serializers.CharField(
        max_length=500, required=False, allow_blank=True, default="", help_text="Driver, CUDA/CANN versions."
    )
    description = serializers.CharField(
        max_length=MAX_DESCRIPTION_LENGTH, required=False, allow_blank=True, default="", trim_whitespace=False
    )
    external_id = serializers.CharField(
        max_length=128,
        required=False,
        validators=[external_id_validator],
        help_text="Optional in a PUT (when sent it must equal the one in the URL); required in a sync.",
    )

    def validate_currency(self, value: str) -> str:
        if value not in CURRENCY_MINOR_UNITS:
            raise serializers.ValidationError(
                _("Unsupported currency. Use one of: %(codes)s.") % {"codes": ", ".join(sorted(CURRENCY_MINOR_UNITS))},
                code="unsupported_currency",
            )
        return value

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["max_hours"] < attrs["min_hours"]:
            raise serializers.ValidationError(
                {"max_hours": [_("Must be at least min_hours (%(n)s).") % {"n": attrs["min_hours"]}]},
                code="invalid",
            )
        return attrs


class OfferingSyncItemSerializer(OfferingInputSerializer):
    external_id = serializers.CharField(
        max_length=128, validators=[external_id_validator], help_text="The center's own key for the offering."
    )


class InventorySyncSerializer(StrictInputSerializer):
    """A sync body. The bare list of offerings is accepted too, and means `prune: false`."""

    # Shown in the schema only: the API parses sync bodies item by item, so that each error names its item
    # (`offerings[3].devices`) instead of DRF's nested error lists.
    offerings = OfferingSyncItemSerializer(
        many=True,
        max_length=MAX_SYNC_ITEMS,
        help_text=f"Up to {MAX_SYNC_ITEMS} offerings, each as in PUT /offerings/{{external_id}} plus its "
        "`external_id`.",
    )
    prune = serializers.BooleanField(
        required=False, default=False, help_text="Retire the center's offerings that are not in the list."
    )


class OfferingSerializer(serializers.ModelSerializer):
    """An offering as its center sees it."""

    site = serializers.SlugRelatedField(slug_field="external_id", read_only=True, help_text="Site external id.")
    accelerator = serializers.SlugRelatedField(slug_field="code", read_only=True, help_text="Catalog code.")
    price_per_device_hour = MoneyField(help_text="In `currency`.")

    class Meta:
        model = Offering
        fields = ["id", "external_id", *OFFERING_FIELDS, "created_at", "updated_at"]
        read_only_fields = fields


class InventorySyncCountsSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    retired = serializers.IntegerField(help_text="Offerings retired by `prune`.")


class InventorySyncResultSerializer(serializers.Serializer):
    counts = InventorySyncCountsSerializer()
    offerings = OfferingSerializer(many=True, help_text="The listed offerings, in the order sent.")
    retired = serializers.ListField(
        child=serializers.CharField(), help_text="External ids of the offerings retired by `prune`."
    )


# --- catalog ------------------------------------------------------------------------------------------------

# A `+` in an unencoded query string arrives as a space: "10:00:00 08:00" is taken to mean "10:00:00+08:00".
_SPACE_FOR_PLUS = re.compile(r"(T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")


class Rfc3339Field(serializers.DateTimeField):
    """A timestamp that must carry its offset (API.md, Conventions): a naive one is ambiguous, so it is refused."""

    default_error_messages = {"naive": _("Give the UTC offset, e.g. 2026-11-03T10:00:00Z.")}

    def to_internal_value(self, value: Any):
        if isinstance(value, str):
            value = _SPACE_FOR_PLUS.sub(r"\1+\2", value.strip())
        parsed = super().to_internal_value(value)
        if isinstance(value, str) and not re.search(r"(Z|z|[+-]\d{2}:?\d{2})$", value):
            self.fail("naive")
        return parsed


class CatalogWindowSerializer(serializers.Serializer):
    start = Rfc3339Field(required=False, help_text="RFC 3339 with offset. Give `start` and `end` together.")
    end = Rfc3339Field(required=False, help_text="RFC 3339 with offset; later than `start`. Half-open window.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start"), attrs.get("end")
        errors: dict[str, list[str]] = {}
        if (start is None) != (end is None):
            missing = "end" if end is None else "start"
            errors[missing] = [_("Give start and end together.")]
        elif start is not None and end <= start:
            errors["end"] = [_("Must be later than start.")]
        if errors:
            raise serializers.ValidationError(errors, code="invalid")
        return attrs


class CatalogFilterSerializer(CatalogWindowSerializer):
    """Query parameters of GET /catalog. Every filter is optional; they combine with AND."""

    accelerator = serializers.CharField(max_length=64, required=False, help_text="Catalog code, exact.")
    vendor = serializers.CharField(max_length=64, required=False, help_text="Chip vendor, case-insensitive.")
    region = serializers.CharField(max_length=64, required=False, help_text="Site region, exact.")
    min_memory_gb = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)
    max_price_per_device_hour = serializers.DecimalField(
        max_digits=16, decimal_places=4, min_value=Decimal(0), required=False
    )
    currency = serializers.RegexField(
        r"^[A-Za-z]{3}$", required=False, help_text="ISO 4217 code; the price filter is in this currency."
    )
    domestic = serializers.BooleanField(required=False, allow_null=True, default=None, help_text="true or false.")
    max_pue = serializers.DecimalField(max_digits=4, decimal_places=2, min_value=Decimal(1), required=False)
    devices = serializers.IntegerField(
        min_value=1,
        max_value=MAX_DEVICES,
        required=False,
        help_text="With `start` and `end`: only offerings that can take this many devices over the whole "
        "window. Defaults to 1 when a window is given.",
    )
    ordering = serializers.ChoiceField(
        choices=CATALOG_ORDERINGS,
        required=False,
        default=DEFAULT_ORDERING,
        help_text="Sort key, `-` for descending. `carbon` puts offerings without a TDP last either way.",
    )
    page = serializers.IntegerField(min_value=1, required=False, help_text="Page number, from 1.")
    page_size = serializers.IntegerField(min_value=1, max_value=500, required=False, help_text="Up to 500.")

    def validate_currency(self, value: str) -> str:
        return value.upper()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if "devices" in attrs and "start" not in attrs:
            raise serializers.ValidationError(
                {
                    "start": [_("Give start and end with devices.")],
                    "end": [_("Give start and end with devices.")],
                },
                code="invalid",
            )
        return attrs


class CenterRefSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()


class CatalogSiteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Site
        fields = ["name", "region", "hub", "pue", "carbon_intensity_g_per_kwh", "green_power_share"]
        read_only_fields = fields


class CatalogOfferingSerializer(serializers.ModelSerializer):
    """A published offering as consumers see it. Expects the annotations of `selectors.catalog`."""

    center = CenterRefSerializer(read_only=True)
    site = CatalogSiteSerializer(read_only=True)
    accelerator = AcceleratorSerializer(read_only=True)
    price_per_device_hour = MoneyField(help_text="In `currency`.")
    price_per_pflop_hour = serializers.DecimalField(
        max_digits=20,
        decimal_places=4,
        read_only=True,
        help_text="price_per_device_hour ÷ the device's FP16 dense PFLOPS, to 4 decimals: the common compute "
        "unit for comparing chips.",
    )
    carbon_kg_per_device_hour = serializers.DecimalField(
        max_digits=12,
        decimal_places=4,
        read_only=True,
        allow_null=True,
        help_text="Estimated kg CO2e per device-hour: TDP (kW) × PUE × grid intensity (kg/kWh) × (1 − green "
        "power share), to 4 decimals. Null when the chip's TDP is unknown.",
    )
    available_devices = serializers.SerializerMethodField(
        help_text="Devices free over the whole requested window (`start`, `end`). Null when no window is given."
    )

    class Meta:
        model = Offering
        fields = [
            "id",
            "center",
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
            "price_per_pflop_hour",
            "carbon_kg_per_device_hour",
            "available_devices",
            "min_hours",
            "max_hours",
            "lead_time_hours",
            "cancel_notice_hours",
            "min_commit_fraction",
            "requires_approval",
            "voucher_eligible",
            "updated_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.IntegerField(allow_null=True))
    def get_available_devices(self, obj: Offering) -> int | None:
        value = getattr(obj, "available_devices", None)
        return None if value is None else int(value)
