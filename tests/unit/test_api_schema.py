"""The API's OpenAPI 3 schema validates (drf-spectacular's validator, warnings are failures) and is
complete enough to build the app from: ids, tags, summaries, error bodies, examples."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from django.core.management import call_command


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict:
    target = Path(tmp_path_factory.mktemp("schema")) / "openapi.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))  # raises on any warning
    return yaml.safe_load(target.read_text())


def operations(schema: dict) -> list[tuple[str, str, dict]]:
    return [(path, method, op) for path, item in schema["paths"].items() for method, op in item.items()]


def test_schema_validates_and_names_every_operation(schema):
    assert schema["openapi"].startswith("3.")
    ops = operations(schema)
    assert len(ops) == 14
    ids = [op["operationId"] for _, _, op in ops]
    assert len(set(ids)) == len(ids)
    for path, method, op in ops:
        assert op.get("summary") and op.get("tags"), (method, path)
        assert "429" in op["responses"], (method, path)
        for code, response in op["responses"].items():
            if code.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/Error", (method, path, code)
    error = schema["components"]["schemas"]["ErrorDetail"]
    assert set(error["required"]) == {"code", "message", "fields", "request_id"}


def test_staff_operations_need_a_token_and_uploads_are_multipart(schema):
    by_id = {op["operationId"]: (path, method, op) for path, method, op in operations(schema)}
    for name in ("products_create", "product_update", "product_variant_set", "product_images_upload", "image_status"):
        _, _, op = by_id[name]
        assert {"tokenAuth": []} in op["security"] and {} not in op["security"], name
        assert {"401", "403"} <= set(op["responses"]), name
    for name in ("search_photo", "product_images_upload"):
        assert "multipart/form-data" in by_id[name][2]["requestBody"]["content"], name
        assert "413" in by_id[name][2]["responses"], name
    assert {} in by_id["search_text"][2]["security"]  # public: no credentials needed


def test_key_operations_have_examples(schema):
    by_id = {op["operationId"]: op for _, _, op in operations(schema)}
    for name in ("search_text", "search_photo", "product_alternatives"):
        examples = by_id[name]["responses"]["200"]["content"]["application/json"].get("examples")
        assert examples, name
    photo_400 = by_id["search_photo"]["responses"]["400"]["content"]["application/json"]["examples"]
    assert any(e["value"]["error"]["code"] == "image_rejected" for e in photo_400.values())
