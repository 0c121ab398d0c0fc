"""A real HTTP server on loopback answering with recorded-format KFP v2beta1 API responses.

No KFP cluster is available to the test suite; ``data/kfp_v2beta1_run.json`` holds a run, its
artifacts and their bytes in the shape the KFP API server returns (see that file's comment).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from google.protobuf import json_format

DATA = json.loads((Path(__file__).parent / "data" / "kfp_v2beta1_run.json").read_text())
RUN_ID = DATA["run"]["run_id"]
TOKEN = "test-token"


class RecordedKfpApi(ThreadingHTTPServer):
    """Loopback HTTP server answering with the recorded KFP v2beta1 responses."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spec = spec
        self.requests: list[tuple[str, str | None]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: RecordedKfpApi

    def log_message(self, *args: Any) -> None:  # keep the test output clean
        pass

    def _send(self, status: int, body: bytes, kind: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlparse(self.path)
        self.server.requests.append((url.path, self.headers.get("Authorization")))
        parts = url.path.strip("/").split("/")
        if parts[0] == "signed":  # a signed object-store URL: no API token needed
            body = DATA["downloads"].get(parts[1])
            self._send(200 if body else 404, (body or "").encode(), "application/octet-stream")
            return
        if self.headers.get("Authorization") != f"Bearer {TOKEN}":
            self._send(401, b'{"error": "unauthenticated", "code": 16}')
            return
        body = self._route(parts, parse_qs(url.query))
        if body is None:
            self._send(404, b'{"error": "not found", "code": 5}')
        else:
            self._send(200, json.dumps(body).encode())

    def _route(self, parts: list[str], query: dict[str, list[str]]) -> Any:
        if parts == ["apis", "v2beta1", "runs"]:  # two pages of one run each
            if query.get("page_token") == ["page-2"]:
                return {"runs": [{**DATA["run"], "run_id": "second"}], "total_size": 2}
            return {"runs": [DATA["run"]], "total_size": 2, "next_page_token": "page-2"}
        if parts[:3] == ["apis", "v2beta1", "runs"] and len(parts) == 4:
            return DATA["run"] if parts[3] == DATA["run"]["run_id"] else None
        if parts[:3] == ["apis", "v2beta1", "artifacts"] and len(parts) == 4:
            art = DATA["artifacts"].get(parts[3])
            if art is not None and query.get("view") == ["DOWNLOAD"]:
                art = {**art, "download_url": f"{self.server.url}/signed/{parts[3]}"}
            return art
        if parts[:3] == ["apis", "v2beta1", "pipelines"] and parts[4:5] == ["versions"]:
            return {**DATA["pipeline_version"], "pipeline_spec": self.server.spec}
        return None


@contextmanager
def serve_recorded_api(pipeline: Any) -> Iterator[RecordedKfpApi]:
    """Serve the recorded run; its pipeline version holds ``pipeline``'s compiled spec."""
    server = RecordedKfpApi(json_format.MessageToDict(pipeline.pipeline_spec))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
