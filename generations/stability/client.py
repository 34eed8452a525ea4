"""The Stability v1 REST client: one method per operation, typed in and out, and the only httpx user.

client = StabilityClient(api_key="sk-...", host="https://api.stability.ai")
artifacts = client.text_to_image("stable-diffusion-v1-6", TextToImageRequest(text_prompts=(Prompt("a fox"),)))
"""

import base64
import json
import os
import threading
from typing import Any

import httpx
from django.conf import settings

import studio
from generations.stability import limiter
from generations.stability.types import (
    Account,
    Artifact,
    Engine,
    ImageToImageRequest,
    MaskingRequest,
    Organization,
    PermanentError,
    StabilityError,
    TextToImageRequest,
    TransientError,
    UpscaleRequest,
)

CLIENT_ID = "studio"
# Generation can take minutes on the real service; connecting should not.
TIMEOUT = httpx.Timeout(connect=5.0, read=180.0, write=60.0, pool=10.0)
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}

_http: httpx.Client | None = None
_http_lock = threading.Lock()


def shared_http() -> httpx.Client:
    """One connection pool per process, created on first use (so after a Celery worker forks)."""
    global _http
    with _http_lock:
        if _http is None:
            # One connection per request in flight: a worker's threads never queue for the pool.
            connections = settings.STABILITY_HTTP_CONNECTIONS
            _http = httpx.Client(
                timeout=TIMEOUT,
                limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
            )
        return _http


def shared_http_close() -> None:
    """Close the pool's connections (a server keeps a thread per kept-alive connection)."""
    global _http
    with _http_lock:
        if _http is not None:
            _http.close()
        _http = None


def _forget_http_after_fork() -> None:
    global _http
    _http = None


os.register_at_fork(after_in_child=_forget_http_after_fork)


def transport_send(
    http: httpx.Client, request: httpx.Request, *, rate_wait: float = limiter.PAGE_WAIT_SECONDS
) -> httpx.Response:
    """Send one request once the key's rate limit has a slot for it (waiting up to `rate_wait` seconds,
    else KeyPaused); a 429 announcing a lock-out pauses the key for every process. A failure of the
    transport becomes a TransientError a person can read."""
    key = request_key(request)
    limiter.acquire(key, max_wait=rate_wait)
    try:
        response = http.send(request)
        if response.status_code == 429:
            response.read()
            lockout = limiter.announced_lockout(_error_text(response), response.headers.get("retry-after"))
            if lockout is not None:
                limiter.pause(key, lockout)
        return response
    except httpx.TimeoutException as exc:
        raise TransientError(f"The Stability API did not answer in time ({type(exc).__name__}).") from exc
    except httpx.TransportError as exc:
        raise TransientError(f"Could not reach the Stability API: {exc or type(exc).__name__}.") from exc


def request_key(request: httpx.Request) -> str:
    """The limiter's name for the key a request is sent with (a hash: never the key itself)."""
    api_key = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    return limiter.key_id(api_key, request.url.host)


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text
    if not isinstance(body, dict):
        return ""
    if isinstance(body.get("errors"), list):  # the Stable Image (v2beta) shape: {id, name, errors[]}
        return "; ".join(str(error) for error in body["errors"])
    return str(body.get("message", ""))


def read_timeout_of(read_timeout: float | None) -> httpx.Timeout:
    """The default timeouts, or the same with another read timeout."""
    if read_timeout is None:
        return TIMEOUT
    return httpx.Timeout(connect=5.0, read=read_timeout, write=60.0, pool=10.0)


class StabilityClient:
    def __init__(
        self,
        *,
        api_key: str,
        host: str = "https://api.stability.ai",
        organization: str = "",
        read_timeout: float | None = None,
        http: httpx.Client | None = None,
    ) -> None:
        self.api_key = api_key
        self.host = host.rstrip("/")
        self.organization = organization
        self.timeout = read_timeout_of(read_timeout)
        self._http = http
        # How long a request may wait for the key's rate limit: briefly for pages, longer for jobs.
        self.rate_wait = limiter.PAGE_WAIT_SECONDS

    @property
    def rate_key(self) -> str:
        """The limiter's name for this client's key (see request_key)."""
        return limiter.key_id(self.api_key, httpx.URL(self.host).host)

    # --- operations ----------------------------------------------------------------------------------

    def list_engines(self) -> list[Engine]:
        body = self._json(self._send("GET", "/v1/engines/list"))
        return [
            Engine(id=e["id"], name=e["name"], description=e["description"], type=e["type"]) for e in body
        ]

    def account(self) -> Account:
        body = self._json(self._send("GET", "/v1/user/account", organization=False))
        return Account(
            id=body["id"],
            email=body["email"],
            profile_picture=body.get("profile_picture"),
            organizations=tuple(
                Organization(id=o["id"], name=o["name"], role=o["role"], is_default=o["is_default"])
                for o in body["organizations"]
            ),
        )

    def balance(self) -> float:
        return float(self._json(self._send("GET", "/v1/user/balance"))["credits"])

    def text_to_image(
        self, engine_id: str, request: TextToImageRequest, *, accept: str = "application/json"
    ) -> list[Artifact]:
        request.validate(engine_id, accept)
        response = self._send(
            "POST", f"/v1/generation/{engine_id}/text-to-image", accept=accept, json=request.to_json()
        )
        return self._artifacts(response)

    def image_to_image(
        self, engine_id: str, request: ImageToImageRequest, *, accept: str = "application/json"
    ) -> list[Artifact]:
        request.validate(engine_id, accept)
        response = self._send(
            "POST",
            f"/v1/generation/{engine_id}/image-to-image",
            accept=accept,
            data=request.form_fields(),
            files=_png_files(request.files()),
        )
        return self._artifacts(response)

    def masking(
        self, engine_id: str, request: MaskingRequest, *, accept: str = "application/json"
    ) -> list[Artifact]:
        request.validate(engine_id, accept)
        response = self._send(
            "POST",
            f"/v1/generation/{engine_id}/image-to-image/masking",
            accept=accept,
            data=request.form_fields(),
            files=_png_files(request.files()),
        )
        return self._artifacts(response)

    def upscale(
        self, engine_id: str, request: UpscaleRequest, *, accept: str = "application/json"
    ) -> list[Artifact]:
        request.validate(engine_id, accept)
        response = self._send(
            "POST",
            f"/v1/generation/{engine_id}/image-to-image/upscale",
            accept=accept,
            data=request.form_fields(engine_id),
            files=_png_files(request.files()),
        )
        return self._artifacts(response)

    # --- plumbing ------------------------------------------------------------------------------------

    def _headers(self, accept: str, organization: bool) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Accept": accept,
            "Stability-Client-ID": CLIENT_ID,
            "Stability-Client-Version": studio.__version__,
        }
        if organization and self.organization:
            headers["Organization"] = self.organization
        return headers

    def _send(
        self,
        method: str,
        path: str,
        *,
        accept: str = "application/json",
        organization: bool = True,
        **kwargs: Any,
    ) -> httpx.Response:
        http = self._http or shared_http()
        request = http.build_request(
            method,
            self.host + path,
            headers=self._headers(accept, organization),
            timeout=self.timeout,
            **kwargs,
        )
        response = transport_send(http, request, rate_wait=self.rate_wait)
        if response.is_success:
            return response
        error = _error_from(response)
        if response.status_code == 429 and (left := limiter.paused_for(request_key(request))):
            # A lock-out: the request can succeed once it is over, and says so.
            raise limiter.KeyPaused(error.message, retry_after=left, status=429, name=error.name) from error
        raise error

    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise TransientError("The Stability API sent an answer that is not valid JSON.") from exc

    def _artifacts(self, response: httpx.Response) -> list[Artifact]:
        try:
            if response.headers.get("content-type", "").startswith("image/png"):
                return [
                    Artifact(
                        png=response.content,
                        seed=int(response.headers.get("seed", 0)),
                        finish_reason=response.headers.get("finish-reason", "SUCCESS"),
                    )
                ]
            return [
                Artifact(
                    png=base64.b64decode(item["base64"], validate=True),
                    seed=int(item["seed"]),
                    finish_reason=item["finishReason"],
                )
                for item in self._json(response)["artifacts"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise TransientError("The Stability API sent artifacts Studio could not read.") from exc


def _png_files(files: dict[str, bytes]) -> dict[str, tuple[str, bytes, str]]:
    return {name: (f"{name}.png", data, "image/png") for name, data in files.items()}


def _error_from(response: httpx.Response) -> StabilityError:
    """The v1 error body {id, name, message} when there is one; a plain description otherwise."""
    status = response.status_code
    name, message, error_id = "", "", ""
    try:
        body = response.json()
        if isinstance(body, dict):
            name = str(body.get("name", ""))
            message = str(body.get("message", ""))
            error_id = str(body.get("id", ""))
    except (json.JSONDecodeError, UnicodeDecodeError):
        pass
    if not message:
        message = f"The Stability API answered {status} {response.reason_phrase}."
    kind = TransientError if status in TRANSIENT_STATUSES or status >= 500 else PermanentError
    return kind(message, status=status, name=name, error_id=error_id)
