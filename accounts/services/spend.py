"""What members spend: credits used this month, the monthly allowance an admin may set, and the team's
usage by member and month."""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.db import transaction
from django.db.models import Case, Count, DecimalField, F, Q, Sum, When
from django.utils import timezone

from accounts.models import AuditEvent, Membership, Team, User
from accounts.services.teams import TeamRuleBroken, audit_record


def credits_text(value: Decimal | None) -> str:
    """Credits as a person reads them, as templates' floatformat:"-2" shows them: 50, 12.40, 0.80."""
    if value is None:
        return "no limit"
    rounded = Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    return f"{rounded:f}".removesuffix(".00")


@dataclass(frozen=True)
class AllowanceExceeded(Exception):
    allowance: Decimal
    used: Decimal
    cost: Decimal

    @property
    def message(self) -> str:
        return (
            f"This job would cost {credits_text(self.cost)} credits, and your monthly allowance in this team "
            f"is {credits_text(self.allowance)} credits, of which {credits_text(self.used)} are used. "
            "Ask an admin to raise it, or make fewer or smaller images."
        )


def month_start(now: datetime | None = None) -> datetime:
    now = timezone.localtime(now or timezone.now())
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def previous_month_start(start: datetime) -> datetime:
    return month_start(start - timedelta(days=1))


def credits_used(*, team: Team | int, user: User | int, since: datetime) -> Decimal:
    """Spent by finished jobs, plus the estimate of jobs still queued or running (they will spend it)."""
    from generations.models import GenerationJob

    in_flight = [GenerationJob.Status.QUEUED, GenerationJob.Status.RUNNING]
    total = GenerationJob.objects.filter(team=team, created_by=user, created_at__gte=since).aggregate(
        used=Sum(
            Case(
                When(status__in=in_flight, then=F("credits_estimated")),
                default=F("credits_spent"),
                output_field=DecimalField(max_digits=14, decimal_places=6),
            )
        )
    )["used"]
    return total or Decimal(0)


@dataclass(frozen=True)
class AllowanceLeft:
    allowance: Decimal
    used: Decimal

    @property
    def remaining(self) -> Decimal:
        return max(self.allowance - self.used, Decimal(0))


def allowance_left(*, membership: Membership) -> AllowanceLeft | None:
    """What the member may still spend this month, or None when they have no allowance."""
    if membership.monthly_allowance is None:
        return None
    used = credits_used(team=membership.team_id, user=membership.user_id, since=month_start())
    return AllowanceLeft(allowance=membership.monthly_allowance, used=used)


def allowance_check(*, team: Team, user: User, cost: Decimal) -> None:
    """Refuse, before anything is sent, a job that would take the member past their monthly allowance."""
    with transaction.atomic():
        # The membership row is locked until the caller's transaction stores the job, so two jobs asked for
        # at once are counted one after the other (PostgreSQL; SQLite serialises writers anyway).
        allowance = (
            Membership.objects.select_for_update()
            .filter(team=team, user=user)
            .values_list("monthly_allowance", flat=True)
            .first()
        )
        if allowance is None:
            return
        used = credits_used(team=team, user=user, since=month_start())
        if used + cost > allowance:
            raise AllowanceExceeded(allowance=allowance, used=used, cost=cost)


@transaction.atomic
def membership_allowance_set(
    *, actor: Membership, membership: Membership, allowance: Decimal | None
) -> Membership:
    """Set (or, with None, lift) a member's monthly allowance, and note it in the audit log."""
    if membership.team_id != actor.team_id:
        raise Membership.DoesNotExist
    if membership.is_owner and not actor.is_owner:
        raise TeamRuleBroken("Only an owner can set an owner's allowance.")
    if allowance is not None and allowance < 0:
        raise ValueError("an allowance cannot be negative")
    previous = membership.monthly_allowance
    if previous == allowance:
        return membership
    membership.monthly_allowance = allowance
    membership.save(update_fields=["monthly_allowance"])
    audit_record(
        team=membership.team,
        actor=actor.user,
        action=AuditEvent.Action.ALLOWANCE_CHANGED,
        summary=f"{membership.user.username}'s monthly allowance: {credits_text(previous)} → "
        f"{credits_text(allowance)}" + (" credits" if allowance is not None else ""),
    )
    return membership


# --- usage -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    credits: Decimal = Decimal(0)
    jobs: int = 0
    images: int = 0
    # Requests that got no answer (a timeout, a dead worker): the API may have charged them.
    possibly: Decimal = Decimal(0)

    def __add__(self, other: "Usage") -> "Usage":
        return Usage(
            self.credits + other.credits,
            self.jobs + other.jobs,
            self.images + other.images,
            self.possibly + other.possibly,
        )


@dataclass(frozen=True)
class MemberUsage:
    user: User
    membership: Membership | None  # None: no longer in the team, though their jobs still count
    months: tuple[Usage, ...]


@dataclass(frozen=True)
class TeamUsage:
    months: tuple[datetime, ...]  # the first moment of each month, this month first
    rows: list[MemberUsage] = field(default_factory=list)

    @property
    def totals(self) -> tuple[Usage, ...]:
        totals = [Usage() for _ in self.months]
        for row in self.rows:
            totals = [total + usage for total, usage in zip(totals, row.months, strict=True)]
        return tuple(totals)


def team_usage(*, team: Team, now: datetime | None = None) -> TeamUsage:
    """Credits spent, jobs and images per member for this month and last, by when each job was asked for.
    Four or five queries, however many members and jobs: jobs and images are counted by the database."""
    from generations.models import ApiRequest, GalleryImage, GenerationJob

    this_month = month_start(now)
    months = (this_month, previous_month_start(this_month))
    periods = [Q(created_at__gte=months[0]), Q(created_at__gte=months[1], created_at__lt=months[0])]

    def spent(index: int) -> Sum:
        return Sum("credits_spent", filter=periods[index], default=Decimal(0))

    counts: dict[int, dict[str, Any]] = defaultdict(dict)
    by_member = (
        GenerationJob.objects.filter(team=team, created_at__gte=months[1])
        .order_by()
        .values("created_by")
        .annotate(
            credits_0=spent(0),
            credits_1=spent(1),
            jobs_0=Count("pk", filter=periods[0]),
            jobs_1=Count("pk", filter=periods[1]),
        )
    )
    for row in by_member:
        counts[row["created_by"]].update(row)
    # Images counted apart: joined to the jobs above, each job's credits would count once per image.
    image_periods = [
        Q(job__created_at__gte=months[0]),
        Q(job__created_at__gte=months[1], job__created_at__lt=months[0]),
    ]
    images_by_member = (
        GalleryImage.objects.filter(team=team, job__created_at__gte=months[1])
        .order_by()
        .values("created_by")
        .annotate(
            images_0=Count("pk", filter=image_periods[0]), images_1=Count("pk", filter=image_periods[1])
        )
    )
    for image_row in images_by_member:
        counts[image_row["created_by"]].update(image_row)
    request_periods = [
        Q(job__created_at__gte=months[0]),
        Q(job__created_at__gte=months[1], job__created_at__lt=months[0]),
    ]
    unanswered = (
        ApiRequest.objects.filter(
            job__team=team, job__created_at__gte=months[1], outcome=ApiRequest.Outcome.UNKNOWN
        )
        .order_by()
        .values("job__created_by")
        .annotate(
            possibly_0=Sum("credits", filter=request_periods[0], default=Decimal(0)),
            possibly_1=Sum("credits", filter=request_periods[1], default=Decimal(0)),
        )
    )
    for request_row in unanswered:
        counts[request_row["job__created_by"]].update(request_row)
    memberships = list(Membership.objects.filter(team=team).select_related("user"))
    people: dict[int, tuple[User, Membership | None]] = {m.user_id: (m.user, m) for m in memberships}
    if former := set(counts) - set(people):
        people.update({user.pk: (user, None) for user in User.objects.filter(pk__in=former)})

    def usage(user_id: int, index: int) -> Usage:
        found = counts.get(user_id, {})
        return Usage(
            credits=found.get(f"credits_{index}", Decimal(0)),
            jobs=found.get(f"jobs_{index}", 0),
            images=found.get(f"images_{index}", 0),
            possibly=found.get(f"possibly_{index}", Decimal(0)),
        )

    rows = [
        MemberUsage(user=user, membership=membership, months=(usage(user_id, 0), usage(user_id, 1)))
        for user_id, (user, membership) in people.items()
    ]
    rows.sort(key=lambda row: (row.membership is None, row.user.username.lower()))
    return TeamUsage(months=months, rows=rows)
