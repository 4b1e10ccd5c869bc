"""A bare Scrapy spider: the baseline `kremlin-archive crawl` is compared with (issue 9).

It requests a given list of URLs (the listing and event pages a crawl requested) through
`http_proxy` (the replay server) and stores nothing: no project settings, middlewares,
pipelines, extensions, parsing, SQLite or WARC — only Scrapy's defaults plus the settings
both runs share (User-Agent, robots.txt, proxy, reactor, concurrency, delays off).

    http_proxy=http://127.0.0.1:8399 .venv/bin/python bench/bare_spider.py --urls-file urls.txt \
        -s CONCURRENT_REQUESTS=16 -s CONCURRENT_REQUESTS_PER_DOMAIN=8

Every answer (404s included) is received and counted; the count is printed on stderr as
`bare: N responses` at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import scrapy
from scrapy.crawler import CrawlerProcess

# What the project's settings.py sets that also shapes a plain fetch: same User-Agent, robots.txt
# obeyed (one request, as in the crawl), the same reactor, cookies off, no telnet console.
BASE_SETTINGS = {
    "USER_AGENT": (
        "Mozilla/5.0 (compatible; kremlin-archive/0.1; +https://pypi.org/project/kremlin-archive/)"
    ),
    "ROBOTSTXT_OBEY": True,
    "COOKIES_ENABLED": False,
    "TELNETCONSOLE_ENABLED": False,
    "HTTPPROXY_ENABLED": True,
    "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "LOG_LEVEL": "INFO",
}


class BareSpider(scrapy.Spider):
    name = "bare"

    def __init__(self, urls: list[str], *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.urls = urls
        self.responses = 0

    async def start(self):
        for url in self.urls:
            # 404s are answers too (the crawl records them): let them reach the callback.
            yield scrapy.Request(
                url, callback=self.parse, dont_filter=True, meta={"handle_httpstatus_all": True}
            )

    def parse(self, response):
        self.responses += 1
        return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--urls-file", type=Path, required=True, help="one URL per line")
    parser.add_argument(
        "-s",
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a Scrapy setting (repeatable)",
    )
    args = parser.parse_args(argv)
    urls = [u.strip() for u in args.urls_file.read_text().splitlines() if u.strip()]
    settings = dict(BASE_SETTINGS)
    for item in args.overrides:
        name, sep, value = item.partition("=")
        if not sep:
            parser.error(f"-s {item!r}: expected NAME=VALUE")
        settings[name.strip()] = value
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(BareSpider)
    process.crawl(crawler, urls=urls)
    process.start()
    print(f"bare: {crawler.spider.responses} responses", file=sys.stderr)
    return 0 if crawler.stats.get_value("finish_reason") == "finished" else 1


if __name__ == "__main__":
    sys.exit(main())
