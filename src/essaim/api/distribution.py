"""Registry endpoints: `POST /images/create?fromImage=` (pull, called by the images
API), `POST /images/{name}/push`, `POST /auth`, `GET /distribution/{name}/json`.

Pull and push stream Docker's progress; a failure before the first message is a plain
HTTP error (the CLI's `run` acts on a 404), after it an `errorDetail` message.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from essaim.api.request import Request
from essaim.api.responses import AnyResponse, StreamResponse, json_response
from essaim.api.router import Router
from essaim.api.streaming import line, streamed
from essaim.errors import InvalidParameter
from essaim.image import platforms, reference
from essaim.image.distribution import credentials
from essaim.image.distribution.errors import TransportError
from essaim.image.distribution.progress import Emit, Message
from essaim.image.distribution.pull import PullTarget
from essaim.image.distribution.push import PushTarget
from essaim.image.distribution.service import DistributionService

log = logging.getLogger(__name__)

Work = Callable[[Emit], Awaitable[None]]


async def _only(message: Message) -> AsyncIterator[bytes]:
    yield line(message)


class DistributionAPI:
    def __init__(self, service: DistributionService) -> None:
        self.service = service

    def register(self, router: Router) -> None:
        router.post("/images/{name:path}/push", self.push)
        router.post("/auth", self.auth)
        router.get("/distribution/{name:path}/json", self.inspect)

    async def pull(self, req: Request, from_image: str) -> AnyResponse:
        """`POST /images/create?fromImage=&tag=&platform=`: no tag pulls every tag."""
        ref = reference.parse(from_image)
        tag = req.query.get("tag") or ""
        if tag:
            if tag.startswith("sha256:") or ":" in tag:
                reference.validate_digest(tag)
                ref = reference.Reference(ref.domain, ref.path, None, tag)
            else:
                ref = ref.with_tag(tag)
        platform_text = req.query.get("platform") or ""
        target = PullTarget(
            ref=ref,
            platform=platforms.parse(platform_text) if platform_text else None,
            credentials=credentials.from_header(req.headers.get("x-registry-auth")),
        )
        try:
            return await streamed(lambda emit: self.service.pull(target, emit))
        except TransportError as exc:
            # The registry cannot be reached at all (an offline host). The CLI pulls on
            # any 404 from create (a missing network, say) and then retries: failing
            # here would hide that real error when the image is already here.
            local = await self.service.local_image(ref)
            if local is None:
                raise
            note = f"Using the local image {ref.familiar()}: registry unreachable: {exc.message}"
            return StreamResponse(_only({"status": note}))

    async def push(self, req: Request) -> AnyResponse:
        ref = reference.parse(req.params["name"])
        if ref.digest is not None:
            raise InvalidParameter("cannot push a digest reference")
        tag = req.query.get("tag") or ""
        if tag:
            ref = ref.with_tag(tag)
        target = PushTarget(
            ref=ref, credentials=credentials.from_header(req.headers.get("x-registry-auth"))
        )
        return await streamed(lambda emit: self.service.push(target, emit))

    async def auth(self, req: Request) -> AnyResponse:
        given = credentials.from_auth_config(await req.json())
        status, token = await self.service.login(given)
        return json_response({"Status": status, "IdentityToken": token})

    async def inspect(self, req: Request) -> AnyResponse:
        ref = reference.parse(req.params["name"]).with_default_tag()
        given = credentials.from_header(req.headers.get("x-registry-auth"))
        return json_response(await self.service.inspect(ref, given))
