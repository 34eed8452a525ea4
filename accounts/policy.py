"""Who may do what in a team: one matrix, read by every view (through `Membership.can`) and shown on the
team page. A personal team is its owner's private space: nobody is invited into it and nobody leaves it."""

from enum import StrEnum

from django.db import models


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    MEMBER = "member", "Member"
    VIEWER = "viewer", "Viewer"


class Action(StrEnum):
    VIEW = "view"  # the team's gallery, jobs, image pages, media
    DOWNLOAD = "download"
    GENERATE = "generate"  # create, upload, variations, re-run, upscale: anything that spends credits
    SHARE = "share"  # create a public link to an image (and revoke one's own)
    MANAGE_SHARES = "manage_shares"  # revoke anyone's share links
    INVITE = "invite"
    REMOVE_MEMBER = "remove_member"  # below owner
    CHANGE_ROLE = "change_role"  # below owner, to a role below owner
    SET_ALLOWANCE = "set_allowance"
    VIEW_USAGE = "view_usage"
    VIEW_AUDIT = "view_audit"
    RENAME_TEAM = "rename_team"
    SET_KEY = "set_key"
    DELETE_KEY = "delete_key"
    TRANSFER_OWNERSHIP = "transfer_ownership"
    DELETE_TEAM = "delete_team"
    LEAVE = "leave"


_EVERYONE = {Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER}
_MAKERS = {Role.OWNER, Role.ADMIN, Role.MEMBER}
_ADMINS = {Role.OWNER, Role.ADMIN}
_OWNER = {Role.OWNER}

MATRIX: dict[Action, set[Role]] = {
    Action.VIEW: _EVERYONE,
    Action.DOWNLOAD: _EVERYONE,
    Action.GENERATE: _MAKERS,
    Action.SHARE: _MAKERS,
    Action.MANAGE_SHARES: _ADMINS,
    Action.INVITE: _ADMINS,
    Action.REMOVE_MEMBER: _ADMINS,
    Action.CHANGE_ROLE: _ADMINS,
    Action.SET_ALLOWANCE: _ADMINS,
    Action.VIEW_USAGE: _ADMINS,
    Action.VIEW_AUDIT: _ADMINS,
    Action.RENAME_TEAM: _ADMINS,
    Action.SET_KEY: _ADMINS,
    Action.DELETE_KEY: _OWNER,
    Action.TRANSFER_OWNERSHIP: _OWNER,
    Action.DELETE_TEAM: _OWNER,
    Action.LEAVE: _EVERYONE,  # the last owner cannot leave: services.membership_leave says so
}
# What makes no sense in a private space, whatever the role.
NOT_IN_PERSONAL_TEAMS = {
    Action.INVITE,
    Action.REMOVE_MEMBER,
    Action.CHANGE_ROLE,
    Action.SET_ALLOWANCE,
    Action.TRANSFER_OWNERSHIP,
    Action.DELETE_TEAM,
    Action.LEAVE,
}

# What the team page shows, one line an action a person would recognise.
ACTION_LABELS: dict[Action, str] = {
    Action.VIEW: "See the gallery, jobs and image pages",
    Action.DOWNLOAD: "Download images",
    Action.GENERATE: "Generate, upscale, make variations (spends credits)",
    Action.SHARE: "Share an image by public link",
    Action.MANAGE_SHARES: "Revoke anyone's share links",
    Action.INVITE: "Invite people",
    Action.REMOVE_MEMBER: "Remove members (below owner)",
    Action.CHANGE_ROLE: "Change roles (below owner)",
    Action.SET_ALLOWANCE: "Set monthly allowances",
    Action.VIEW_USAGE: "See the team's usage",
    Action.VIEW_AUDIT: "Read the audit log",
    Action.RENAME_TEAM: "Rename the team",
    Action.SET_KEY: "Set the team's Stability key",
    Action.DELETE_KEY: "Remove the team's Stability key",
    Action.TRANSFER_OWNERSHIP: "Transfer ownership",
    Action.DELETE_TEAM: "Delete the team",
    Action.LEAVE: "Leave the team",
}


def role_can(role: str, action: Action, *, personal: bool = False) -> bool:
    if personal and action in NOT_IN_PERSONAL_TEAMS:
        return False
    return role in MATRIX[action]


def matrix_rows() -> list[tuple[str, list[bool]]]:
    """(label, [owner, admin, member, viewer]) for the table on the team page."""
    roles = list(Role)
    return [(ACTION_LABELS[action], [role in MATRIX[action] for role in roles]) for action in Action]
