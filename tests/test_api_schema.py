"""The OpenAPI document: valid, served as written, and true of a live node.

schemathesis generates requests from the document (examples, edge cases, random data)
and fails on any 500, any status code or body the document does not declare, and any
missing Allow header on a 405.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from handlers.api.openapi import document
from tests.redis_fixture import free_port

REPO = Path(__file__).resolve().parent.parent
KEY = "schema-test-key"
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance,unsupported_method"
)


def test_the_document_is_valid_openapi_3_1():
    validate(document())


@pytest.fixture(scope="module")
def node_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "node.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "run.py", "--host", "127.0.0.1", "--port", str(port),
             "--api-keys", KEY, "--node-id", f"schema-{port}"],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(url + "/health", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the node did not start:\n{log.read_text()}") from None
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def test_the_served_document_is_the_one_in_the_code(node_url: str):
    with urllib.request.urlopen(node_url + "/api/v1/openapi.json", timeout=5) as response:
        assert json.loads(response.read()) == json.loads(json.dumps(document()))


def test_generated_requests_find_no_500_and_no_undocumented_response(
    node_url: str, tmp_path: Path
):
    result = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", node_url + "/api/v1/openapi.json",
         "--header", f"Authorization: Bearer {KEY}", "--checks", CHECKS,
         "--phases", "examples,coverage,fuzzing", "--max-examples", "15",
         "--seed", "20261202", "--request-timeout", "10"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout.split("Test cases:")[-1]
