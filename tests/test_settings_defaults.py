"""Defaults that follow other settings: the model the create form starts with follows the key, and the
sandbox's v1 engine list is "all" unless told "current"."""

import os
import subprocess
import sys
from pathlib import Path

from studio.settings import default_engine

ROOT = Path(__file__).resolve().parent.parent
CORE, SDXL = "stable-image-core", "stable-diffusion-xl-1024-v1-0"


def test_with_a_real_key_the_create_form_starts_on_stable_image_core():
    assert default_engine("sk-live-key") == CORE


def test_with_the_sandbox_it_starts_on_sdxl_1_0():
    assert default_engine("") == SDXL


def test_stability_default_engine_overrides_either_and_blank_means_unset():
    assert default_engine("sk-live-key", "sd3.5-large") == "sd3.5-large"
    assert default_engine("", "stable-image-ultra") == "stable-image-ultra"
    assert default_engine("sk-live-key", "  ") == CORE  # as .env.example leaves a variable


def settings_of(env: dict[str, str], *names: str) -> subprocess.CompletedProcess:
    """Import studio/settings.py in a fresh process with this environment, printing the settings named."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("STABILITY_", "SANDBOX_"))}
    return subprocess.run(
        [sys.executable, "-c", f"import studio.settings as s; print(*(getattr(s, n) for n in {names!r}))"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_settings_module_reads_the_key_and_the_sandbox_engine_list_from_the_environment():
    names = ("STABILITY_DEFAULT_ENGINE", "SANDBOX_V1_ENGINES")
    with_key = settings_of({"STABILITY_API_KEY": "sk-live-key"}, *names)
    assert with_key.stdout.split() == [CORE, "all"], with_key.stderr
    sandbox = settings_of({"SANDBOX_V1_ENGINES": "Current"}, *names)
    assert sandbox.stdout.split() == [SDXL, "current"], sandbox.stderr


def test_an_unknown_sandbox_engine_list_stops_start_up_with_a_message_that_says_why():
    refused = settings_of({"SANDBOX_V1_ENGINES": "2023"}, "SANDBOX_V1_ENGINES")
    assert refused.returncode != 0
    assert "SANDBOX_V1_ENGINES is '2023': use all or current." in refused.stderr
