from django.urls import path

from generations import (
    estimate_views,
    image_views,
    import_views,
    job_views,
    library_views,
    media_views,
    share_views,
    tool_views,
    views,
)

app_name = "generations"
urlpatterns = [
    path("", views.create, name="create"),
    path("sizes/", views.sizes, name="sizes"),
    path("upload/", views.upload, name="upload"),
    path("gallery/", library_views.gallery, name="gallery"),
    *share_views.urlpatterns,
    *estimate_views.urlpatterns,
    *job_views.urlpatterns,
    *image_views.urlpatterns,
    *tool_views.urlpatterns,
    *media_views.urlpatterns,
    *import_views.urlpatterns,
    *library_views.urlpatterns,
]
