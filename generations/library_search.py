"""What the gallery shows: search, filters, sort and keyset pages, read from the URL.

A search ranks by PostgreSQL full-text search (the stored vectors `search_prompt` and `search_all`,
GIN-indexed) and, on SQLite,
matches every word or "phrase" with icontains and sorts newest first. Every filter is a condition on
GalleryImage's own columns, so filters combine freely and the pages walk an index however deep.
"""

import base64
import binascii
import json
import shlex
from dataclasses import dataclass, fields, replace
from datetime import date, datetime, time, timedelta
from typing import Any
from uuid import UUID

from django import forms
from django.db import connection
from django.db.models import BooleanField, Exists, F, FloatField, Func, OuterRef, Q, TextField, Value
from django.utils import timezone

from generations.models import (
    CollectionItem,
    Favourite,
    GalleryImage,
    GalleryImageQuerySet,
    NewerThan,
    OlderThan,
)

PAGE_SIZE = 24
ASPECTS = {"square": "Square", "landscape": "Landscape", "portrait": "Portrait"}
SORTS = {"relevance": "Best match", "newest": "Newest first", "oldest": "Oldest first"}
FILTERED = {"hide": "Hide filtered", "only": "Only filtered"}
NO_STYLE = "none"  # the URL's name for "no style preset"


class WebSearchQuery(Func):
    """websearch_to_tsquery: words, "quoted phrases", -exclusions and `or`, as people type in a search box."""

    template = "websearch_to_tsquery('english'::regconfig, %(expressions)s)"
    output_field = TextField()


class Matches(Func):
    """tsvector @@ tsquery"""

    template = "(%(expressions)s)"
    arg_joiner = " @@ "
    output_field = BooleanField()


class Rank(Func):
    function = "ts_rank"
    output_field = FloatField()


@dataclass(frozen=True)
class Filters:
    """The gallery's search, filters and sort, as read from the URL. None means "any"."""

    text: str = ""
    negatives: bool = False
    creator: int | None = None
    engine: str | None = None
    style: str | None = None  # "" is "no style preset"
    kind: str | None = None
    size: tuple[int, int] | None = None
    aspect: str | None = None
    filtered: str | None = None
    favourites: bool = False
    collection: int | None = None
    since: date | None = None
    until: date | None = None
    sort: str = "newest"

    @property
    def ranked(self) -> bool:
        return self.sort == "relevance" and bool(self.text) and connection.vendor == "postgresql"

    def without(self, *names: str) -> "Filters":
        return replace(self, **{name: _default(name) for name in names})

    def is_active(self, name: str) -> bool:
        return getattr(self, name) != _default(name)

    @property
    def any_active(self) -> bool:
        return any(self.is_active(f.name) for f in fields(self) if f.name not in ("sort", "negatives"))


def _default(name: str) -> Any:
    return Filters.__dataclass_fields__[name].default


class FilterForm(forms.Form):
    """The gallery's query string. Unknown values simply match nothing; a wrong date is said at its field."""

    q = forms.CharField(required=False, max_length=200, strip=True)
    negatives = forms.BooleanField(required=False)
    creator = forms.IntegerField(required=False, min_value=1)
    engine = forms.CharField(required=False, max_length=100)
    style = forms.CharField(required=False, max_length=40)
    kind = forms.ChoiceField(required=False, choices=[("", "Any"), *GalleryImage.Kind.choices])
    size = forms.RegexField(required=False, regex=r"^\d{2,5}x\d{2,5}$")
    aspect = forms.ChoiceField(required=False, choices=[("", "Any"), *ASPECTS.items()])
    filtered = forms.ChoiceField(required=False, choices=[("", "Any"), *FILTERED.items()])
    favourites = forms.BooleanField(required=False)
    collection = forms.IntegerField(required=False, min_value=1)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    sort = forms.ChoiceField(required=False, choices=list(SORTS.items()))
    who = forms.CharField(required=False)  # ?who=mine, the gallery's first filter, still works

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        since, until = data.get("since"), data.get("until")
        if since and until and since > until:
            self.add_error("until", "The end date is before the start date.")
        return data

    def filters(self, user_id: int) -> Filters:
        """The valid part of the query: a field with an error is left out (and says so beside it)."""
        data = self.cleaned_data if hasattr(self, "cleaned_data") else {}
        size = data.get("size")
        style = data.get("style") or None
        creator = data.get("creator") or (user_id if data.get("who") == "mine" else None)
        text = data.get("q") or ""
        sort = data.get("sort") or ("relevance" if text else "newest")
        return Filters(
            text=text,
            negatives=bool(data.get("negatives")),
            creator=creator,
            engine=data.get("engine") or None,
            style="" if style == NO_STYLE else style,
            kind=data.get("kind") or None,
            size=tuple(int(side) for side in size.split("x")) if size else None,  # type: ignore[arg-type]
            aspect=data.get("aspect") or None,
            filtered=data.get("filtered") or None,
            favourites=bool(data.get("favourites")),
            collection=data.get("collection"),
            since=data.get("since"),
            until=data.get("until") if "until" not in self.errors else None,
            sort=sort,
        )


def filters_from(query: Any, user_id: int) -> tuple[FilterForm, Filters]:
    form = FilterForm(query)
    form.is_valid()
    return form, form.filters(user_id)


def search_terms(text: str) -> tuple[list[str], list[str]]:
    """Words and "phrases" to find, and -words to leave out: the SQLite reading of a search."""
    try:
        parts = shlex.split(text)
    except ValueError:  # an unclosed quote
        parts = text.replace('"', " ").split()
    wanted = [part for part in parts if not part.startswith("-") and part.lower() != "or"]
    unwanted = [part[1:] for part in parts if part.startswith("-") and len(part) > 1]
    return wanted, unwanted


def _vector(filters: Filters, prefix: str = "") -> F:
    """The prompt's words; with negative prompts too when asked."""
    return F(f"{prefix}search_all" if filters.negatives else f"{prefix}search_prompt")


def _text_q(filters: Filters, prefix: str) -> Q:
    if connection.vendor == "postgresql":
        return Q(Matches(_vector(filters, prefix), WebSearchQuery(Value(filters.text))))
    wanted, unwanted = search_terms(filters.text)
    columns = ["prompt_text", "negative_text"] if filters.negatives else ["prompt_text"]
    condition = Q()
    for term in wanted:
        condition &= _any_column(columns, prefix, term)
    for term in unwanted:
        condition &= ~_any_column(columns, prefix, term)
    return condition


def _any_column(columns: list[str], prefix: str, term: str) -> Q:
    found = Q()
    for column in columns:
        found |= Q(**{f"{prefix}{column}__icontains": term})
    return found


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def facets_q(filters: Filters, prefix: str = "") -> Q:
    """The facets copied from the job (creator, engine, style, kind, size, aspect) as one condition, on
    GalleryImage, GalleryTally or an ImageFacts copy alike: they share these column names."""
    p = prefix
    condition = Q()
    if filters.creator is not None:
        condition &= Q(**{f"{p}created_by_id": filters.creator})
    if filters.engine is not None:
        condition &= Q(**{f"{p}engine_id": filters.engine})
    if filters.style is not None:
        condition &= Q(**{f"{p}style_preset": filters.style})
    if filters.kind is not None:
        condition &= Q(**{f"{p}kind": filters.kind})
    if filters.size is not None:
        condition &= Q(**{f"{p}width": filters.size[0], f"{p}height": filters.size[1]})
    if filters.aspect is not None:
        condition &= aspect_q(filters.aspect, p)
    return condition


def filters_q(filters: Filters, user_id: int, prefix: str = "") -> Q:
    """Every active filter as one condition on GalleryImage, through `prefix` (e.g. "image__") from a row
    that points at an image."""
    p = prefix
    condition = facets_q(filters, p)
    if filters.text:
        condition &= _text_q(filters, p)
    if filters.filtered == "only":
        condition &= Q(**{f"{p}finish_reason": "CONTENT_FILTERED"})
    elif filters.filtered == "hide":
        condition &= ~Q(**{f"{p}finish_reason": "CONTENT_FILTERED"})
    if filters.since is not None:
        condition &= Q(**{f"{p}created_at__gte": _day_start(filters.since)})
    if filters.until is not None:
        condition &= Q(**{f"{p}created_at__lt": _day_start(filters.until + timedelta(days=1))})
    if filters.favourites:
        starred = Favourite.objects.filter(user_id=user_id, image=OuterRef(f"{p}pk" if p else "pk"))
        condition &= Q(Exists(starred))
    if filters.collection is not None:
        held = CollectionItem.objects.filter(
            collection_id=filters.collection, image=OuterRef(f"{p}pk" if p else "pk")
        )
        condition &= Q(Exists(held))
    return condition


def aspect_q(aspect: str, prefix: str = "") -> Q:
    width, height = F(f"{prefix}width"), F(f"{prefix}height")
    if aspect == "square":
        return Q(**{f"{prefix}width": height})
    if aspect == "landscape":
        return Q(**{f"{prefix}width__gt": height})
    return Q(**{f"{prefix}height__gt": width})


def aspect_of(width: int, height: int) -> str:
    return "square" if width == height else "landscape" if width > height else "portrait"


def matching(images: GalleryImageQuerySet, filters: Filters, user_id: int) -> GalleryImageQuerySet:
    """The live images that pass every filter, unordered."""
    return images.live().filter(filters_q(filters, user_id))


def ordered(images: GalleryImageQuerySet, filters: Filters) -> GalleryImageQuerySet:
    if filters.ranked:
        ranked = images.annotate(rank=Rank(_vector(filters), WebSearchQuery(Value(filters.text))))
        return ranked.order_by("-rank", "-created_at", "-id")
    if filters.sort == "oldest":
        return images.order_by("created_at", "id")
    return images.order_by("-created_at", "-id")


# --- keyset pages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: just after this image in the page's order."""

    sort: str
    created_at: datetime
    pk: UUID
    rank: float | None = None

    def encode(self) -> str:
        raw = [self.sort, self.created_at.isoformat(), str(self.pk), self.rank]
        return base64.urlsafe_b64encode(json.dumps(raw).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> "Cursor | None":
        try:
            padded = value + "=" * (-len(value) % 4)
            sort, created_at, pk, rank = json.loads(base64.urlsafe_b64decode(padded.encode()))
            return cls(
                str(sort), datetime.fromisoformat(created_at), UUID(pk), None if rank is None else float(rank)
            )
        except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
            return None


def page_sort(filters: Filters) -> str:
    return "relevance" if filters.ranked else ("oldest" if filters.sort == "oldest" else "newest")


def after_cursor(images: GalleryImageQuerySet, filters: Filters, cursor: Cursor) -> GalleryImageQuerySet:
    """The images after the cursor in the page's order (the query must already be `ordered`)."""
    sort = page_sort(filters)
    if cursor.sort != sort:  # a cursor from another order (an edited URL): start again
        return images
    at, pk = cursor.created_at, cursor.pk
    # Row values, (created_at, id) < (at, pk): the index's range starts at the cursor, so that a deep page
    # costs what the first does (see GalleryImageQuerySet.before).
    if sort == "oldest":
        return images.filter(NewerThan(at, pk))
    if sort == "relevance" and cursor.rank is not None:
        return images.filter(Q(rank__lt=cursor.rank) | Q(Q(rank=cursor.rank), OlderThan(at, pk)))
    return images.filter(OlderThan(at, pk))


def cursor_of(image: GalleryImage, filters: Filters) -> str:
    rank = getattr(image, "rank", None)
    return Cursor(page_sort(filters), image.created_at, image.pk, rank).encode()


# What a tile and the next page's cursor read (generations/library_tiles.py): not the job's copied facts,
# the search vectors or the creator's password.
TILE_COLUMNS = (
    "id",
    "team_id",
    "created_at",
    "image",
    "thumbnail",
    "width",
    "height",
    "finish_reason",
    "prompt_text",
    "created_by__username",
)


def page_of(
    images: GalleryImageQuerySet, filters: Filters, before: str, user_id: int
) -> tuple[list[GalleryImage], str]:
    """One page of the gallery and the cursor of the next ("" at the end): one query."""
    query = ordered(matching(images, filters, user_id), filters)
    cursor = Cursor.decode(before) if before else None
    if cursor is not None:
        query = after_cursor(query, filters, cursor)
    starred = Favourite.objects.filter(user_id=user_id, image=OuterRef("pk"))
    listing = query.for_listing().only(*TILE_COLUMNS).annotate(is_favourite=Exists(starred))
    rows = list(listing[: PAGE_SIZE + 1])
    next_cursor = cursor_of(rows[PAGE_SIZE - 1], filters) if len(rows) > PAGE_SIZE else ""
    return rows[:PAGE_SIZE], next_cursor
