"""A real pdm-server for the Python tests: the binary (``$PDM_SERVER_BIN``, else
``target/{debug,release}/pdm-server``) on a temporary SQLite directory and a free port, signed in
as the test admin, with a small JSON client (urllib). Without a binary the tests skip, saying how
to build it; with ``CI=true`` they fail instead."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Iterator, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD_HINT = (
    "build it with `cargo build -p pdm-server` (or run scripts/test, which does) and/or set "
    "PDM_SERVER_BIN=/path/to/pdm-server"
)


def _server_bin() -> Optional[Path]:
    """The pdm-server binary: $PDM_SERVER_BIN (which must then exist), else the first built one."""
    explicit = os.environ.get("PDM_SERVER_BIN")
    if explicit:
        path = Path(explicit)
        if not (path.is_file() and os.access(path, os.X_OK)):
            pytest.fail(f"PDM_SERVER_BIN={explicit} is not an executable file; {BUILD_HINT}")
        return path
    dirs = []
    if os.environ.get("CARGO_TARGET_DIR"):
        dirs.append(Path(os.environ["CARGO_TARGET_DIR"]))
    dirs.append(ROOT / "target")
    for d in dirs:
        for profile in ("debug", "release"):
            path = d / profile / "pdm-server"
            if path.is_file() and os.access(path, os.X_OK):
                return path
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The admin the server is started with (every API request is signed in as it).
ADMIN_EMAIL = "admin@test.pdm"
ADMIN_PASSWORD = "the test admin's password"


class Server:
    """A running pdm-server and a small JSON client for it."""

    def __init__(self, proc: subprocess.Popen, base: str, log: Path) -> None:
        self.proc = proc
        self.base = base
        self.log = log
        self._token: Optional[str] = None

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def request(
        self, method: str, path: str, body: Any = None, raw: Optional[bytes] = None
    ) -> Tuple[int, Any]:
        """(status, parsed JSON body, or the bytes when it is not JSON)."""
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method)
        if path.startswith("/api/v1") and not path.startswith("/api/v1/auth/"):
            req.add_header("authorization", f"Bearer {self.token()}")
        if raw is not None:
            req.add_header("content-type", "application/octet-stream")
        elif body is not None:
            req.add_header("content-type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                status, payload = resp.status, resp.read()
        except urllib.error.HTTPError as e:
            status, payload = e.code, e.read()
        try:
            return status, json.loads(payload)
        except ValueError:
            return status, payload

    def token(self) -> str:
        """An access token of the test admin (PDM_ADMIN_EMAIL), signed in once."""
        if self._token is None:
            status, body = self.request(
                "POST", "/api/v1/auth/login",
                body={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
            )
            assert status == 200, f"the test admin cannot sign in: {status} {body!r}"
            self._token = body["access_token"]
        return self._token

    def get_bytes(self, path: str) -> bytes:
        req = urllib.request.Request(self.base + path)
        req.add_header("authorization", f"Bearer {self.token()}")
        with urllib.request.urlopen(req, timeout=60) as resp:
            assert resp.status == 200, resp.status
            return bytes(resp.read())

    def ok(self, method: str, path: str, expect: int = 200, **kw: Any) -> Any:
        status, payload = self.request(method, path, **kw)
        assert status == expect, f"{method} {path}: {status} {payload!r}\n--- server log ---\n{self.log_tail()}"
        return payload


@contextlib.contextmanager
def running_server(tmp_path: Path, config_text: str) -> Iterator[Server]:
    """The binary on a fresh SQLite directory under `tmp_path` with `config_text` as its
    configuration, ready; killed afterwards. Skips (fails with CI=true) without a binary."""
    binary = _server_bin()
    if binary is None:
        message = f"no pdm-server binary (PDM_SERVER_BIN unset, none under target/): {BUILD_HINT}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: the server tests must run, but there is {message}")
        pytest.skip(f"SKIPPED the server tests: {message}")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    config = tmp_path / "pdm.toml"
    config.write_text(config_text)
    # The server reads PDM_* variables: none of the caller's (a database URL, a broker) may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDM_")}
    env["PDM_LOG"] = "info"
    env["PDM_ADMIN_EMAIL"] = ADMIN_EMAIL
    env["PDM_ADMIN_PASSWORD"] = ADMIN_PASSWORD
    log = tmp_path / "server.log"
    for _attempt in range(3):
        port = _free_port()
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(binary), "--config", str(config), "--data-dir", str(data_dir), "serve",
                 "--http", f"127.0.0.1:{port}"],
                stdout=out, stderr=subprocess.STDOUT, env=env,
            )
        srv = Server(proc, f"http://127.0.0.1:{port}", log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(srv.base + "/health/ready", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        else:
            code = proc.poll()
            if code is None:
                proc.kill()
                proc.wait()
                pytest.fail(f"{binary} was not ready within 60 s\n--- server log ---\n{srv.log_tail()}")
            if "in use" in srv.log_tail().lower():
                continue  # the free port was taken meanwhile: another one
            pytest.fail(f"{binary} exited with {code} at start-up\n--- server log ---\n{srv.log_tail()}")
        break
    else:
        pytest.fail(f"{binary} could not bind a port in 3 attempts\n{srv.log_tail()}")
    try:
        yield srv
    finally:
        proc.kill()
        proc.wait(timeout=30)


