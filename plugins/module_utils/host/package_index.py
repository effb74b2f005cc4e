"""The Python package index the runtime images are built from, asked before anything is built.

The image build (the ``spark_images`` role) runs ``pip install pyspark==<runtime.spark_version>
<runtime.pip_packages...>`` against PyPI or the configured index; a version that does not exist fails
that build minutes in. :func:`check_runtime` asks the same index first, through its simple API
(PEP 503 HTML and PEP 691 JSON: ``GET <index>/<normalized-name>/``), which lists every file of a
project, and reads the versions from the file names:

- ``pyspark==<spark_version>`` must be a release there;
- each pip requirement pinned exactly (``name==version``) must name a version there;
- any other requirement (``name>=1.2,<2``, a bare ``name``) must be matched by at least one listed
  version (with ``packaging``, which ansible-core depends on, when the control node's Python has
  it; else only the project's existence is checked), and requirements of one project (pyspark
  included) must have a version in common.

That is a quick resolution: one small request per project, no wheel is downloaded. It does NOT
resolve transitive dependencies, nor check that a file fits the image's Python version or platform;
pip still may fail on those during the build.

Standard library only (``urllib`` and ``ssl``): the CA bundle given replaces the default trust (as
``spark_images_ca_bundle`` does for the build), and a proxy given is used for every index host not
matched by ``no_proxy``; without one, the control node's ``https_proxy``/``no_proxy`` environment
applies. An index that cannot be reached raises :class:`IndexUnreachable`: never taken for a pass.
"""

from __future__ import annotations

import http.client
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from html.parser import HTMLParser

from ..core.errors import DcmError

try:  # ansible-core depends on packaging, but the Python that runs the module may not have it
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version

    HAS_PACKAGING = True
except ImportError:  # pragma: no cover - depends on the control node
    HAS_PACKAGING = False

DEFAULT_INDEX = "https://pypi.org/simple"
DEFAULT_TIMEOUT = 10.0
JSON_TYPE = "application/vnd.pypi.simple.v1+json"
ACCEPT = f"{JSON_TYPE}, application/vnd.pypi.simple.v1+html;q=0.2, text/html;q=0.01"
SHOWN = 5  # versions a message lists as "newest"
WORKERS = 8  # parallel requests

_ARCHIVES = (".tar.gz", ".tar.bz2", ".tar.xz", ".tgz", ".tbz", ".zip", ".tar")
# What the spec schema allows: name, extras, comma-separated clauses (no markers, URLs or spaces).
_REQUIREMENT = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[(?P<extras>[^\]]*)\])?(?P<spec>.*)$")
_VERSION_START = re.compile(r"^[vV]?[0-9]")
_CLAUSE = re.compile(r"^(===|==|>=|<=|~=|!=|>|<)\s*(\S+)$")


class PackageIndexError(DcmError):
    """The package index answered something other than what the simple API promises."""


class IndexUnreachable(PackageIndexError):
    """The package index could not be reached (refused, TLS, proxy, timeout, an error status)."""


# -- names, versions, requirements (pure) ----------------------------------------------------------
def normalize_name(name: str) -> str:
    """The PEP 503 form of a project name (``Scikit_Image`` -> ``scikit-image``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def version_of_file(project: str, filename: str) -> str | None:
    """The version a distribution file of ``project`` holds, from its name; None for other files.

    Wheels are ``name-version(-build)-python-abi-platform.whl`` (the name with ``_`` for ``-``);
    source archives ``name-version.tar.gz`` (or .zip...), where older ones keep ``-`` in the name;
    eggs ``name-version-pyX.Y.egg``.
    """
    wanted = normalize_name(project)
    base = filename.rsplit("/", 1)[-1]
    if base.endswith(".whl"):
        parts = base[:-4].split("-")
        if len(parts) in (5, 6) and normalize_name(parts[0]) == wanted and _VERSION_START.match(parts[1]):
            return parts[1]
        return None
    if base.endswith(".egg"):
        parts = base[:-4].split("-")
        ok = len(parts) >= 2 and normalize_name(parts[0]) == wanted and _VERSION_START.match(parts[1])
        return parts[1] if ok else None
    stem = next((base[:-len(ext)] for ext in _ARCHIVES if base.lower().endswith(ext)), None)
    if stem is None:
        return None
    parts = stem.split("-")
    for cut in range(1, len(parts)):
        version = "-".join(parts[cut:])
        # a version starts with a digit: "numpy-financial-1.0" is not numpy "financial-1.0"
        if normalize_name("-".join(parts[:cut])) == wanted and _VERSION_START.match(version):
            return version
    return None


def _add(found: dict, version: str | None, yanked: bool) -> None:
    """A version is yanked only when every file of it is."""
    if version:
        found[version] = found.get(version, True) and bool(yanked)


def parse_json_page(text: str, project: str) -> dict:
    """``{version: yanked}`` of a PEP 691 JSON project page."""
    try:
        page = json.loads(text)
        files = page["files"]
    except (ValueError, KeyError, TypeError):
        raise PackageIndexError(f"the project page of {project} is not PEP 691 JSON") from None
    found: dict = {}
    for entry in files if isinstance(files, list) else []:
        if isinstance(entry, dict) and isinstance(entry.get("filename"), str):
            yanked = entry.get("yanked", False)
            _add(found, version_of_file(project, entry["filename"]), yanked is not False and yanked is not None)
    return found


class _Anchors(HTMLParser):
    """The ``<a>`` elements of a PEP 503 page: ``[(file name, yanked)]``."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list = []
        self._open: dict | None = None
        self._text: list = []

    def handle_starttag(self, tag, attrs):
        if tag == "a":
            self._open = dict(attrs)
            self._text = []

    def handle_data(self, data):
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag):
        if tag == "a" and self._open is not None:
            href = self._open.get("href") or ""
            name = "".join(self._text).strip()
            if not name:  # the text must be the file name; fall back to the URL's last part
                name = urllib.parse.unquote(urllib.parse.urlsplit(href).path.rsplit("/", 1)[-1])
            self.links.append((name, "data-yanked" in self._open))
            self._open = None


def parse_html_page(text: str, project: str) -> dict:
    """``{version: yanked}`` of a PEP 503 HTML project page."""
    parser = _Anchors()
    parser.feed(text)
    parser.close()
    found: dict = {}
    for name, yanked in parser.links:
        _add(found, version_of_file(project, name), yanked)
    return found


def parse_page(text: str, content_type: str, project: str) -> dict:
    """``{version: yanked}`` of a project page in the format its ``Content-Type`` names."""
    kind = (content_type or "").split(";", 1)[0].strip().lower()
    if kind == JSON_TYPE or kind.endswith("+json") or kind == "application/json":
        return parse_json_page(text, project)
    return parse_html_page(text, project)


def parse_requirement(text: str) -> tuple:
    """``(name, specifier)`` of a requirement as the spec schema allows it (``numpy==2.1.3``,
    ``opencv-python-headless[extra]>=4,<5``, ``pandas``); the specifier is "" for a bare name."""
    match = _REQUIREMENT.match(text.strip())
    if not match:
        raise PackageIndexError(f"{text!r} is not a requirement like 'numpy==2.1.3'")
    spec = match.group("spec").replace(" ", "")
    for clause in filter(None, spec.split(",")):
        if not _CLAUSE.match(clause):
            raise PackageIndexError(f"{text!r}: {clause!r} is not a version clause like '==2.1.3' or '>=1.0'")
    return match.group("name"), spec


def exact_pin(spec: str) -> str | None:
    """The version of a specifier that is one ``==version`` clause (no wildcard), else None."""
    clauses = [c for c in spec.split(",") if c]
    if len(clauses) == 1 and clauses[0].startswith("==") and not clauses[0].startswith("===") \
            and not clauses[0].endswith(".*"):
        return clauses[0][2:]
    return None


def _fallback_key(version: str) -> tuple:
    """Without ``packaging``: plain releases (digits and dots) before the rest, each by their numbers."""
    numbers = tuple(int(part) for part in re.split(r"[^0-9]+", version) if part)
    return (bool(re.fullmatch(r"[0-9]+(\.[0-9]+)*", version)), numbers)


def _parsed(version: str):
    """The PEP 440 version, or None for one ``packaging`` cannot read (pip ignores those too)."""
    try:
        return Version(version)
    except InvalidVersion:
        return None


def newest(versions, count: int = SHOWN) -> list:
    """The ``count`` newest of ``versions``, newest first; final releases before pre-releases."""
    if HAS_PACKAGING:
        parsed = [(v, _parsed(v)) for v in versions]
        parsed = [(v, p) for v, p in parsed if p is not None]
        finals = sorted((item for item in parsed if not item[1].is_prerelease), key=lambda i: i[1], reverse=True)
        others = sorted((item for item in parsed if item[1].is_prerelease), key=lambda i: i[1], reverse=True)
        return [v for v, _p in finals + others][:count]
    return sorted(versions, key=_fallback_key, reverse=True)[:count]


def _same_version(a: str, b: str) -> bool:
    if HAS_PACKAGING:
        pa, pb = _parsed(a), _parsed(b)
        if pa is not None and pb is not None:
            return pa == pb
    return a.strip().lower() == b.strip().lower()


def matching(spec: str, listing: dict) -> list | None:
    """The versions of ``listing`` (``{version: yanked}``) that satisfy ``spec``, newest first, as pip
    picks them: an exact pin may name a yanked version, other specifiers skip yanked ones and take a
    pre-release only when no final release matches. None when it cannot be told (a specifier other
    than an exact pin without ``packaging``)."""
    pin = exact_pin(spec)
    if pin is not None:
        return [v for v in listing if _same_version(v, pin)]
    if not spec:
        candidates = [v for v, yanked in listing.items() if not yanked]
        return newest(candidates, len(candidates))
    if not HAS_PACKAGING:
        return None
    try:
        specifier = SpecifierSet(spec)
    except InvalidSpecifier:
        raise PackageIndexError(f"{spec!r} is not a version specifier") from None
    candidates = [v for v, yanked in listing.items() if not yanked and _parsed(v) is not None]
    return newest(list(specifier.filter(candidates)), len(candidates))


# -- the index (I/O) -------------------------------------------------------------------------------
def _redacted(url: str) -> str:
    """``url`` without the password of its user part (proxy URLs may carry credentials)."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://[^:@/]*):[^@/]*@", r"\1:***@", url, flags=re.IGNORECASE)


def _bypass(host: str, no_proxy: str | None) -> bool:
    return bool(no_proxy) and bool(urllib.request.proxy_bypass_environment(host, {"no": no_proxy}))


class PackageIndex:
    """The simple API of one or more indexes (pip's ``--index-url`` and ``--extra-index-url``: a project's
    versions are those of every index together).

    ``ca`` is a CA bundle file that replaces the default trust (None: the system's, including
    ``SSL_CERT_FILE``); ``proxy`` an HTTP(S) proxy URL for every index host ``no_proxy`` does not
    match (None: the environment's ``https_proxy``/``http_proxy``/``no_proxy``).
    """

    def __init__(self, urls=None, ca: str | None = None, timeout: float = DEFAULT_TIMEOUT,
                 proxy: str | None = None, no_proxy: str | None = None) -> None:
        self.urls = [u.rstrip("/") for u in (urls or []) if u and u.strip()] or [DEFAULT_INDEX]
        for url in self.urls:
            if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise PackageIndexError(f"{url}: a package index URL must start with https:// or http://")
        self.timeout = float(timeout)
        try:
            self.context = ssl.create_default_context(cafile=ca or None)
        except (OSError, ssl.SSLError) as exc:
            raise PackageIndexError(f"cannot use {ca} as the CA bundle of the package index ({exc})") from None
        self.ca = ca or None
        self.proxy = proxy or None
        self.no_proxy = no_proxy or None

    @property
    def label(self) -> str:
        """The indexes as a message names them."""
        return " + ".join(self.urls)

    def _opener(self, host: str):
        proxies = None  # urllib's default: the environment
        if self.proxy:
            proxies = {} if _bypass(host, self.no_proxy) else {"http": self.proxy, "https": self.proxy}
        handlers = [urllib.request.HTTPSHandler(context=self.context)]
        if proxies is not None:
            handlers.append(urllib.request.ProxyHandler(proxies))
        return urllib.request.build_opener(*handlers)

    def fetch(self, url: str, project: str) -> dict | None:
        """``{version: yanked}`` of ``project`` on the index at ``url``; None when it has no such project."""
        page = f"{url}/{normalize_name(project)}/"
        request = urllib.request.Request(page, headers={"Accept": ACCEPT, "User-Agent": "dcspark.dcm"})
        host = urllib.parse.urlsplit(url).hostname or ""
        via = f" through proxy {_redacted(self.proxy)}" if self.proxy and not _bypass(host, self.no_proxy) else ""
        try:
            with self._opener(host).open(request, timeout=self.timeout) as response:
                body = response.read().decode("utf-8", errors="replace")
                content_type = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            if exc.code in (404, 410):
                return None
            raise IndexUnreachable(f"package index {url} answered HTTP {exc.code} {exc.reason} for {page}{via}") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, DNS, TLS, proxy, timeout
            reason = getattr(exc, "reason", None) or exc
            raise IndexUnreachable(f"cannot reach package index {url}{via} ({reason}; timeout {self.timeout:g} s)") from None
        return parse_page(body, content_type, project)

    def project(self, name: str) -> dict | None:
        """``{version: yanked}`` of ``name`` over every index; None when none of them has it."""
        found = None
        for url in self.urls:
            listing = self.fetch(url, name)
            if listing is not None:
                found = found or {}
                for version, yanked in listing.items():
                    found[version] = found.get(version, True) and yanked
        return found

    def projects(self, names) -> dict:
        """``{normalized name: listing or None}`` of ``names``, asked in parallel."""
        wanted = sorted({normalize_name(n) for n in names})
        if not wanted:
            return {}
        with ThreadPoolExecutor(max_workers=min(WORKERS, len(wanted))) as pool:
            return dict(zip(wanted, pool.map(self.project, wanted)))


# -- the check -------------------------------------------------------------------------------------
def _shown(listing: dict, pin: str | None = None) -> str:
    """``newest: a, b, ...`` of a listing, and for a pin like 4.0.9 the releases of its series 4.0."""
    versions = newest(list(listing))
    if not versions:
        return "it lists no version"
    more = ", ..." if len(listing) > len(versions) else ""
    text = f"newest: {', '.join(versions)}{more}"
    series = ".".join((pin or "").split(".")[:2])
    if pin and series.count(".") == 1:
        same = newest([v for v in listing if v.startswith(series + ".")])
        if same and not set(same) <= set(versions):
            text += f"; {series}.x: {', '.join(same)}"
    return text


def requirements_of(runtime: dict) -> list:
    """``[(JSON path, requirement text, name, specifier)]``: pyspark first, then the spec's pip packages."""
    found = [("runtime.spark_version", f"pyspark=={runtime['spark_version']}", "pyspark",
              f"=={runtime['spark_version']}")]
    for number, text in enumerate(runtime.get("pip_packages") or []):
        name, spec = parse_requirement(text)
        found.append((f"runtime.pip_packages[{number}]", text, name, spec))
    return found


def problems_of(requirements: list, listings: dict, label: str) -> tuple:
    """``(problems, resolved)`` of ``requirements`` (:func:`requirements_of`) against ``listings``
    (``{normalized name: {version: yanked} or None}``): the messages, and per requirement the newest
    version that satisfies it (None when it cannot be told)."""
    problems, resolved, groups = [], [], {}
    for path, text, name, spec in requirements:
        listing = listings.get(normalize_name(name))
        spark = path == "runtime.spark_version"
        if listing is None:
            if spark:
                problems.append(f"{path}: {spec[2:]}: pyspark is not a project on {label}, so no Spark can be "
                                "installed from it (is that the index's simple API, like https://pypi.org/simple?)")
            else:
                problems.append(f"{path}: {text}: {name} is not a project on {label}; check the name")
            continue
        versions = matching(spec, listing)
        if versions is not None and not versions:
            if spark:
                problems.append(f"{path}: {spec[2:]} is not a release of pyspark on {label} "
                                f"({_shown(listing, spec[2:])})")
            elif exact_pin(spec) is not None:
                problems.append(f"{path}: {text}: no such version on {label} ({_shown(listing, exact_pin(spec))})")
            else:
                problems.append(f"{path}: {text}: no version on {label} satisfies {spec} ({_shown(listing)})")
            continue
        resolved.append({"path": path, "requirement": text, "version": versions[0] if versions else None})
        groups.setdefault(normalize_name(name), []).append((path, text, versions))
    for project, entries in groups.items():  # one pip install: every requirement of a project at once
        if len(entries) < 2 or any(versions is None for _p, _t, versions in entries):
            continue
        common = set(entries[0][2]).intersection(*(versions for _p, _t, versions in entries[1:]))
        if not common:
            path, text = entries[-1][0], entries[-1][1]
            others = ", ".join(f"{p} ({t})" for p, t, _v in entries[:-1])
            problems.append(f"{path}: {text}: conflicts with {others}: no version of {project} on {label} "
                            f"satisfies {'both' if len(entries) == 2 else 'all of them'}")
    return problems, resolved


def check_runtime(runtime: dict, index: PackageIndex) -> dict:
    """Ask ``index`` about ``pyspark==runtime.spark_version`` and ``runtime.pip_packages``.

    Returns ``{"problems": [...], "resolved": [...], "indexes": [...], "packaging": bool, "seconds": s}``;
    raises :class:`IndexUnreachable` when an index cannot be asked.
    """
    started = time.monotonic()
    requirements = requirements_of(runtime)
    listings = index.projects(name for _path, _text, name, _spec in requirements)
    problems, resolved = problems_of(requirements, listings, index.label)
    return {"problems": problems, "resolved": resolved, "indexes": list(index.urls), "packaging": HAS_PACKAGING,
            "seconds": round(time.monotonic() - started, 3)}
