"""Many images as one ZIP: the files and both manifests match the chosen images; the answer streams, and
a 500-image ZIP never holds more than a few chunks in memory."""

import csv
import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse

from generations.library_export import MANIFEST_FIELDS, zip_stream
from generations.models import GalleryImage
from tests.factories import UserFactory
from tests.library_factories import library_image

pytestmark = pytest.mark.django_db
DOWNLOAD = reverse("generations:library-download")


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_zip_holds_the_chosen_pngs_and_manifests_that_describe_them():
    ada = UserFactory(username="ada")
    parent = library_image(
        ada,
        prompt="a red fox",
        negative="blurry",
        engine="stable-diffusion-xl-1024-v1-0",
        style="anime",
        seed=42,
    )
    child = library_image(ada, prompt="a red fox", kind="variation", parent=parent, size=(640, 448))
    not_chosen = library_image(ada, prompt="a boat")
    response = client_for(ada).post(DOWNLOAD, {"image": [str(parent.pk), str(child.pk)]})
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "application/zip"
    assert response["Content-Disposition"].startswith('attachment; filename="studio-')
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert archive.testzip() is None
    names = set(archive.namelist())
    assert names == {"manifest.json", "manifest.csv", parent.download_name, child.download_name}
    assert archive.read(parent.download_name) == Path(settings.MEDIA_ROOT, parent.image.name).read_bytes()
    entries = {entry["id"]: entry for entry in json.loads(archive.read("manifest.json"))["images"]}
    assert set(entries) == {str(parent.pk), str(child.pk)} and str(not_chosen.pk) not in entries
    first = entries[str(parent.pk)]
    assert first["file"] == parent.download_name
    assert (first["prompt"], first["negative_prompt"], first["engine"], first["style_preset"]) == (
        "a red fox",
        "blurry",
        "stable-diffusion-xl-1024-v1-0",
        "anime",
    )
    assert (first["seed"], first["width"], first["height"], first["creator"]) == (42, 512, 512, "ada")
    assert (first["steps"], first["cfg_scale"], first["kind"]) == (30, 7.0, "Text to image")
    assert first["created_at"] == parent.created_at.isoformat()
    assert first["text_prompts"] == [{"text": "a red fox", "weight": 1.0}, {"text": "blurry", "weight": -1.0}]
    second = entries[str(child.pk)]
    assert (second["parent"], second["relation"], second["kind"]) == (
        str(parent.pk),
        "variation",
        "Variation",
    )
    rows = list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode())))
    assert [row["id"] for row in rows] == [
        row_id for row_id in (e["id"] for e in json.loads(archive.read("manifest.json"))["images"])
    ]
    assert set(rows[0]) == set(MANIFEST_FIELDS)
    by_id = {row["id"]: row for row in rows}
    assert (
        by_id[str(child.pk)]["parent"] == str(parent.pk)
        and by_id[str(parent.pk)]["negative_prompt"] == "blurry"
    )
    assert by_id[str(parent.pk)]["seed"] == "42" and by_id[str(child.pk)]["width"] == "640"


def test_all_matching_downloads_what_the_filters_leave():
    ada = UserFactory(username="ada")
    kites = [library_image(ada, prompt=f"a kite {n}") for n in range(3)]
    library_image(ada, prompt="a boat")
    response = client_for(ada).post(DOWNLOAD, {"all_matching": "1", "query": "q=kite"})
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))
    assert sorted(n for n in archive.namelist() if n.endswith(".png")) == sorted(
        k.download_name for k in kites
    )


def test_an_empty_selection_downloads_nothing_and_says_why():
    ada = UserFactory(username="ada")
    response = client_for(ada).post(DOWNLOAD, {})
    assert response.status_code == 400 and "Choose at least one image." in response.content.decode()


def test_a_500_image_zip_streams_with_flat_memory(tmp_path):
    """500 files of 256 KiB (128 MiB in all): the stream's peak Python memory stays within a few chunks."""
    ada = UserFactory(username="ada")
    first = library_image(ada)
    payload = bytes(range(256)) * 1024  # 256 KiB, incompressible enough for a stored member
    rows = []
    for number in range(500):
        name = f"images/{ada.current_team.pk}/bulk-{number}.png"
        Path(settings.MEDIA_ROOT, name).parent.mkdir(parents=True, exist_ok=True)
        Path(settings.MEDIA_ROOT, name).write_bytes(payload)
        rows.append(
            GalleryImage(
                job=first.job,
                index=10_000 + number,
                team=first.team,
                created_by=ada,
                image=name,
                thumbnail=first.thumbnail.name,
                width=512,
                height=512,
                seed=number + 1,
            )
        )
    GalleryImage.objects.bulk_create(rows)
    images = GalleryImage.objects.filter(pk__in=[row.pk for row in rows]).order_by("-created_at", "-id")
    total = 0
    tracemalloc.start()
    try:
        for piece in zip_stream(images):
            total += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total > 500 * len(payload)  # every file went through
    assert peak < 8 * 2**20, f"peak {peak / 2**20:.1f} MiB"  # not 128 MiB: nothing is held but a chunk
