"""The contract of the images' entrypoint (roles/spark_images/files), run outside any image.

dcspark-node and dcspark-submit are laid out as in the runtime image (bin/ next to
lib/dcspark/dcspark_conf.py) under a temporary prefix; Spark's spark-class and
spark-submit and the driver's ``sleep`` are stand-ins that record their argument
vectors. What is checked is what the DCM agent relies on: the exact commands, the
spark-defaults.conf written at start (the spec's settings first, DCM's security
settings last), the refusal (exit 64) without the cluster secret, and how
dcspark-submit turns DCSPARK_APP_MAIN / DCSPARK_APP_ARGS into spark-submit's arguments.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import shutil
import stat
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = os.path.join(REPO, "roles", "spark_images", "files")
SECRET = "s3cr3t/with+chars="
MASTER_URL = "spark://spark-master-face:7077"

RECORDER = """#!/bin/sh
# records its name and arguments, NUL-separated
{ printf '%s\\0' "$(basename "$0")"; for a in "$@"; do printf '%s\\0' "$a"; done; } > "$DCSPARK_TEST_RECORD"
printf '%s' "${_SPARK_AUTH_SECRET:-}" > "$DCSPARK_TEST_RECORD.secret"
printf '%s' "${SPARK_HISTORY_OPTS:-}" > "$DCSPARK_TEST_RECORD.history-opts"
"""

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _executable(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o755)


@pytest.fixture
def image(tmp_path):
    """A file-system layout like the runtime image's, with recording stand-ins for Spark."""
    prefix, home, spark, fakebin = (tmp_path / name for name in ("usr-local", "home", "spark", "fakebin"))
    (prefix / "bin").mkdir(parents=True)
    (prefix / "lib" / "dcspark").mkdir(parents=True)
    for name in ("dcspark-node", "dcspark-submit"):
        shutil.copy(os.path.join(FILES, name), prefix / "bin" / name)
        os.chmod(prefix / "bin" / name, 0o755)
    shutil.copy(os.path.join(FILES, "dcspark_conf.py"), prefix / "lib" / "dcspark" / "dcspark_conf.py")
    (home / "venv" / "bin").mkdir(parents=True)
    os.symlink(sys.executable, home / "venv" / "bin" / "python")
    (home / "app").mkdir()
    (home / "app" / "detect.py").write_text("print('hi')\n")
    (spark / "bin").mkdir(parents=True)
    for name in ("spark-class", "spark-submit"):
        _executable(str(spark / "bin" / name), RECORDER)
    fakebin.mkdir()
    _executable(str(fakebin / "sleep"), RECORDER)

    class Image:
        bin = prefix / "bin"
        conf = home / "conf" / "spark-defaults.conf"
        record = tmp_path / "record"
        app = home / "app"
        secrets = tmp_path / "secrets"

        @staticmethod
        def secret_file(name, value):
            """A secret as the DCM agent copies it into the container (folder 0500, file 0400)."""
            (tmp_path / "secrets").mkdir(exist_ok=True)
            (tmp_path / "secrets" / name).write_text(value, encoding="utf-8")
            os.chmod(tmp_path / "secrets" / name, 0o400)

        @staticmethod
        def daemon_secret():
            """The _SPARK_AUTH_SECRET the recorded Spark command ran with."""
            return (tmp_path / "record.secret").read_text(encoding="utf-8")

        @staticmethod
        def run(command, *args, **env):
            environment = {
                "PATH": f"{fakebin}:{os.environ['PATH']}",
                "DCSPARK_HOME": str(home),
                "SPARK_HOME": str(spark),
                "SPARK_CONF_DIR": str(home / "conf"),
                "HOSTNAME": "spark-node-face",
                "DCSPARK_TEST_RECORD": str(tmp_path / "record"),
                "DCSPARK_SECRETS_DIR": str(tmp_path / "secrets"),
            }
            environment.update({key: value for key, value in env.items() if value is not None})
            return subprocess.run([str(prefix / "bin" / command), *args], env=environment,
                                  capture_output=True, text=True, timeout=60, check=False)

        @staticmethod
        def recorded():
            data = (tmp_path / "record").read_bytes()
            return [part.decode("utf-8") for part in data.split(b"\0")[:-1]]

        @staticmethod
        def settings():
            """(key, value) pairs of the written spark-defaults.conf, in file order."""
            pairs = []
            for line in (home / "conf" / "spark-defaults.conf").read_text(encoding="utf-8").splitlines():
                if line and not line.startswith("#"):
                    key, _sep, value = line.partition(" ")
                    pairs.append((key, value))
            return pairs

    return Image


def _cluster_env(**extra):
    env = {
        "DCSPARK_CLUSTER": "face",
        "SPARK_MASTER_URL": MASTER_URL,
        "_SPARK_AUTH_SECRET": SECRET,
        "DCSPARK_SPARK_CONF": json.dumps({"spark.executor.memory": "512m", "spark.executor.cores": "1"}),
        "DCSPARK_MASTER_WAIT": "0",  # no master here: a worker probes once, then starts
    }
    env.update(extra)
    return env


SECURITY = [
    ("spark.authenticate", "true"),
    ("spark.network.crypto.enabled", "true"),
    ("spark.network.crypto.saslFallback", "false"),
    ("spark.master.rest.enabled", "false"),
    # the UIs through the pool's gateway only, by the master's reverse proxy, under the cluster's path
    ("spark.ui.reverseProxy", "true"),
    ("spark.ui.reverseProxyUrl", "/clusters/face"),
]
KILL_OFF = ("spark.ui.killEnabled", "false")  # a default: the spec's spark_conf may turn the kill links on
# a default: a connect to a replaced master's old address gives up in 10 s, not after spark.network.timeout
CONNECT = ("spark.rpc.io.connectionCreationTimeout", "10s")


@pytest.mark.parametrize("role", ["master", "worker", "driver"])
@pytest.mark.parametrize("secret", [None, ""])
def test_refuses_to_start_without_the_secret(image, role, secret):
    result = image.run("dcspark-node", role, **_cluster_env(_SPARK_AUTH_SECRET=secret))
    assert result.returncode == 64
    assert "no cluster secret" in result.stderr and "/auth is missing" in result.stderr
    assert not image.record.exists() and not image.conf.exists()


@pytest.mark.parametrize("role", ["master", "worker"])
def test_daemons_take_the_secret_from_the_file_dcm_copies_in(image, role):
    """DCM's way: no secret in the container's environment, the file under /run/dcspark."""
    image.secret_file("auth", "from-the-file")
    env = _cluster_env()
    del env["_SPARK_AUTH_SECRET"]
    result = image.run("dcspark-node", role, **env)
    assert result.returncode == 0, result.stderr
    assert image.recorded()[0] == "spark-class"
    assert image.daemon_secret() == "from-the-file"
    assert "spark.authenticate.secret" not in dict(image.settings())


def test_the_secret_file_wins_over_the_environment_and_reaches_the_driver_conf(image):
    image.secret_file("auth", "from-the-file")
    result = image.run("dcspark-node", "driver", **_cluster_env(_SPARK_AUTH_SECRET="from-the-env"))
    assert result.returncode == 0, result.stderr
    assert dict(image.settings())["spark.authenticate.secret"] == "from-the-file"


def test_master_runs_in_the_foreground_with_the_security_settings_last(image):
    conf = {"spark.authenticate": "false", "spark.ui.port": "4050", "spark.executor.memory": "512m"}
    result = image.run("dcspark-node", "master", **_cluster_env(DCSPARK_SPARK_CONF=json.dumps(conf)))
    assert result.returncode == 0, result.stderr
    assert image.recorded() == ["spark-class", "org.apache.spark.deploy.master.Master",
                                "--host", "spark-node-face", "--port", "7077", "--webui-port", "8080"]
    settings = image.settings()
    # the spec cannot switch authentication off: its key is dropped and DCM's comes last
    assert "ignoring spark.authenticate" in result.stderr
    assert settings == [CONNECT, KILL_OFF, ("spark.executor.memory", "512m"), ("spark.ui.port", "4050"),
                        ("spark.master", MASTER_URL)] + SECURITY
    assert "spark.authenticate.secret" not in dict(settings)  # daemons read _SPARK_AUTH_SECRET


def test_the_spec_turns_kill_links_on_but_cannot_move_or_drop_the_reverse_proxy(image):
    conf = {"spark.ui.killEnabled": True, "spark.ui.reverseProxy": False, "spark.ui.reverseProxyUrl": "/elsewhere",
            "spark.rpc.io.connectionCreationTimeout": "30s"}
    result = image.run("dcspark-node", "master", **_cluster_env(DCSPARK_SPARK_CONF=json.dumps(conf)))
    assert result.returncode == 0, result.stderr
    assert "ignoring spark.ui.reverseProxy " in result.stderr and "ignoring spark.ui.reverseProxyUrl " in result.stderr
    settings = image.settings()
    assert settings.index(("spark.ui.killEnabled", "true")) > settings.index(KILL_OFF)  # the spec's wins
    assert settings.index(("spark.rpc.io.connectionCreationTimeout", "30s")) > settings.index(CONNECT)
    assert ("spark.ui.reverseProxyUrl", "/elsewhere") not in settings and settings[-2:] == SECURITY[-2:]
    refused = image.run("dcspark-node", "master", **_cluster_env(DCSPARK_CLUSTER="../x"))
    assert refused.returncode == 64 and "DCSPARK_CLUSTER must be the cluster's name" in refused.stderr


def test_a_history_server_reads_the_event_logs_under_the_gateways_path_and_cleans_old_ones(image, tmp_path):
    conf = {"spark.history.fs.cleaner.enabled": False, "spark.executor.memory": "512m"}
    env = _cluster_env(DCSPARK_SPARK_CONF=json.dumps(conf), DCSPARK_EVENT_LOG_DIR="/opt/dcspark/events",
                       DCSPARK_HISTORY_MAX_AGE="2d", SPARK_DAEMON_MEMORY="512m")
    result = image.run("dcspark-node", "history", **env)
    assert result.returncode == 0, result.stderr
    assert image.recorded() == ["spark-class", "org.apache.spark.deploy.history.HistoryServer"]
    assert (tmp_path / "record.history-opts").read_text() == "-Dspark.ui.proxyBase=/clusters/face/history"
    settings = image.settings()
    history = [("spark.history.fs.logDirectory", "file:/opt/dcspark/events"), ("spark.history.ui.port", "18080"),
               ("spark.history.fs.cleaner.enabled", "true"), ("spark.history.fs.cleaner.maxAge", "2d")]
    assert [pair for pair in settings if pair[0].startswith("spark.history.")] == [
        ("spark.history.fs.cleaner.enabled", "false")] + history  # DCM's come after the spec's: they win
    assert all(pair in settings[settings.index(("spark.executor.memory", "512m")):] for pair in SECURITY)
    missing = image.run("dcspark-node", "history", **_cluster_env())
    assert missing.returncode == 64 and "DCSPARK_EVENT_LOG_DIR is empty" in missing.stderr
    bad_age = image.run("dcspark-node", "history", **dict(env, DCSPARK_HISTORY_MAX_AGE="1; rm -rf /"))
    assert bad_age.returncode == 64 and "DCSPARK_HISTORY_MAX_AGE must be like" in bad_age.stderr


def test_a_driver_of_a_cluster_with_a_history_server_always_writes_event_logs_there(image):
    conf = {"spark.eventLog.enabled": False}
    result = image.run("dcspark-node", "driver", **_cluster_env(DCSPARK_SPARK_CONF=json.dumps(conf),
                                                                DCSPARK_EVENT_LOG_DIR="/opt/dcspark/events"))
    assert result.returncode == 0, result.stderr
    settings = image.settings()
    assert settings.index(("spark.eventLog.enabled", "true")) > settings.index(("spark.eventLog.enabled", "false"))
    assert ("spark.eventLog.dir", "file:/opt/dcspark/events") in settings
    plain = image.run("dcspark-node", "driver", **_cluster_env())
    assert plain.returncode == 0 and "spark.eventLog.dir" not in dict(image.settings())


def test_worker_offers_its_cores_and_memory(image):
    result = image.run("dcspark-node", "worker",
                       **_cluster_env(SPARK_WORKER_CORES="1", SPARK_WORKER_MEMORY="640m", SPARK_DAEMON_MEMORY="256m"))
    assert result.returncode == 0, result.stderr
    # --host: executors register under the container's name, the name QFS block locations are mapped to
    assert image.recorded() == ["spark-class", "org.apache.spark.deploy.worker.Worker", "--cores", "1",
                                "--memory", "640m", "--host", "spark-node-face", "--webui-port", "8081", MASTER_URL]
    assert image.settings() == [CONNECT, KILL_OFF, ("spark.worker.cleanup.interval", "600"),
                                ("spark.worker.cleanup.appDataTtl", "86400"),
                                ("spark.executor.cores", "1"), ("spark.executor.memory", "512m"),
                                ("spark.master", MASTER_URL)] + SECURITY + [("spark.worker.cleanup.enabled", "true")]


def test_a_worker_cleans_finished_applications_up_and_the_spec_tunes_when_not_whether(image):
    conf = {"spark.worker.cleanup.enabled": "false", "spark.worker.cleanup.appDataTtl": "3600"}
    result = image.run("dcspark-node", "worker", **_cluster_env(DCSPARK_SPARK_CONF=json.dumps(conf)))
    assert result.returncode == 0, result.stderr
    assert "ignoring spark.worker.cleanup.enabled" in result.stderr
    settings = image.settings()
    # Spark reads the file in order, a later key winning: the spec's TTL over DCM's default, DCM's switch last
    assert settings.index(("spark.worker.cleanup.appDataTtl", "3600")) > settings.index(
        ("spark.worker.cleanup.appDataTtl", "86400"))
    assert settings[-1] == ("spark.worker.cleanup.enabled", "true")
    assert ("spark.worker.cleanup.enabled", "false") not in settings


def test_a_worker_waits_until_its_master_answers(image):
    with socket.socket() as probe:  # a free port, closed again: the master is not up yet
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    listening = {}

    def master_comes_up() -> None:
        time.sleep(1.5)
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", port))
        server.listen()
        listening["at"] = time.time()
        listening["server"] = server

    thread = threading.Thread(target=master_comes_up)
    thread.start()
    try:
        result = image.run("dcspark-node", "worker",
                           **_cluster_env(SPARK_MASTER_URL=f"spark://127.0.0.1:{port}", DCSPARK_MASTER_WAIT="30"))
    finally:
        thread.join()
        listening["server"].close()
    assert result.returncode == 0, result.stderr
    assert image.recorded()[:2] == ["spark-class", "org.apache.spark.deploy.worker.Worker"]
    assert os.stat(image.record).st_mtime >= listening["at"] - 0.01  # started after the master listened
    assert "does not answer" not in result.stderr


def test_a_worker_starts_anyway_when_its_master_never_answers(image):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = image.run("dcspark-node", "worker",
                       **_cluster_env(SPARK_MASTER_URL=f"spark://127.0.0.1:{port}", DCSPARK_MASTER_WAIT="1"))
    assert result.returncode == 0, result.stderr
    assert f"the master 127.0.0.1:{port} does not answer yet; starting anyway" in result.stderr
    assert image.recorded()[-1] == f"spark://127.0.0.1:{port}"


GETENT = """#!/bin/sh
# stands in for getent: the node's name "resolves" once the agent's hosts file has it
[ "$1" = hosts ] && grep -qw "$2" "$DCSPARK_TEST_HOSTS" 2>/dev/null
"""


@pytest.mark.parametrize("role", ["master", "worker", "driver"])
def test_on_flannel_a_node_waits_until_its_own_name_is_in_the_hosts_file(image, role, tmp_path):
    hosts = tmp_path / "hosts"
    _executable(str(image.bin.parent.parent / "fakebin" / "getent"), GETENT)
    written = {}

    def agent_writes_the_file() -> None:
        time.sleep(1.0)
        hosts.write_text("10.40.7.2\tspark-node-face\n")
        written["at"] = time.time()

    thread = threading.Thread(target=agent_writes_the_file)
    thread.start()
    try:
        result = image.run("dcspark-node", role, **_cluster_env(DCSPARK_NAME_WAIT="30",
                                                                DCSPARK_TEST_HOSTS=str(hosts)))
    finally:
        thread.join()
    assert result.returncode == 0, result.stderr
    assert os.stat(image.record).st_mtime >= written["at"] - 0.01  # Spark started after its name resolved
    assert "is not in /etc/hosts" not in result.stderr


def test_on_flannel_a_node_starts_anyway_when_its_name_never_resolves(image, tmp_path):
    _executable(str(image.bin.parent.parent / "fakebin" / "getent"), GETENT)
    result = image.run("dcspark-node", "master", **_cluster_env(DCSPARK_NAME_WAIT="1",
                                                                DCSPARK_TEST_HOSTS=str(tmp_path / "none")))
    assert result.returncode == 0, result.stderr
    assert "spark-node-face is not in /etc/hosts after 1 s; starting anyway" in result.stderr
    assert image.recorded()[:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]


@pytest.mark.parametrize("role", ["worker", "driver"])
def test_worker_and_driver_need_the_master_url(image, role):
    result = image.run("dcspark-node", role, **_cluster_env(SPARK_MASTER_URL=""))
    assert result.returncode == 64
    assert "SPARK_MASTER_URL is empty" in result.stderr


def test_driver_writes_its_conf_with_the_secret_and_idles(image):
    result = image.run("dcspark-node", "driver", **_cluster_env(DCSPARK_DRIVER_MEMORY="640m"))
    assert result.returncode == 0, result.stderr
    assert image.recorded() == ["sleep", "infinity"]
    settings = dict(image.settings())
    assert settings["spark.driver.host"] == "spark-node-face"
    assert settings["spark.driver.memory"] == "640m"
    # SparkContext takes the secret from its conf only; the file is the spark user's alone
    assert settings["spark.authenticate.secret"] == SECRET
    assert stat.S_IMODE(os.stat(image.conf).st_mode) == 0o600


def test_bad_spark_conf_json_is_refused(image):
    result = image.run("dcspark-node", "master", **_cluster_env(DCSPARK_SPARK_CONF="{not json"))
    assert result.returncode == 64
    assert "DCSPARK_SPARK_CONF is not valid JSON" in result.stderr


def test_values_are_escaped_for_java_properties(image):
    conf = {"spark.x": " lead\\ing\nnext", "spark.y": "a=b:c"}
    result = image.run("dcspark-node", "master", **_cluster_env(DCSPARK_SPARK_CONF=json.dumps(conf)))
    assert result.returncode == 0, result.stderr
    text = image.conf.read_text(encoding="utf-8")
    assert "spark.x \\ lead\\\\ing\\nnext\n" in text
    assert "spark.y a=b:c\n" in text


def test_other_commands_run_as_given(image):
    result = image.run("dcspark-node", "sleep", "5")
    assert result.returncode == 0
    assert image.recorded() == ["sleep", "5"]


def test_submit_runs_the_app_with_its_arguments_then_the_extra_ones(image):
    env = _cluster_env(DCSPARK_APP_MAIN="detect.py", DCSPARK_APP_ARGS=json.dumps(["--expect", "a b", 3]))
    assert image.run("dcspark-node", "driver", **env).returncode == 0
    result = image.run("dcspark-submit", "--verbose-report", **env)
    assert result.returncode == 0, result.stderr
    assert image.recorded() == ["spark-submit", "--master", MASTER_URL, str(image.app / "detect.py"),
                                "--expect", "a b", "3", "--verbose-report"]


def test_submit_writes_the_conf_when_the_container_did_not(image):
    env = _cluster_env(DCSPARK_APP_MAIN="detect.py", DCSPARK_APP_ARGS="[]")
    result = image.run("dcspark-submit", **env)
    assert result.returncode == 0, result.stderr
    assert dict(image.settings())["spark.authenticate.secret"] == SECRET
    assert image.recorded() == ["spark-submit", "--master", MASTER_URL, str(image.app / "detect.py")]


def test_submit_takes_the_application_from_its_arguments_without_app_main(image):
    result = image.run("dcspark-submit", "/tmp/other.py", "x", **_cluster_env(DCSPARK_APP_MAIN=""))
    assert result.returncode == 0, result.stderr
    assert image.recorded() == ["spark-submit", "--master", MASTER_URL, "/tmp/other.py", "x"]


def test_submit_gives_dcms_qfs_host_map_to_spark_before_the_application(image):
    hosts = "10.0.0.11=spark-worker-face-1,spark-worker-face-2;10.0.0.12=spark-worker-face-3"
    result = image.run("dcspark-submit", "/tmp/other.py", **_cluster_env(DCSPARK_APP_MAIN="", DCSPARK_QFS_HOSTS=hosts))
    assert result.returncode == 0, result.stderr
    assert image.recorded() == ["spark-submit", "--master", MASTER_URL,
                                "--conf", f"spark.hadoop.fs.qfs.dcspark.hostMap={hosts}", "/tmp/other.py"]


@pytest.mark.parametrize("env, message", [
    ({"DCSPARK_APP_MAIN": ""}, "nothing to run"),
    ({"DCSPARK_APP_MAIN": "missing.py"}, "is not in the image"),
    ({"DCSPARK_APP_MAIN": "detect.py", "DCSPARK_APP_ARGS": '{"a": 1}'}, "must be a JSON list"),
    ({"DCSPARK_APP_MAIN": "detect.py", "SPARK_MASTER_URL": ""}, "SPARK_MASTER_URL is empty"),
])
def test_submit_refuses_what_it_cannot_run(image, env, message):
    result = image.run("dcspark-submit", **_cluster_env(**env))
    assert result.returncode == 64
    assert message in result.stderr
    assert not image.record.exists()


def test_a_driver_with_jupyter_runs_jupyterlab_with_its_token_and_seeds_the_app_notebooks(image, tmp_path):
    (image.app / "tour.ipynb").write_text("{}\n")
    home = image.app.parent
    _executable(str(home / "venv" / "bin" / "jupyter"), RECORDER)
    token = "k" * 48
    result = image.run("dcspark-node", "driver", HOME=str(tmp_path / "home"),
                       **_cluster_env(DCSPARK_JUPYTER_PORT="8899", _DCSPARK_JUPYTER_TOKEN=token))
    assert result.returncode == 0, result.stderr
    assert image.recorded() == ["jupyter", "lab", "--no-browser", "--ServerApp.ip=0.0.0.0", "--ServerApp.port=8899",
                                "--ServerApp.port_retries=0", "--ServerApp.allow_remote_access=True",
                                f"--ServerApp.root_dir={tmp_path / 'home' / 'notebooks'}"]
    assert (tmp_path / "home" / "notebooks" / "tour.ipynb").read_text() == "{}\n"
    assert token not in result.stderr  # the token is never logged by the entrypoint
    assert ("spark.master", MASTER_URL) in image.settings()  # the kernels' SparkSession finds its cluster


def test_a_driver_refuses_to_run_jupyter_without_a_token(image, tmp_path):
    _executable(str(image.app.parent / "venv" / "bin" / "jupyter"), RECORDER)
    result = image.run("dcspark-node", "driver", HOME=str(tmp_path / "home"),
                       **_cluster_env(DCSPARK_JUPYTER_PORT="8899", _DCSPARK_JUPYTER_TOKEN=""))
    assert result.returncode == 64
    assert "refusing to run a Jupyter server without a token" in result.stderr
    assert not image.record.exists()


def test_jupyter_token_prints_the_token_and_refuses_where_there_is_none(image):
    shown = image.run("dcspark-node", "jupyter-token", _DCSPARK_JUPYTER_TOKEN="k" * 48)
    assert (shown.returncode, shown.stdout) == (0, "k" * 48 + "\n")
    none = image.run("dcspark-node", "jupyter-token")
    assert none.returncode == 64 and "runs no Jupyter server" in none.stderr


def test_jupyter_token_reads_the_file_dcm_copies_in(image):
    image.secret_file("jupyter-token", "f" * 48)
    shown = image.run("dcspark-node", "jupyter-token")
    assert (shown.returncode, shown.stdout) == (0, "f" * 48 + "\n")
