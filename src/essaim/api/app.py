"""The Engine API application: version prefix, routing, and the one place where
service errors become Docker's status codes and `{"message": ...}` bodies.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import AsyncIterator, Callable

from essaim import API_VERSION, __version__
from essaim.api.request import ClientGone, Request
from essaim.api.responses import AnyResponse, empty, json_response
from essaim.api.router import Router, split_version
from essaim.api.server import Application, parse_target
from essaim.errors import EssaimError, NotModified

log = logging.getLogger(__name__)


class EngineApplication(Application):
    def __init__(self, router: Router) -> None:
        self.router = router
        self._static_headers = [
            ("Api-Version", f"{API_VERSION[0]}.{API_VERSION[1]}"),
            ("Ostype", "linux"),
            ("Docker-Experimental", "false"),
            ("Server", f"essaim/{__version__} ({platform.system().lower()})"),
        ]

    def common_headers(self) -> list[tuple[str, str]]:
        return list(self._static_headers)

    async def dispatch(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        body: Callable[[], AsyncIterator[bytes]],
    ) -> AnyResponse:
        log.debug("Calling %s %s", method, target)  # dockerd's debug line, for timelines
        try:
            raw_path, query = parse_target(target)
            version, path = split_version(raw_path)
            handler, params = self.router.resolve(method, path)
            request = Request(method, path, version, query, headers, body, params)
            return await handler(request)
        except ClientGone:
            raise  # nobody to answer
        except NotModified:
            return empty(304)
        except EssaimError as exc:
            return json_response({"message": exc.message}, exc.status)
        except Exception as exc:
            log.exception("%s %s failed", method, target)
            return json_response({"message": str(exc) or type(exc).__name__}, 500)
