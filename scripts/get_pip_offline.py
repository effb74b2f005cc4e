"""Offline stand-in for the get-pip bootstrap script that ansible-test downloads.

dcspark-get-pip-stand-in (marker used by scripts/ansible-test-sanity.sh)

ansible-test bootstraps pip in each sanity virtual environment by running
``get-pip-<version>.py`` from ci-files.testing.ansible.com, unless a copy sits in
``~/.ansible/test/cache/get_pip_<version>.py``. That host is unreachable here, so
scripts/ansible-test-sanity.sh places this file there instead. It does what get-pip
does with the standard library: ensurepip installs the pip bundled with Python, then
that pip installs the requested packages (``pip==<version>``) from the configured index.
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys

# get-pip's own flags, which pip itself does not know.
GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}


def main() -> None:
    args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
    ensurepip.bootstrap()
    env = dict(os.environ)
    # ensurepip points PIP_CONFIG_FILE at /dev/null, which would hide the site's pip
    # configuration (index, CA bundle, constraints) from the real install below.
    env.pop("PIP_CONFIG_FILE", None)
    if args:
        subprocess.check_call([sys.executable, "-m", "pip", "install", *args], env=env)


if __name__ == "__main__":
    main()
