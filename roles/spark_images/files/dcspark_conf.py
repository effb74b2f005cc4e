"""Helper of dcspark-node and dcspark-submit (installed by dcspark.dcm.spark_images).

    dcspark_conf.py write FILE [--secret] [KEY?=VALUE...] KEY=VALUE...
        Write FILE (spark-defaults.conf): the KEY?=VALUE defaults, then the JSON object in
        $DCSPARK_SPARK_CONF (the spec's spark_conf; absent or empty means none), then the
        KEY=VALUE settings in the order given (a later key wins in Spark's properties file, so the
        spec overrides the defaults and cannot override the settings).
        Keys DCM manages are dropped from the spec's part with a warning. --secret also writes
        spark.authenticate.secret from $_SPARK_AUTH_SECRET (the driver needs it in its conf;
        the daemons read the variable itself). FILE is replaced atomically, mode 0600.

    dcspark_conf.py args
        Print the JSON list in $DCSPARK_APP_ARGS (absent or empty means none) NUL-separated.

Exits 64 with a message naming the variable when the input is not what the contract says.
"""

import json
import os
import sys
import tempfile

EX_USAGE = 64

# Settings DCM owns; a spec cannot set them (the spec validator refuses them too).
MANAGED = (
    "spark.authenticate",
    "spark.authenticate.secret",
    "spark.network.crypto.enabled",
    "spark.network.crypto.saslFallback",
    "spark.master.rest.enabled",
    "spark.master",
    "spark.worker.cleanup.enabled",
    "spark.ui.reverseProxy",
    "spark.ui.reverseProxyUrl",
)


def fail(message):
    sys.stderr.write("dcspark-node: %s\n" % message)
    sys.exit(EX_USAGE)


def as_text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value)
    return json.dumps(value, sort_keys=True)


def escape(text, key):
    """java.util.Properties escaping (Spark reads spark-defaults.conf with Properties.load, UTF-8)."""
    out = []
    for index, char in enumerate(text):
        if char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char == "\f":
            out.append("\\f")
        elif char == " " and (key or index == 0):
            out.append("\\ ")
        elif key and char in "=:#!":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def spec_conf():
    raw = os.environ.get("DCSPARK_SPARK_CONF", "").strip()
    if not raw:
        return []
    try:
        conf = json.loads(raw)
    except ValueError as exc:
        fail("DCSPARK_SPARK_CONF is not valid JSON (%s)" % exc)
    if conf is None:
        return []
    if not isinstance(conf, dict):
        fail("DCSPARK_SPARK_CONF must be a JSON object of Spark properties, got %s" % type(conf).__name__)
    pairs = []
    for key in sorted(conf):
        if key in MANAGED:
            sys.stderr.write("dcspark-node: ignoring %s from DCSPARK_SPARK_CONF: DCM sets it\n" % key)
            continue
        pairs.append((str(key), as_text(conf[key])))
    return pairs


def write(argv):
    if not argv:
        fail("usage: dcspark_conf.py write FILE [--secret] KEY=VALUE...")
    path, rest = argv[0], argv[1:]
    defaults, pairs = [], spec_conf()
    for arg in rest:
        if arg == "--secret":
            secret = os.environ.get("_SPARK_AUTH_SECRET", "")
            if not secret:
                fail("_SPARK_AUTH_SECRET is empty")
            pairs.append(("spark.authenticate.secret", secret))
            continue
        key, sep, value = arg.partition("=")
        if not sep or not key or key == "?":
            fail("not a KEY=VALUE setting: %r" % arg)
        if key.endswith("?"):
            defaults.append((key[:-1], value))
        else:
            pairs.append((key, value))
    pairs = defaults + pairs
    lines = ["# Written by dcspark-node at container start: the spec's spark_conf, then DCM's settings.\n"]
    lines.extend("%s %s\n" % (escape(key, True), escape(value, False)) for key, value in pairs)
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(prefix=".spark-defaults.", dir=folder)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.writelines(lines)
        os.chmod(temporary, 0o600)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def args():
    raw = os.environ.get("DCSPARK_APP_ARGS", "").strip()
    if not raw:
        return
    try:
        values = json.loads(raw)
    except ValueError as exc:
        fail("DCSPARK_APP_ARGS is not valid JSON (%s)" % exc)
    if values is None:
        return
    if not isinstance(values, list):
        fail("DCSPARK_APP_ARGS must be a JSON list of arguments, got %s" % type(values).__name__)
    out = sys.stdout.buffer
    for value in values:
        text = as_text(value)
        if "\0" in text:
            fail("DCSPARK_APP_ARGS: an argument contains a NUL character")
        out.write(text.encode("utf-8") + b"\0")
    out.flush()


def main(argv):
    if argv[:1] == ["write"]:
        write(argv[1:])
    elif argv[:1] == ["args"]:
        args()
    else:
        fail("usage: dcspark_conf.py write FILE [--secret] KEY=VALUE... | dcspark_conf.py args")


if __name__ == "__main__":
    main(sys.argv[1:])
