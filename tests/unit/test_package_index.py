"""The package index check (host/package_index.py): versions read from canned simple-API pages (PEP 691
JSON and PEP 503 HTML), requirements matched as pip would, the messages, and the HTTP side against a
server on loopback (no network needed)."""

from __future__ import annotations

import http.server
import json
import socket
import threading

import pytest

from ansible_collections.dcspark.dcm.plugins.module_utils.host import package_index as pi
from ansible_collections.dcspark.dcm.plugins.module_utils.host.package_index import (
    IndexUnreachable, PackageIndex, PackageIndexError, check_runtime, exact_pin, matching, newest, normalize_name,
    parse_html_page, parse_json_page, parse_page, parse_requirement, problems_of, requirements_of, version_of_file)

# -- canned pages ---------------------------------------------------------------------------------
PYSPARK_JSON = json.dumps({
    "meta": {"api-version": "1.1"},
    "name": "pyspark",
    "files": [
        {"filename": "pyspark-3.5.3.tar.gz", "url": "https://files/pyspark-3.5.3.tar.gz", "hashes": {}},
        {"filename": "pyspark-4.0.0.tar.gz", "url": "https://files/pyspark-4.0.0.tar.gz", "hashes": {}},
        {"filename": "pyspark-4.0.1.tar.gz", "url": "https://files/pyspark-4.0.1.tar.gz", "hashes": {}},
        {"filename": "pyspark-4.1.0.dev1.tar.gz", "url": "https://files/x", "hashes": {}},
        {"filename": "pyspark-4.0.2.tar.gz", "url": "https://files/x", "hashes": {}, "yanked": "broken jars"},
    ],
    "versions": ["3.5.3", "4.0.0", "4.0.1", "4.0.2", "4.1.0.dev1"],
})

NUMPY_HTML = """<!DOCTYPE html>
<html><head><meta name="pypi:repository-version" content="1.1"><title>Links for numpy</title></head>
<body><h1>Links for numpy</h1>
<a href="https://files/numpy-1.26.4.tar.gz#sha256=aa" data-requires-python="&gt;=3.9">numpy-1.26.4.tar.gz</a><br/>
<a href="https://files/numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl#sha256=bb"
   data-requires-python="&gt;=3.9">numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl</a><br/>
<a href="https://files/numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.whl">numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.whl</a>
<a href="https://files/numpy-2.2.0rc1.tar.gz">numpy-2.2.0rc1.tar.gz</a>
<a href="https://files/numpy-2.0.0.tar.gz" data-yanked="">numpy-2.0.0.tar.gz</a>
<a href="https://files/numpy-financial-1.0.0.tar.gz">numpy-financial-1.0.0.tar.gz</a>
</body></html>
"""


# -- names and file names --------------------------------------------------------------------------
def test_names_are_normalized_as_pep_503_says():
    assert normalize_name("Scikit_Image") == "scikit-image"
    assert normalize_name("opencv.python__headless") == "opencv-python-headless"


@pytest.mark.parametrize("project, filename, version", [
    ("pyspark", "pyspark-4.0.1.tar.gz", "4.0.1"),
    ("numpy", "numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.whl", "2.1.3"),
    ("numpy", "numpy-2.1.3-1-cp311-cp311-manylinux_2_17_x86_64.whl", "2.1.3"),  # a build tag
    ("opencv-python-headless", "opencv_python_headless-4.10.0.84-cp37-abi3-manylinux_2_17_x86_64.whl", "4.10.0.84"),
    ("scikit-image", "scikit-image-0.19.3.tar.gz", "0.19.3"),  # an old sdist keeps the '-'
    ("scikit-image", "scikit_image-0.24.0.tar.gz", "0.24.0"),
    ("scikit-image", "https://files/scikit_image-0.24.0.zip", "0.24.0"),
    ("six", "six-1.16.0-py2.7.egg", "1.16.0"),
    ("numpy", "numpy-financial-1.0.0.tar.gz", None),  # another project's file
    ("numpy", "numpy-1.0.exe", None),
    ("numpy", "README.txt", None),
])
def test_the_version_comes_from_the_file_name(project, filename, version):
    assert version_of_file(project, filename) == version


# -- pages -----------------------------------------------------------------------------------------
def test_a_json_page_lists_its_versions_and_which_are_yanked():
    found = parse_json_page(PYSPARK_JSON, "pyspark")
    assert found == {"3.5.3": False, "4.0.0": False, "4.0.1": False, "4.1.0.dev1": False, "4.0.2": True}


def test_an_html_page_lists_its_versions_and_which_are_yanked():
    found = parse_html_page(NUMPY_HTML, "numpy")
    assert found == {"1.26.4": False, "2.1.3": False, "2.2.0rc1": False, "2.0.0": True}


def test_a_version_is_yanked_only_when_every_file_of_it_is():
    page = json.dumps({"files": [{"filename": "a-1.0.tar.gz", "yanked": True},
                                 {"filename": "a-1.0-py3-none-any.whl", "yanked": False}]})
    assert parse_json_page(page, "a") == {"1.0": False}


def test_the_content_type_picks_the_parser():
    assert "4.0.1" in parse_page(PYSPARK_JSON, "application/vnd.pypi.simple.v1+json", "pyspark")
    assert "2.1.3" in parse_page(NUMPY_HTML, "text/html; charset=utf-8", "numpy")
    assert "2.1.3" in parse_page(NUMPY_HTML, "application/vnd.pypi.simple.v1+html", "numpy")


def test_a_json_answer_that_is_not_a_project_page_is_an_error():
    with pytest.raises(PackageIndexError, match="not PEP 691 JSON"):
        parse_json_page('{"detail": "nope"}', "numpy")


# -- requirements and matching ---------------------------------------------------------------------
@pytest.mark.parametrize("text, parsed", [
    ("numpy==2.1.3", ("numpy", "==2.1.3")),
    ("opencv-python-headless[contrib]>=4,<5", ("opencv-python-headless", ">=4,<5")),
    ("pandas", ("pandas", "")),
    ("scikit_image~=0.24.0", ("scikit_image", "~=0.24.0")),
])
def test_requirements_are_split_into_name_and_specifier(text, parsed):
    assert parse_requirement(text) == parsed


def test_a_requirement_the_schema_would_refuse_is_an_error():
    with pytest.raises(PackageIndexError, match="version clause"):
        parse_requirement("numpy=2")


def test_only_one_double_equals_clause_is_an_exact_pin():
    assert exact_pin("==2.1.3") == "2.1.3"
    assert exact_pin("==2.1.*") is None and exact_pin(">=1,==2") is None and exact_pin("===2") is None


LISTING = {"1.26.4": False, "2.0.0": True, "2.1.3": False, "2.2.0rc1": False}


def test_an_exact_pin_matches_even_a_yanked_version_as_pip_does():
    assert matching("==2.1.3", LISTING) == ["2.1.3"]
    assert matching("==2.0.0", LISTING) == ["2.0.0"]
    assert matching("==2.1", {"2.1.0": False}) == ["2.1.0"]  # PEP 440: 2.1 == 2.1.0
    assert matching("==9.9.9", LISTING) == []


def test_a_range_skips_yanked_versions_and_pre_releases():
    assert matching(">=2", LISTING) == ["2.1.3"]
    assert matching("<2", LISTING) == ["1.26.4"]
    assert matching(">=3", LISTING) == []
    assert matching(">2.1.3", LISTING) == ["2.2.0rc1"]  # only a pre-release matches: pip takes it


def test_newest_puts_final_releases_first():
    assert newest(["1.0", "2.0rc1", "1.10", "1.9"], 3) == ["1.10", "1.9", "1.0"]


def test_without_packaging_ranges_are_not_judged_but_pins_are(monkeypatch):
    monkeypatch.setattr(pi, "HAS_PACKAGING", False)
    assert matching(">=3", LISTING) is None
    assert matching("==2.1.3", LISTING) == ["2.1.3"]
    assert matching("==9.9.9", LISTING) == []
    assert newest(["1.9", "2.0rc1", "1.10", "1.0"]) == ["1.10", "1.9", "1.0", "2.0rc1"]
    requirements = requirements_of({"spark_version": "4.0.1", "pip_packages": ["numpy>=3", "numpy==9.9.9"]})
    problems, _resolved = problems_of(requirements, {"pyspark": {"4.0.1": False}, "numpy": LISTING}, "IDX")
    assert problems == ["runtime.pip_packages[1]: numpy==9.9.9: no such version on IDX "
                        "(newest: 2.1.3, 2.0.0, 1.26.4, 2.2.0rc1)"]


# -- the messages ----------------------------------------------------------------------------------
LISTINGS = {"pyspark": parse_json_page(PYSPARK_JSON, "pyspark"), "numpy": parse_html_page(NUMPY_HTML, "numpy"),
            "nunpy": None}


def problems(runtime: dict) -> list:
    return problems_of(requirements_of(runtime), LISTINGS, "https://pypi.org/simple")[0]


def test_a_spark_version_the_index_does_not_have_names_runtime_spark_version():
    assert problems({"spark_version": "4.0.9"}) == [
        "runtime.spark_version: 4.0.9 is not a release of pyspark on https://pypi.org/simple "
        "(newest: 4.0.2, 4.0.1, 4.0.0, 3.5.3, 4.1.0.dev1)"]


def test_the_releases_of_the_pins_series_are_shown_when_the_newest_hide_them():
    many = {f"4.{minor}.{patch}": False for minor in range(4) for patch in range(3)}
    found = problems_of(requirements_of({"spark_version": "4.0.9"}), {"pyspark": many}, "IDX")[0]
    assert found == ["runtime.spark_version: 4.0.9 is not a release of pyspark on IDX "
                     "(newest: 4.3.2, 4.3.1, 4.3.0, 4.2.2, 4.2.1, ...; 4.0.x: 4.0.2, 4.0.1, 4.0.0)"]


def test_pip_packages_are_named_by_their_index_in_the_list():
    found = problems({"spark_version": "4.0.1", "pip_packages": ["numpy==2.1.3", "numpy==9.9.9"]})
    assert found == ["runtime.pip_packages[1]: numpy==9.9.9: no such version on https://pypi.org/simple "
                     "(newest: 2.1.3, 2.0.0, 1.26.4, 2.2.0rc1)"]
    assert problems({"spark_version": "4.0.1", "pip_packages": ["numpy>=3"]}) == [
        "runtime.pip_packages[0]: numpy>=3: no version on https://pypi.org/simple satisfies >=3 "
        "(newest: 2.1.3, 2.0.0, 1.26.4, 2.2.0rc1)"]
    assert problems({"spark_version": "4.0.1", "pip_packages": ["nunpy==1.0"]}) == [
        "runtime.pip_packages[0]: nunpy==1.0: nunpy is not a project on https://pypi.org/simple; check the name"]


def test_requirements_of_one_project_must_agree():
    found = problems({"spark_version": "4.0.1", "pip_packages": ["pyspark==3.5.3"]})
    assert found == ["runtime.pip_packages[0]: pyspark==3.5.3: conflicts with runtime.spark_version "
                     "(pyspark==4.0.1): no version of pyspark on https://pypi.org/simple satisfies both"]
    assert problems({"spark_version": "4.0.1", "pip_packages": ["pyspark>=4"]}) == []
    found = problems({"spark_version": "4.0.1", "pip_packages": ["numpy<2", "numpy>=2,<3", "numpy"]})
    assert found == ["runtime.pip_packages[2]: numpy: conflicts with runtime.pip_packages[0] (numpy<2), "
                     "runtime.pip_packages[1] (numpy>=2,<3): no version of numpy on https://pypi.org/simple "
                     "satisfies all of them"]


def test_a_good_runtime_resolves_each_requirement_to_its_newest_match():
    found, resolved = problems_of(requirements_of({"spark_version": "4.0.1", "pip_packages": ["numpy<2", "numpy"]}),
                                  LISTINGS, "IDX")
    assert found == []
    assert resolved == [
        {"path": "runtime.spark_version", "requirement": "pyspark==4.0.1", "version": "4.0.1"},
        {"path": "runtime.pip_packages[0]", "requirement": "numpy<2", "version": "1.26.4"},
        {"path": "runtime.pip_packages[1]", "requirement": "numpy", "version": "2.1.3"},
    ]


# -- over HTTP (a canned index on loopback) --------------------------------------------------------
class CannedIndex(http.server.BaseHTTPRequestHandler):
    """``/json/<project>/`` answers PEP 691 JSON, ``/html/<project>/`` PEP 503 HTML (whatever is asked),
    ``/broken/`` 503; anything else 404. Requests are recorded as ``(path, Accept)``."""

    pages = {"pyspark": PYSPARK_JSON, "numpy": NUMPY_HTML}
    seen: list = []

    def do_GET(self):  # noqa: N802 - the http.server API
        type(self).seen.append((self.path, self.headers.get("Accept", "")))
        path = self.path.split("://", 1)[-1]  # as a proxy, the request line holds the whole URL
        parts = [p for p in path.split("/") if p]
        if "broken" in parts:
            self.send_error(503)
            return
        project = parts[-1] if parts else ""
        if project not in self.pages or parts[-2:-1] not in (["json"], ["html"]):
            self.send_error(404)
            return
        if "json" in parts and project == "pyspark":
            body, kind = PYSPARK_JSON, "application/vnd.pypi.simple.v1+json"
        elif "json" in parts:  # a JSON index: numpy as JSON too
            files = [{"filename": name} for name in
                     ("numpy-1.26.4.tar.gz", "numpy-2.1.3-cp311-cp311-manylinux_2_17_x86_64.whl")]
            body, kind = json.dumps({"files": files}), "application/vnd.pypi.simple.v1+json"
        else:
            body, kind = self.pages[project], "text/html; charset=utf-8"
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_args):
        pass


@pytest.fixture()
def index_server(monkeypatch):
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    CannedIndex.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), CannedIndex)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_index_is_asked_for_json_first_and_html_is_read_too(index_server):
    index = PackageIndex([f"{index_server}/html/"])
    assert index.project("NumPy") == {"1.26.4": False, "2.1.3": False, "2.2.0rc1": False, "2.0.0": True}
    path, accept = CannedIndex.seen[0]
    assert path == "/html/numpy/"  # the normalized name, with the trailing slash
    assert accept.startswith("application/vnd.pypi.simple.v1+json") and "text/html" in accept
    assert PackageIndex([f"{index_server}/json"]).project("pyspark")["4.0.1"] is False


def test_a_project_the_index_does_not_have_is_none(index_server):
    assert PackageIndex([f"{index_server}/json"]).project("nunpy") is None


def test_the_versions_of_every_index_count_together(index_server):
    index = PackageIndex([f"{index_server}/json", f"{index_server}/nothing-here"])
    assert index.label == f"{index_server}/json + {index_server}/nothing-here"
    assert set(index.project("numpy")) == {"1.26.4", "2.1.3"}


def test_check_runtime_asks_once_per_project(index_server):
    found = check_runtime({"spark_version": "4.0.9", "pip_packages": ["numpy==2.1.3", "numpy>=1"]},
                          PackageIndex([f"{index_server}/json"]))
    assert found["problems"] == [f"runtime.spark_version: 4.0.9 is not a release of pyspark on {index_server}/json "
                                 "(newest: 4.0.2, 4.0.1, 4.0.0, 3.5.3, 4.1.0.dev1)"]
    assert sorted(path for path, _accept in CannedIndex.seen) == ["/json/numpy/", "/json/pyspark/"]
    assert found["indexes"] == [f"{index_server}/json"] and found["seconds"] >= 0


def test_an_error_status_is_unreachable_not_a_pass(index_server):
    with pytest.raises(IndexUnreachable, match=r"answered HTTP 503"):
        PackageIndex([f"{index_server}/broken"]).project("numpy")


def test_a_refused_connection_is_unreachable_not_a_pass():
    url = f"http://127.0.0.1:{closed_port()}/simple"
    with pytest.raises(IndexUnreachable, match=rf"cannot reach package index {url} \(.*refused"):
        check_runtime({"spark_version": "4.0.1"}, PackageIndex([url], timeout=2))


def test_a_given_proxy_carries_the_requests_unless_no_proxy_matches(index_server):
    # the canned server plays the proxy: the request line then holds the index's whole URL
    index = PackageIndex(["http://index.invalid/json"], proxy=index_server)
    assert "4.0.1" in index.project("pyspark")
    assert CannedIndex.seen[-1][0] == "http://index.invalid/json/pyspark/"
    bypassed = PackageIndex(["http://index.invalid/json"], proxy=index_server, no_proxy="index.invalid", timeout=3)
    with pytest.raises(IndexUnreachable, match="cannot reach package index http://index.invalid/json"):
        bypassed.project("pyspark")
    broken_proxy = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(IndexUnreachable, match=f"through proxy {broken_proxy}"):
        PackageIndex([f"{index_server}/json"], proxy=broken_proxy, timeout=2).project("pyspark")


def test_a_proxy_password_is_not_shown():
    with pytest.raises(IndexUnreachable) as caught:
        PackageIndex(["http://index.invalid/simple"], proxy=f"http://me:secret@127.0.0.1:{closed_port()}",
                     timeout=2).project("pyspark")
    assert "secret" not in str(caught.value) and "through proxy http://me:***@127.0.0.1:" in str(caught.value)


def test_the_environments_proxy_is_used_when_none_is_given(index_server, monkeypatch):
    monkeypatch.setenv("http_proxy", index_server)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert "4.0.1" in PackageIndex(["http://index.invalid/json"]).project("pyspark")


def test_the_default_index_is_pypi_and_other_schemes_are_refused(tmp_path):
    assert PackageIndex().urls == ["https://pypi.org/simple"]
    assert PackageIndex(["", "https://pypi.org/simple/"]).urls == ["https://pypi.org/simple"]
    with pytest.raises(PackageIndexError, match="must start with https:// or http://"):
        PackageIndex(["file:///opt/pypi/simple"])
    bad_ca = tmp_path / "ca.pem"
    bad_ca.write_text("not a certificate")
    with pytest.raises(PackageIndexError, match=f"cannot use {bad_ca} as the CA bundle"):
        PackageIndex(ca=str(bad_ca))
