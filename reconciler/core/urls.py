"""URLs that Sluice holds on people's behalf: how they are shown, and which ones it will call.

- A webhook URL is a credential (whoever has the path can post), and any URL may carry
  `user:password@`. Everything shown or written (ConfigMaps, messages, delivery reports) goes
  through `redact_url`, which keeps the scheme, host and port only.
- The reconciler queries Prometheus from CI runners and cron jobs, which often hold cloud
  credentials. A Prometheus URL on a link-local address or a cloud metadata host would point those
  queries at the instance metadata service (the classic SSRF target), and a URL with a password in
  it would put that password in git. `prometheus_url_problem` refuses both; the environment model
  and the CLI's `--prometheus` flag call it, so the two cannot disagree.

Pure: host names are compared as written, never resolved (no I/O in the core). A name that
resolves to a metadata address is the DNS operator's business, not something a file can show.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit, urlunsplit

#: Hosts of cloud instance metadata services (AWS, GCP, Azure, Alibaba, OpenStack), as written in URLs.
METADATA_HOSTS = frozenset({
    "169.254.169.254", "fd00:ec2::254", "metadata.google.internal", "metadata", "100.100.100.200",
})
_LINK_LOCAL = (ipaddress.ip_network("169.254.0.0/16"), ipaddress.ip_network("fe80::/10"))

#: How to allow a link-local Prometheus, where the URL comes from.
ALLOW_FIELD = "set `metrics.allow_link_local: true` in the environment file"
ALLOW_FLAG = "pass --allow-link-local"


def redact_url(url: str, rest: str = "…") -> str:
    """`https://user:pw@hooks.slack.com:8443/services/T0/B0/x?k=v` -> `https://hooks.slack.com:8443/…`:
    scheme, host and port only; `rest` stands for the path (ConfigMaps write "redacted")."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(invalid URL)"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme or '?'}://{host}{port}/{rest}"


def without_credentials(url: str) -> str:
    """The URL for messages and logs: `user:pw@` masked and a query (where API keys ride) cut, the
    path kept so the reader sees which endpoint failed:
    `http://u:pw@judge:8000/v1/chat/completions?key=k` -> `http://***@judge:8000/v1/chat/completions?…`."""
    parts = urlsplit(url)
    if "@" not in parts.netloc and not parts.query:
        return url
    netloc = "***@" + parts.netloc.rsplit("@", 1)[1] if "@" in parts.netloc else parts.netloc
    return urlunsplit(parts._replace(netloc=netloc, query="…" if parts.query else ""))


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host names, in any spelling the resolver accepts: "169.254.169.254",
    "2852039166" (one number), "0xa9.0xfe.0xa9.0xfe", "[::ffff:169.254.169.254]" -> 169.254.169.254."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])  # fe80::1%eth0: the zone is not the address
    except ValueError:
        if not host or not all(c in "0123456789abcdefx." for c in host):
            return None  # a name: compared as written, not resolved
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))  # pure parsing, as getaddrinfo would read it
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def link_local_reason(host: str) -> str | None:
    """Why a host is link-local or a metadata service, or None. Example: "169.254.169.254" ->
    "169.254.169.254 is the cloud instance metadata service"."""
    name = host.lower().rstrip(".")
    address = _address(name)
    if name in METADATA_HOSTS or (address is not None and str(address) in METADATA_HOSTS):
        return f"{host} is a cloud instance metadata service"
    if address is not None and any(address in network for network in _LINK_LOCAL if address.version == network.version):
        return f"{host} is a link-local address ({', '.join(str(n) for n in _LINK_LOCAL)})"
    return None


def _http_url_problem(url: str, example: str) -> str | None:
    """What makes `url` no http(s) URL with a host, or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError as err:
        return f"is not a valid URL ({err}): write e.g. {example}"
    if parts.scheme not in ("http", "https") or not host:
        return f"is not an http(s) URL with a host: write e.g. {example}"
    return None


def endpoint_url_problem(url: str) -> str | None:
    """What is wrong with the URL of a model endpoint the online evaluator calls (a judge, a
    classifier), or None. It is written into a ConfigMap, which anyone who can read the namespace
    reads: no user:password@ in it.

    Example: "https://key:secret@judge.example/" -> "carries credentials (...)".
    """
    problem = _http_url_problem(url, "http://judge.llm-serving.svc:8000")
    if problem:
        return problem
    if "@" in urlsplit(url).netloc:
        return (f"carries credentials (user:password@ in {redact_url(url)}): the URL goes into a ConfigMap that "
                "anyone who can read the namespace reads. Remove them; put an authenticating proxy in front of "
                "the endpoint, or admit the evaluator by network policy")
    return None


def prometheus_url_problem(url: str, *, allow_link_local: bool, allow_how: str = ALLOW_FIELD) -> str | None:
    """What is wrong with a Prometheus URL, with the fix, or None. `allow_how` says how to allow a
    link-local host where this URL came from (the environment field or the CLI flag).

    Example: "http://169.254.169.254/" -> "169.254.169.254 is a cloud instance metadata service: ..."
    """
    problem = _http_url_problem(url, "http://prometheus.monitoring.svc:9090")
    if problem:
        return problem
    parts = urlsplit(url)
    host = parts.hostname or ""
    if "@" in parts.netloc:
        return (f"carries credentials (user:password@ in {redact_url(url)}): they would sit in git and in logs, "
                "and the reconciler sends no credentials to Prometheus. Remove them and let an "
                "authenticating proxy (or the in-cluster network policy) admit the reconciler instead")
    reason = link_local_reason(host)
    if reason and not allow_link_local:
        return (f"{reason}: a reconciler running with cloud credentials would send its queries there. Use the "
                f"Prometheus service's own address, or, if Prometheus really listens there, {allow_how}")
    return None
