from django.urls import path

from sandbox import views

app_name = "sandbox"
urlpatterns = [
    path("v1/engines/list", views.engines_list, name="engines-list"),
    path("v1/user/account", views.user_account, name="user-account"),
    path("v1/user/balance", views.user_balance, name="user-balance"),
    path("v1/generation/<str:engine_id>/text-to-image", views.text_to_image, name="text-to-image"),
    path("v1/generation/<str:engine_id>/image-to-image", views.image_to_image, name="image-to-image"),
    path("v1/generation/<str:engine_id>/image-to-image/masking", views.masking, name="masking"),
    path("v1/generation/<str:engine_id>/image-to-image/upscale", views.upscale, name="upscale"),
]
