"""The gallery's tiles, built in Python: a page of 24 tiles is the gallery's hottest markup, and the
template engine resolves each of a tile's dozen variables through several lookups (about 3 ms a page
on PostgreSQL's 100,000-image benchmark). Values are escaped as format_html escapes them, by the
standard library's html.escape directly: format_html's lazy-aware wrappers cost more than the escaping
(about 0.5 ms for a page's 24 tiles and 50 filter options). A tile escapes only the values that are
text or a stored file's name; its ids and sizes cannot hold a character HTML would read."""

from html import escape
from typing import Any

from django.utils.safestring import SafeString

from generations.library_counts import Option
from generations.media_views import signed_thumbnail_url
from generations.models import GalleryImage

TILE = (
    '<li class="tile" data-image="{pk}">'
    '<a href="{url}" data-lightbox data-image="{pk}" data-full="{full}" data-caption="{caption}"'
    ' data-width="{width}" data-height="{height}" data-panel="{url}library/">'
    '<img src="{thumbnail}" alt="{alt}" loading="lazy" width="240" height="240">'
    "{badge}"
    '<span class="creator">{creator}</span>'
    "</a>"
    '<label class="tile-select">'
    '<input type="checkbox" name="image" value="{pk}" form="bulk-form" data-select>'
    '<span class="visually-hidden">Select this image</span></label>'
    '<button type="button" class="star" data-star="{pk}" hx-post="{url}favourite/" hx-swap="none"'
    ' aria-pressed="{pressed}" title="Star">'
    '<span aria-hidden="true">★</span><span class="visually-hidden">Star</span></button>'
    '<button type="button" class="tile-more" data-panel-toggle aria-expanded="false"'
    ' title="Collections and more">'
    '⋯<span class="visually-hidden"> Collections and more</span></button>'
    "</li>"
)
BADGE = SafeString('<span class="badge">Filtered</span>')


def _escaped(value: Any) -> str:
    """What format_html puts in for a value: safe strings as they are, anything else escaped."""
    return value if isinstance(value, SafeString) else escape(str(value))


def format_escaped(template: str, *args: Any, **kwargs: Any) -> SafeString:
    """format_html, for the tiles' and options' plain values."""
    return SafeString(
        template.format(*map(_escaped, args), **{name: _escaped(value) for name, value in kwargs.items()})
    )


def tile_html(image: GalleryImage) -> SafeString:
    """One tile (GalleryImageQuerySet.for_listing, with `is_favourite` annotated). Its thumbnail's link is
    signed (generations.media_views): a page's 24 thumbnails are served with no session and no query."""
    caption = image.caption
    return SafeString(
        TILE.format(
            pk=image.pk,
            url=image.url,
            full=escape(image.image_url),
            caption=escape(caption),
            width=image.width,
            height=image.height,
            thumbnail=escape(signed_thumbnail_url(image.thumbnail.name or "")),
            alt=escape(caption[:120]),
            badge=BADGE if image.is_filtered else "",
            creator=escape(image.created_by.username),
            pressed="true" if getattr(image, "is_favourite", False) else "false",
        )
    )


def tiles_html(images: list[GalleryImage]) -> SafeString:
    return SafeString("".join(tile_html(image) for image in images))


OPTION = '<option value="{}"{}>{} ({})</option>'
SELECTED = SafeString(" selected")


def option_html(option: Option) -> SafeString:
    selected = SELECTED if option.selected else ""
    return format_escaped(OPTION, option.value, selected, option.label, option.shown)


def options_html(options: list[Option]) -> SafeString:
    """A filter's <option>s, each with the count it would leave."""
    return SafeString("".join(option_html(option) for option in options))
