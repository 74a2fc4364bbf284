"""The one exception hierarchy of essaim.

Services raise these; the API edge maps each class once to Docker's status code and
writes `{"message": ...}` with the exception's text, which follows Docker's wording.
"""


class EssaimError(Exception):
    """Base of every error a client may see. `status` is the HTTP code at the edge."""

    status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(EssaimError):
    status = 400


class Unauthorized(EssaimError):
    status = 401


class Forbidden(EssaimError):
    status = 403


class NotFound(EssaimError):
    status = 404


class Conflict(EssaimError):
    status = 409


class NotModified(EssaimError):
    """Not a failure: the object is already in the asked state (start twice, stop twice)."""

    status = 304


class NotImplementedYet(EssaimError):
    status = 501


class Unavailable(EssaimError):
    status = 503


class SystemError_(EssaimError):
    status = 500
