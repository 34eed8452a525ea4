from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import Membership, Team, User

admin.site.register(User, UserAdmin)


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ("name", "is_personal", "stability_api_key_hint", "created_at")
    # The key is set on the team's key page, where it is checked with the API: the admin shows only its
    # masked hint and the organization it bills, and never the encrypted column.
    fields = ("name", "is_personal", "stability_api_key_hint", "stability_organization", "created_at")
    readonly_fields = ("stability_api_key_hint", "stability_organization", "created_at")
    search_fields = ("name",)
    inlines = [MembershipInline]
