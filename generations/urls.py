from django.urls import path

from generations import estimate_views, import_views, job_views, library_views, share_views, views

app_name = "generations"
urlpatterns = [
    path("", views.create, name="create"),
    path("jobs/<uuid:job_id>/", views.job_card, name="job-card"),
    path("sizes/", views.sizes, name="sizes"),
    path("upload/", views.upload, name="upload"),
    path("gallery/", library_views.gallery, name="gallery"),
    path("images/<uuid:image_id>/", views.image_detail, name="image-detail"),
    path("images/<uuid:image_id>/download/", views.image_download, name="image-download"),
    path("images/<uuid:image_id>/variations/", views.image_variations, name="image-variations"),
    path("images/<uuid:image_id>/rerun/", views.image_rerun, name="image-rerun"),
    path("images/<uuid:image_id>/upscale/", views.image_upscale, name="image-upscale"),
    path("media/<path:path>", views.media, name="media"),
    *share_views.urlpatterns,
    *estimate_views.urlpatterns,
    *job_views.urlpatterns,
    *import_views.urlpatterns,
    *library_views.urlpatterns,
]
