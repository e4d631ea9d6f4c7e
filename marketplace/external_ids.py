"""Centers' own keys for their sites and offerings (`external_id`), as accepted by the inventory API."""

from __future__ import annotations

import re

from django.core.validators import RegexValidator
from django.utils.translation import gettext_lazy as _

# Keys travel in URL paths (`/sites/{external_id}`), so no slash, whitespace or control characters; a NUL byte
# would otherwise reach PostgreSQL, which refuses it in text.
EXTERNAL_ID_PATTERN = re.compile(r"^[^\x00-\x20\x7f/]{1,128}$")

external_id_validator = RegexValidator(
    EXTERNAL_ID_PATTERN, _("Use 1 to 128 characters without spaces, slashes or control characters.")
)


def is_valid_external_id(value: str) -> bool:
    return isinstance(value, str) and bool(EXTERNAL_ID_PATTERN.match(value))
