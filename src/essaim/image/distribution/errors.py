"""Registry errors as Docker's distribution client reads and words them: the error body
(`{"errors":[{code,message,detail}]}`), the bearer challenge's error, transport
failures (`Get "<url>": ...`), and the translation of pull failures to Docker's texts.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from http import HTTPStatus

import httpx

from essaim.errors import EssaimError, NotFound, SystemError_, Unauthorized
from essaim.image.distribution import challenge

MANIFEST_UNKNOWN = "MANIFEST_UNKNOWN"
NAME_UNKNOWN = "NAME_UNKNOWN"
DENIED = "DENIED"
UNAUTHORIZED = "UNAUTHORIZED"
BLOB_UNKNOWN = "BLOB_UNKNOWN"
UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class ErrorItem:
    code: str
    message: str

    def text(self) -> str:
        # errcode.Error: the code in lower-case words, then the registry's message.
        return f"{self.code.lower().replace('_', ' ')}: {self.message}"


class RegistryError(SystemError_):
    """A registry answered with an error (status >= 400). `items` are its error codes;
    the message is what Docker's client prints for them."""

    def __init__(self, message: str, items: tuple[ErrorItem, ...], http_status: int) -> None:
        super().__init__(message)
        self.items = items
        self.http_status = http_status

    @property
    def first_code(self) -> str:
        return self.items[0].code if self.items else ""


class TransportError(SystemError_):
    """The request failed before a response: `Get "<url>": <why>`, Go's url.Error."""

    def __init__(self, method: str, url: str, why: str, *, unauthorized: bool = False) -> None:
        super().__init__(f'{method.capitalize()} "{url}": {why}')
        self.why = why
        self.unauthorized = unauthorized


def status_text(status: int) -> str:
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _errors_text(items: tuple[ErrorItem, ...]) -> str:
    if len(items) == 1:
        return items[0].text()
    return "errors:\n" + "".join(item.text() + "\n" for item in items)


def _parse_body(status: int, body: bytes) -> RegistryError:
    try:
        doc = json.loads(body) if body else None
    except ValueError as exc:
        doc = exc
    if isinstance(doc, dict) and isinstance(doc.get("details"), str) and doc["details"]:
        code = {401: UNAUTHORIZED, 429: "TOOMANYREQUESTS"}.get(status, UNKNOWN)
        details = (ErrorItem(code, doc["details"]),)
        return RegistryError(_errors_text(details), details, status)
    raw = doc.get("errors") if isinstance(doc, dict) else None
    items = tuple(
        ErrorItem(str(e.get("code") or UNKNOWN), str(e.get("message") or ""))
        for e in raw or []
        if isinstance(e, dict)
    )
    if items:
        return RegistryError(_errors_text(items), items, status)
    why = "no error details found in HTTP response body"
    if isinstance(doc, ValueError):
        why = "unexpected end of JSON input" if not body else "invalid character in JSON"
    if status == 401:
        unauthorized = (ErrorItem(UNAUTHORIZED, "authentication required"),)
        return RegistryError(_errors_text(unauthorized), unauthorized, status)
    quoted = json.dumps(body.decode(errors="replace"))
    text = f"error parsing HTTP {status} response body: {why}: {quoted}"
    return RegistryError(text, (), status)


def from_response(response: httpx.Response, body: bytes) -> RegistryError:
    """distribution's HandleErrorResponse: a bearer challenge's error first (RFC 6750),
    then the error body; 5xx are only their status."""
    status = response.status_code
    if 400 <= status < 500:
        for c in challenge.parse(response.headers.get_list("www-authenticate")):
            if c.scheme != "bearer":
                continue
            code = {"invalid_token": UNAUTHORIZED, "insufficient_scope": DENIED}.get(
                c.params.get("error", "")
            )
            if code is None:
                continue
            default = "authentication required" if code == UNAUTHORIZED else (
                "requested access to the resource is denied"
            )  # fmt: skip
            first = ErrorItem(code, c.params.get("error_description") or default)
            parsed = _parse_body(status, body)
            items = (first, *parsed.items)
            return RegistryError(_errors_text(items), items, status)
        return _parse_body(status, body)
    return RegistryError(f"received unexpected HTTP status: {status_text(status)}", (), status)


def pull_error(error: Exception, familiar_name: str, familiar_ref: str) -> Exception:
    """moby's translatePullError: an unknown repository or manifest, or a denial, is a
    404 in Docker's words (so `docker run` behaves); the rest stays as it is."""
    if not isinstance(error, RegistryError):
        return error
    code = error.first_code
    if not code:
        return error
    cause = error.items[0].text()
    if code == DENIED:
        return NotFound(
            f"pull access denied for {familiar_name}, repository does not exist or may "
            f"require 'docker login': {cause}"
        )
    if code == MANIFEST_UNKNOWN:
        return NotFound(f"manifest for {familiar_ref} not found: {cause}")
    if code == NAME_UNKNOWN:
        return NotFound(f"repository {familiar_name} not found: {cause}")
    return error


def login_error(error: Exception) -> Exception:
    """A refusal of the credentials is a 401 (the CLI words it for the user); the rest
    is the daemon's failure."""
    if isinstance(error, TransportError) and error.unauthorized:
        return Unauthorized(error.message)
    if isinstance(error, RegistryError) and error.http_status == 401:
        return Unauthorized(error.message)
    if isinstance(error, EssaimError):
        return error
    return SystemError_(str(error))


def describe_failure(exc: BaseException, address: str = "") -> str:
    """What Go's HTTP client would say about a request to `address` (host:port) that
    got no response."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    for item in seen:
        if isinstance(item, ssl.SSLCertVerificationError):
            return "tls: failed to verify certificate: x509: " + (
                item.verify_message or "certificate signed by unknown authority"
            )
        if isinstance(item, ssl.SSLError):
            reason = (item.reason or "").upper()
            if reason in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE", "HTTP_REQUEST"):
                return "http: server gave HTTP response to HTTPS client"
            return f"tls: {item.reason or item}"
        if isinstance(item, ConnectionRefusedError):
            return _dial(address) + "connect: connection refused"
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
        return "unexpected EOF"
    if isinstance(exc, httpx.TimeoutException):
        return "i/o timeout"
    if isinstance(exc, httpx.ConnectError):
        text = str(exc)
        return _dial(address) + "connect: connection refused" if "refused" in text.lower() else text
    return str(exc) or type(exc).__name__


def _dial(address: str) -> str:
    return f"dial tcp {address}: " if address else ""
