"""Docker labels DCM puts on its images and containers: the one place they are spelled."""

from __future__ import annotations

MANAGED = "org.dcspark.managed"  # "true" on every DCSpark image and container
CLUSTER = "org.dcspark.cluster"  # cluster name (containers; images of one runtime)
NODE = "org.dcspark.node"  # master, driver, worker-3 (containers)
ROLE = "org.dcspark.role"  # master, worker, driver, runtime (images and containers)
SPEC_HASH = "org.dcspark.spec-hash"  # hash of the normalized spec the container was created from
VOLUME = "org.dcspark.volume"  # a cluster volume's Docker name, dcm-<cluster>-<name> (volumes, with MANAGED and CLUSTER)

MANAGED_FILTER = f"{MANAGED}=true"


def is_managed(labels: dict | None) -> bool:
    return (labels or {}).get(MANAGED) == "true"
