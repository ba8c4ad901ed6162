"""How a response or a failed request becomes a snapshot record, with a clear error text.

A snapshot is ``ok`` only for a 2xx HTML response with a non-empty, complete body. Anything else
is a failed snapshot: extraction skips it and the diff never reads it as a removal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from scrapy import Request
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.http import HtmlResponse, Response
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet import error as twisted_errors
from twisted.python.failure import Failure

from claims_db.models import utcnow
from crawler.encoding import header_charset
from crawler.middlewares import OffsiteRedirectRefused, PrivateAddressRefused

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})

# Request.meta key holding the page URL as first requested (redirects keep it).
PAGE_URL_META = "clinicwatch_page_url"


@dataclass
class PageSnapshot:
    """One fetch of one page, as the pipeline stores it (Page + Snapshot + Content rows)."""

    url: str  # as requested, canonical
    ok: bool
    status: int | None = None
    error: str | None = None
    final_url: str | None = None
    content_type: str | None = None
    declared_encoding: str | None = None
    depth: int | None = None
    body: bytes | None = None  # None when not stored (too large, not HTML, nothing received)
    fetched_at: datetime = field(default_factory=utcnow)


def media_type(content_type: str | None) -> str | None:
    """``text/html; charset=utf-8`` → ``text/html``; None when absent."""
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def is_html(response: Response) -> bool:
    """True for an HTML content type, or no content type on what Scrapy sniffs as HTML."""
    mime = media_type(header_text(response, b"Content-Type"))
    if mime is None:
        return isinstance(response, HtmlResponse)
    return mime in HTML_TYPES


def header_text(response: Response, name: bytes) -> str | None:
    """A response header as text (latin-1, as HTTP headers are), or None."""
    value = response.headers.get(name)
    return value.decode("latin-1") if value is not None else None


def snapshot_from_response(response: Response) -> PageSnapshot:
    """Judge a response that reached the spider: ok, or failed with the first problem found."""
    content_type = header_text(response, b"Content-Type")
    snapshot = PageSnapshot(
        url=page_url(response.request) if response.request else response.url,
        ok=False,
        status=response.status,
        final_url=response.url,
        content_type=content_type,
        declared_encoding=header_charset(content_type),
        depth=response.meta.get("depth", 0),
    )
    html = is_html(response)
    complete = "download_stopped" not in response.flags
    if html and complete and response.body.strip():
        snapshot.body = response.body
    if not 200 <= response.status < 300:
        snapshot.error = f"HTTP {response.status}"
    elif not html:
        snapshot.error = f"not HTML: {media_type(content_type) or 'unknown content type'}"
    elif not complete:
        snapshot.error = "incomplete response: download stopped"
    elif snapshot.body is None:
        snapshot.error = "empty body"
    else:
        snapshot.ok = True
    return snapshot


def snapshot_from_failure(failure: Failure, max_page_bytes: int) -> PageSnapshot:
    """A failed snapshot for a request that produced no usable response."""
    request: Request = failure.request  # type: ignore[attr-defined]
    response = getattr(failure.value, "response", None)
    redirect_reasons = [r for r in request.meta.get("redirect_reasons", []) if isinstance(r, int)]
    status = response.status if response is not None else None
    if status is None and redirect_reasons:
        status = redirect_reasons[-1]  # the redirect that led to the refused URL
    return PageSnapshot(
        url=page_url(request),
        ok=False,
        status=status,
        error=describe_failure(failure, max_page_bytes),
        final_url=request.url,
        depth=request.meta.get("depth", 0),
    )


def describe_failure(failure: Failure, max_page_bytes: int) -> str:
    """The snapshot error text for a failed request: short, stable, readable by a user."""
    value = failure.value
    if failure.check(PrivateAddressRefused):
        return f"private address not followed: {failure.request.url}"  # type: ignore[attr-defined]
    if failure.check(OffsiteRedirectRefused):
        return str(value)
    if failure.check(HttpError):
        return f"HTTP {value.response.status}"
    if failure.check(DownloadCancelledError) or (
        failure.check(IgnoreRequest) and "DOWNLOAD_MAXSIZE" in str(value)
    ):
        return f"too large: over {max_page_bytes} bytes"
    if failure.check(IgnoreRequest):
        return _describe_ignored(str(value))
    if failure.check(
        DownloadTimeoutError, twisted_errors.TimeoutError, twisted_errors.TCPTimedOutError
    ):
        return "timeout"
    if failure.check(CannotResolveHostError, twisted_errors.DNSLookupError):
        return f"DNS error: {value}"
    if failure.check(DownloadConnectionRefusedError, twisted_errors.ConnectionRefusedError):
        return "connection refused"
    if failure.check(ResponseDataLossError):
        return "incomplete response: connection closed before the body ended"
    return f"{type(value).__name__}: {value}".rstrip(": ")


def _describe_ignored(message: str) -> str:
    # Scrapy's RobotsTxtMiddleware and RedirectMiddleware say no only through the message text.
    if message == "Forbidden by robots.txt":
        return "blocked by robots.txt"
    if message == "max redirections reached":
        return "too many redirects"
    return message or "request ignored"


def page_url(request: Request) -> str:
    """The page URL a request (or a redirect derived from it) was made for."""
    return request.meta.get(PAGE_URL_META) or request.url
