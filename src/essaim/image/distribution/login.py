"""`docker login`: the credentials checked against the registry (ping, challenge, then
a token or Basic request on `/v2/`) without storing anything; Docker's answers.
"""

from __future__ import annotations

from essaim.errors import SystemError_
from essaim.image.distribution import errors
from essaim.image.distribution.client import RegistryClient
from essaim.image.distribution.credentials import Credentials
from essaim.image.distribution.hosts import RegistryHosts
from essaim.image.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN


def registry_domain(server_address: str) -> str:
    """The registry a login names: `https://host:port/v2/` is `host:port`; the index
    address of the default registry (or none) is the default registry."""
    address = server_address.strip()
    for prefix in ("https://", "http://"):
        if address.lower().startswith(prefix):
            address = address[len(prefix) :]
    address = address.split("/", 1)[0]
    if not address or address in (LEGACY_DEFAULT_DOMAIN, DEFAULT_DOMAIN):
        return DEFAULT_DOMAIN
    return address


async def login(hosts: RegistryHosts, credentials: Credentials) -> tuple[str, str]:
    """("Login Succeeded", identity token) or the registry's refusal (401)."""
    domain = registry_domain(credentials.server_address)
    try:
        async with RegistryClient(hosts, domain, credentials, offline=True) as client:
            url = client.url("/v2/")
            response = await client.request("GET", url, scopes=[])
            if response.status_code != 200:
                failure = SystemError_(
                    f"login attempt to {url} failed with status: "
                    f"{errors.status_text(response.status_code)}"
                )
                raise errors.login_error(
                    errors.RegistryError(failure.message, (), response.status_code)
                )
            return "Login Succeeded", client.refresh_token
    except Exception as exc:
        raise errors.login_error(exc) from None
