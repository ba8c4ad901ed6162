"""SiteSpider: every page of one site, each fetch (or failure) yielded as a PageSnapshot."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

from scrapy import Request, Spider, signals
from scrapy.crawler import Crawler
from scrapy.exceptions import StopDownload
from scrapy.http import HtmlResponse, Response
from scrapy.linkextractors import LinkExtractor
from twisted.python.failure import Failure

from crawler import settings as defaults
from crawler.encoding import decode_html
from crawler.snapshots import (
    HTML_TYPES,
    PAGE_URL_META,
    PageSnapshot,
    header_text,
    media_type,
    snapshot_from_failure,
    snapshot_from_response,
)
from crawler.urls import canonical_url, has_skipped_extension, same_site

logger = logging.getLogger(__name__)

# Redirects are followed by Scrapy's RedirectMiddleware; every other status reaches the callback.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
NON_REDIRECT_STATUSES = [code for code in range(100, 600) if code not in REDIRECT_STATUSES]


class SiteSpider(Spider):
    """Crawl one site from CLINICWATCH_START_URL: same-site links, bounded depth and page count.

    Every page request ends in exactly one PageSnapshot (from `parsed` or `failed`), and at most
    CLINICWATCH_MAX_PAGES page requests are ever made, so the page budget is exact.
    """

    name = "site"

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.start_url = ""
        self.max_pages = defaults.CLINICWATCH_MAX_PAGES
        self.max_depth = defaults.CLINICWATCH_MAX_DEPTH
        self.max_page_bytes = 0
        self.pages_requested = 0
        self.seen_urls: set[str] = set()
        self.links = LinkExtractor(tags=("a", "area"), attrs=("href",), deny_extensions=[])

    @classmethod
    def from_crawler(cls, crawler: Crawler, *args: Any, **kwargs: Any) -> SiteSpider:
        """Read the crawl's limits from the settings `crawl_settings` produced."""
        spider = super().from_crawler(crawler, *args, **kwargs)
        settings = crawler.settings
        spider.start_url = canonical_url(settings["CLINICWATCH_START_URL"])
        spider.max_pages = settings.getint("CLINICWATCH_MAX_PAGES", spider.max_pages)
        spider.max_depth = settings.getint("CLINICWATCH_MAX_DEPTH", spider.max_depth)
        spider.max_page_bytes = settings.getint("DOWNLOAD_MAXSIZE")
        crawler.signals.connect(spider.headers_received, signal=signals.headers_received)
        return spider

    async def start(self) -> AsyncIterator[Request]:
        """The start page is the only start request."""
        request = self.page_request(self.start_url)
        if request is not None:
            yield request

    def page_request(self, url: str) -> Request | None:
        """A request for a page not yet requested, or None when seen or over the page budget."""
        url = canonical_url(url)
        if url in self.seen_urls or self.pages_requested >= self.max_pages:
            return None
        if self.crawler.stats.get_value("clinicwatch/database_errors"):
            return None  # nothing can be stored: fetching more pages would be wasted
        self.seen_urls.add(url)
        self.pages_requested += 1
        return Request(
            url,
            callback=self.parsed,
            errback=self.failed,
            # Dedup is ours (seen_urls): a request Scrapy dropped would leave no snapshot.
            dont_filter=True,
            meta={PAGE_URL_META: url, "handle_httpstatus_list": NON_REDIRECT_STATUSES},
        )

    def parsed(self, response: Response) -> Iterator[PageSnapshot | Request]:
        """Record the page, then follow its same-site links if it was a good HTML page."""
        snapshot = snapshot_from_response(response)
        yield snapshot
        depth = response.meta.get("depth", 0)
        if snapshot.ok and snapshot.body is not None and depth < self.max_depth:
            yield from self.follow_links(response, snapshot.body)

    def failed(self, failure: Failure) -> Iterator[PageSnapshot]:
        """Record a request that got no usable response (timeout, refused, blocked...)."""
        yield snapshot_from_failure(failure, self.max_page_bytes)

    def follow_links(self, response: Response, body: bytes) -> Iterator[Request]:
        """Requests for the page's same-site links that look like HTML pages."""
        stats = self.crawler.stats
        try:
            text, _ = decode_html(body, header_text(response, b"Content-Type"))
            # Links are read from our decoding, not Scrapy's guess, so odd encodings work too.
            # lxml stops reading at a NUL character; broken pages do contain them.
            clean = text.replace("\x00", "")
            page = HtmlResponse(url=response.url, body=clean.encode("utf-8"), encoding="utf-8")
            links = self.links.extract_links(page)
        except Exception:  # a broken page must not stop the crawl
            logger.warning("Could not read links of %s", response.url, exc_info=True)
            stats.inc_value("clinicwatch/link_errors")
            return
        for link in links:
            url = canonical_url(link.url)
            if not same_site(url, self.start_url):
                stats.inc_value("clinicwatch/offsite_links")
            elif has_skipped_extension(url):
                stats.inc_value("clinicwatch/skipped_extension_links")
            else:
                request = self.page_request(url)
                if request is not None:
                    yield request

    def headers_received(
        self, headers: Any, body_length: int, request: Request, spider: Spider
    ) -> None:
        """Stop downloading a page as soon as its headers say it is not HTML (PDF, image...)."""
        if PAGE_URL_META not in request.meta:
            return  # robots.txt and other internal requests
        raw = headers.get(b"Content-Type")
        mime = media_type(raw.decode("latin-1")) if raw else None
        if mime is not None and mime not in HTML_TYPES:
            raise StopDownload(fail=False)
