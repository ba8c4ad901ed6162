"""URL rules of the crawl: canonical form, what counts as the same site, what is obviously not HTML."""

from __future__ import annotations

from posixpath import splitext
from urllib.parse import urldefrag, urlsplit, urlunsplit

from w3lib.url import safe_url_string

# Links ending in these are never fetched: they cannot be HTML pages.
SKIPPED_EXTENSIONS = frozenset(
    {
        ".7z", ".avi", ".bmp", ".css", ".csv", ".doc", ".docx", ".eps", ".exe", ".flac", ".gif",
        ".gz", ".ico", ".jpeg", ".jpg", ".js", ".json", ".m4a", ".m4v", ".mov", ".mp3", ".mp4",
        ".mpeg", ".mpg", ".odt", ".ogg", ".otf", ".pdf", ".png", ".ppt", ".pptx", ".rar", ".rss",
        ".svg", ".tar", ".tgz", ".tif", ".tiff", ".ttf", ".wav", ".webm", ".webp", ".woff",
        ".woff2", ".xls", ".xlsx", ".xml", ".zip",
    }
)  # fmt: skip

DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str) -> str:
    """The URL as stored and deduplicated: fragment dropped, query kept, unsafe bytes escaped.

    >>> canonical_url("HTTP://Clinic.example#top")
    'http://clinic.example/'
    """
    without_fragment = urldefrag(safe_url_string(url.strip())).url
    parts = urlsplit(without_fragment)
    return urlunsplit(
        (parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", parts.query, "")
    )


def site_key(url: str) -> tuple[str, int | None] | None:
    """(host without ``www.``, explicit non-default port) identifying a site; None if unusable."""
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    try:
        port = parts.port
    except ValueError:
        return None
    if port == DEFAULT_PORTS[parts.scheme]:
        port = None
    return parts.hostname.lower().removeprefix("www."), port


def same_site(url: str, site_url: str) -> bool:
    """True when `url` is on the site of `site_url`: same host and port; ``www.`` is ignored.

    http and https on their default ports count as one site (clinics redirect to https).
    """
    key = site_key(url)
    return key is not None and key == site_key(site_url)


def has_skipped_extension(url: str) -> bool:
    """True when the URL's path ends in an extension that is never an HTML page (.pdf, .jpg...)."""
    return splitext(urlsplit(url).path.lower())[1] in SKIPPED_EXTENSIONS
