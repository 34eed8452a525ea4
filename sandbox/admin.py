from django.contrib import admin

from sandbox.models import Account, ApiKey, AsyncResult, Organization, OrganizationMembership


class MembershipInline(admin.TabularInline):
    model = OrganizationMembership
    extra = 0


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ("id", "email")
    inlines = [MembershipInline]


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "credits")


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("__str__", "created_at", "latency_ms", "error_rate", "throttle_rate", "hang_rate")


@admin.register(AsyncResult)
class AsyncResultAdmin(admin.ModelAdmin):
    list_display = ("id", "operation", "finish_reason", "created_at", "ready_at", "expires_at")
    exclude = ("image",)  # bytes; the result is fetched through the API
