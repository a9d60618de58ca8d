"""What every API endpoint shares: key check, JSON in and out, and the error mapping.

The core's typed errors become HTTP codes here and only here: BadRequest 400, Forbidden
403, NotFound 404, Conflict 409, Unavailable 503 (with Retry-After). Anything else is a
bug: 500, with the traceback in the log and nothing internal in the reply.
"""

from __future__ import annotations

import functools
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import tornado.web

from core.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from server.node import Node
from server.wire import Json

from ..validation import encodable, request_object

log = logging.getLogger("dino.api")

RETRY_AFTER_SECONDS = 2


class ApiError(Exception):
    """An HTTP refusal raised by the API's own checks (key, body size)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class ApiHandler(tornado.web.RequestHandler):
    """Base of every /api/v1 endpoint: the key is checked before any method runs."""

    node: Node

    def initialize(self, node: Node) -> None:
        self.node = node

    def check_xsrf_cookie(self) -> None:
        """Cookies authorize nothing here, so there is nothing to forge."""

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.set_header("Cache-Control", "no-store")

    def prepare(self) -> None:
        keys = self.node.settings.api_keys
        if not keys:
            self.fail(404, "the HTTP API is off: start the node with --api-keys")
            return
        if not self.authorized(keys):
            self.set_header("WWW-Authenticate", 'Bearer realm="dino"')
            self.fail(401, "an API key is required: send 'Authorization: Bearer <key>'")
            return
        limit = self.node.settings.max_api_body_bytes
        if len(self.request.body) > limit:
            self.fail(413, f"the request body is larger than {limit} bytes")

    def authorized(self, keys: tuple[str, ...]) -> bool:
        """Only the Authorization header counts (never a query string or a cookie); every
        key is compared in constant time, so timing tells nothing about a near miss."""
        scheme, _, given = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        candidate = given.strip().encode()
        matches = [hmac.compare_digest(candidate, key.encode()) for key in keys]
        return any(matches)

    def fail(self, status: int, message: str) -> None:
        self.set_status(status)
        self.finish(Json.dumps({"error": encodable(message)}))

    def reply(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(Json.dumps(body))

    def json_body(self) -> dict[str, Any]:
        """The request body as a JSON object (an empty body is {})."""
        if not self.request.body:
            return {}
        try:
            payload = Json.loads(self.request.body)
        except ValueError:
            raise BadRequest("the request body is not valid JSON") from None
        return request_object(payload)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # Tornado's own refusals (405 for a method an endpoint lacks, 400 for a request it
        # cannot parse) in the API's JSON shape.
        if status_code == 405:
            self.set_header("Allow", ", ".join(self.allowed_methods()))
        self.finish(Json.dumps({"error": self._reason}))

    @classmethod
    def allowed_methods(cls) -> list[str]:
        """The methods this endpoint implements (Tornado's base class answers 405)."""
        base = tornado.web.RequestHandler
        return [
            method
            for method in cls.SUPPORTED_METHODS
            if getattr(cls, method.lower()) is not getattr(base, method.lower())
        ]


Method = Callable[..., Awaitable[None]]


def endpoint(method: Method) -> Method:
    """Runs an endpoint method and turns the core's typed errors into HTTP replies."""

    async def answer(self: ApiHandler, *args: str) -> None:
        try:
            await method(self, *args)
        except NotFound as exc:
            self.fail(404, str(exc))
        except Conflict as exc:
            self.fail(409, str(exc))
        except BadRequest as exc:
            self.fail(400, str(exc))
        except Forbidden as exc:
            self.fail(403, str(exc))
        except Unavailable as exc:
            self.node.outage.failed(f"api {self.request.method}", exc)
            self.set_header("Retry-After", str(RETRY_AFTER_SECONDS))
            self.fail(503, "storage is unavailable; try again shortly")
        except ApiError as exc:
            self.fail(exc.status, str(exc))
        except Exception:
            log.exception("API %s %s failed", self.request.method, self.request.path)
            self.fail(500, "internal error")
        else:
            if self.node.outage.down:
                self.node.outage.recovered()

    @functools.wraps(method)
    async def run(self: ApiHandler, *args: str) -> None:
        # Counted, so that a draining node finishes this request before it stops.
        self.node.status.api_requests += 1
        try:
            await answer(self, *args)
        finally:
            self.node.status.api_requests -= 1

    return run


class NotFoundHandler(ApiHandler):
    """Any other path under /api/: a JSON 404 (after the key check, so paths are not
    discoverable without a key)."""

    def prepare(self) -> None:
        super().prepare()
        if not self._finished:
            self.fail(404, f"no such API path: {self.request.path}")
