from django.urls import path, re_path

from sandbox import views
from sandbox.v2beta import views as v2beta

app_name = "sandbox"
urlpatterns = [
    path("v1/engines/list", views.engines_list, name="engines-list"),
    path("v1/user/account", views.user_account, name="user-account"),
    path("v1/user/balance", views.user_balance, name="user-balance"),
    path("v1/generation/<str:engine_id>/text-to-image", views.text_to_image, name="text-to-image"),
    path("v1/generation/<str:engine_id>/image-to-image", views.image_to_image, name="image-to-image"),
    path("v1/generation/<str:engine_id>/image-to-image/masking", views.masking, name="masking"),
    path("v1/generation/<str:engine_id>/image-to-image/upscale", views.upscale, name="upscale"),
    # Stable Image (v2beta): one route per operation, named "v2beta-generate-core" etc.
    *(
        path(f"v2beta/stable-image/{operation_id}", view, name=f"v2beta-{operation_id.replace('/', '-')}")
        for operation_id, view in v2beta.VIEWS.items()
    ),
    # Any id, even empty or with a slash or newline, is answered in the API's shape rather than Django's.
    re_path(r"^v2beta/results/(?P<generation_id>[\s\S]*)\Z", v2beta.result, name="v2beta-result"),
    re_path(  # the legacy alias still in the official document (notes §1.3)
        r"^v2beta/stable-image/upscale/creative/result/(?P<generation_id>[\s\S]*)\Z",
        v2beta.result,
        name="v2beta-creative-result",
    ),
]
