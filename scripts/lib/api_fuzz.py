#!/usr/bin/env python3
"""Fuzz the HTTP API with schemathesis against a real pdm-server, signed in as an admin.

Starts the binary (``$PDM_SERVER_BIN`` or the first argument) on SQLite in a fresh data
directory with a generated first admin, signs in, makes an admin API token (so that the
fuzzer's own ``POST /auth/logout`` cannot end the session it runs on), and runs
``st run`` on ``/api/v1/openapi.json`` with every check and every phase; the settings are in
``scripts/lib/schemathesis.toml``. Afterwards the server's log is read: a panic, or the
admin's password or token in it, fails the run.

Exit status: schemathesis's, or 1 for a failure of this script's own checks.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent


def log(msg: str) -> None:
    print(f"[api-fuzz] {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base: str, method: str, path: str, body: dict | None = None, token: str | None = None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    if data is not None:
        req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read() or b"null")


def upload(base: str, path: str, name: str, content: bytes, token: str):
    """One file as multipart/form-data (a part named `file`)."""
    boundary = "pdm-fuzz-" + secrets.token_hex(8)
    body = (
        f'--{boundary}\r\ncontent-disposition: form-data; name="file"; filename="{name}"\r\n\r\n'
    ).encode() + content + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(base + path, data=body, method="POST")
    req.add_header("content-type", f"multipart/form-data; boundary={boundary}")
    req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def seed(base: str, token: str) -> None:
    """Something for the fuzzer to find at the ids and keys the schema's examples name: machine
    `pump-1` with sensor `temp`, readings, an alarm (a limit rule it crosses), a work order of
    it with an attachment, a training job and a webhook (to a name that does not resolve, so
    nothing is sent)."""
    call(base, "POST", "/api/v1/machines", {"key": "pump-1", "name": "Pump 1"}, token)
    call(base, "POST", "/api/v1/machines/pump-1/sensors", {"key": "temp", "unit": "degC"}, token)
    rule = {"severity": "high", "kind": {"type": "sensor_limit", "sensor": "temp", "above": 80}}
    call(base, "PUT", "/api/v1/machines/pump-1/alarm-rules/hot", rule, token)
    now = int(time.time() * 1000)
    rows = [{"ts": now - 60_000 + i * 1000, "values": {"temp": 60.0 + i}} for i in range(40)]
    call(base, "POST", "/api/v1/machines/pump-1/telemetry", rows, token)
    call(base, "POST", "/api/v1/machines/pump-1/models", {"from": now - 120_000, "to": now}, token)
    call(
        base,
        "POST",
        "/api/v1/webhooks",
        {"url": "https://hooks.pdm-fuzz.invalid/in", "description": "fuzz"},
        token,
    )
    deadline = time.monotonic() + 20
    while not call(base, "GET", "/api/v1/alarms", None, token)["alarms"]:
        if time.monotonic() > deadline:
            raise SystemExit("[api-fuzz] ERROR: the seeded readings raised no alarm in 20 s")
        time.sleep(0.2)
    alarm = call(base, "GET", "/api/v1/alarms", None, token)["alarms"][0]["id"]
    work_order = call(base, "POST", f"/api/v1/alarms/{alarm}/work-order", None, token)["id"]
    upload(base, f"/api/v1/work-orders/{work_order}/attachments", "notes.txt", b"seal ok\n", token)
    upload(base, f"/api/v1/alarms/{alarm}/attachments", "notes.csv", b"t,v\n1,2\n", token)


def main() -> int:
    binary = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("PDM_SERVER_BIN", "")
    if not binary or not os.access(binary, os.X_OK):
        log(f"ERROR: no pdm-server binary (got {binary!r}); pass it or set PDM_SERVER_BIN")
        return 1
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        log(f"ERROR: schemathesis is not installed beside {sys.executable}")
        return 1
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    email = "fuzz-admin@test.pdm"
    password = "fuzz " + secrets.token_urlsafe(18)
    with tempfile.TemporaryDirectory(prefix="pdm-api-fuzz-") as data:
        log_path = Path(data) / "server.log"
        env = dict(os.environ)
        for k in list(env):
            if k.startswith("PDM_"):
                del env[k]
        env.update(
            PDM_ADMIN_EMAIL=email,
            PDM_ADMIN_PASSWORD=password,
            PDM_LOG="info",
            NO_COLOR="1",
        )
        with open(log_path, "wb") as out:
            server = subprocess.Popen(
                [binary, "--data-dir", data, "serve", "--http", f"127.0.0.1:{port}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(base + "/health/ready", timeout=2).read()
                    break
                except (urllib.error.URLError, ConnectionError, OSError):
                    if server.poll() is not None or time.monotonic() > deadline:
                        log("ERROR: the server did not become ready; its log:")
                        sys.stderr.write(log_path.read_text(errors="replace"))
                        return 1
                    time.sleep(0.2)
            signed = call(base, "POST", "/api/v1/auth/login", {"email": email, "password": password})
            made = call(
                base,
                "POST",
                "/api/v1/tokens",
                {"name": "schemathesis", "role": "admin", "expires_in_days": 1},
                signed["access_token"],
            )
            token = made["secret"]
            # What the fuzzer may deactivate, re-role and revoke: a user and a token of their
            # own, so that it does not lock itself out (scripts/lib/schemathesis.toml points
            # those operations at them).
            victim = call(
                base,
                "POST",
                "/api/v1/users",
                {
                    "email": "fuzz-victim@test.pdm",
                    "name": "Fuzz victim",
                    "password": "victim " + secrets.token_urlsafe(12),
                    "role": "viewer",
                },
                token,
            )
            victim_token = call(
                base, "POST", "/api/v1/tokens", {"name": "victim", "role": "viewer"}, token
            )
            seed(base, token)
            env_st = dict(os.environ)
            env_st["PDM_FUZZ_USER"] = str(victim["id"])
            env_st["PDM_FUZZ_TOKEN"] = str(victim_token["id"])
            log(f"server on {base}, signed in as {email}; running schemathesis")
            cmd = [
                str(st),
                "--config-file",
                str(HERE / "schemathesis.toml"),
                "run",
                f"{base}/api/v1/openapi.json",
                "--checks",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--header",
                f"Authorization: Bearer {token}",
            ]
            # Run where its cache cannot land in the working tree.
            rc = subprocess.call(cmd, env=env_st, cwd=data)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
        text = log_path.read_text(errors="replace")
        problems = []
        if "panicked" in text:
            problems.append("the server panicked")
        for name, value in [("the admin's password", password), ("the API token", token)]:
            if value in text:
                problems.append(f"{name} is in the server's log")
        if problems:
            for p in problems:
                log(f"ERROR: {p}")
            sys.stderr.write(text[-20000:])
            return 1
        log(f"the server's log ({len(text.splitlines())} lines) holds no panic and no secret")
    return rc


if __name__ == "__main__":
    sys.exit(main())
