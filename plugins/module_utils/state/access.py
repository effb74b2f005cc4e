"""Who may touch which keys of the pool's etcd: the identities of DCM and their roles.

etcd's role-based access gives each identity a user and a role of the same name:

``root``                 the operator (control node, playbooks' modules on the masters): everything
``dcm-master``           the DCM master daemon: reads the pool's state, writes cluster records
                         (repairs) with their secrets' copies, the leader key and events
``dcm-agent-<host>``     the agent of one host: reads cluster records, host records, status and
                         the secrets' copies of its own host; writes only its own host record, the
                         status of its own nodes (``/dcm/status/<host>/``) and its own events
                         (``/dcm/events/agent-<host>/``)
``<host>``               flanneld on a flannel pool (gRPC takes the user from its client
                         certificate's common name, the host's name; no password): role
                         ``dcm-flannel``, flannel's own prefix and nothing of DCM's

A role is a list of :class:`Permission` (a key, or a range of keys, with read, write or both).
:func:`pool_roles` is the one place they are written; :class:`AccessControl` makes etcd's users
and roles equal to them (adds, grants, revokes what is extra) and switches authentication on,
over the same JSON gateway as every other DCM request.

Host names are etcd user names over gRPC (a client certificate's common name): a host may not be
called like a DCM identity (``root``, ``dcm-master``, ``dcm-flannel``, ``dcm-agent-*``).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..core.errors import AccessDenied, StoreError
from . import keys
from .etcd import AUTH_NOT_ENABLED, EtcdClient, _b64, _unb64

ROOT = "root"
MASTER = "dcm-master"
AGENT_PREFIX = "dcm-agent-"
FLANNEL = "dcm-flannel"

READ, WRITE, READWRITE = "READ", "WRITE", "READWRITE"
_KINDS = (READ, WRITE, READWRITE)


def agent_user(host: str) -> str:
    """The etcd user (and role) of the agent on ``host``."""
    if not host or "/" in host:
        raise ValueError(f"{host!r} is not a host name")
    return AGENT_PREFIX + host


@dataclass(frozen=True, order=True)
class Permission:
    """``kind`` (READ, WRITE, READWRITE) on ``key``, or on the keys ``[key, end)`` when ``end`` is set."""

    key: str
    end: str
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"permission kind must be one of {', '.join(_KINDS)}, not {self.kind!r}")

    def describe(self) -> str:
        if not self.end:
            return f"{self.kind.lower()} {self.key}"
        if self.end == keys.prefix_end(self.key):
            return f"{self.kind.lower()} {self.key}*"
        return f"{self.kind.lower()} [{self.key}, {self.end})"


def _under(prefix: str, kind: str) -> Permission:
    return Permission(prefix, keys.prefix_end(prefix), kind)


def _exactly(key: str, kind: str) -> Permission:
    return Permission(key, "", kind)


def agent_permissions(host: str) -> tuple:
    """What the agent of ``host`` may read and write."""
    return tuple(sorted((
        _under(keys.CLUSTERS, READ),  # desired state (records hold no secret readable by others)
        _under(keys.HOSTS, READ),
        _exactly(keys.host_key(host), READWRITE),  # its own registration only
        _under(keys.host_secrets_prefix(host), READ),  # the secrets of the clusters it runs nodes of
        _under(keys.STATUS, READ),  # its clusters' other nodes (a flannel cluster's hosts file)
        _under(keys.host_status_prefix(host), READWRITE),  # the reports of its own nodes
        _under(keys.events_prefix(keys.agent_writer(host)), READWRITE),  # its own events
        _under(keys.EVENTS, READ),
        _under(keys.GATEWAY, READ),  # the clusters' UI password hashes (the gateway host's agent serves them)
    )))


def master_permissions() -> tuple:
    """What the DCM master daemon may read and write."""
    return tuple(sorted((
        _under(keys.PREFIX, READ),
        _under(keys.CLUSTERS, READWRITE),  # repairs move nodes
        _under(keys.SECRETS, READWRITE),  # ... and the copies of the secrets follow them
        _under(keys.HOST_SECRETS, READWRITE),
        _under(keys.GATEWAY, READWRITE),  # written with the record, like the secrets
        _exactly(keys.LEADER, READWRITE),
        _under(keys.EVENTS, READWRITE),
    )))


def flannel_permissions(prefix: str) -> tuple:
    """What flanneld may read and write: its network configuration and subnet leases, under ``prefix``."""
    prefix = prefix.rstrip("/")
    if not prefix.startswith("/") or prefix == "" or keys.PREFIX.startswith(prefix + "/"):
        raise ValueError(f"flannel's etcd prefix must be a key folder of its own, not {prefix!r}")
    return (_under(prefix + "/", READWRITE),)


def check_host_names(hosts: list) -> None:
    """Refuse host names that are DCM identities: etcd takes a gRPC client's user from its certificate's
    common name, and a host's certificate names the host (a host called ``root`` would be etcd's root)."""
    clash = sorted(set(hosts) & {ROOT, MASTER, FLANNEL})
    clash += sorted(host for host in hosts if str(host).startswith(AGENT_PREFIX))
    if clash:
        raise ValueError(f"host names {', '.join(clash)} are names of DCM's etcd identities "
                         f"({ROOT}, {MASTER}, {FLANNEL}, {AGENT_PREFIX}*); rename those hosts in the inventory")


def pool_roles(hosts: list, masters: bool = True, flannel_prefix: str = "") -> dict:
    """``{role name: permissions}`` of a pool with these hosts (root's role is etcd's own)."""
    check_host_names(hosts)
    roles = {agent_user(host): agent_permissions(host) for host in hosts}
    if masters:
        roles[MASTER] = master_permissions()
    if flannel_prefix:
        roles[FLANNEL] = flannel_permissions(flannel_prefix)
    return roles


def certificate_users(hosts: list, flannel_prefix: str = "") -> dict:
    """``{user: role}`` of the users known by a certificate's common name alone (no password):
    on a flannel pool, each host's flanneld (its client certificate names the host)."""
    check_host_names(hosts)
    if not flannel_prefix:
        return {}
    return {host: FLANNEL for host in hosts}


def _permission(raw: dict) -> Permission:
    # proto3 JSON leaves out the zero value of permType, READ
    return Permission(_unb64(raw.get("key")), _unb64(raw.get("range_end")), str(raw.get("permType") or READ))


class AccessControl:
    """etcd's users, roles and authentication switch, over an :class:`EtcdClient` with root's rights."""

    def __init__(self, client: EtcdClient) -> None:
        self.client = client

    # -- reads ---------------------------------------------------------------------------------
    def enabled(self, root_password: str) -> bool:
        """Whether etcd has authentication on (etcd 3.4 has no status call: ask for a root token)."""
        for endpoint in self.client.endpoints():
            try:
                status, raw = self.client.authenticate(endpoint, ROOT, root_password)
            except OSError:
                continue
            if AUTH_NOT_ENABLED in raw:
                return False
            if status == 200:
                return True
            raise AccessDenied(f"etcd {endpoint} did not let user root in ({raw[:200]}); the root password "
                               "on the control node is not the one etcd has")
        raise StoreError("no etcd endpoint answered while checking whether authentication is on")

    def users(self) -> dict:
        """``{user: sorted roles}``."""
        names = self.client.call("auth/user/list", {}).get("users") or []
        return {name: sorted(self.client.call("auth/user/get", {"name": name}).get("roles") or [])
                for name in names}

    def roles(self) -> dict:
        """``{role: sorted permissions}``."""
        names = self.client.call("auth/role/list", {}).get("roles") or []
        return {name: tuple(sorted(_permission(raw) for raw in
                                   self.client.call("auth/role/get", {"role": name}).get("perm") or []))
                for name in names}

    def password_works(self, user: str, password: str) -> bool:
        for endpoint in self.client.endpoints():
            try:
                status, _raw = self.client.authenticate(endpoint, user, password)
            except OSError:
                continue
            return status == 200
        raise StoreError(f"no etcd endpoint answered while checking the password of {user}")

    # -- changes -------------------------------------------------------------------------------
    def apply(self, passwords: dict, roles: dict, check_mode: bool = False, cert_users: dict | None = None,
              enable: bool = True) -> list:
        """Make etcd's users and roles what ``passwords`` ({user: password}, root included) and
        ``roles`` ({role: permissions}) say, each user holding the role of its name, and
        ``cert_users`` ({user: role}: users without a password, known by a certificate's common
        name) holding theirs; then turn authentication on. Users and roles DCM does not name are left
        alone, except roles and users named like DCM's (``dcm-agent-*``, ``dcm-master``,
        ``dcm-flannel``) and users holding only ``dcm-flannel`` that are no longer wanted (a host that
        left the pool). With ``enable`` false authentication is left as it is (users and passwords are
        made ready before the daemons that use them restart). Returns what changed, one line each (no
        password in it)."""
        if ROOT not in passwords:
            raise ValueError("the root user's password is needed to turn etcd authentication on")
        was_on = self.enabled(passwords[ROOT])
        changes: list = []
        users, current_roles = self.users(), self.roles()
        for name, permissions in sorted(roles.items()):
            changes += self._role(name, tuple(sorted(permissions)), current_roles.get(name), check_mode)
        for name, password in sorted(passwords.items()):
            changes += self._user(name, password, users.get(name), was_on, check_mode)
        cert_users = cert_users or {}
        for name, role in sorted(cert_users.items()):
            changes += self._certificate_user(name, role, users.get(name), check_mode)
        for name in sorted(set(current_roles) - set(roles)):
            if _ours(name):
                changes.append(f"role {name}: removed (no such identity any more)")
                if not check_mode:
                    self.client.call("auth/role/delete", {"role": name})
        for name in sorted(set(users) - set(passwords) - set(cert_users)):
            if _ours(name) or users[name] == [FLANNEL]:
                changes.append(f"user {name}: removed (no such identity any more)")
                if not check_mode:
                    self.client.call("auth/user/delete", {"name": name})
        if enable and not was_on:
            changes.append("authentication: turned on")
            if not check_mode:
                self.client.call("auth/enable", {})
        return changes

    def _role(self, name: str, wanted: tuple, current: tuple | None, check_mode: bool) -> list:
        changes = []
        if current is None:
            changes.append(f"role {name}: added")
            if not check_mode:
                self.client.call("auth/role/add", {"name": name})
            current = ()
        for perm in sorted(set(current) - set(wanted)):
            changes.append(f"role {name}: revoked {perm.describe()}")
            if not check_mode:
                body = {"role": name, "key": _b64(perm.key)}
                if perm.end:
                    body["range_end"] = _b64(perm.end)
                self.client.call("auth/role/revoke", body)
        for perm in sorted(set(wanted) - set(current)):
            changes.append(f"role {name}: granted {perm.describe()}")
            if not check_mode:
                grant = {"permType": perm.kind, "key": _b64(perm.key)}
                if perm.end:
                    grant["range_end"] = _b64(perm.end)
                self.client.call("auth/role/grant", {"name": name, "perm": grant})
        return changes

    def _certificate_user(self, name: str, role: str, roles: list | None, check_mode: bool) -> list:
        changes = []
        if roles is None:
            changes.append(f"user {name}: added (no password: known by its certificate)")
            if not check_mode:
                self.client.call("auth/user/add", {"name": name, "options": {"no_password": True}})
            roles = []
        changes += self._grant_only(name, role, roles, check_mode)
        return changes

    def _grant_only(self, name: str, wanted: str, roles: list, check_mode: bool) -> list:
        """Make ``name`` hold exactly the role ``wanted``."""
        changes = []
        if wanted not in roles:
            changes.append(f"user {name}: granted role {wanted}")
            if not check_mode:
                self.client.call("auth/user/grant", {"user": name, "role": wanted})
        for extra in sorted(set(roles) - {wanted}):
            changes.append(f"user {name}: revoked role {extra}")
            if not check_mode:
                self.client.call("auth/user/revoke", {"name": name, "role": extra})
        return changes

    def _user(self, name: str, password: str, roles: list | None, auth_on: bool, check_mode: bool) -> list:
        if not password or len(password) < 16:
            raise StoreError(f"the etcd password of {name} must be at least 16 characters (site.yml makes 40)")
        changes = []
        if roles is None:
            changes.append(f"user {name}: added")
            if not check_mode:
                self.client.call("auth/user/add", {"name": name, "password": password})
            roles = []
        elif not auth_on or not self.password_works(name, password):
            # with authentication off a password cannot be tried: set it (this happens once per pool)
            changes.append(f"user {name}: password set")
            if not check_mode:
                self.client.call("auth/user/changepw", {"name": name, "password": password})
        return changes + self._grant_only(name, ROOT if name == ROOT else name, roles, check_mode)


def _ours(name: str) -> bool:
    return name in (MASTER, FLANNEL) or name.startswith(AGENT_PREFIX)
