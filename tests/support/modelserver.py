"""A real HTTP server on 127.0.0.1 speaking the Hugging Face and Civitai endpoints otdoctor uses.

Hugging Face (pointed at with HF_ENDPOINT):
  HEAD/GET /{org}/{repo}/resolve/{rev}/{file}  X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size,
                                               Content-Length, Range
  POST /api/models/{org}/{repo}/paths-info/{rev}  size and LFS sha256 of the named paths
Civitai (pointed at with OTDOCTOR_CIVITAI_URL):
  GET /api/v1/model-versions/{id}              the version's JSON (files[], hashes.SHA256, sizeKB)
  GET /api/download/models/{id}                needs `Authorization: Bearer TOKEN`; without one an
                                               HTML login page, with a wrong one 401; with the right
                                               one a 307 to a signed URL on another host name
  GET /signed/{id}?sig=...                     the file, with Range; faults are injected here

  A repo in `hf_gated` answers 401 (no token) or 403 (a token without access), GatedRepo; a repo
  with no files at all answers 404, RepoNotFound.
Faults: `drop_at` (file offsets: each download request closes the connection once it has sent up
to the next offset), `gate_after` + `gate` (stop after that many bytes until the event is set); Civitai's signed
files always, Hugging Face files when `hf_faults` is set.
Every request's method, path and headers are recorded in `requests`.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LOGIN_PAGE = b"<!DOCTYPE html><html><head><title>Sign in | Civitai</title></head><body>Please log in</body></html>"


@dataclass
class CivitaiVersion:
    data: bytes
    name: str
    api_sha256: str | None = None  # what the API claims; default: the real one

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass
class ServerState:
    hf_files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    civitai: dict[int, CivitaiVersion] = field(default_factory=dict)
    hf_gated: set[str] = field(default_factory=set)  # repos whose licence the token's owner has not accepted
    hf_faults: bool = False  # apply drop_at and the gate to Hugging Face files too
    token: str | None = None
    drop_at: list[int] = field(default_factory=list)
    gate_after: int | None = None
    gate: threading.Event = field(default_factory=threading.Event)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server_version = "modelserver"
    protocol_version = "HTTP/1.1"

    @property
    def state(self) -> ServerState:
        return self.server.state  # type: ignore[attr-defined]

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _record(self) -> None:
        with self.state.lock:
            self.state.requests.append(
                {"method": self.command, "path": self.path, "headers": dict(self.headers.items())}
            )

    def do_HEAD(self) -> None:
        self._record()
        self._route(head=True)

    def do_GET(self) -> None:
        self._record()
        self._route(head=False)

    def do_POST(self) -> None:
        self._record()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        m = re.fullmatch(r"/api/models/([^/]+/[^/]+)/paths-info/([^/]+)", urlsplit(self.path).path)
        if not m:
            return self._simple(404, b'{"error":"Not found"}', "application/json")
        if self._hf_refused(m.group(1), head=False):
            return
        paths = parse_qs(body).get("paths", [])
        out = []
        for path in paths:
            data = self.state.hf_files.get((m.group(1), path))
            if data is not None:
                sha = hashlib.sha256(data).hexdigest()
                out.append(
                    {
                        "type": "file",
                        "path": path,
                        "size": len(data),
                        "oid": hashlib.sha1(data).hexdigest(),
                        "lfs": {"oid": sha, "size": len(data), "pointerSize": 134},
                    }
                )
        self._simple(200, json.dumps(out).encode(), "application/json")

    def _simple(
        self, code: int, body: bytes, ctype: str, extra: dict[str, str] | None = None, head: bool = False
    ) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _route(self, head: bool) -> None:
        path = urlsplit(self.path).path
        m = re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path)
        if m:
            return self._hf(m.group(1), m.group(3), head)
        m = re.fullmatch(r"/api/v1/model-versions/(\d+)", path)
        if m:
            return self._civitai_info(int(m.group(1)))
        m = re.fullmatch(r"/api/download/models/(\d+)", path)
        if m:
            return self._civitai_download(int(m.group(1)))
        m = re.fullmatch(r"/signed/(\d+)", path)
        if m and int(m.group(1)) in self.state.civitai:
            v = self.state.civitai[int(m.group(1))]
            return self._send_file(
                v.data, {"Content-Disposition": f'attachment; filename="{v.name}"'}, head, faults=True
            )
        self._simple(404, b'{"error":"Not found"}', "application/json", head=head)

    # Hugging Face ---------------------------------------------------------------------------------
    def _hf_refused(self, repo: str, head: bool) -> bool:
        """Hugging Face's answers for a gated repo (401 without a token, 403 with one) and a missing one."""
        if repo in self.state.hf_gated:
            code = 403 if self.headers.get("Authorization") else 401
            msg = f"Access to model {repo} is restricted. You must have access to it and be authenticated."
            self._simple(code, msg.encode(), "text/plain", {"X-Error-Code": "GatedRepo", "X-Error-Message": msg}, head)
            return True
        if not any(r == repo for r, _ in self.state.hf_files):
            msg = "Repository not found"
            extra = {"X-Error-Code": "RepoNotFound", "X-Error-Message": msg}
            self._simple(404, msg.encode(), "text/plain", extra, head)
            return True
        return False

    def _hf(self, repo: str, filename: str, head: bool) -> None:
        if self._hf_refused(repo, head):
            return
        data = self.state.hf_files.get((repo, filename))
        if data is None:
            return self._simple(404, b"Entry not found", "text/plain", {"X-Error-Code": "EntryNotFound"}, head)
        sha = hashlib.sha256(data).hexdigest()
        extra = {
            "X-Repo-Commit": COMMIT,
            "ETag": f'"{sha}"',
            "X-Linked-Etag": f'"{sha}"',
            "X-Linked-Size": str(len(data)),
        }
        self._send_file(data, extra, head, faults=self.state.hf_faults)

    # Civitai --------------------------------------------------------------------------------------
    def _civitai_info(self, version_id: int) -> None:
        v = self.state.civitai.get(version_id)
        if v is None:
            return self._simple(404, b'{"error":"No model version with id"}', "application/json")
        host, port = self.server.server_address[:2]  # type: ignore[misc]
        body = {
            "id": version_id,
            "name": "V3",
            "files": [
                {
                    "id": 1,
                    "name": v.name,
                    "sizeKB": len(v.data) / 1024,
                    "type": "Model",
                    "primary": True,
                    "hashes": {"SHA256": (v.api_sha256 or v.sha256).upper()},
                    "downloadUrl": f"http://{host}:{port}/api/download/models/{version_id}",
                }
            ],
        }
        self._simple(200, json.dumps(body).encode(), "application/json")

    def _civitai_download(self, version_id: int) -> None:
        auth = self.headers.get("Authorization", "")
        if self.state.token is not None:
            if not auth:
                return self._simple(200, LOGIN_PAGE, "text/html; charset=utf-8")
            if auth != f"Bearer {self.state.token}":
                return self._simple(401, b'{"error":"Unauthorized","message":"Invalid API key"}', "application/json")
        if version_id not in self.state.civitai:
            return self._simple(404, b'{"error":"Model not found"}', "application/json")
        port = self.server.server_address[1]  # type: ignore[misc]
        # A different host name for the same server: a signed storage URL is never civitai.com.
        location = f"http://localhost:{port}/signed/{version_id}?sig=s3cr3tsig&expires=1"
        self.send_response(307)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    # Files with Range and faults -----------------------------------------------------------------
    def _send_file(self, data: bytes, extra: dict[str, str], head: bool, faults: bool) -> None:
        start, end = 0, len(data) - 1
        rng = self.headers.get("Range")
        code = 200
        if rng:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if m:
                start = int(m.group(1))
                if m.group(2):
                    end = min(int(m.group(2)), len(data) - 1)
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                code = 206
        body = data[start : end + 1]
        self.send_response(code)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        if code == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        for k, v in extra.items():
            self.send_header(k, v)
        self.end_headers()
        if head:
            return
        stop = len(data)
        if faults:
            with self.state.lock:
                while self.state.drop_at and self.state.drop_at[0] < start:
                    self.state.drop_at.pop(0)
                if self.state.drop_at:
                    stop = self.state.drop_at.pop(0)
        try:
            pos = start
            gate = self.state.gate_after if faults else None
            if gate is not None and start <= gate < stop:
                self.wfile.write(data[pos:gate])
                self.wfile.flush()
                pos = gate
                self.state.gate.wait(30)
            self.wfile.write(data[pos : min(stop, end + 1)])
            self.wfile.flush()
            if stop <= end:  # the fault: close the connection before the announced length
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True


class ModelServer:
    def __init__(self) -> None:
        self.state = ServerState()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.state = self.state  # type: ignore[attr-defined]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self) -> ModelServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.state.gate.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def requests_to(self, prefix: str) -> list[dict[str, Any]]:
        with self.state.lock:
            return [r for r in self.state.requests if urlsplit(r["path"]).path.startswith(prefix)]
