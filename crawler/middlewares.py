"""Downloader middlewares that keep the crawl on its site and off private networks.

Both sit before RobotsTxtMiddleware, so a refused URL costs no connection at all, not even a
robots.txt fetch. Each refusal is an IgnoreRequest subclass whose message is the snapshot's error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy import Request, Spider
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.httpobj import urlparse_cached

from crawler.urls import same_site

if TYPE_CHECKING:
    from scrapy.crawler import Crawler
    from scrapy.statscollectors import StatsCollector

logger = logging.getLogger(__name__)


class PrivateAddressRefused(IgnoreRequest):
    """A request to a private, loopback, link-local or reserved address other than the site's."""


class OffsiteRedirectRefused(IgnoreRequest):
    """A request (in practice a redirect or meta refresh) that left the crawled site."""


def is_private_ip(address: str) -> bool:
    """True for an IP address no public website lives on (private, loopback, link-local...)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_multicast
        or ip.is_unspecified
    )


def is_private_host(host: str) -> bool:
    """True when `host` is a private IP literal or resolves to at least one private address.

    A name that does not resolve is not private: its download fails with a DNS error anyway.
    """
    try:
        return is_private_ip(host)
    except ValueError:
        pass  # not an IP literal: resolve it
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    return any(is_private_ip(str(info[4][0])) for info in infos)


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


class PrivateAddressMiddleware:
    """Refuse requests to private addresses, except the configured site's own host.

    A site in the config may live on a private or loopback address; a redirect or link from it
    to any *other* private host (an intranet, a cloud metadata endpoint) is never fetched.
    """

    def __init__(self, stats: StatsCollector, site_host: str | None):
        self.stats = stats
        self.site_host = (site_host or "").lower()
        self._follow_by_host: dict[str, bool] = {}

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PrivateAddressMiddleware:
        """Build from the crawl's CLINICWATCH_START_URL (its host is never refused)."""
        start_url = crawler.settings.get("CLINICWATCH_START_URL") or ""
        return cls(crawler.stats, urlsplit(start_url).hostname)

    async def process_request(self, request: Request, spider: Spider | None = None) -> None:
        """Let the request through or raise PrivateAddressRefused."""
        host = self._host(request)
        if host in self._follow_by_host or host == self.site_host or _is_ip_literal(host):
            follow = self.should_follow(request)
        else:
            # A DNS lookup blocks; keep it off the reactor thread.
            follow = await asyncio.to_thread(self.should_follow, request)
        if follow:
            return
        self.stats.inc_value("clinicwatch/private_filtered")
        logger.info("Refused private address %r: %s", host, request)
        raise PrivateAddressRefused(f"private address {host!r} not followed")

    def should_follow(self, request: Request) -> bool:
        """True unless the request's host is another host on a private address."""
        host = self._host(request)
        if not host or host == self.site_host:
            return True
        if host not in self._follow_by_host:
            self._follow_by_host[host] = not is_private_host(host)
        return self._follow_by_host[host]

    @staticmethod
    def _host(request: Request) -> str:
        return (urlparse_cached(request).hostname or "").lower()


class OffsiteRedirectMiddleware:
    """Refuse any request off the crawled site (same host and port; ``www.`` ignored).

    The spider only asks for on-site links, so what this stops are redirects and meta refreshes
    that lead elsewhere; the page is recorded as failed with the target in the error.
    """

    def __init__(self, stats: StatsCollector, start_url: str):
        self.stats = stats
        self.start_url = start_url

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OffsiteRedirectMiddleware:
        """Build from the crawl's CLINICWATCH_START_URL, which defines the site."""
        return cls(crawler.stats, crawler.settings.get("CLINICWATCH_START_URL") or "")

    def process_request(self, request: Request, spider: Spider | None = None) -> None:
        """Let on-site requests through; raise OffsiteRedirectRefused for the rest."""
        if self.should_follow(request):
            return
        self.stats.inc_value("clinicwatch/offsite_redirects")
        raise OffsiteRedirectRefused(f"redirect to another site not followed: {request.url}")

    def should_follow(self, request: Request) -> bool:
        """True when the request stays on the crawled site."""
        return same_site(request.url, self.start_url)
