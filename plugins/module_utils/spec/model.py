"""Validate and normalize cluster specs: the one place a spec is understood.

``normalize_spec`` takes the decoded JSON and returns the normalized spec:
every default filled in, memory in bytes, CPUs as numbers, Spark properties as
strings. Every problem is reported at once, each naming its JSON path and the
rule it breaks (``worker.count: must be >= 1, got 0``).

The structural rules live in :mod:`spec_schema` (a JSON Schema); this module
walks that schema itself, so no third-party validator is needed on the hosts
that run the modules, then adds the checks JSON Schema cannot express.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from typing import Any

from ..core.errors import SpecError, UnitError
from .schema import SCHEMA
from ..core.units import format_cpus, parse_cpus, parse_memory

_TYPE_NAMES = {
    "object": "an object",
    "array": "a list",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}

# Set by DCM for every cluster; a spec may not weaken or override them.
MANAGED_SPARK_CONF = {
    "spark.authenticate": "Spark authentication is always on",
    "spark.authenticate.secret": "DCM generates a random secret per cluster",
    "spark.network.crypto.enabled": "RPC encryption is always on",
    "spark.master.rest.enabled": "the REST submission server is always off",
    "spark.master": "DCM points applications at the cluster's own master",
    "spark.worker.cleanup.enabled": "Spark's worker cleanup is always on, so finished applications' work dirs "
    "do not fill the disk (tune spark.worker.cleanup.appDataTtl and .interval)",
    "spark.ui.reverseProxy": "the UIs are served through the pool's authenticated gateway, by the master's reverse proxy",
    "spark.ui.reverseProxyUrl": "the gateway serves a cluster's UIs at /clusters/<name>/",
    "spark.ui.proxyRedirectUri": "the gateway serves a cluster's UIs at /clusters/<name>/",
}

# Families of Spark settings that hold a cluster's security: no spec or job sets any key in them.
MANAGED_SPARK_CONF_PREFIXES = {
    "spark.authenticate.": "Spark authentication is always on with DCM's secret",
    "spark.network.crypto.": "RPC encryption is always on, without fallback",
    "spark.redaction.": "secrets are always redacted from logs and UIs",
    "spark.master.rest.": "the REST submission server is always off",
}

# Instructions a spec's Dockerfile lines may not use: each could take the image's start, user or
# shell away from DCM, or act in images built later from this one.
FORBIDDEN_DOCKERFILE = {
    "FROM": "the runtime layer starts from runtime.base_image",
    "ENTRYPOINT": "DCM sets it on the master/worker/driver images",
    "CMD": "DCM sets it on the master/worker/driver images",
    "USER": "DCM's images run as the spark user (uid 185)",
    "ONBUILD": "it would run instructions in images built later from this one",
    "SHELL": "DCM's own instructions rely on /bin/sh",
}

# Environment variables that change how the JVM, Spark, the dynamic loader or Python start: set in an
# image they would undo what spark_conf's rules forbid (Java agents, -D options, preloaded libraries).
FORBIDDEN_ENV_NAMES = frozenset({
    "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "JAVA_OPTS", "JAVA_HOME", "CLASSPATH",
    "PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONINSPECT", "VIRTUAL_ENV", "HOME",
})
FORBIDDEN_ENV_PREFIXES = ("SPARK_", "_SPARK", "PYSPARK_", "DCSPARK_", "HADOOP_", "LD_", "JUPYTER_")

# The roles of a cluster's nodes; a spec has the history server only when it asks for one.
ROLES = ("master", "driver", "worker", "history")

MIN_MEMORY = {"master": 256 << 20, "driver": 512 << 20, "worker": 512 << 20, "history": 512 << 20}

# With a history server the event logs are DCM's: where the driver writes them and where the server reads.
HISTORY_SPARK_CONF = {
    "spark.eventLog.enabled": "every application writes its event log when the spec has a history server",
    "spark.eventLog.dir": "the event logs go to the cluster's history volume when the spec has a history server",
}
HISTORY_SPARK_CONF_PREFIXES = {
    "spark.history.": "the history server's settings come from the spec's history section",
}

_SPARK_SIZE_RE = re.compile(r"^([0-9]+)([kmgtp]?)b?$", re.IGNORECASE)
_SPARK_SIZE_UNITS = {"": 1 << 20, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _is_type(value: Any, name: str) -> bool:
    actual = _json_type(value)
    if name == "number":
        return actual in ("integer", "number")
    if name == "integer" and actual == "number":
        return float(value).is_integer()
    return actual == name


def _show(value: Any) -> str:
    text = json.dumps(value) if _json_type(value) in _TYPE_NAMES else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def join_path(path: str, key: object) -> str:
    """JSON path of ``key`` below ``path``: ``worker.count``, ``apt_packages[2]``, ``spark_conf['a.b']``."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = str(key)
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]" if path else f"[{json.dumps(key)}]"


def _where(path: str) -> str:
    return path or "(root)"


def validate_schema(value: Any, schema: dict, path: str = "") -> list[str]:
    """Problems of ``value`` against the JSON Schema subset used by :data:`SCHEMA`."""
    problems: list[str] = []
    types = schema.get("type")
    if types is not None:
        allowed = [types] if isinstance(types, str) else list(types)
        if not any(_is_type(value, t) for t in allowed):
            wanted = " or ".join(_TYPE_NAMES[t] for t in allowed)
            return [f"{_where(path)}: must be {wanted}, got {_TYPE_NAMES.get(_json_type(value), _json_type(value))} {_show(value)}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{_where(path)}: must be one of {', '.join(map(_show, schema['enum']))}, got {_show(value)}")

    if isinstance(value, str):
        if "minLength" in schema and len(value) < schema["minLength"]:
            problems.append(f"{_where(path)}: must not be empty" if schema["minLength"] == 1
                            else f"{_where(path)}: must be at least {schema['minLength']} characters")
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            problems.append(f"{_where(path)}: must be at most {schema['maxLength']} characters, got {len(value)}")
        if "pattern" in schema and value and not re.search(schema["pattern"], value):
            rule = schema.get("x-rule", f"must match {schema['pattern']}")
            problems.append(f"{_where(path)}: {rule}, got {_show(value)}")

    if _json_type(value) in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            problems.append(f"{_where(path)}: must be >= {schema['minimum']}, got {_show(value)}")
        if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
            problems.append(f"{_where(path)}: must be > {schema['exclusiveMinimum']}, got {_show(value)}")
        if "maximum" in schema and value > schema["maximum"]:
            problems.append(f"{_where(path)}: must be <= {schema['maximum']}, got {_show(value)}")

    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            problems.append(f"{_where(path)}: must have at least {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            problems.append(f"{_where(path)}: must have at most {schema['maxItems']} items, got {len(value)}")
        if schema.get("uniqueItems"):
            seen: list[Any] = []
            for index, item in enumerate(value):
                if item in seen:
                    problems.append(f"{join_path(path, index)}: duplicate of an earlier item {_show(item)}")
                seen.append(item)
        if "items" in schema:
            for index, item in enumerate(value):
                problems.extend(validate_schema(item, schema["items"], join_path(path, index)))

    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{join_path(path, key)}: is required")
        names = schema.get("propertyNames")
        additional = schema.get("additionalProperties", True)
        for key, item in value.items():
            child = join_path(path, key)
            if names is not None:
                name_problems = validate_schema(key, names, "")
                if name_problems:
                    rule = names.get("x-rule", "is not an allowed name")
                    problems.append(f"{child}: key {rule}")
                    continue
            if key in properties:
                problems.extend(validate_schema(item, properties[key], child))
            elif additional is False:
                allowed_keys = ", ".join(properties) or "none"
                problems.append(f"{child}: unknown key (allowed here: {allowed_keys})")
            elif isinstance(additional, dict):
                problems.extend(validate_schema(item, additional, child))
    return problems


def _fill_defaults(value: Any, schema: dict) -> Any:
    """Copy of a schema-valid ``value`` with every missing defaulted property filled in."""
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        result = {}
        for key, sub in properties.items():
            if key in value:
                result[key] = _fill_defaults(value[key], sub)
            elif "default" in sub:
                result[key] = _fill_defaults(copy.deepcopy(sub["default"]), sub)
        additional = schema.get("additionalProperties")
        for key, item in value.items():
            if key not in properties:
                result[key] = _fill_defaults(item, additional) if isinstance(additional, dict) else item
        return result
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_fill_defaults(item, schema["items"]) for item in value]
    return value


def _spark_size(value: str) -> int | None:
    match = _SPARK_SIZE_RE.match(str(value).strip())
    if not match:
        return None
    return int(match.group(1)) * _SPARK_SIZE_UNITS[match.group(2).lower()]


def _spark_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _managed(key: str, keys: dict, prefixes: dict) -> str | None:
    """Why DCM owns Spark setting ``key`` (named in ``keys`` or under one of ``prefixes``), or None."""
    return keys.get(key) or next((why for prefix, why in prefixes.items() if key.startswith(prefix)), None)


def _semantic_problems(spec: dict) -> list[str]:
    """Rules across fields that JSON Schema cannot state (run on the defaulted spec)."""
    problems: list[str] = []
    for role, minimum in MIN_MEMORY.items():
        if role not in spec:
            continue  # the optional history server
        memory = spec[role]["memory"]
        try:
            size = parse_memory(memory)
        except UnitError as exc:  # pragma: no cover - the schema pattern rejects these first
            problems.append(f"{role}.memory: {exc}")
            continue
        if size < minimum:
            problems.append(f"{role}.memory: must be at least {minimum >> 20}m for a Spark JVM, got {_show(memory)}")
    for role in ("master", "driver"):
        try:
            parse_cpus(spec[role]["cpus"])
        except UnitError as exc:
            problems.append(f"{role}.cpus: {exc}")

    problems.extend(_volume_problems(spec.get("volumes") or []))

    conf = spec["spark_conf"]
    for key in conf:
        why = _managed(key, MANAGED_SPARK_CONF, MANAGED_SPARK_CONF_PREFIXES) or (
            "history" in spec and _managed(key, HISTORY_SPARK_CONF, HISTORY_SPARK_CONF_PREFIXES))
        if why:
            problems.append(f"{join_path('spark_conf', key)}: is managed by DCM ({why}); remove it from the spec")
    limits = (
        ("spark.executor.memory", "worker", "memory"),
        ("spark.driver.memory", "driver", "memory"),
    )
    for key, role, field in limits:
        if key in conf:
            size = _spark_size(_spark_value(conf[key]))
            if size is None:
                problems.append(f"{join_path('spark_conf', key)}: must be a Spark size like '3g', got {_show(conf[key])}")
            elif size > parse_memory(spec[role][field]):
                problems.append(
                    f"{join_path('spark_conf', key)}: {conf[key]} exceeds {role}.{field} "
                    f"{spec[role][field]}; lower it or raise {role}.{field}"
                )
    if "spark.executor.cores" in conf:
        cores = _spark_value(conf["spark.executor.cores"])
        if not cores.isdigit() or int(cores) < 1:
            problems.append(f"{join_path('spark_conf', 'spark.executor.cores')}: must be a whole number >= 1, got {_show(conf['spark.executor.cores'])}")
        elif int(cores) > spec["worker"]["cpus"]:
            problems.append(
                f"{join_path('spark_conf', 'spark.executor.cores')}: {cores} exceeds worker.cpus "
                f"{spec['worker']['cpus']}; no executor could ever start"
            )

    runtime = spec["runtime"]
    for index, line in enumerate(runtime["dockerfile"]):
        word = line.strip().split(None, 1)[0].upper() if line.strip() else ""
        if "\n" in line or "\r" in line:
            problems.append(f"runtime.dockerfile[{index}]: must be one line (one item per instruction), got a line break")
        elif line.rstrip().endswith("\\"):
            problems.append(f"runtime.dockerfile[{index}]: must not end with '\\': it would continue into the "
                            "instruction after it (DCM's own); write the instruction on one line")
        if word in FORBIDDEN_DOCKERFILE:
            problems.append(f"runtime.dockerfile[{index}]: {word} is not allowed; {FORBIDDEN_DOCKERFILE[word]}")
    for name in runtime["env"]:
        if name.upper() in FORBIDDEN_ENV_NAMES or name.upper().startswith(FORBIDDEN_ENV_PREFIXES):
            problems.append(
                f"{join_path('runtime.env', name)}: is not allowed: it changes how the JVM, Spark or Python start "
                f"(forbidden: {', '.join(sorted(FORBIDDEN_ENV_NAMES))} and names starting with "
                f"{', '.join(FORBIDDEN_ENV_PREFIXES)}); set Spark settings in spark_conf")
    app_dir = runtime["app_dir"]
    if app_dir is not None and (app_dir.startswith("/") or ".." in app_dir.split("/")):
        problems.append(f"runtime.app_dir: must be a relative path inside the spec's folder (no '/' prefix, no '..'), got {_show(app_dir)}")
    if spec["app"] is not None and app_dir is None:
        problems.append("app: needs runtime.app_dir, the folder holding app.main")
    if spec["app"] is not None and spec["app"]["main"].endswith(".jar") and "class" not in spec["app"]:
        problems.append("app.class: is required when app.main is a .jar")
    return problems


def _volume_problems(volumes: list) -> list[str]:
    """Volumes' names and paths are unique, no path holds another's, no path has '.' or '..' parts."""
    problems: list[str] = []
    names: dict = {}
    paths: dict = {}
    for index, volume in enumerate(volumes):
        where = join_path("volumes", index)
        name, path = volume["name"], volume["path"].rstrip("/")
        if name in names:
            problems.append(f"{where}.name: {_show(name)} is also the name of volumes[{names[name]}]")
        names.setdefault(name, index)
        if any(part in (".", "..") for part in path.split("/")):
            problems.append(f"{where}.path: must not have '.' or '..' parts, got {_show(volume['path'])}")
        for other, other_index in paths.items():
            if path == other or path.startswith(other + "/") or other.startswith(path + "/"):
                problems.append(f"{where}.path: {_show(volume['path'])} overlaps volumes[{other_index}].path "
                                f"{_show(other)}; give each volume a folder of its own")
        paths.setdefault(path, index)
        if path == "/opt/dcspark/notebooks" and volume["nodes"] != ["driver"]:
            problems.append(f"{where}.nodes: /opt/dcspark/notebooks is the driver's Jupyter folder; mount it on "
                            "[\"driver\"] only")
    return problems


def normalize_spec(raw: Any, source: str | None = None) -> dict:
    """Validate ``raw`` (decoded JSON) and return the normalized spec, or raise :class:`SpecError`."""
    problems = validate_schema(raw, SCHEMA)
    if problems:
        raise SpecError(problems, source)
    spec = _fill_defaults(raw, SCHEMA)
    problems = _semantic_problems(spec)
    if problems:
        raise SpecError(problems, source)
    for role in ROLES:
        if role not in spec:
            continue  # the optional history server
        spec[role]["memory"] = parse_memory(spec[role]["memory"])
        spec[role]["cpus"] = format_cpus(parse_cpus(spec[role]["cpus"]))
    spec["spark_conf"] = {key: _spark_value(value) for key, value in sorted(spec["spark_conf"].items())}
    spec["runtime"]["env"] = dict(sorted(spec["runtime"]["env"].items()))
    return spec


def scaled_spec(spec: dict, workers: Any) -> dict:
    """A copy of the normalized ``spec`` with ``workers`` workers, checked by the schema's rule for
    ``worker.count``; raises :class:`SpecError`."""
    problems = validate_schema(workers, SCHEMA["properties"]["worker"]["properties"]["count"], "worker.count")
    if problems:
        raise SpecError(problems)
    scaled = copy.deepcopy(spec)
    scaled["worker"]["count"] = workers
    return scaled


def check_job_conf(spec: dict, conf: Any) -> dict:
    """The Spark settings of one job submitted to the cluster of ``spec``, checked by the very rules of the
    spec's ``spark_conf`` (nothing DCM manages, sizes within the nodes) as if they were added to it.

    Returns them normalized (string values); raises :class:`SpecError` with paths under ``conf``.
    """
    if conf is None:
        return {}
    if not isinstance(conf, dict):
        raise SpecError([f"conf: must be an object of Spark settings, got {_json_type(conf)}"], "job")
    merged = copy.deepcopy(spec)
    merged["spark_conf"] = {**spec.get("spark_conf", {}), **conf}
    try:
        normalize_spec(merged)
    except SpecError as exc:
        mine = [problem.replace("spark_conf", "conf", 1) for problem in exc.problems
                if any(problem.startswith(join_path("spark_conf", key)) for key in conf)]
        raise SpecError(mine or exc.problems, "job") from None
    return {str(key): _spark_value(value) for key, value in sorted(conf.items())}


def parse_spec_text(text: str, source: str | None = None) -> dict:
    """Decode JSON text and normalize it; a JSON syntax error names line and column."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError([f"not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"], source) from None
    return normalize_spec(raw, source)


def load_spec_file(path: str) -> dict:
    """Read, validate and normalize the spec at ``path``."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise SpecError([f"cannot read the spec file: {exc.strerror}"], path) from None
    return parse_spec_text(text, path)


def canonical_json(value: Any) -> str:
    """The byte-stable JSON form hashes are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def spec_hash(spec: dict) -> str:
    """Content hash (sha256 hex) of a normalized spec."""
    return hashlib.sha256(canonical_json(spec).encode("utf-8")).hexdigest()


def node_requests(spec: dict) -> dict:
    """Resource request of each role of a normalized spec: ``{role: (millicpus, bytes)}`` (``history`` when the
    spec has a history server)."""
    return {role: (parse_cpus(spec[role]["cpus"]), int(spec[role]["memory"])) for role in ROLES if role in spec}
