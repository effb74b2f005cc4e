"""A small etcd v3 client over the JSON gateway, standard library only.

The modules run on managed hosts where nothing beyond Python may be
installed, so this speaks etcd's documented gRPC-gateway (``/v3/...``) with
``http.client`` and TLS client certificates. Endpoints are tried in order; a
member that cannot be reached is skipped, so one failed member of three does
not stop anything.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.parse
from dataclasses import dataclass
from typing import Iterable

from ..core.errors import CorruptRecord, StoreError


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

    # -- transport ---------------------------------------------------------
    def _post(self, endpoint: str, path: str, data: bytes) -> tuple:
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
            conn.request("POST", f"{url.path.rstrip('/')}/v3/{path}", body=data,
                         headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            return response.status, response.read()
        except http.client.HTTPException as exc:
            raise ConnectionError(f"{type(exc).__name__}: {exc}") from None
        finally:
            conn.close()

    def call(self, path: str, body: dict) -> dict:
        """POST ``body`` to ``/v3/<path>`` on the first endpoint that answers."""
        data = json.dumps(body).encode("utf-8")
        failures = []
        for index, endpoint in enumerate(list(self._endpoints)):
            try:
                status, raw = self._post(endpoint, path, data)
            except (OSError, ssl.SSLError) as exc:  # refused, unreachable, timed out, TLS handshake
                failures.append(f"{endpoint}: {exc}")
                continue
            try:
                answer = json.loads(raw.decode("utf-8") or "{}")
            except ValueError:
                raise StoreError(f"etcd {endpoint} answered {path} with something that is not JSON "
                                 f"(HTTP {status}); is this an etcd client URL?") from None
            if status != 200 or ("error" in answer and "header" not in answer):
                detail = answer.get("error") or answer.get("message") or raw[:200].decode("utf-8", "replace")
                raise StoreError(f"etcd {endpoint} refused {path}: HTTP {status}: {detail}")
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

    def status(self) -> dict:
        return self.call("maintenance/status", {})


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
