"""A small etcd v3 client over the JSON gateway, standard library only.

The modules run on managed hosts where nothing beyond Python may be
installed, so this speaks etcd's documented gRPC-gateway (``/v3/...``) with
``http.client`` and TLS client certificates. Endpoints are tried in order; a
member that cannot be reached is skipped, so one failed member of three does
not stop anything.

With etcd's role-based access on, the client is also a user: the gateway does
not take a user from a certificate's common name (it refuses a certificate
that has one), so the client authenticates with ``user`` and the password kept
in ``password_file`` (read when a token is needed, never held in a variable
that is printed), then sends the token with every request. etcd's simple
tokens belong to the member that issued them and expire: the client keeps one
per member and authenticates again when a member says its token is no longer
valid.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Iterable

from ..core.errors import AccessDenied, CorruptRecord, StoreError

# what etcd says to a request whose token is unknown to the member asked (expired, issued by another
# member, the member restarted) or that had none because authentication was off when the client
# last asked (the gateway then speaks for the server certificate's name): authenticate again, once
_STALE_TOKEN = ("invalid auth token", "user name is empty", "user name not found")
AUTH_NOT_ENABLED = "authentication is not enabled"


def _b64(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> str:
    return base64.b64decode(text or "").decode("utf-8")


@dataclass(frozen=True)
class KeyValue:
    key: str
    value: str
    mod_revision: int
    create_revision: int
    version: int
    lease: int


def _kv(raw: dict) -> KeyValue:
    return KeyValue(
        key=_unb64(raw.get("key")),
        value=_unb64(raw.get("value")),
        mod_revision=int(raw.get("mod_revision", 0)),
        create_revision=int(raw.get("create_revision", 0)),
        version=int(raw.get("version", 0)),
        lease=int(raw.get("lease", 0)),
    )


@dataclass(frozen=True)
class EtcdConfig:
    """How to reach etcd. ``endpoints`` are URLs like ``https://10.0.0.1:2379``."""

    endpoints: tuple
    ca_cert: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    timeout: float = 5.0
    user: str | None = None  # etcd user (role-based access); None: the certificate alone
    password_file: str | None = None  # the user's password, alone in this file

    def __post_init__(self) -> None:
        if bool(self.user) != bool(self.password_file):
            raise StoreError("etcd user and password file go together: give both (the files site.yml writes "
                             "under /etc/dcm/etcd/) or neither")


def etcd_config_from(raw: object, path: str) -> EtcdConfig:
    """The ``etcd`` object of a daemon's JSON configuration (agent, master); errors name the fix."""
    if not isinstance(raw, dict) or not raw.get("endpoints"):
        raise StoreError(f"{path}: etcd.endpoints is empty; list the etcd client URLs (https://HOST:2379)")
    return EtcdConfig(
        endpoints=tuple(raw["endpoints"]),
        ca_cert=raw.get("ca_cert"),
        client_cert=raw.get("client_cert"),
        client_key=raw.get("client_key"),
        timeout=float(raw.get("timeout", 5.0)),
        user=raw.get("user") or None,
        password_file=raw.get("password_file") or None,
    )


class EtcdClient:
    """The operations DCM needs: range, put, delete, transactions and leases."""

    def __init__(self, config: EtcdConfig) -> None:
        if not config.endpoints:
            raise StoreError("no etcd endpoints given; set etcd_endpoints (e.g. https://127.0.0.1:2379)")
        self.config = config
        self._endpoints = [e.rstrip("/") for e in config.endpoints]
        self._context = None
        if any(e.startswith("https://") for e in self._endpoints):
            context = ssl.create_default_context(cafile=config.ca_cert)
            if config.client_cert:
                context.load_cert_chain(config.client_cert, config.client_key)
            self._context = context
        self._tokens: dict = {}  # endpoint -> token ("" where etcd has authentication off)

    # -- transport ---------------------------------------------------------
    def _post(self, endpoint: str, path: str, data: bytes, token: str = "") -> tuple:
        """One POST to one member: ``(HTTP status, body bytes)``; raises OSError when unreachable."""
        url = urllib.parse.urlsplit(endpoint)
        if url.scheme == "https":
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                url.hostname, url.port or 2379, timeout=self.config.timeout, context=self._context)
        elif url.scheme == "http":
            conn = http.client.HTTPConnection(url.hostname, url.port or 2379, timeout=self.config.timeout)
        else:
            raise StoreError(f"etcd endpoint {endpoint!r} must start with https:// (or http://)")
        try:
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = token
            conn.request("POST", f"{url.path.rstrip('/')}/v3/{path}", body=data, headers=headers)
            response = conn.getresponse()
            return response.status, response.read()
        except http.client.HTTPException as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from None
        finally:
            conn.close()

    def _password(self) -> str:
        try:
            with open(str(self.config.password_file), encoding="utf-8") as handle:
                password = handle.read().strip()
        except OSError as exc:
            raise StoreError(f"cannot read the etcd password of user {self.config.user!r} from "
                             f"{self.config.password_file}: {exc.strerror}; site.yml writes it (roles/etcd), "
                             "readable by the identity's own service user only") from None
        if not password:
            raise StoreError(f"{self.config.password_file} is empty: it must hold the etcd password of user "
                             f"{self.config.user!r}; run site.yml to write it again")
        return password

    def endpoints(self) -> list:
        """The client URLs, the one that answered last first."""
        return list(self._endpoints)

    def authenticate(self, endpoint: str, user: str, password: str) -> tuple:
        """``(HTTP status, answer text)`` of etcd's authenticate call on one member (OSError: unreachable)."""
        body = json.dumps({"name": user, "password": password}).encode("utf-8")
        status, raw = self._post(endpoint, "auth/authenticate", body)
        return status, raw.decode("utf-8", "replace")

    def _token(self, endpoint: str) -> str:
        """This member's token for the configured user ("" without a user or with authentication off)."""
        if not self.config.user:
            return ""
        if endpoint not in self._tokens:
            status, text = self.authenticate(endpoint, self.config.user, self._password())
            answer = _json(endpoint, "auth/authenticate", status, text.encode("utf-8"))
            error = _error(status, answer, text.encode("utf-8"))
            if error and AUTH_NOT_ENABLED in error:
                self._tokens[endpoint] = ""  # no access control yet (a pool being set up): the certificate alone
            elif error or not answer.get("token"):
                raise AccessDenied(f"etcd {endpoint} did not let user {self.config.user!r} in: "
                                   f"{error or 'no token in its answer'}; check that "
                                   f"{self.config.password_file} holds the password site.yml set")
            else:
                self._tokens[endpoint] = str(answer["token"])
        return self._tokens[endpoint]

    def _ask(self, endpoint: str, path: str, data: bytes) -> tuple:
        """``(HTTP status, answer, what went wrong or "")`` of one member, authenticated again once if its token
        went stale."""
        token = self._token(endpoint)
        status, raw = self._post(endpoint, path, data, token)
        answer = _json(endpoint, path, status, raw)
        error = _error(status, answer, raw)
        # A token is stale when the member says so; no token at all (authentication was off when this
        # client asked) is refused as "permission denied" once access control is on: ask again.
        stale = any(marker in error for marker in _STALE_TOKEN) or (not token and "permission denied" in error)
        if self.config.user and error and stale:
            self._tokens.pop(endpoint, None)
            status, raw = self._post(endpoint, path, data, self._token(endpoint))
            answer = _json(endpoint, path, status, raw)
            error = _error(status, answer, raw)
        return status, answer, error

    def call(self, path: str, body: dict) -> dict:
        """POST ``body`` to ``/v3/<path>`` on the first endpoint that answers."""
        data = json.dumps(body).encode("utf-8")
        failures = []
        for index, endpoint in enumerate(list(self._endpoints)):
            try:
                status, answer, error = self._ask(endpoint, path, data)
            except (OSError, ssl.SSLError) as exc:  # refused, unreachable, timed out, TLS handshake
                failures.append(f"{endpoint}: {exc}")
                continue
            if error:
                if "permission denied" in error:
                    who = f"user {self.config.user!r}" if self.config.user else "this client (no etcd user)"
                    raise AccessDenied(f"etcd {endpoint} refused {path} to {who}: permission denied; "
                                       f"{_what(body)} is outside what this identity may touch")
                raise StoreError(f"etcd {endpoint} refused {path}: HTTP {status}: {error}")
            if index:  # keep the member that answered first next time
                self._endpoints.insert(0, self._endpoints.pop(index))
            return answer
        raise StoreError(
            "no etcd endpoint answered (" + "; ".join(failures) + "); check etcd_endpoints, "
            "that etcd runs, and the client certificate/CA"
        )

    # -- key/value ---------------------------------------------------------
    def get(self, key: str, revision: int = 0) -> KeyValue | None:
        kvs, _rev = self.range(key, revision=revision)
        return kvs[0] if kvs else None

    def range(self, key: str, range_end: str | None = None, revision: int = 0, keys_only: bool = False) -> tuple:
        """``(list[KeyValue], header revision)`` for ``key`` or ``[key, range_end)`` (values empty if ``keys_only``)."""
        body: dict = {"key": _b64(key)}
        if range_end is not None:
            body["range_end"] = _b64(range_end)
        if keys_only:
            body["keys_only"] = True
        if revision:
            body["revision"] = str(revision)
        answer = self.call("kv/range", body)
        return [_kv(raw) for raw in answer.get("kvs", [])], int(answer["header"]["revision"])

    def get_prefix(self, prefix: str, revision: int = 0, keys_only: bool = False) -> tuple:
        from .keys import prefix_end

        return self.range(prefix, prefix_end(prefix), revision=revision, keys_only=keys_only)

    def put(self, key: str, value: str, lease: int = 0) -> int:
        body: dict = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("kv/put", body)["header"]["revision"])

    def delete(self, key: str, range_end: str | None = None) -> int:
        body: dict = {"key": _b64(key)}
        if range_end is not None:
            body["range_end"] = _b64(range_end)
        return int(self.call("kv/deleterange", body).get("deleted", 0))

    def txn(self, compare: Iterable[dict], success: Iterable[dict], failure: Iterable[dict] = ()) -> tuple:
        """Run a transaction; returns ``(succeeded, responses, revision)``."""
        answer = self.call("kv/txn", {"compare": list(compare), "success": list(success), "failure": list(failure)})
        return bool(answer.get("succeeded", False)), answer.get("responses", []), int(answer["header"]["revision"])

    # -- leases ------------------------------------------------------------
    def lease_grant(self, ttl: int) -> int:
        return int(self.call("lease/grant", {"TTL": str(ttl)})["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """Refresh ``lease``; returns the remaining TTL (0 or less: the lease is gone)."""
        answer = self.call("lease/keepalive", {"ID": str(lease)})
        result = answer.get("result", answer)
        return int(result.get("TTL", 0))

    def lease_revoke(self, lease: int) -> None:
        self.call("lease/revoke", {"ID": str(lease)})

    def lease_ttl(self, lease: int) -> int:
        """Seconds ``lease`` has left; -1 when it is gone (expired or revoked)."""
        return int(self.call("lease/timetolive", {"ID": str(lease)}).get("TTL", -1))

    def status(self) -> dict:
        return self.call("maintenance/status", {})


def _json(endpoint: str, path: str, status: int, raw: bytes) -> dict:
    try:
        answer = json.loads(raw.decode("utf-8") or "{}")
    except ValueError:
        text = raw[:200].decode("utf-8", "replace").strip()
        if "CommonName" in text:  # etcd's gateway with access control on refuses a certificate with a CN
            raise AccessDenied(f"etcd {endpoint} refused {path}: {text}. With etcd authentication on, DCM's "
                               "clients present the pool's client certificate without a common name "
                               "(client-gateway.crt) and an etcd user") from None
        raise StoreError(f"etcd {endpoint} answered {path} with something that is not JSON "
                         f"(HTTP {status}); is this an etcd client URL?") from None
    return answer if isinstance(answer, dict) else {}


def _error(status: int, answer: dict, raw: bytes) -> str:
    """What etcd's answer says went wrong, or "" when it succeeded."""
    if status == 200 and not ("error" in answer and "header" not in answer):
        return ""
    return str(answer.get("error") or answer.get("message") or raw[:200].decode("utf-8", "replace"))


def _what(body: dict) -> str:
    """The key a request was about, for an error message (the first key of a transaction)."""
    key = body.get("key")
    if key is None:
        for item in list(body.get("success") or []) + list(body.get("compare") or []):
            request = next(iter(item.values())) if isinstance(item, dict) and "key" not in item else item
            if isinstance(request, dict) and "key" in request:
                key = request["key"]
                break
    return f"key {_unb64(key)}" if key else "the request"


# -- transaction building blocks (etcd's Compare / RequestOp in JSON) ---------
def cmp_mod_revision_below(key: str, revision: int, range_end: str | None = None) -> dict:
    """Every key in ``key`` (or ``[key, range_end)``) was last modified before ``revision``."""
    compare = {"key": _b64(key), "target": "MOD", "result": "LESS", "mod_revision": str(revision)}
    if range_end is not None:
        compare["range_end"] = _b64(range_end)
    return compare


def cmp_absent(key: str) -> dict:
    return {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}


def cmp_value(key: str, value: str) -> dict:
    """``key`` holds exactly ``value`` (the DCM master's fencing: it still holds the lead)."""
    return {"key": _b64(key), "target": "VALUE", "result": "EQUAL", "value": _b64(value)}


def cmp_mod_revision(key: str, revision: int) -> dict:
    return {"key": _b64(key), "target": "MOD", "result": "EQUAL", "mod_revision": str(revision)}


def op_put(key: str, value: str, lease: int = 0) -> dict:
    request: dict = {"key": _b64(key), "value": _b64(value)}
    if lease:
        request["lease"] = str(lease)
    return {"request_put": request}


def op_delete(key: str, range_end: str | None = None) -> dict:
    request: dict = {"key": _b64(key)}
    if range_end is not None:
        request["range_end"] = _b64(range_end)
    return {"request_delete_range": request}


def op_range(key: str, range_end: str | None = None) -> dict:
    request: dict = {"key": _b64(key)}
    if range_end is not None:
        request["range_end"] = _b64(range_end)
    return {"request_range": request}


def load(kv: KeyValue) -> dict:
    """The JSON object a DCM key holds; anything else is a :class:`CorruptRecord`."""
    try:
        value = json.loads(kv.value)
    except ValueError:
        raise CorruptRecord(kv.key, "does not hold JSON (was it written by something other than DCM?)") from None
    if not isinstance(value, dict):
        raise CorruptRecord(kv.key, f"holds a JSON {type(value).__name__}, not an object")
    return value
