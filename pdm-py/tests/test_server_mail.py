"""The password reset by mail (issue 11), against a real pdm-server and a real SMTP server
(aiosmtpd, in this process): the token reaches the user's address and nowhere else (not the
server's log), the request is answered alike for an unknown address (which gets no mail), and
the mailed token sets a new password once.

The connection is plain SMTP on 127.0.0.1 (`security = "none"`); STARTTLS and TLS use lettre's
rustls transport with the system's roots and are not exercised here (no certificate authority a
test could trust).
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, List

import pytest

from _server import ADMIN_EMAIL, ADMIN_PASSWORD, _free_port, running_server

aiosmtpd_controller = pytest.importorskip(
    "aiosmtpd.controller", reason="aiosmtpd is not installed (pip install aiosmtpd)"
)


class Inbox:
    """Every message the SMTP server accepts."""

    def __init__(self) -> None:
        self.messages: List[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 OK"


def wait_for(inbox: Inbox, n: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while len(inbox.messages) < n:
        assert time.monotonic() < deadline, f"{len(inbox.messages)} of {n} mails arrived"
        time.sleep(0.05)


def test_the_reset_token_is_mailed_to_the_user_and_resets_once(tmp_path: Path) -> None:
    inbox = Inbox()
    port = _free_port()
    smtp = aiosmtpd_controller.Controller(inbox, hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        config = (
            "[smtp]\n"
            'host = "127.0.0.1"\n'
            f"port = {port}\n"
            'security = "none"\n'
            'from = "pdm <pdm@test.pdm>"\n'
        )
        with running_server(tmp_path, config) as srv:
            unknown = srv.request("POST", "/api/v1/auth/password-reset", {"email": "nobody@test.pdm"})
            known = srv.request("POST", "/api/v1/auth/password-reset", {"email": ADMIN_EMAIL.upper()})
            assert unknown == known and known[0] == 202, (unknown, known)
            wait_for(inbox, 1)
            time.sleep(0.5)  # time for a second mail, were one sent for the unknown address
            assert len(inbox.messages) == 1, [m.rcpt_tos for m in inbox.messages]
            mail = inbox.messages[0]
            assert mail.rcpt_tos == [ADMIN_EMAIL]
            assert mail.mail_from == "pdm@test.pdm"
            text = mail.content.decode("utf-8", "replace")
            assert "Subject: Reset your pdm password" in text, text
            found = re.search(r"pdm_pr_[A-Za-z0-9_-]+", text)
            assert found, text
            token = found.group(0)

            new = "a brand new password 42"
            srv.ok("POST", "/api/v1/auth/password-reset/confirm", expect=204,
                   body={"token": token, "new_password": new})
            status, body = srv.request("POST", "/api/v1/auth/password-reset/confirm",
                                       {"token": token, "new_password": "yet another one 43"})
            assert status == 401 and body["error"]["details"]["reason"] == "reset_invalid", body
            status, _ = srv.request("POST", "/api/v1/auth/login",
                                    {"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD})
            assert status == 401
            srv.ok("POST", "/api/v1/auth/login", body={"email": ADMIN_EMAIL, "password": new})
            log = srv.log.read_text(errors="replace")
            assert token not in log, "the mailed token is in the server's log"
            assert "password reset token mailed" in log, srv.log_tail()
    finally:
        smtp.stop()


def test_a_mail_server_that_is_down_is_logged_and_the_answer_is_the_same(tmp_path: Path) -> None:
    port = _free_port()  # nothing listens there
    config = (
        "[smtp]\n"
        'host = "127.0.0.1"\n'
        f"port = {port}\n"
        'security = "none"\n'
        'from = "pdm@test.pdm"\n'
        "timeout_ms = 2000\n"
    )
    with running_server(tmp_path, config) as srv:
        status, body = srv.request("POST", "/api/v1/auth/password-reset", {"email": ADMIN_EMAIL})
        assert status == 202, body
        deadline = time.monotonic() + 20
        while "could not mail the password reset token" not in srv.log.read_text(errors="replace"):
            assert time.monotonic() < deadline, srv.log_tail()
            time.sleep(0.1)
        assert "pdm_pr_" not in srv.log.read_text(errors="replace")
