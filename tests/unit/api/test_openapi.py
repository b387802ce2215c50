"""The OpenAPI description: one source (crank_node.node.intake_openapi), checked in as
docs/openapi.json, covering every route the intake listener serves."""

from __future__ import annotations

import json
import re
from pathlib import Path

from crank_node.node.intake_http import intake_app
from crank_node.node.intake_openapi import openapi_document, render

CHECKED_IN = Path(__file__).resolve().parents[3] / "docs" / "openapi.json"


def test_the_checked_in_openapi_json_is_what_the_node_serves() -> None:
    """docs/openapi.json is byte for byte the node's document (regenerate with
    ``python -m crank_node.node.intake_openapi > docs/openapi.json``)."""
    assert CHECKED_IN.read_text() == render()


def test_every_route_of_the_intake_listener_is_described_and_nothing_else() -> None:
    """Each (method, path) intake_app routes is in the document's paths, and the reverse."""
    app = intake_app(lambda: None)
    served = {
        (route.method.lower(), re.sub(r"\{(\w+):[^}]*\}", r"{\1}", route.resource.canonical))
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    described = {
        (method, path) for path, item in openapi_document()["paths"].items() for method in item
    }

    assert served == described


def test_every_described_answer_of_4xx_and_5xx_is_the_one_error_shape() -> None:
    """Every error response of every operation points at the Error schema, whose
    ``code`` is an enum of stable codes."""
    document = json.loads(render())
    for item in document["paths"].values():
        for operation in item.values():
            for status, answer in operation["responses"].items():
                if int(status) >= 400:
                    schema = answer["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, status
    error = document["components"]["schemas"]["Error"]["properties"]["error"]
    assert "number_out_of_range" in error["properties"]["code"]["enum"]
