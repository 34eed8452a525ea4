"""Faults a real peer cannot give on demand, injected at the transport: each is a readable TransientError."""

import base64

import httpx
import pytest
import respx

from generations.stability.client import StabilityClient
from generations.stability.contract import Prompt, RuleViolation
from generations.stability.types import PermanentError, TextToImageRequest, TransientError

HOST = "https://api.stability.test"
T2I = f"{HOST}/v1/generation/stable-diffusion-v1-6/text-to-image"
REQUEST = TextToImageRequest(text_prompts=(Prompt("a fox"),))


@pytest.fixture
def client() -> StabilityClient:
    return StabilityClient(api_key="sk-test", host=HOST, organization="org-7", http=httpx.Client())


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        (httpx.ConnectTimeout("connect timed out"), "did not answer in time"),
        (httpx.ReadTimeout("read timed out"), "did not answer in time"),
        (
            httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
            "Could not reach",
        ),
        (httpx.ConnectError("connection refused"), "Could not reach"),
    ],
)
def test_transport_failures_are_transient(client, fault, message):
    with respx.mock:
        respx.post(T2I).mock(side_effect=fault)
        with pytest.raises(TransientError, match=message) as error:
            client.text_to_image("stable-diffusion-v1-6", REQUEST)
    assert error.value.retryable


@pytest.mark.parametrize(
    ("response", "status", "message"),
    [
        (httpx.Response(502, html="<html><body>Bad gateway</body></html>"), 502, "502 Bad Gateway"),
        (httpx.Response(503, text="upstream overloaded"), 503, "503 Service Unavailable"),
        (httpx.Response(200, text="{not json"), None, "not valid JSON"),
        (httpx.Response(200, json={"artifacts": [{"seed": 1}]}), None, "could not read"),
        (
            httpx.Response(
                200, json={"artifacts": [{"base64": "%%%", "seed": 1, "finishReason": "SUCCESS"}]}
            ),
            None,
            "could not read",
        ),
        (httpx.Response(200, json=["not", "an", "object"]), None, "could not read"),
    ],
)
def test_unreadable_answers_are_transient_with_a_readable_message(client, response, status, message):
    with respx.mock:
        respx.post(T2I).mock(return_value=response)
        with pytest.raises(TransientError, match=message) as error:
            client.text_to_image("stable-diffusion-v1-6", REQUEST)
    assert error.value.status == status


def test_an_error_body_keeps_the_apis_name_message_and_id(client):
    body = {"id": "abc123", "name": "permission_denied", "message": "You do not have permission"}
    with respx.mock:
        respx.post(T2I).mock(return_value=httpx.Response(403, json=body))
        with pytest.raises(PermanentError) as error:
            client.text_to_image("stable-diffusion-v1-6", REQUEST)
    assert (error.value.status, error.value.name, error.value.message, error.value.error_id) == (
        403,
        "permission_denied",
        "You do not have permission",
        "abc123",
    )


def test_every_request_names_studio_and_carries_key_and_organization(client):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    with respx.mock:
        route = respx.post(T2I).mock(
            return_value=httpx.Response(
                200, json={"artifacts": [{"base64": png, "seed": 5, "finishReason": "SUCCESS"}]}
            )
        )
        client.text_to_image("stable-diffusion-v1-6", REQUEST)
        account = respx.get(f"{HOST}/v1/user/account").mock(
            return_value=httpx.Response(200, json={"id": "user-1", "email": "a@b.c", "organizations": []})
        )
        client.account()
    headers = route.calls.last.request.headers
    assert headers["Authorization"] == "Bearer sk-test"
    assert headers["Organization"] == "org-7"
    assert headers["Stability-Client-ID"] == "studio"
    assert headers["Stability-Client-Version"]
    assert "Organization" not in account.calls.last.request.headers  # the spec declares none there


def test_nothing_is_sent_for_a_request_the_api_would_refuse(client):
    with respx.mock(assert_all_called=False) as mock:
        route = mock.post(T2I)
        with pytest.raises(RuleViolation):
            client.text_to_image(
                "stable-diffusion-v1-6", TextToImageRequest(text_prompts=(Prompt("a fox"),), steps=5)
            )
    assert not route.called
