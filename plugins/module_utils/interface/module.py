"""One way in for the collection's modules, as community.docker's client is for its own.

Every DCM module starts the same way: its own options plus the shared etcd options (documented once, in
the ``dcspark.dcm.etcd`` fragment), a refusal with one message when a module that keeps state in etcd
is given no endpoint, and every :class:`DcmError` of the core turned into ``fail_json`` with the
result gathered so far and the error's own details. Nothing here imports Ansible: a module passes
its ``AnsibleModule`` class in, so this stays part of the pure core.
"""

from __future__ import annotations

import json
from typing import Callable

from ..core.errors import DcmError
from ..state.etcd import EtcdClient, EtcdConfig
from ..state.store import DcmStore

ETCD_OPTIONS = {
    "etcd_endpoints": {"type": "list", "elements": "str", "default": []},
    "etcd_ca_cert": {"type": "path"},
    "etcd_client_cert": {"type": "path"},
    "etcd_client_key": {"type": "path", "no_log": False},
    "etcd_timeout": {"type": "float", "default": 5.0},
    "etcd_user": {"type": "str"},
    "etcd_password_file": {"type": "path", "no_log": False},
    "etcd_identity_file": {"type": "path"},
}

NO_ENDPOINTS = ("etcd_endpoints is empty: {module} keeps the pool's state in etcd; give its client URLs, "
                "e.g. etcd_endpoints: ['https://10.0.0.11:2379'], with etcd_ca_cert, etcd_client_cert and "
                "etcd_client_key (playbooks set them once with module_defaults for the group "
                "dcspark.dcm.dcm)")


def host_identity(path: str | None) -> tuple:
    """``(user, password file)`` named by the identity file of the host the module runs on, or
    ``(None, None)`` when there is none (a pool whose etcd has no access control yet).

    site.yml writes this file on every host (root's on a master, the host's agent identity elsewhere),
    so one ``module_defaults`` entry serves a module wherever it runs, delegated tasks included."""
    if not path:
        return None, None
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except FileNotFoundError:
        return None, None
    except (OSError, ValueError) as exc:
        raise DcmError(f"cannot read the etcd identity file {path}: {exc}; site.yml writes it "
                       "(roles/dcm, etcd_identity.yml)") from None
    if not isinstance(raw, dict) or not raw.get("user") or not raw.get("password_file"):
        raise DcmError(f"{path} must be a JSON object with user and password_file; run site.yml to write it again")
    return str(raw["user"]), str(raw["password_file"])


def etcd_config(params: dict) -> EtcdConfig | None:
    """The etcd connection the parameters ask for, or None when no endpoint is given."""
    endpoints = tuple(params.get("etcd_endpoints") or ())
    if not endpoints:
        return None
    user, password_file = params.get("etcd_user") or None, params.get("etcd_password_file") or None
    if not user and not password_file:
        user, password_file = host_identity(params.get("etcd_identity_file"))
    return EtcdConfig(
        endpoints=endpoints,
        ca_cert=params.get("etcd_ca_cert"),
        client_cert=params.get("etcd_client_cert"),
        client_key=params.get("etcd_client_key"),
        timeout=float(params.get("etcd_timeout") or 5.0),
        user=user,
        password_file=password_file,
    )


class DcmModule:
    """An Ansible module of this collection: shared options, one endpoint check, errors as ``fail_json``.

    ``etcd`` says how the module uses the pool's state: ``"required"`` (refused without endpoints),
    ``"optional"`` (:meth:`store` is None without endpoints) or ``None`` (not at all). Every module
    accepts the etcd options all the same, so that one ``module_defaults`` entry for the action group
    ``dcspark.dcm.dcm`` serves every module a play runs; a module that does not use them ignores them.
    """

    def __init__(self, module_class: Callable, argument_spec: dict, etcd: str | None = "required",
                 **kwargs: object) -> None:
        if etcd not in ("required", "optional", None):
            raise ValueError(f"etcd must be 'required', 'optional' or None, got {etcd!r}")
        spec = dict(argument_spec)
        spec.update(ETCD_OPTIONS)
        self.module = module_class(argument_spec=spec, **kwargs)
        self.params = self.module.params
        self.etcd = etcd
        self.result: dict = {"changed": False}
        self._store: DcmStore | None = None

    @property
    def check_mode(self) -> bool:
        return bool(self.module.check_mode)

    @property
    def name(self) -> str:
        return str(getattr(self.module, "_name", "this module")).rsplit(".", 1)[-1]

    def etcd_config(self) -> EtcdConfig | None:
        config = etcd_config(self.params) if self.etcd else None
        if config is None and self.etcd == "required":
            self.fail(NO_ENDPOINTS.format(module=self.name))
        return config

    def store(self) -> DcmStore | None:
        """The pool's state API on the configured etcd (one per module run)."""
        if self._store is None:
            config = self.etcd_config()
            self._store = DcmStore(EtcdClient(config)) if config else None
        return self._store

    def fail(self, msg: str, **details: object) -> None:
        self.module.fail_json(msg=msg, **{**self.result, **details})

    def run(self, body: Callable[["DcmModule"], object]) -> None:
        """Run ``body(self)``, which fills :attr:`result`; exit with it, or fail with the error it raised."""
        try:
            if self.etcd == "required":
                self.store()
            body(self)
        except DcmError as exc:
            self.fail(str(exc), **exc.details())
        self.module.exit_json(**self.result)
