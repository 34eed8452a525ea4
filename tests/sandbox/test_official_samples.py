"""Stability's own example clients, shipped inside the official v1 OpenAPI file (`x-codeSamples`: Python
with requests, and cURL), run unchanged against the sandbox with API_HOST pointing at it. Code that no
one here wrote proves that the sandbox speaks the API as a v1 client expects."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.images import png
from tests.sandbox.openapi import SPEC_DICT

OPERATIONS = [
    "listEngines",
    "userAccount",
    "userBalance",
    "textToImage",
    "imageToImage",
    "masking",
    "upscaleImage",
]
# What each sample writes, relative to its working folder, and the size that image must have.
OUTPUTS = {
    "textToImage": {
        "Python": ("out/v1_txt2img_0.png", (1024, 1024)),
        "cURL": ("out/v1_txt2img.png", (1024, 1024)),
    },
    "imageToImage": {
        "Python": ("out/v1_img2img_0.png", (1024, 1024)),
        "cURL": ("out/v1_img2img.png", (1024, 1024)),
    },
    "masking": {
        "Python": ("out/v1_img2img_masking_0.png", (1024, 1024)),
        "cURL": ("out/v1_img2img_masking.png", (1024, 1024)),
    },
    "upscaleImage": {
        "Python": ("out/v1_upscaled_image.png", (1024, 1024)),
        "cURL": ("out/v1_upscaled_image.png", (1024, 1024)),
    },
}


def sample(operation_id: str, language: str) -> str:
    for methods in SPEC_DICT["paths"].values():
        for operation in methods.values():
            if operation["operationId"] == operation_id:
                return next(s["source"] for s in operation["x-codeSamples"] if s["lang"] == language)
    raise LookupError(operation_id)


@pytest.fixture
def workdir(tmp_path) -> Path:
    """The layout the samples assume: input images one folder up, an `out` folder for results."""
    (tmp_path / "init_image_1024.png").write_bytes(png(1024, 1024))
    (tmp_path / "mask_image_black_1024.png").write_bytes(png(1024, 1024, mode="L"))
    (tmp_path / "init_image.png").write_bytes(png(512, 512))
    work = tmp_path / "sample"
    (work / "out").mkdir(parents=True)
    return work


def run(command: list[str], workdir: Path, sandbox_url: str, key: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "API_HOST": sandbox_url, "STABILITY_API_KEY": key}
    return subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_the_official_python_sample_works_against_the_sandbox(
    operation_id, workdir, sandbox_url, sandbox_key
):
    (workdir / "sample.py").write_text(sample(operation_id, "Python"))
    # Run it as written, then print the `payload` it leaves behind (the GET samples keep their answer there).
    show = "import json, runpy; g = runpy.run_path('sample.py'); print(json.dumps(g.get('payload')))"
    result = run([sys.executable, "-c", show], workdir, sandbox_url, sandbox_key)
    assert result.returncode == 0, result.stderr
    payload = json.loads(result.stdout.strip().splitlines()[-1])
    if operation_id == "listEngines":
        assert "stable-diffusion-xl-1024-v1-0" in {engine["id"] for engine in payload}
    elif operation_id == "userAccount":
        assert payload["email"] == "team@example.com" and payload["organizations"]
    elif operation_id == "userBalance":
        assert payload == {"credits": 1000.0}
    else:
        path, size = OUTPUTS[operation_id]["Python"]
        with Image.open(workdir / path) as image:
            assert (image.format, image.size) == ("PNG", size)


@pytest.mark.parametrize("operation_id", OPERATIONS)
def test_the_official_curl_sample_works_against_the_sandbox(operation_id, workdir, sandbox_url, sandbox_key):
    (workdir / "sample.sh").write_text(sample(operation_id, "cURL"))
    result = run(["bash", "sample.sh"], workdir, sandbox_url, sandbox_key)
    assert result.returncode == 0, result.stderr + result.stdout
    if operation_id in OUTPUTS:
        path, size = OUTPUTS[operation_id]["cURL"]
        with Image.open(workdir / path) as image:
            assert (image.format, image.size) == ("PNG", size)
    else:
        assert json.loads(result.stdout)
