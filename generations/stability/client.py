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

import studio
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
            _http = httpx.Client(timeout=TIMEOUT, limits=httpx.Limits(max_connections=50))
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
        self.timeout = (
            TIMEOUT
            if read_timeout is None
            else httpx.Timeout(connect=5.0, read=read_timeout, write=60.0, pool=10.0)
        )
        self._http = http

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
        try:
            response = http.request(
                method,
                self.host + path,
                headers=self._headers(accept, organization),
                timeout=self.timeout,
                **kwargs,
            )
        except httpx.TimeoutException as exc:
            raise TransientError(f"The Stability API did not answer in time ({type(exc).__name__}).") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"Could not reach the Stability API: {exc or type(exc).__name__}.") from exc
        if response.is_success:
            return response
        raise _error_from(response)

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
