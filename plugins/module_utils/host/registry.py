"""The pool registry's HTTP API v2, as DCM uses it: look a manifest up, delete one.

One small HTTPS client (the standard library's ``http.client`` and ``ssl``, checked against the pool
CA) for every caller: ``dcm_registry_image`` (which images of a tag or a generation the registry still
serves), ``dcm_registry_prune`` (delete the manifests of generations no longer retained) and, through
the former, the ``spark_images`` role and the rollback playbook. :data:`MANIFEST_TYPES` is the one list
of manifest media types DCM accepts: a HEAD must name every kind the registry may hold (Docker v2 and
OCI, single images and lists), or the registry answers 404 for a manifest it has in another format.

``HEAD /v2/<repository>/manifests/<tag or digest>`` answers 200 with ``Docker-Content-Digest`` (the
digest Docker pulls by) or 404; ``DELETE /v2/<repository>/manifests/<digest>`` answers 202, 404 when
the manifest is gone already, or 405 when the registry does not allow deletions.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl

from ..core.errors import DcmError
from ..policy.registry import parse_reference

MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
ACCEPT = ", ".join(MANIFEST_TYPES)
DEFAULT_TIMEOUT = 30.0
DIGEST_HEADER = "Docker-Content-Digest"


class RegistryError(DcmError):
    """The registry could not be reached, or answered something other than what the API promises."""


def read_credentials(path: str) -> dict:
    """``{"username", "password"}`` from the JSON file of a registry identity (the registry role's
    ``builder.json``, the agent's ``puller.json``); errors name the file and the fix, never the password."""
    fix = "run site.yml (the registry and dcm_agent roles write it)"
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except OSError as exc:
        raise RegistryError(f"cannot read the registry credentials {path} ({exc.strerror}): {fix}") from None
    except ValueError:
        raise RegistryError(f"{path} is not JSON: {fix}") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(key), str) and data.get(key)
                                             for key in ("username", "password")):
        raise RegistryError(f"{path} must hold a JSON object with a username and a password: {fix}")
    return {"username": data["username"], "password": data["password"]}


class RegistryClient:
    """HTTPS requests to one registry (``host:port``), its certificate checked against ``ca``.

    ``ca`` is the CA bundle of the pool (None: the system's trust store). ``username`` and ``password``
    send HTTP basic authentication, for a registry that asks for it.
    """

    def __init__(self, registry: str, ca: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 username: str | None = None, password: str | None = None) -> None:
        if not registry or "/" in registry:
            raise RegistryError(f"registry must be host[:port], got {registry!r}")
        self.registry = registry
        self.timeout = float(timeout)
        try:
            self.context = ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            raise RegistryError(f"cannot use {ca} as the CA of {registry} ({exc})") from None
        self.headers = {"Accept": ACCEPT, "User-Agent": "dcspark.dcm"}
        if username:
            token = base64.b64encode(f"{username}:{password or ''}".encode("utf-8")).decode("ascii")
            self.headers["Authorization"] = f"Basic {token}"

    def _request(self, method: str, path: str, what: str) -> tuple:
        """``(status, headers)`` of one request; unreachable registries raise :class:`RegistryError`."""
        connection = http.client.HTTPSConnection(self.registry, timeout=self.timeout, context=self.context)
        try:
            connection.request(method, path, headers=self.headers)
            response = connection.getresponse()
            response.read()
            return response.status, response.headers
        except (OSError, http.client.HTTPException) as exc:  # refused, TLS, timeouts, a broken answer
            raise RegistryError(f"{what}: cannot reach {self.registry} ({exc})") from None
        finally:
            connection.close()

    def _image(self, reference: str) -> tuple:
        """``(repository, tag or None, digest or None)`` of a reference into this registry."""
        registry, repository, tag, digest = parse_reference(reference)
        if registry != self.registry:
            raise RegistryError(f"{reference} is not an image of registry {self.registry}")
        return repository, tag, digest

    # -- manifests ---------------------------------------------------------------------------
    def head_manifest(self, repository: str, reference: str, what: str | None = None) -> str | None:
        """The digest of the manifest ``repository:reference`` (a tag or a digest), None when absent."""
        what = what or f"looking up {self.registry}/{repository}:{reference}"
        status, headers = self._request("HEAD", f"/v2/{repository}/manifests/{reference}", what)
        if status == 404:
            return None
        if status != 200:
            raise RegistryError(f"{what}: HTTP {status} from {self.registry}")
        digest = headers.get(DIGEST_HEADER)
        if digest:
            return digest
        return reference if reference.startswith("sha256:") else None

    def delete_manifest(self, repository: str, digest: str, what: str | None = None) -> bool:
        """Delete the manifest ``digest`` of ``repository``; False when it was gone already."""
        what = what or f"deleting {self.registry}/{repository}@{digest}"
        status, _headers = self._request("DELETE", f"/v2/{repository}/manifests/{digest}", what)
        if status == 404:
            return False
        if status == 405:
            raise RegistryError(f"{self.registry} refuses to delete manifests (HTTP 405): enable storage.delete in "
                                "its configuration (the dcspark.dcm.registry role does)")
        if not 200 <= status < 300:
            raise RegistryError(f"{what}: HTTP {status} from {self.registry}")
        return True

    # -- images, by reference -----------------------------------------------------------------
    def digest(self, reference: str) -> str | None:
        """The digest the registry serves for ``registry/repository[:tag][@digest]`` (tag ``latest`` when
        neither is given), or None when it has no such manifest."""
        repository, tag, digest = self._image(reference)
        return self.head_manifest(repository, digest or tag or "latest", f"looking up {reference}")

    def delete(self, reference: str) -> bool:
        """Delete the manifest ``reference`` names (a tag is resolved to its digest first: the registry
        deletes by digest only); False when it was gone already."""
        repository, tag, digest = self._image(reference)
        what = f"deleting {reference}"
        if digest is None:
            digest = self.head_manifest(repository, tag or "latest", what)
            if digest is None:
                return False
        return self.delete_manifest(repository, digest, what)


def registry_client(registry: str, ca: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                    auth_file: str | None = None) -> RegistryClient:
    """A :class:`RegistryClient` with the identity of ``auth_file`` (see :func:`read_credentials`), if any."""
    credentials = read_credentials(auth_file) if auth_file else {}
    return RegistryClient(registry, ca, timeout, credentials.get("username"), credentials.get("password"))
