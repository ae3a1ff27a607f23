"""An OAuth2 token introspection endpoint (RFC 7662) on loopback, for Dovecot's oauth2 passdb.

Dovecot (``introspection_mode = post``) POSTs ``token=<access token>`` and checks the JSON
answer: ``active`` must be ``true`` and the answer must name the user logging in. This stand-in
answers only for tokens the test token servers really issued, and asks those servers:

- the Graph test server's msal token endpoint (Microsoft client credentials): a token it issued,
  not expired, to an app holding the ``IMAP.AccessAsApp`` application permission that Exchange
  Online requires for IMAP with client credentials. An app token names no user; the answer says
  which organisation it is good for (``tenant_user``: ``app@<domain>``), and the Dovecot
  fixture's second oauth2 passdb compares domains only (``username_format = %d``);
- the Gmail test server's token endpoint (a Google service account with domain-wide delegation,
  through google-auth): a token it issued, not expired, with the scope Gmail's IMAP requires
  (``https://mail.google.com/``); ``username`` is the token's subject, the mailbox the service
  account acted as, compared with the login exactly.

A token nobody issued, or one past its expiry, gets ``{"active": false}`` with both user fields
empty: Dovecot then refuses the login (a missing field would be an internal failure instead).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

IMAP_ROLE = "IMAP.AccessAsApp"
GMAIL_IMAP_SCOPE = "https://mail.google.com/"


class TokenIntrospection:
    def __init__(self):
        self.graph = None  # GraphServer whose app tokens are good for ``graph_domain``
        self.graph_domain = ""
        self.gmail = None  # GmailServer whose delegated tokens name their mailbox
        # Tokens answered inactive, in order (Dovecot asks once per oauth2 passdb it tries).
        self.refused: list[str] = []
        self.httpd: ThreadingHTTPServer | None = None

    def trust_graph(self, graph, domain: str) -> None:
        self.graph, self.graph_domain = graph, domain

    def trust_gmail(self, gmail) -> None:
        self.gmail = gmail

    def forget_issuers(self) -> None:
        self.graph, self.graph_domain, self.gmail = None, "", None

    def answer(self, token: str) -> dict:
        inactive = {"active": False, "username": "", "tenant_user": ""}
        now = time.time()
        issued = self.graph.tokens.get(token) if self.graph else None
        if issued:
            app, expires = issued
            if expires > now and IMAP_ROLE in app.roles:
                return {
                    "active": True,
                    "username": "",
                    "tenant_user": f"app@{self.graph_domain}",
                    "client_id": app.client_id,
                }
            return inactive
        grant = self.gmail.tokens.get(token) if self.gmail else None
        if grant and grant.expires > now and GMAIL_IMAP_SCOPE in grant.scopes:
            return {"active": True, "username": grant.subject, "tenant_user": ""}
        return inactive

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/introspect"

    def start(self) -> TokenIntrospection:
        handler = type("Handler", (_Handler,), {"introspection": self})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    introspection: TokenIntrospection
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        form = parse_qs(self.rfile.read(length).decode(errors="replace"))
        if self.path != "/introspect" or "token" not in form:
            self._reply(400, {"error": "invalid_request"})
            return
        token = form["token"][0]
        body = self.introspection.answer(token)
        if not body["active"]:
            self.introspection.refused.append(token)
        self._reply(200, body)

    def _reply(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
