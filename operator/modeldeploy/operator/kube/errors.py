"""What a failed API call raises: one exception per HTTP status the operator acts on.

KubeError                 any failed call (`.status`: the HTTP status, 0 when none came back)
├── BadRequest            400
├── Unauthorized          401: credentials missing, wrong or expired (an exec plugin is re-run once)
├── Forbidden             403: RBAC refuses
├── NotFound              404: the object, or the resource type itself (a CRD not served)
├── Conflict              409: a stale resourceVersion, an apply conflict, "already exists"
├── Gone                  410: a watch's resourceVersion is too old
├── Invalid               422: the API server's validation (schema, CEL) refused the object
├── TooManyRequests       429: API priority and fairness
└── ServerError           5xx
"""

from __future__ import annotations


class KubeError(Exception):
    """An API call failed; the message carries the status code and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class BadRequest(KubeError):  # noqa: N818 - named as the HTTP statuses are
    """400."""


class Unauthorized(KubeError):  # noqa: N818 - named as the HTTP statuses are
    """401."""


class Forbidden(KubeError):  # noqa: N818 - named as the HTTP statuses are
    """403."""


class NotFound(KubeError):  # noqa: N818 - named as the HTTP statuses are
    """404."""


class Conflict(KubeError):  # noqa: N818 - named as the HTTP statuses are
    """409."""


class Gone(KubeError):  # noqa: N818 - named as the HTTP statuses are
    """410."""


class Invalid(KubeError):  # noqa: N818 - named as the HTTP statuses are
    """422."""


class TooManyRequests(KubeError):  # noqa: N818 - named as the HTTP statuses are
    """429."""


class ServerError(KubeError):
    """5xx."""


_BY_STATUS: dict[int, type[KubeError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
}


def error_for(status: int, message: str) -> KubeError:
    """The exception for an HTTP status: the most specific class, else `ServerError` for 5xx, else `KubeError`."""
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else KubeError)
    return cls(status, message)
