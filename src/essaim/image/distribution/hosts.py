"""Which registries are reached how: dockerd's insecure-registry rules (names and CIDRs,
loopback always insecure), the TLS trust of `<certs dir>/<host:port>/`, the endpoints.

A secure registry gets verified HTTPS only; an insecure one HTTPS without verification
first, then plain HTTP, as dockerd tries them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from essaim.errors import InvalidParameter
from essaim.image.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN

# dockerd appends these to whatever --insecure-registry says: a registry on this host
# needs no certificate.
LOOPBACK_CIDRS = ("::1/128", "127.0.0.0/8")
DEFAULT_CERTS_DIR = Path("/etc/essaim/certs.d")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One way to reach a registry: `base` is `https://host:port` or `http://host:port`;
    `verify` is the SSL context to use (False: no verification, plain HTTP or insecure)."""

    base: str
    verify: ssl.SSLContext | bool

    @property
    def secure(self) -> bool:
        return self.base.startswith("https://") and self.verify is not False


def split_host(host: str) -> str:
    """The host part of `host[:port]` (brackets of an IPv6 literal removed)."""
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end != -1 else host
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def parse_mirror(raw: str) -> str:
    """A `--registry-mirror` URL as dockerd takes it: http or https, a host, no path;
    returned without its trailing slash."""
    url = raw.rstrip("/")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("http", "https"):
        raise InvalidParameter(f"invalid mirror: unsupported scheme {scheme!r} in {raw!r}")
    if not rest or "/" in rest:
        raise InvalidParameter(
            f"invalid mirror: path, query, or fragment at end of the URI {raw!r}"
        )
    return url


def _parse_insecure(entries: list[str]) -> tuple[list[Network], list[str]]:
    networks: list[Network] = []
    names: list[str] = []
    for raw in [*entries, *LOOPBACK_CIDRS]:
        entry = raw
        lower = entry.lower()
        if lower.startswith("http://"):
            entry = entry[7:]
        elif lower.startswith("https://"):
            entry = entry[8:]
        elif "://" in entry:
            raise InvalidParameter(f"insecure registry {raw} should not contain '://'")
        if entry == LEGACY_DEFAULT_DOMAIN:
            entry = DEFAULT_DOMAIN
        if entry.startswith("-") or entry.endswith("-"):
            raise InvalidParameter(
                f"invalid index name ({entry}). Cannot begin or end with a hyphen"
            )
        if "/" in entry:
            try:
                network = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise InvalidParameter(f"insecure registry {raw} is not valid") from None
            if network not in networks:
                networks.append(network)
        elif entry not in names:
            names.append(entry)
    return networks, names


class RegistryHosts:
    """The daemon's registry settings (`--insecure-registry`, the certs directory)."""

    def __init__(
        self,
        insecure: list[str] | None = None,
        certs_dir: Path = DEFAULT_CERTS_DIR,
        mirrors: list[str] | None = None,
    ):
        self.networks, self.insecure_names = _parse_insecure(list(insecure or []))
        self.certs_dir = certs_dir
        self.mirrors = [parse_mirror(m) for m in mirrors or []]

    def info_wire(self) -> dict[str, Any]:
        """`RegistryConfig` of `GET /info`, as dockerd shows it."""
        indexes: dict[str, Any] = {
            name: {"Name": name, "Mirrors": [], "Secure": False, "Official": False}
            for name in self.insecure_names
        }
        mirrors = [m + "/" for m in self.mirrors]
        indexes[DEFAULT_DOMAIN] = {
            "Name": DEFAULT_DOMAIN, "Mirrors": mirrors, "Secure": True, "Official": True,
        }  # fmt: skip
        return {
            "InsecureRegistryCIDRs": [str(n) for n in self.networks],
            "IndexConfigs": indexes,
            "Mirrors": mirrors,
        }

    async def is_secure(self, domain: str) -> bool:
        """dockerd's isSecureIndex: a configured name decides; else the host's addresses
        (resolved when it is a name) against the insecure CIDRs."""
        if domain == DEFAULT_DOMAIN:
            return True
        if domain in self.insecure_names:
            return False
        host = split_host(domain)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await _resolve(host)
        return not any(a in n for a in addresses for n in self.networks if a.version == n.version)

    async def is_loopback(self, domain: str) -> bool:
        """Whether the registry is on this host: Go's HTTP client never sends such
        requests through the environment's proxy, and neither do we."""
        if domain == DEFAULT_DOMAIN:
            return False
        host = split_host(domain)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await _resolve(host) if host == "localhost" else []
        return bool(addresses) and all(a.is_loopback for a in addresses)

    async def endpoints(self, domain: str) -> list[Endpoint]:
        """Where to reach `domain`'s registry API, in order. The default registry is
        reached through the `--registry-mirror`s first (dockerd's order); the daemon
        knows no other address for it than its domain: configure a mirror to serve it."""
        host = domain
        if domain == DEFAULT_DOMAIN:
            mirrors = [await self._mirror_endpoint(m) for m in self.mirrors]
            return [*mirrors, Endpoint(f"https://{host}", await self._tls(host))]
        if await self.is_secure(domain):
            return [Endpoint(f"https://{host}", await asyncio.to_thread(self.tls_context, host))]
        return [Endpoint(f"https://{host}", False), Endpoint(f"http://{host}", False)]

    async def _tls(self, host: str) -> ssl.SSLContext:
        return await asyncio.to_thread(self.tls_context, host)

    async def _mirror_endpoint(self, mirror: str) -> Endpoint:
        scheme, _, host = mirror.partition("://")
        if scheme == "http" or not await self.is_secure(host):
            return Endpoint(mirror, False)
        return Endpoint(mirror, await self._tls(host))

    def tls_context(self, host: str) -> ssl.SSLContext:
        """System CAs plus `<certs dir>/<host>/*.crt`; a `*.cert`/`*.key` pair there is
        the client certificate, as dockerd reads that directory. Read at each use, as
        dockerd does: certificates dropped in there count at once."""
        ctx = ssl.create_default_context()
        directory = self.certs_dir / host
        if directory.is_dir():
            for ca in sorted(directory.glob("*.crt")):
                ctx.load_verify_locations(cafile=str(ca))
            for cert in sorted(directory.glob("*.cert")):
                key = cert.with_suffix(".key")
                if not key.is_file():
                    raise InvalidParameter(f"missing key {key.name} for client certificate {cert}")
                ctx.load_cert_chain(str(cert), str(key))
        return ctx


async def _resolve(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return []  # unresolvable: no match, as dockerd
    out: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
    for info in infos:
        try:
            out.append(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out
