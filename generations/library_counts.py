"""How many images each filter of the gallery would leave, in one query.

Each count answers "if I chose this too": the other filters apply, the filter's own choice does not (so
a chosen engine still shows how many the other engines have). The query is a UNION ALL of parts:

- "all": the images passing the filters, grouped by creator, engine, style, kind, size and
  filtered-or-not (the "tallied" facets); the counts of those facets, aspect and the total are summed
  from these combinations (GROUPING SETS on PostgreSQL, here in Python on SQLite).
- "favourites": how many of the person's starred images pass every other filter.
- "collection": each collection of the team, and how many of its images pass every other filter.

What each part reads depends on the filters, so that none reads every image of a large library:
without a search or dates, the combinations come from GalleryTally (a few thousand rows however many
images), or from the favourites' or collection items' copies of their images' facts (ImageFacts);
with a search or dates, from the images that match them (a GIN or date index narrows those first).
"""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db import connection
from django.db.models import CharField, Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Value
from django.db.models.functions import Cast

from accounts.models import Team, User
from generations.labels import engine_name
from generations.library_search import (
    ASPECTS,
    FILTERED,
    NO_STYLE,
    Filters,
    _day_start,
    aspect_of,
    facets_q,
    filters_q,
)
from generations.models import Collection, CollectionItem, Favourite, GalleryImage, GalleryTally

# Filters only the images themselves can answer.
NEEDS_IMAGES = ("text", "since", "until")
UNTALLIED = ("text", "since", "until", "favourites", "collection")
COLUMNS = ("tag", "ref", "label", "creator", "engine", "style", "kind", "width", "height", "filtered", "n")
KIND_LABELS = dict(GalleryImage.Kind.choices)


@dataclass
class Option:
    value: str
    label: str
    count: int
    selected: bool = False

    @property
    def shown(self) -> str:
        return f"{self.count:,}"


@dataclass
class Counts:
    total: int = 0
    facets: dict[str, list[Option]] = field(default_factory=dict)
    favourites: int = 0
    collections: list[Option] = field(default_factory=list)

    @property
    def total_shown(self) -> str:
        return f"{self.total:,}"

    @property
    def favourites_shown(self) -> str:
        return f"{self.favourites:,}"

    def selected(self, name: str) -> Option | None:
        options = self.collections if name == "collection" else self.facets.get(name, [])
        return next((option for option in options if option.selected), None)


def _shape(query: QuerySet[Any], **columns: Any) -> QuerySet[Any]:
    """A part of the union (SQLite): the same columns, in the same order, in every part."""
    blank: dict[str, Any] = {
        "tag": Value("", output_field=CharField()),
        "ref": Value(0, output_field=IntegerField()),
        "label": Value("", output_field=CharField()),
        "creator": Value(0, output_field=IntegerField()),
        "engine": Value("", output_field=CharField()),
        "style": Value("", output_field=CharField()),
        "kind": Value("", output_field=CharField()),
        "width": Value(0, output_field=IntegerField()),
        "height": Value(0, output_field=IntegerField()),
        "filtered": Value(False),
    }
    blank.update(columns)
    n = blank.pop("n")
    grouped = query.annotate(**{f"c_{name}": value for name, value in blank.items()})
    names = [f"c_{name}" for name in COLUMNS[:-1]]
    return grouped.values(*names).annotate(c_n=n).values_list(*names, "c_n").order_by()


def _dimensions(prefix: str, filtered: Any) -> dict[str, Any]:
    """The tallied facets of a source: GalleryImage and GalleryTally (prefix ""), or an ImageFacts copy
    ("image_")."""
    return {
        "label": F(f"{prefix}created_by__username"),
        "creator": F(f"{prefix}created_by_id"),
        "engine": F(f"{prefix}engine_id"),
        "style": F(f"{prefix}style_preset"),
        "kind": F(f"{prefix}kind"),
        "width": F(f"{prefix}width"),
        "height": F(f"{prefix}height"),
        "filtered": filtered,
    }


def tallied_q(filters: Filters, prefix: str = "") -> Q:
    """The tallied facets' filters on GalleryTally (prefix "") or an ImageFacts copy ("image_")."""
    condition = facets_q(filters, prefix)
    if filters.filtered is not None:
        condition &= Q(**{f"{prefix}filtered": filters.filtered == "only"})
    return condition


def _needs_images(filters: Filters) -> bool:
    return any(filters.is_active(name) for name in NEEDS_IMAGES)


def _starred(user_id: int, image: str) -> Q:
    return Q(Exists(Favourite.objects.filter(user_id=user_id, image_id=OuterRef(image))))


def _combinations(team: Team, filters: Filters, user_id: int) -> QuerySet[Any]:
    """The "all" part: what passes the search, dates, favourites and collection, by tallied facets."""
    if _needs_images(filters):
        untallied = Filters(**{name: getattr(filters, name) for name in (*UNTALLIED, "negatives")})
        images = GalleryImage.objects.for_team(team).live().filter(filters_q(untallied, user_id))
        shape = _dimensions("", Q(finish_reason="CONTENT_FILTERED"))
        return _shape(images, tag=Value("all"), n=Count("pk"), **shape)
    copied = _dimensions("image_", F("image_filtered"))
    if filters.collection is not None:
        items = CollectionItem.objects.filter(
            collection_id=filters.collection, collection__team=team, image_live=True
        )
        if filters.favourites:
            items = items.filter(_starred(user_id, "image_id"))
        return _shape(items, tag=Value("all"), n=Count("pk"), **copied)
    if filters.favourites:
        starred = Favourite.objects.filter(user_id=user_id, image_team_id=team.pk, image_live=True)
        return _shape(starred, tag=Value("all"), n=Count("pk"), **copied)
    tally = GalleryTally.objects.filter(team=team, count__gt=0)
    shape = _dimensions("", F("filtered"))
    return _shape(tally, tag=Value("all"), n=Cast(F("count"), IntegerField()), **shape)


def _favourites(team: Team, filters: Filters, user_id: int) -> QuerySet[Any]:
    """The "favourites" part: the person's starred images that pass every other filter."""
    if _needs_images(filters):
        others = filters_q(filters.without("favourites"), user_id, prefix="image__")
        starred = Favourite.objects.filter(
            others, user_id=user_id, image__team=team, image__trashed_at__isnull=True
        )
    else:
        starred = Favourite.objects.filter(
            tallied_q(filters, "image_"), user_id=user_id, image_team_id=team.pk, image_live=True
        )
        if filters.collection is not None:
            held = CollectionItem.objects.filter(
                collection_id=filters.collection, image_id=OuterRef("image_id")
            )
            starred = starred.filter(Exists(held))
    return _shape(starred, tag=Value("favourites"), n=Count("pk"))


def _collections(team: Team, filters: Filters, user_id: int) -> tuple[QuerySet[Any], QuerySet[Any] | None]:
    """The "collection" parts: every collection of the team by name, and how many of each one's images
    pass every other filter (collections without such images have no row there; with no other filter,
    the collections' stored counts, and no second part)."""
    # No other filter: each collection's stored count of live images is the answer, without its items.
    unfiltered = not filters.without("collection").any_active
    names = _shape(
        Collection.objects.for_team(team),
        tag=Value("collection"),
        ref=F("pk"),
        label=F("name"),
        n=F("live_count") if unfiltered else Value(0),
    )
    if unfiltered:
        return names, None
    items = CollectionItem.objects.filter(collection__team=team, image_live=True)
    if _needs_images(filters):
        # trashed_at too, though image_live says it: the partial indexes of live images need it said.
        others = filters_q(filters.without("collection"), user_id, prefix="image__")
        items = items.filter(others, image__trashed_at__isnull=True)
    else:
        items = items.filter(tallied_q(filters, "image_"))
        if filters.favourites:
            items = items.filter(_starred(user_id, "image_id"))
    held = _shape(items, tag=Value("collection"), ref=F("collection_id"), n=Count("pk"))
    return names, held


def library_counts(team: Team, filters: Filters, user_id: int) -> Counts:
    """The counts beside every filter of the gallery, and the total: one query."""
    counts = Counts()
    tallies: dict[str, Counter[str]] = defaultdict(Counter)
    creators: dict[str, str] = {}
    collections_by_id: dict[int, Option] = {}
    combination_rows: list[tuple[Any, ...]] = []
    if connection.vendor == "postgresql":
        rows = _grouped_on_postgresql(_PostgresParts(team.pk, filters, user_id), filters)
    else:
        combinations = _combinations(team, filters, user_id)
        favourites, (collections, held) = (
            _favourites(team, filters, user_id),
            _collections(team, filters, user_id),
        )
        parts = [favourites, collections] + ([held] if held is not None else [])
        rows = list(combinations.union(*parts, all=True))
        combination_rows = [row[2:] for row in rows if row[0] == "all"]
    for tag, ref, label, creator, *rest in rows:
        n = rest[6]  # rest: engine, style, kind, width, height, filtered, n, and per facet on PostgreSQL
        if tag == "favourites":
            counts.favourites = n
        elif tag == "collection":
            option = collections_by_id.setdefault(ref, Option(str(ref), label, 0, ref == filters.collection))
            option.label = option.label or label
            option.count += n
        elif tag == "grouped":
            facet = _grouped_facet(ref)
            if facet is None:
                counts.total = n or 0
                continue
            if facet == "creator":
                creators[str(creator)] = label
            value = rest[-1] if facet == "aspect" else FACET_VALUES[facet]((label, creator, *rest))
            if per_facet := rest[7 + FACETS.index(facet)]:
                tallies[facet][value] += per_facet
    if combination_rows:
        counts.total = _sum_in_python(tallies, creators, combination_rows, filters)
    counts.collections = sorted(collections_by_id.values(), key=lambda option: option.label.lower())
    _options(counts, tallies, creators, filters)
    return counts


# Each facet: how a combination (label, creator, engine, style, kind, width, height, filtered, n, ...)
# reads it, in the order of the GROUPING SETS below.
FACET_VALUES = {
    "creator": lambda c: str(c[1]),
    "engine": lambda c: c[2],
    "style": lambda c: c[3] or NO_STYLE,
    "kind": lambda c: c[4],
    "size": lambda c: f"{c[5]}x{c[6]}",
    "aspect": lambda c: aspect_of(c[5], c[6]),
    "filtered": lambda c: "only" if c[7] else "hide",
}
FACETS = list(FACET_VALUES)
# Per facet: the SQL that tests a combination (c) against the chosen value, and its parameters.
ASPECT_SQL = (
    "CASE WHEN c.c_width = c.c_height THEN 'square' WHEN c.c_width > c.c_height THEN 'landscape' "
    "ELSE 'portrait' END"
)


def _chosen(filters: Filters) -> dict[str, str]:
    """The chosen value of each tallied facet, as FACET_VALUES reads it."""
    chosen: dict[str, str] = {}
    if filters.creator is not None:
        chosen["creator"] = str(filters.creator)
    if filters.engine is not None:
        chosen["engine"] = filters.engine
    if filters.style is not None:
        chosen["style"] = filters.style or NO_STYLE
    if filters.kind is not None:
        chosen["kind"] = filters.kind
    if filters.size is not None:
        chosen["size"] = f"{filters.size[0]}x{filters.size[1]}"
    if filters.aspect is not None:
        chosen["aspect"] = filters.aspect
    if filters.filtered is not None:
        chosen["filtered"] = filters.filtered
    return chosen


def _chosen_sql(filters: Filters) -> dict[str, tuple[str, list[Any]]]:
    chosen: dict[str, tuple[str, list[Any]]] = {}
    if filters.creator is not None:
        chosen["creator"] = ("c.c_creator = %s", [filters.creator])
    if filters.engine is not None:
        chosen["engine"] = ("c.c_engine = %s", [filters.engine])
    if filters.style is not None:
        chosen["style"] = ("c.c_style = %s", [filters.style])
    if filters.kind is not None:
        chosen["kind"] = ("c.c_kind = %s", [filters.kind])
    if filters.size is not None:
        chosen["size"] = ("c.c_width = %s AND c.c_height = %s", list(filters.size))
    if filters.aspect is not None:
        chosen["aspect"] = ("c.c_aspect = %s", [filters.aspect])
    if filters.filtered is not None:
        chosen["filtered"] = ("c.c_filtered = %s", [filters.filtered == "only"])
    return chosen


def _grouped_on_postgresql(parts: "_PostgresParts", filters: Filters) -> list[tuple[Any, ...]]:
    """One scan of the combinations: GROUPING SETS give each facet's counts, each summed (FILTER) over the
    combinations that pass every chosen filter but the facet's own; the favourites and collections parts
    follow with UNION ALL. Columns: tag, ref (the GROUPING bits), label, creator, engine, style, kind, width,
    height, filtered, total, one count per facet, aspect."""
    chosen = _chosen_sql(filters)
    params: list[Any] = []
    sums: list[str] = []
    # A facet not chosen sums what the total sums: each distinct sum is computed once (its parameters
    # would make PostgreSQL see copies as different aggregates) and copied to its facets' columns below.
    sum_of: dict[str | None, int] = {}
    for facet in [None, *FACETS]:
        if facet is not None and facet not in chosen:
            sum_of[facet] = 0
            continue
        sum_of[facet] = len(sums)
        tests = [test for name, test in chosen.items() if name != facet]
        sums.append(f"SUM(c.c_n) FILTER (WHERE {' AND '.join(sql for sql, _ in tests) or 'TRUE'})")
        params.extend(value for _, values in tests for value in values)
    combinations_sql, combinations_params = parts.combinations()
    dimensions = (
        "NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::integer, NULL::integer, NULL::boolean"
    )
    padding = ", ".join(["NULL::bigint"] * (len(sums) - 1) + ["NULL::text"])
    named_sums = ", ".join(f"{sql} AS s{number}" for number, sql in enumerate(sums))
    sum_columns = ", ".join(f"g.s{number}" for number in range(len(sums)))
    sql = f"""
        SELECT 'grouped', g.bits, COALESCE(u.username, ''), g.c_creator, g.c_engine, g.c_style, g.c_kind,
               g.c_width, g.c_height, g.c_filtered, {sum_columns}, g.c_aspect
        FROM (
            SELECT GROUPING(c.c_creator, c.c_engine, c.c_style, c.c_kind, c.c_width, c.c_aspect,
                   c.c_filtered) AS bits, c.c_creator, c.c_engine, c.c_style, c.c_kind, c.c_width, c.c_height,
                   c.c_filtered, {named_sums}, c.c_aspect
            FROM (SELECT c.*, {ASPECT_SQL} AS c_aspect FROM ({combinations_sql}) c) c
            GROUP BY GROUPING SETS ((c.c_creator), (c.c_engine), (c.c_style), (c.c_kind),
                                    (c.c_width, c.c_height), (c.c_aspect), (c.c_filtered), ())
        ) g
        LEFT JOIN {connection.ops.quote_name(User._meta.db_table)} u ON u.id = g.c_creator
    """
    params = [*params, *combinations_params]
    for part_sql, part_params in parts.others():
        columns = f"f.c_tag, f.c_ref, f.c_label, {dimensions}, f.c_n, {padding}"
        sql += f" UNION ALL SELECT {columns} FROM ({part_sql}) f"
        params.extend(part_params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    first = 10  # tag, ref, label, creator, engine, style, kind, width, height, filtered
    positions = [first + sum_of[facet] for facet in [None, *FACETS]]
    return [(*row[:first], *(row[position] for position in positions), row[-1]) for row in rows]


def _table(model: Any) -> str:
    return connection.ops.quote_name(model._meta.db_table)


class _PostgresParts:
    """The parts of the counts query, as SQL (PostgreSQL): written here, not built through querysets,
    since every gallery page runs them (the querysets cost about 3 ms of Python a page). Each condition is
    the one filters_q, tallied_q and the SQLite parts above make; the tests compare every count with the
    rows it stands for, on both databases."""

    def __init__(self, team_id: int, filters: Filters, user_id: int) -> None:
        self.team_id, self.filters, self.user_id = team_id, filters, user_id
        self.images, self.tally = _table(GalleryImage), _table(GalleryTally)
        self.favourite, self.item = _table(Favourite), _table(CollectionItem)
        self.collection = _table(Collection)

    def facets(self, column: str, *, on_images: bool, params: list[Any]) -> str:
        """The tallied facets' conditions, AND-ed (a leading " AND " each): on the images (column "i.") or on
        a table of their copies (column "f.image_", or "t." for the tally)."""
        f, sql = self.filters, []
        for value, name in (
            (f.creator, "created_by_id"),
            (f.engine, "engine_id"),
            (f.style, "style_preset"),
            (f.kind, "kind"),
        ):
            if value is not None:
                sql.append(f"{column}{name} = %s")
                params.append(value)
        if f.size is not None:
            sql.append(f"{column}width = %s AND {column}height = %s")
            params.extend(f.size)
        if f.aspect is not None:
            width, height = f"{column}width", f"{column}height"
            sql.append(
                {"square": f"{width} = {height}", "landscape": f"{width} > {height}"}.get(
                    f.aspect, f"{height} > {width}"
                )
            )
        if f.filtered is not None:
            if on_images:
                sql.append(f"i.finish_reason {'=' if f.filtered == 'only' else '<>'} 'CONTENT_FILTERED'")
            else:
                sql.append(f"{column}filtered = %s")
                params.append(f.filtered == "only")
        return "".join(f" AND {condition}" for condition in sql)

    def untallied(self, params: list[Any], *, but: str = "") -> str:
        """Search, dates, favourites and collection on the images (alias i), AND-ed; `but` one of them."""
        f, sql = self.filters, []
        if f.text:
            vector = "search_all" if f.negatives else "search_prompt"
            sql.append(f"i.{vector} @@ websearch_to_tsquery('english'::regconfig, %s)")
            params.append(f.text)
        if f.since is not None:
            sql.append("i.created_at >= %s")
            params.append(_day_start(f.since))
        if f.until is not None:
            sql.append("i.created_at < %s")
            params.append(_day_start(f.until + timedelta(days=1)))
        if f.favourites and but != "favourites":
            sql.append(self._starred("i.id", params))
        if f.collection is not None and but != "collection":
            sql.append(self._held("i.id", params))
        return "".join(f" AND {condition}" for condition in sql)

    def _starred(self, image: str, params: list[Any]) -> str:
        params.append(self.user_id)
        return f"EXISTS (SELECT 1 FROM {self.favourite} s WHERE s.user_id = %s AND s.image_id = {image})"

    def _held(self, image: str, params: list[Any]) -> str:
        params.append(self.filters.collection)
        return f"EXISTS (SELECT 1 FROM {self.item} h WHERE h.collection_id = %s AND h.image_id = {image})"

    def combinations(self) -> tuple[str, list[Any]]:
        """What passes the search, dates, favourites and collection, by tallied facets (as _combinations)."""
        f, params = self.filters, [self.team_id]
        copied = (
            "f.image_created_by_id AS c_creator, f.image_engine_id AS c_engine,"
            " f.image_style_preset AS c_style, f.image_kind AS c_kind,"
            " f.image_width AS c_width, f.image_height AS c_height,"
            " f.image_filtered AS c_filtered, COUNT(*) AS c_n"
        )
        if _needs_images(f):
            where = self.untallied(params)
            return (
                "SELECT i.created_by_id AS c_creator, i.engine_id AS c_engine, i.style_preset AS c_style,"
                " i.kind AS c_kind, i.width AS c_width, i.height AS c_height,"
                " i.finish_reason = 'CONTENT_FILTERED' AS c_filtered, COUNT(*) AS c_n"
                f" FROM {self.images} i WHERE i.team_id = %s AND i.trashed_at IS NULL{where}"
                " GROUP BY 1, 2, 3, 4, 5, 6, 7",
                params,
            )
        if f.collection is not None:
            params = [f.collection, self.team_id]
            starred = f" AND {self._starred('f.image_id', params)}" if f.favourites else ""
            return (
                f"SELECT {copied} FROM {self.item} f JOIN {self.collection} c ON c.id = f.collection_id"
                f" WHERE f.collection_id = %s AND c.team_id = %s AND f.image_live{starred}"
                " GROUP BY 1, 2, 3, 4, 5, 6, 7",
                params,
            )
        if f.favourites:
            return (
                f"SELECT {copied} FROM {self.favourite} f"
                " WHERE f.image_team_id = %s AND f.user_id = %s AND f.image_live"
                " GROUP BY 1, 2, 3, 4, 5, 6, 7",
                [self.team_id, self.user_id],
            )
        return (
            "SELECT t.created_by_id AS c_creator, t.engine_id AS c_engine, t.style_preset AS c_style,"
            " t.kind AS c_kind, t.width AS c_width, t.height AS c_height, t.filtered AS c_filtered,"
            f" t.count AS c_n FROM {self.tally} t WHERE t.team_id = %s AND t.count > 0",
            params,
        )

    def others(self) -> list[tuple[str, list[Any]]]:
        """The favourites part and the collections parts (as _favourites and _collections): columns c_tag,
        c_ref, c_label, c_n."""
        f = self.filters
        parts: list[tuple[str, list[Any]]] = []
        params: list[Any] = [self.user_id, self.team_id]
        if _needs_images(f):
            where = self.facets("i.", on_images=True, params=params) + self.untallied(
                params, but="favourites"
            )
            sql = (
                f"FROM {self.favourite} f JOIN {self.images} i ON i.id = f.image_id"
                f" WHERE f.user_id = %s AND i.team_id = %s AND i.trashed_at IS NULL{where}"
            )
        else:
            where = self.facets("f.image_", on_images=False, params=params)
            if f.collection is not None:
                where += f" AND {self._held('f.image_id', params)}"
            sql = (
                f"FROM {self.favourite} f"
                f" WHERE f.user_id = %s AND f.image_team_id = %s AND f.image_live{where}"
            )
        parts.append(
            (f"SELECT 'favourites' AS c_tag, 0 AS c_ref, '' AS c_label, COUNT(*) AS c_n {sql}", params)
        )
        unfiltered = not f.without("collection").any_active
        stored = "c.live_count" if unfiltered else "0"
        parts.append(
            (
                f"SELECT 'collection' AS c_tag, c.id AS c_ref, c.name AS c_label, {stored} AS c_n"
                f" FROM {self.collection} c WHERE c.team_id = %s",
                [self.team_id],
            )
        )
        if unfiltered:  # each collection's stored count is the answer
            return parts
        params = [self.team_id]
        if _needs_images(f):
            where = self.facets("i.", on_images=True, params=params) + self.untallied(
                params, but="collection"
            )
            sql = (
                f"FROM {self.item} f JOIN {self.collection} c ON c.id = f.collection_id"
                f" JOIN {self.images} i ON i.id = f.image_id"
                f" WHERE c.team_id = %s AND f.image_live AND i.trashed_at IS NULL{where}"
            )
        else:
            where = self.facets("f.image_", on_images=False, params=params)
            if f.favourites:
                where += f" AND {self._starred('f.image_id', params)}"
            sql = (
                f"FROM {self.item} f JOIN {self.collection} c ON c.id = f.collection_id"
                f" WHERE c.team_id = %s AND f.image_live{where}"
            )
        parts.append(
            (
                "SELECT 'collection' AS c_tag, f.collection_id AS c_ref, '' AS c_label, COUNT(*) AS c_n"
                f" {sql} GROUP BY f.collection_id",
                params,
            )
        )
        return parts


def _grouped_facet(bits: int) -> str | None:
    """The facet a GROUPING SETS row counts (its bit is 0), or None for the total."""
    for position, facet in enumerate(FACETS):
        if not bits & (1 << (len(FACETS) - 1 - position)):
            return facet
    return None


def _sum_in_python(
    tallies: dict[str, Counter[str]],
    creators: dict[str, str],
    combinations: list[tuple[Any, ...]],
    filters: Filters,
) -> int:
    """What the GROUPING SETS query does, for SQLite: returns the total."""
    chosen = _chosen(filters)
    total = 0
    for combination in combinations:
        n = combination[8]
        values = [read(combination) for read in FACET_VALUES.values()]
        misses = [
            name for name, value in zip(FACETS, values, strict=True) if chosen.get(name, value) != value
        ]
        if len(misses) > 1:
            continue
        creators[values[0]] = combination[0]
        if misses:  # passes every filter but one: counts only for that one
            tallies[misses[0]][values[FACETS.index(misses[0])]] += n
            continue
        total += n
        for name, value in zip(FACETS, values, strict=True):
            tallies[name][value] += n
    return total


def _options(
    counts: Counts, tallies: dict[str, Counter[str]], creators: dict[str, str], filters: Filters
) -> None:
    chosen = _chosen(filters)
    for name in FACETS:
        options = [
            Option(value, _label(name, value, creators), n, chosen.get(name) == value)
            for value, n in tallies[name].items()
        ]
        if name in chosen and not any(option.selected for option in options):
            options.append(Option(chosen[name], _label(name, chosen[name], creators), 0, True))
        counts.facets[name] = sorted(options, key=lambda option: _order(name, option))


def _label(name: str, value: str, creators: dict[str, str]) -> str:
    match name:
        case "creator":
            return creators.get(value, "Someone else")
        case "engine":
            return engine_name(value)
        case "style":
            return "No style" if value == NO_STYLE else value.replace("-", " ").capitalize()
        case "kind":
            return KIND_LABELS.get(value, value)
        case "size":
            return value.replace("x", " × ")
        case "aspect":
            return ASPECTS.get(value, value)
        case "filtered":
            return {"only": "Filtered", "hide": "Not filtered"}.get(value, FILTERED.get(value, value))
    return value


def _order(name: str, option: Option) -> Any:
    if name in ("kind", "aspect", "filtered"):
        order = {"kind": list(KIND_LABELS), "aspect": list(ASPECTS), "filtered": ["hide", "only"]}[name]
        return order.index(option.value) if option.value in order else len(order)
    if name == "size":
        width, height = (int(side) for side in option.value.split("x"))
        return (-width * height, -width)
    return (-option.count, option.label.lower())
