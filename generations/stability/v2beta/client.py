"""The Stable Image (v2beta) client: one method per operation, typed in and out, one image per request.

client = StableImageClient(api_key="sk-...", host="https://api.stability.ai")
result = client.generate_core(CoreRequest(prompt="a lighthouse", aspect_ratio="16:9", seed=7))
submitted = client.upscale_creative(CreativeUpscaleRequest(image=png, prompt="crisp"))  # then, later:
outcome = client.result(submitted.id)  # InProgress (ask again after outcome.poll_after s) or ImageResult

It shares the process's connection pool and transport error mapping with the v1 client; every body is
multipart, text-only ones too (httpx would send a form without files urlencoded, which the API refuses).
"""

import base64
import json
from typing import Any
from urllib.parse import quote

import httpx

import studio
from generations.stability import limiter
from generations.stability.client import (
    CLIENT_ID,
    TRANSIENT_STATUSES,
    read_timeout_of,
    request_key,
    shared_http,
    transport_send,
)
from generations.stability.v2beta import contract
from generations.stability.v2beta.fields import RuleViolation
from generations.stability.v2beta.types import (
    AsyncRequest,
    ConservativeUpscaleRequest,
    CoreRequest,
    CreativeUpscaleRequest,
    EraseRequest,
    FastUpscaleRequest,
    ImageResult,
    InpaintRequest,
    InProgress,
    OutpaintRequest,
    PermanentError,
    RemoveBackgroundRequest,
    ReplaceBackgroundAndRelightRequest,
    SD3Request,
    SearchAndRecolorRequest,
    SearchAndReplaceRequest,
    SketchRequest,
    StabilityError,
    StableImageRequest,
    StructureRequest,
    StyleRequest,
    StyleTransferRequest,
    Submitted,
    SyncRequest,
    TransientError,
    UltraRequest,
)

IMAGE = "image/*"
JSON = "application/json"
ANY = "*/*"


class StableImageClient:
    def __init__(
        self,
        *,
        api_key: str,
        host: str = "https://api.stability.ai",
        read_timeout: float | None = None,
        http: httpx.Client | None = None,
        user_id: str = "",
    ) -> None:
        self.api_key = api_key
        self.host = host.rstrip("/")
        self.timeout = read_timeout_of(read_timeout)
        self.user_id = user_id[:256]  # stability-client-user-id: who in Studio asked, for Stability's support
        self._http = http
        # How long a request may wait for the key's rate limit (shared with v1): briefly for pages, longer
        # for jobs.
        self.rate_wait = limiter.PAGE_WAIT_SECONDS

    # --- generate ------------------------------------------------------------------------------------

    def generate_ultra(self, request: UltraRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def generate_core(self, request: CoreRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def generate_sd3(self, request: SD3Request, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    # --- upscale -------------------------------------------------------------------------------------

    def upscale_fast(self, request: FastUpscaleRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def upscale_conservative(
        self, request: ConservativeUpscaleRequest, *, accept: str = IMAGE
    ) -> ImageResult:
        return self.run(request, accept=accept)

    def upscale_creative(self, request: CreativeUpscaleRequest) -> Submitted:
        return self.submit(request)

    # --- edit ----------------------------------------------------------------------------------------

    def erase(self, request: EraseRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def inpaint(self, request: InpaintRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def outpaint(self, request: OutpaintRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def search_and_replace(self, request: SearchAndReplaceRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def search_and_recolor(self, request: SearchAndRecolorRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def remove_background(self, request: RemoveBackgroundRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def replace_background_and_relight(self, request: ReplaceBackgroundAndRelightRequest) -> Submitted:
        return self.submit(request)

    # --- control -------------------------------------------------------------------------------------

    def control_sketch(self, request: SketchRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def control_structure(self, request: StructureRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def control_style(self, request: StyleRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    def control_style_transfer(self, request: StyleTransferRequest, *, accept: str = IMAGE) -> ImageResult:
        return self.run(request, accept=accept)

    # --- results -------------------------------------------------------------------------------------

    def result(self, generation_id: str, *, accept: str = ANY) -> ImageResult | InProgress:
        """The image of an asynchronous operation, or InProgress. Call it no more than once every
        `contract.RESULT_POLL_SECONDS` per id (schedule the next poll; do not sleep in a worker)."""
        contract.check_generation_id(generation_id)
        _check_accept(accept, (ANY, JSON))
        path = f"{contract.RESULTS_PATH}/{quote(generation_id, safe='')}"
        request = self._http_client().build_request(
            "GET", self.host + path, headers=self._headers(accept), timeout=self.timeout
        )
        response = self._send(request)
        if response.status_code == 202:
            return InProgress(id=generation_id)
        return _image_result(response)

    # --- any operation -------------------------------------------------------------------------------

    def run(self, request: SyncRequest, *, accept: str = IMAGE) -> ImageResult:
        """Send a synchronous operation and return its image; nothing is sent if it breaks a rule."""
        request.validate()
        return _image_result(self._send(self.build_request(request, accept=accept)))

    def submit(self, request: AsyncRequest) -> Submitted:
        """Start an asynchronous operation; fetch its image with `result(id)` from `poll_after` s on."""
        request.validate()
        body = _json(self._send(self.build_request(request)))
        generation_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(generation_id, str) or not generation_id:
            raise TransientError("The Stability API accepted the request but sent no generation id.")
        return Submitted(id=generation_id)

    def build_request(self, request: StableImageRequest, *, accept: str = IMAGE) -> httpx.Request:
        """The HTTP request for an operation, not validated (the tests send refused ones on purpose)."""
        if request.operation.asynchronous:
            headers = self._headers(None)
        else:
            _check_accept(accept, (IMAGE, JSON))
            headers = self._headers(accept)
        # httpx sends a request without file parts urlencoded; text fields as (None, value) parts keep it
        # multipart, and a request with no fields at all gets the empty part Stability's samples send.
        parts = request.parts() or [("none", ("", b"", "application/octet-stream"))]
        return self._http_client().build_request(
            "POST",
            self.host + request.operation.path,
            headers=headers,
            files=parts,
            timeout=self.timeout,
        )

    # --- plumbing ------------------------------------------------------------------------------------

    def _http_client(self) -> httpx.Client:
        return self._http or shared_http()

    def _headers(self, accept: str | None) -> dict[str, str]:
        headers = {
            "Authorization": f"Bearer {self.api_key}",
            "Stability-Client-ID": CLIENT_ID,
            "Stability-Client-Version": studio.__version__,
        }
        if accept:
            headers["Accept"] = accept
        if self.user_id:
            headers["Stability-Client-User-ID"] = self.user_id
        return headers

    def _send(self, request: httpx.Request) -> httpx.Response:
        response = transport_send(self._http_client(), request, rate_wait=self.rate_wait)
        if response.is_success:
            return response
        error = _error_from(response)
        if response.status_code == 429 and (left := limiter.paused_for(request_key(request))):
            # A lock-out: the request can succeed once it is over, and says so.
            raise limiter.KeyPaused(error.message, retry_after=left, status=429, name=error.name) from error
        raise error


def _check_accept(accept: str, allowed: tuple[str, ...]) -> None:
    if accept not in allowed:
        raise RuleViolation("accept", f"must be one of {', '.join(allowed)}")


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TransientError("The Stability API sent an answer that is not valid JSON.") from exc


def _media_type(header: str) -> tuple[str, dict[str, str]]:
    """`application/json; type=image/png` → ("application/json", {"type": "image/png"})."""
    kind, *parameters = (part.strip() for part in header.split(";"))
    params = {}
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        params[name.strip().lower()] = value.strip().strip('"')
    return kind.lower(), params


def _image_result(response: httpx.Response) -> ImageResult:
    """An image answer in either encoding: bytes with finish-reason/seed headers, or the JSON body."""
    media_type, params = _media_type(response.headers.get("content-type", ""))
    request_id = response.headers.get("x-request-id", "")
    try:
        if media_type.startswith("image/") and response.content:
            return ImageResult(
                image=response.content,
                media_type=media_type,
                seed=int(response.headers.get("seed", 0)),
                finish_reason=response.headers.get("finish-reason", "SUCCESS"),
                request_id=request_id,
            )
        if media_type == JSON:
            body = _json(response)
            image = base64.b64decode(body["image"], validate=True)
            if not image:
                raise ValueError("empty image")
            return ImageResult(
                image=image,
                media_type=params.get("type", "image/png"),
                seed=int(body.get("seed") or 0),
                finish_reason=str(body["finish_reason"]),
                request_id=request_id,
            )
    except (KeyError, TypeError, ValueError) as exc:
        raise TransientError("The Stability API sent an image Studio could not read.") from exc
    raise TransientError(f"The Stability API answered with {media_type or 'no content type'}, not an image.")


def _error_from(response: httpx.Response) -> StabilityError:
    """The v2beta error body {id, name, errors[]} when there is one; a plain description otherwise."""
    status = response.status_code
    name, message, error_id = "", "", response.headers.get("x-request-id", "")
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        name = str(body.get("name", ""))
        error_id = str(body.get("id", "") or error_id)
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            message = "; ".join(str(error) for error in errors)
        else:
            message = str(body.get("message", ""))  # a v1-shaped error from an older route
    if not message:
        message = f"The Stability API answered {status} {response.reason_phrase}."
    kind = TransientError if status in TRANSIENT_STATUSES or status >= 500 else PermanentError
    return kind(message, status=status, name=name, error_id=error_id)
