"""Webhooks: POST JSON to a URL that a config file names, safely and without losing it.

A webhook URL comes from ``.mloop/monitoring.yaml``, which a cloned repository controls,
so a request to it is a request an attacker may have chosen (server-side request
forgery). Before each attempt the host is resolved and *every* address it resolves to is
checked: loopback, private, link-local (``169.254.169.254``, the cloud metadata service),
shared, reserved and multicast addresses are refused unless the user allowed the name or
a network holding them with ``webhook_allow_hosts`` (``[webhooks] allow_hosts`` in
``~/.config/mloop/config.toml`` or ``MLOOP_WEBHOOK_ALLOW_HOSTS``; never the project's
config). The connection then goes to the checked address itself, so a DNS answer that
changes between check and connect (DNS rebinding) cannot redirect it, and redirects are
never followed (a 3xx is a failed delivery that says so).

Deliveries run on a few background threads, so a check loop never waits for a slow
receiver; each is tried :data:`ATTEMPTS` times with exponential backoff on connection
errors, 408, 429 and 5xx. :func:`flush` waits for what is pending, bounded in time, and
runs at interpreter exit too, so a command that fired alerts delivers them before it
ends. Logs show a webhook as ``scheme://host:port/…`` only: its path is often a token.
"""

from __future__ import annotations

import atexit
import http.client
import ipaddress
import os
import queue
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from mloop.core.redact import get_logger, url_origin
from mloop.errors import InvalidInputError, MloopError

log = get_logger("mloop.monitoring")

ATTEMPTS = 3
TIMEOUT = 5.0  # seconds, per attempt (connect and answer)
BACKOFF = 0.5  # seconds before the 2nd attempt, doubling after
FLUSH_TIMEOUT = 30.0  # seconds a process waits at most for its pending deliveries
_WORKERS = 4
_RETRY_STATUSES = frozenset({408, 425, 429})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookRefused(InvalidInputError):
    """The webhook's host is an address that needs the user's explicit allowance."""


def check_webhook(url: str) -> str:
    """``url`` if it is an http(s) URL with a host (a config-time check; the address is
    checked at each delivery, since DNS answers change)."""
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
        _ = parts.port  # a port that is not a number
    except ValueError:
        ok = False
    if not ok:
        raise InvalidInputError(f"The webhook must be an http(s) URL, not "
                                f"{url_origin(url)!r}.")
    return url


@dataclass(frozen=True)
class AllowList:
    """What the user allowed: host names, and networks (CIDR or single addresses)."""

    names: frozenset[str]
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

    @classmethod
    def parse(cls, items: Iterable[str]) -> AllowList:
        names, networks = set(), []
        for item in items:
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                names.add(item.strip().lower().rstrip("."))
        return cls(frozenset(names), tuple(networks))

    @classmethod
    def from_settings(cls) -> AllowList:
        from mloop.core.settings import user_setting

        return cls.parse(user_setting("webhook_allow_hosts") or ())

    def allows(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)


def _why_private(address: IPAddress) -> str | None:
    """Why ``address`` is not a public internet address (None when it is one)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for test, what in ((address.is_loopback, "a loopback"),
                       (address.is_link_local, "a link-local"),
                       (address.is_private, "a private"),
                       (address.is_multicast, "a multicast"),
                       (address.is_unspecified, "an unspecified"),
                       (not address.is_global, "a non-public")):
        if test:
            return what
    return None


def check_addresses(host: str, addresses: Iterable[IPAddress], allow: AllowList) -> None:
    """Raise :class:`WebhookRefused` unless every address is public or allowed."""
    if host.lower().rstrip(".") in allow.names:
        return
    for address in addresses:
        why = _why_private(address)
        if why is not None and not allow.allows(address):
            raise WebhookRefused(
                f"{host} resolves to {address}, {why} address: mloop refuses to send "
                f"webhooks there unless you allow it. Add {host!r} (or a network holding "
                f"{address}) to allow_hosts under [webhooks] in ~/.config/mloop/config.toml, "
                f"or set MLOOP_WEBHOOK_ALLOW_HOSTS.")


def resolve(host: str, port: int, allow: AllowList) -> list[str]:
    """The addresses of ``host`` to connect to, each checked against the policy."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise OSError(f"cannot resolve {host}: {exc}") from None
    found = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    check_addresses(host, [ipaddress.ip_address(a) for a in found], allow)
    return found


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to one checked address, whatever the name resolves to now;
    TLS still verifies the certificate against the host name."""

    def __init__(self, host: str, port: int, address: str, timeout: float,
                 tls: ssl.SSLContext | None) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address, self._tls = address, tls
        if tls is not None:
            self.default_port = 443  # the Host header leaves out a default port

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        if self._tls is not None:
            sock = self._tls.wrap_socket(sock, server_hostname=self.host)
        self.sock = sock


class _Retry(Exception):
    """A failed attempt worth another try."""


def post(url: str, body: bytes, *, timeout: float = TIMEOUT,
         allow: AllowList | None = None) -> int:
    """One POST of ``body`` (JSON) to ``url``; returns the 2xx status.

    Raises :class:`WebhookRefused` (address policy), ``_Retry`` (connection error, 408,
    429, 5xx) or ``OSError`` (any other answer, redirects included)."""
    check_webhook(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    tls = parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    addresses = resolve(host, port, allow or AllowList.from_settings())
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    context = ssl.create_default_context() if tls else None
    last: Exception | None = None
    for address in addresses:
        conn = _PinnedConnection(host, port, address, timeout, context)
        try:
            conn.request("POST", target, body=body, headers={
                "content-type": "application/json", "user-agent": "mloop-webhook"})
            response = conn.getresponse()
            response.read(65_536)
        except (OSError, http.client.HTTPException) as exc:
            last = exc
            continue
        finally:
            conn.close()
        status = response.status
        if 200 <= status < 300:
            return status
        if status >= 500 or status in _RETRY_STATUSES:
            raise _Retry(f"HTTP {status}")
        if 300 <= status < 400:
            raise OSError(f"HTTP {status}: a redirect, which mloop does not follow; set the "
                          "webhook to the final URL")
        raise OSError(f"HTTP {status}")
    raise _Retry(f"{type(last).__name__}: {last}" if last else "no address")


def deliver(url: str, body: bytes, what: str, *, attempts: int = ATTEMPTS,
            timeout: float = TIMEOUT, backoff: float = BACKOFF,
            give_up_at: Callable[[], float] = lambda: float("inf"),
            allow: AllowList | None = None) -> bool:
    """POST with retries and backoff until it succeeds, fails for good, runs out of
    attempts or passes ``give_up_at()`` (a monotonic time); logs the outcome."""
    where = url_origin(url)
    tried, reason = 0, "no time was left to try"
    while tried < attempts:
        left = give_up_at() - time.monotonic()
        if left <= 0:
            break
        tried += 1
        try:
            post(url, body, timeout=min(timeout, left), allow=allow)
            return True
        except WebhookRefused as exc:
            log.error("webhook %s refused for %s: %s", where, what, exc.message)
            return False
        except _Retry as exc:
            reason = str(exc)
        except (OSError, MloopError) as exc:  # a final answer, or a broken user config
            log.warning("webhook %s failed for %s: %s", where, what,
                        getattr(exc, "message", None) or exc)
            return False
        pause = backoff * 2 ** (tried - 1)
        if tried == attempts or time.monotonic() + pause >= give_up_at():
            break
        time.sleep(pause)
    log.warning("webhook %s failed for %s after %d attempt(s): %s", where, what, tried,
                reason)
    return False


class Outbox:
    """Deliveries waiting for a background thread; :meth:`flush` waits for them."""

    def __init__(self, workers: int = _WORKERS) -> None:
        self._workers = workers
        self._queue: queue.SimpleQueue[tuple[str, bytes, str]] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._pending = 0
        self._threads: list[threading.Thread] = []
        self._give_up_at = float("inf")  # set while flushing: retries stop then
        self.delivered = self.failed = 0

    def submit(self, url: str, body: bytes, what: str) -> None:
        """Queue a delivery and return at once."""
        with self._cond:
            self._pending += 1
            if len(self._threads) < min(self._workers, self._pending):
                thread = threading.Thread(target=self._work, name="mloop-webhook",
                                          daemon=True)  # flush() at exit waits, bounded
                self._threads.append(thread)
                thread.start()
        self._queue.put((url, body, what))

    def _work(self) -> None:
        while True:
            url, body, what = self._queue.get()
            ok = False
            try:
                ok = deliver(url, body, what, give_up_at=lambda: self._give_up_at)
            except Exception as exc:  # never let one delivery stop the others
                log.error("webhook %s failed for %s: %s", url_origin(url), what,
                          type(exc).__name__)
            finally:
                with self._cond:
                    self._pending -= 1
                    self.delivered += ok
                    self.failed += not ok
                    self._cond.notify_all()

    def flush(self, timeout: float = FLUSH_TIMEOUT) -> int:
        """Wait up to ``timeout`` seconds for pending deliveries (retries included);
        returns how many were left undelivered."""
        with self._cond:
            if not self._pending:
                return 0
            self._give_up_at = time.monotonic() + timeout
            try:
                self._cond.wait_for(lambda: self._pending == 0, timeout + 1)
                left = self._pending
            finally:
                self._give_up_at = float("inf")
        if left:
            log.warning("%d webhook deliveries were still pending after %.0f s", left,
                        timeout)
        return left


_outbox = Outbox()


def send(url: str, body: bytes, what: str) -> None:
    """Deliver ``body`` to ``url`` in the background (see :class:`Outbox`)."""
    _outbox.submit(url, body, what)


def flush(timeout: float = FLUSH_TIMEOUT) -> int:
    """Wait (bounded) for every delivery this process queued; returns those left."""
    return _outbox.flush(timeout)


def _after_fork() -> None:
    global _outbox
    _outbox = Outbox()  # the parent's threads do not exist in the child


os.register_at_fork(after_in_child=_after_fork)
atexit.register(flush)
