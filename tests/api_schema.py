"""Check one real API response against the OpenAPI schema the app serves, the way the API fuzzer (tests/fuzz)
does: a status code the operation documents, a documented content type, and a body valid against that status's
documented schema.

Regression tests for what the fuzzer found use it so that a schema annotation cannot drift from the response again.
"""

from __future__ import annotations

import requests
import schemathesis
from django.test import Client


def assert_documented(response, method: str, path_template: str) -> None:
    """Raise (with schemathesis' explanation) unless `response`, a Django test response to `method`
    `path_template`, is what the schema documents."""
    served = Client().get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert served.status_code == 200
    operation = schemathesis.openapi.from_dict(served.json())[path_template][method.upper()]
    operation.validate_response(
        schemathesis.Response(
            status_code=response.status_code,
            headers={name: [value] for name, value in response.headers.items()},
            content=response.content,
            request=requests.Request(method.upper(), f"http://testserver{path_template}").prepare(),
            elapsed=0.0,
            verify=True,
        )
    )
