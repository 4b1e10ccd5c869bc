"""A machine without DNS, for tests of what a crawl says when no host can be reached:
`-s DNS_RESOLVER=kremlin_archive.devtools.offline.NoDnsResolver` (and TWISTED_DNS_RESOLVER)."""

from __future__ import annotations

from scrapy.resolver import CachingThreadedResolver
from twisted.internet import defer
from twisted.internet.error import DNSLookupError


class NoDnsResolver(CachingThreadedResolver):
    """Every name fails to resolve, as on a machine with no network."""

    def getHostByName(self, name: str, timeout=()):  # Twisted's interface
        return defer.fail(DNSLookupError(f"no results for hostname lookup: {name}"))
