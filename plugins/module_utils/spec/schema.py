"""The JSON Schema of a DCSpark cluster spec: the single source of truth.

``schemas/cluster-spec.schema.json`` in the repository is generated from this
dict (``make schema``; a unit test fails when the two differ), so that editors
and CI systems can validate specs without Python. ``x-rule`` is an annotation
(ignored by JSON Schema validators) holding the sentence our own validator
prints when a ``pattern`` does not match.
"""

from __future__ import annotations

from ..core.units import MEMORY_PATTERN

SCHEMA_ID = "urn:dcspark:cluster-spec:v1"

# Room for the derived container names (spark-worker-<name>-<index>) in a 63-character hostname.
NAME_MAX_LENGTH = 40

# Volumes mount only where nothing of the image lives (not over its programs, DCM's files or Spark).
MAX_VOLUMES = 16
VOLUME_PATH_PATTERN = "^(/(data|mnt|srv)(/[A-Za-z0-9._-]+)*|/opt/dcspark/notebooks)$"

DEFAULT_BASE_IMAGE = "debian:bookworm-slim"
DEFAULT_JAVA_PACKAGE = "openjdk-17-jre-headless"

_MEMORY = {
    "type": ["string", "integer"],
    "pattern": MEMORY_PATTERN,
    "minimum": 1,
    "x-rule": "must be a whole number with an optional k/m/g/t suffix (binary units), like '4g' or '512m'",
    "description": "Memory: bytes as an integer, or a string with a k/m/g/t suffix (binary units).",
}


def _node(description: str, cpus_default: int, memory_default: str) -> dict:
    return {
        "type": "object",
        "description": description,
        "default": {},
        "additionalProperties": False,
        "properties": {
            "cpus": {
                "type": "number",
                "exclusiveMinimum": 0,
                "maximum": 1024,
                "default": cpus_default,
                "description": "CPUs reserved and enforced as the container's CPU limit (fractions allowed).",
            },
            "memory": dict(_MEMORY, default=memory_default),
        },
    }


def _history() -> dict:
    history = _node("A Spark history server, one more node of the cluster (spark-history-<name>), on the driver's "
                    "host; present means on. Every application the driver runs (the app, submitted jobs, notebooks) "
                    "writes its event log to the cluster's history volume there (dcm-<name>.history), kept across "
                    "redeploys, rollbacks and undeploys until an undeploy with purge; the server shows them through the "
                    "pool's gateway at /clusters/<name>/history/. The driver stays on its host across deploys (the "
                    "volume lives there) unless that host leaves the pool.", 0.5, "1g")
    del history["default"]
    history["properties"]["max_age"] = {
        "type": "string",
        "pattern": "^[1-9][0-9]{0,4}[hd]$",
        "x-rule": "must be a number of hours or days like '12h' or '7d'",
        "default": "7d",
        "description": "The server's cleaner deletes event logs older than this, so the volume does not fill.",
    }
    return history


SCHEMA: dict = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "DCSpark cluster spec",
    "description": "One isolated Spark standalone cluster and the runtime environment its images are built from.",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "runtime", "worker"],
    "properties": {
        "name": {
            "type": "string",
            "minLength": 1,
            "maxLength": NAME_MAX_LENGTH,
            "pattern": "^(?!(proxy|history)$)[a-z]([-a-z0-9]*[a-z0-9])?$",
            "x-rule": "must be a DNS label: lowercase letters, digits and '-', starting with a letter "
            "and not ending with '-'; not 'proxy' or 'history' (Spark's UI reserves them in the gateway's paths)",
            "description": "Cluster name; names its containers, hostnames, network and etcd record.",
        },
        "runtime": {
            "type": "object",
            "description": "The runtime environment baked into the cluster's images.",
            "additionalProperties": False,
            "required": ["spark_version"],
            "properties": {
                "base_image": {
                    "type": "string",
                    "minLength": 1,
                    "pattern": "^[a-z0-9][a-z0-9._/:@-]*$",
                    "x-rule": "must be a Docker image reference like 'debian:bookworm-slim'",
                    "default": DEFAULT_BASE_IMAGE,
                    "description": "Debian-based image the runtime layer starts from.",
                },
                "spark_version": {
                    "type": "string",
                    "pattern": "^[0-9]+\\.[0-9]+\\.[0-9]+$",
                    "x-rule": "must be a Spark release like '4.0.1'",
                    "description": "Apache Spark version (installed from the pyspark wheel of that version).",
                },
                "java_package": {
                    "type": "string",
                    "pattern": "^[a-z0-9][a-z0-9+.-]*$",
                    "x-rule": "must be a Debian package name like 'openjdk-17-jre-headless'",
                    "default": DEFAULT_JAVA_PACKAGE,
                    "description": "Debian package providing the Java runtime.",
                },
                "apt_packages": {
                    "type": "array",
                    "default": [],
                    "uniqueItems": True,
                    "items": {
                        "type": "string",
                        "pattern": "^[a-z0-9][a-z0-9+.-]*(=[A-Za-z0-9.+:~-]+)?$",
                        "x-rule": "must be a Debian package name, optionally pinned as 'name=version'",
                    },
                    "description": "Debian packages (native libraries) installed into the runtime layer.",
                },
                "pip_packages": {
                    "type": "array",
                    "default": [],
                    "uniqueItems": True,
                    "items": {
                        "type": "string",
                        "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]*(\\[[A-Za-z0-9._,-]+\\])?"
                        "((==|>=|<=|~=|!=|>|<)[A-Za-z0-9.*+!-]+(,(==|>=|<=|~=|!=|>|<)[A-Za-z0-9.*+!-]+)*)?$",
                        "x-rule": "must be a PyPI requirement like 'numpy==2.1.3' (no options, URLs or spaces)",
                    },
                    "description": "Python packages installed into the runtime's virtualenv.",
                },
                "env": {
                    "type": "object",
                    "default": {},
                    "propertyNames": {
                        "pattern": "^[A-Za-z_][A-Za-z0-9_]*$",
                        "x-rule": "must be an environment variable name (letters, digits, '_')",
                    },
                    "additionalProperties": {"type": "string"},
                    "description": "Environment variables of every container of the cluster.",
                },
                "dockerfile": {
                    "type": "array",
                    "default": [],
                    "items": {"type": "string", "minLength": 1},
                    "description": "Extra Dockerfile instructions appended to the runtime layer.",
                },
                "app_dir": {
                    "type": ["string", "null"],
                    "default": None,
                    "minLength": 1,
                    "description": "Folder, relative to the spec file, copied into the images as the application.",
                },
            },
        },
        "master": _node("The Spark master container.", 1, "1g"),
        "driver": _node("The driver container (runs spark-submit of the app).", 1, "1g"),
        "worker": {
            "type": "object",
            "description": "The Spark worker containers.",
            "additionalProperties": False,
            "required": ["count"],
            "properties": {
                "cpus": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": 1024,
                    "default": 1,
                    "description": "Cores of one worker (whole CPUs: Spark counts cores).",
                },
                "memory": dict(_MEMORY, default="1g"),
                "count": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "Number of workers."},
            },
        },
        "spark_conf": {
            "type": "object",
            "default": {},
            "propertyNames": {
                "pattern": "^spark\\.[A-Za-z0-9._-]+$",
                "x-rule": "must be a Spark property name starting with 'spark.'",
            },
            "additionalProperties": {"type": ["string", "number", "boolean"]},
            "description": "Spark properties for the cluster's applications (spark-defaults.conf).",
        },
        "jupyter": {
            "type": "object",
            "additionalProperties": False,
            "description": "A Jupyter server (JupyterLab) in the driver container, its notebooks running on the cluster; "
            "present means on. A token is always required (random per cluster).",
            "properties": {
                "port": {
                    "type": "integer",
                    "minimum": 1024,
                    "maximum": 65535,
                    "default": 8888,
                    "description": "Port of the server inside the driver container.",
                },
                "publish": {
                    "type": "string",
                    "pattern": "^(none|[0-9]{1,3}(\\.[0-9]{1,3}){3})$",
                    "x-rule": "must be 'none' or an IPv4 address of the driver's host like '127.0.0.1'",
                    "default": "127.0.0.1",
                    "description": "Host address the server is published on (an ephemeral port): 127.0.0.1, reached "
                    "through an SSH tunnel to the driver's host (the default); an address of that host; 0.0.0.0 for "
                    "every address; or none.",
                },
            },
        },
        "history": _history(),
        "ui": {
            "type": "object",
            "additionalProperties": False,
            "description": "The cluster's web UIs. They are served by the pool's authenticated HTTPS gateway at "
            "https://<first master>:<dcm_gateway_port>/clusters/<name>/ (the master's, and through it the workers' and "
            "every running application's); Spark's kill links are off unless spark_conf sets spark.ui.killEnabled.",
            "properties": {
                "publish": {
                    "type": "string",
                    "pattern": "^(none|127\\.0\\.0\\.1)$",
                    "x-rule": "must be 'none' or '127.0.0.1' (the gateway is the way to a cluster's UIs from elsewhere)",
                    "default": "none",
                    "description": "Also publish the master's UI on the master host's loopback (an ephemeral port, "
                    "for an SSH tunnel): 127.0.0.1; or none (the default).",
                },
            },
        },
        "volumes": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_VOLUMES,
            "description": "Named volumes of the cluster, kept across redeploys, rollbacks and undeploys (until an "
            "undeploy with purge): one Docker volume per host and volume, dcm-<cluster>-<name>, mounted into the nodes "
            "it names. A volume lives on its host: a node that mounts one stays on its host across deploys, unless that "
            "host leaves the pool (the data stays there); QFS is the shared option.",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "path"],
                "properties": {
                    "name": {
                        "type": "string",
                        "pattern": "^[a-z0-9]([a-z0-9-]{0,22}[a-z0-9])?$",
                        "x-rule": "must be a DNS label of at most 24 characters (lowercase letters, digits, '-')",
                        "description": "The volume's name within the cluster.",
                    },
                    "path": {
                        "type": "string",
                        "pattern": VOLUME_PATH_PATTERN,
                        "x-rule": "must be /data, /mnt or /srv or a folder below them (letters, digits, '.', '_', "
                        "'-'), or /opt/dcspark/notebooks (the driver's Jupyter folder)",
                        "description": "Where the nodes see it.",
                    },
                    "nodes": {
                        "type": "array",
                        "minItems": 1,
                        "uniqueItems": True,
                        "items": {"enum": ["driver", "worker"]},
                        "default": ["driver", "worker"],
                        "description": "The roles that mount it: the driver, the workers, or both (each worker on a "
                        "host shares that host's copy).",
                    },
                    "read_only": {"type": "boolean", "default": False, "description": "Mounted read-only."},
                },
            },
        },
        "app": {
            "type": ["object", "null"],
            "default": None,
            "additionalProperties": False,
            "required": ["main"],
            "properties": {
                "main": {
                    "type": "string",
                    "pattern": "^[^/].*\\.(py|jar)$",
                    "x-rule": "must be a .py or .jar file relative to runtime.app_dir",
                },
                "args": {"type": "array", "default": [], "items": {"type": "string"}},
                "class": {
                    "type": "string",
                    "pattern": "^[A-Za-z_][A-Za-z0-9_.$]*$",
                    "x-rule": "must be a Java class name",
                    "description": "Main class, for a .jar app.",
                },
            },
            "description": "The application the driver runs after the cluster is up.",
        },
    },
}
