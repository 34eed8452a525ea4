from django.contrib.auth import views as auth_views
from django.urls import path

from accounts.views import account as views

app_name = "accounts"
urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password/", views.password_change, name="password-change"),
    path("password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password-done"),
    path("", views.account, name="account"),
    path("balance/", views.balance, name="balance"),
]
