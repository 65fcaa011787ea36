"""One HTTP client for the commands: httpx, the token header, and every failure as one line.

httpx's errors and the API's error bodies are translated here, once, into
:class:`~podium.cloud.client.errors.ClientError`; the commands see JSON
documents or a ``ClientError``, nothing else. httpx is imported when the
first client is made, not with this module.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from podium.cloud.client.errors import ClientError, one_line
from podium.cloud.client.settings import ClientSettings

if TYPE_CHECKING:
    import httpx

__all__ = ["ApiClient", "NotFoundError"]


class NotFoundError(ClientError):
    """The API answered 404 (a caller may turn it into a better message)."""


class ApiClient:
    """A connection to the API; use it in a ``with`` block."""

    def __init__(self, settings: ClientSettings) -> None:
        import httpx

        self.settings = settings
        self._client = httpx.Client(
            base_url=settings.api_url,
            headers={"X-Auth-Token": settings.token, "User-Agent": "podium-client"},
            timeout=settings.timeout,
        )

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    @property
    def where(self) -> str:
        """The API's address, with where it was found when that was not a flag."""
        source = self.settings.source
        if source and not source.startswith("--"):
            return f"{self.settings.api_url} (from {source})"
        return self.settings.api_url

    # -- requests --------------------------------------------------------------

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body=body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body=body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """The decoded JSON answer (None for an empty one); ClientError for any failure."""
        response = self._send(method, path, params=params, body=body)
        if response.status_code >= 400:
            raise self._failure(response)
        if 300 <= response.status_code < 400:
            raise ClientError(
                f"the API at {self.where} answered {method} {path} with a redirect "
                f"(HTTP {response.status_code}): is the URL the API's?"
            )
        if not response.content:
            return None
        try:
            return json.loads(response.content)
        except ValueError:
            raise ClientError(
                f"the API at {self.where} answered {method} {path} with invalid JSON "
                f"(HTTP {response.status_code}): is the URL the API's?"
            ) from None

    def _send(
        self, method: str, path: str, *, params: dict[str, Any] | None, body: Any
    ) -> httpx.Response:
        import httpx

        try:
            return self._client.request(method, path, params=params, json=body)
        except httpx.ConnectTimeout:
            raise ClientError(
                f"cannot reach the API at {self.where}: no answer to the connection within "
                f"{self.settings.timeout:g} s"
            ) from None
        except httpx.TimeoutException:
            raise ClientError(
                f"the API at {self.where} did not answer {method} {path} within "
                f"{self.settings.timeout:g} s"
            ) from None
        except httpx.ConnectError as error:
            raise ClientError(
                f"cannot reach the API at {self.where}: {_reason(error)}"
                + (
                    "; is `podium all-in-one` running?"
                    if self.settings.source.endswith("client.toml")
                    else ""
                )
            ) from None
        except httpx.HTTPError as error:
            # The connection broke mid-way, or the peer does not speak HTTP.
            raise ClientError(
                f"the exchange with the API at {self.where} failed: {_reason(error)}"
            ) from None

    def _failure(self, response: httpx.Response) -> ClientError:
        status = response.status_code
        message = _api_message(response) or f"HTTP {status} {response.reason_phrase}"
        if status == 401:
            source = self.settings.token_source
            return ClientError(
                f"the API at {self.settings.api_url} refused the token"
                + (f" from {source}" if source else "")
                + " (401): is it one of the API's api_tokens?"
            )
        if status == 403:
            return ClientError(f"not allowed (403): {message}")
        if status == 404:
            return NotFoundError(f"not found (404): {message}")
        if status == 409:
            return ClientError(f"conflict (409): {message}")
        if status in (400, 422):
            return ClientError(f"the API refused the request ({status}): {message}")
        if status == 429:
            return ClientError(f"rate limited (429): {message}")
        if status == 503:
            return ClientError(f"the cloud is unavailable (503): {message}")
        if _api_message(response) is None:
            return ClientError(f"the API at {self.where} failed ({message})")
        return ClientError(f"the API at {self.where} failed (HTTP {status}): {message}")


def _api_message(response: httpx.Response) -> str | None:
    """The ``error.message`` of an API error body, or None for any other body."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return one_line(message, 300) if isinstance(message, str) and message.strip() else None


def _reason(error: Exception) -> str:
    # httpx wraps the socket error; its text ("[Errno 111] Connection refused")
    # is what a person can act on.
    text = str(error) or type(error).__name__
    return one_line(text, 200)
