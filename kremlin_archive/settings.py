"""Polite defaults for the live site; KREMLIN_* settings of the project's own components.

Deploy-time values come from the environment (KREMLIN_DB, KREMLIN_WARC_DIR, KREMLIN_USER_AGENT,
KREMLIN_DOWNLOAD_DELAY); per-run choices are spider arguments or `-s NAME=VALUE`.

kremlin.ru answers 403 after bursts and blocks some foreign networks (SITE.md §8): one request
at a time per host, at least 2 s apart, AutoThrottle on top, retries with backoff that honour
Retry-After, and a brake that stops the run cleanly after a run of refusals.
"""

import os

BOT_NAME = "kremlin_archive"
SPIDER_MODULES = ["kremlin_archive.spiders"]
NEWSPIDER_MODULE = "kremlin_archive.spiders"

# The site refuses requests without a User-Agent (SITE.md §8); say who we are and how to reach us.
USER_AGENT = os.environ.get(
    "KREMLIN_USER_AGENT",
    "Mozilla/5.0 (compatible; kremlin-archive/0.1; +https://pypi.org/project/kremlin-archive/)",
)
ROBOTSTXT_OBEY = True

DOWNLOAD_DELAY = float(os.environ.get("KREMLIN_DOWNLOAD_DELAY", "2.0"))
DOWNLOAD_DELAY_JITTER = 0.5  # each delay varies by up to ±50 %
CONCURRENT_REQUESTS = 4
CONCURRENT_REQUESTS_PER_DOMAIN = 1
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 2.0
AUTOTHROTTLE_MAX_DELAY = 120.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_TIMEOUT = 60
DOWNLOAD_MAXSIZE = 20 * 1024 * 1024
DOWNLOAD_WARNSIZE = 5 * 1024 * 1024
COMPRESSION_ENABLED = True
HTTPPROXY_ENABLED = True  # honours http_proxy: the replay server and a Russian egress proxy
COOKIES_ENABLED = False
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False  # no HTTP control server listening during a crawl
# Scrapy checks every generator callback for a `return value` (which it would drop) by reading
# its source and parsing it with `ast`, once per response: its cache is keyed by the bound
# method, a new object each time, so it never hits. That was 7% of a crawl's event-loop time.
# tests/test_spiders.py makes the same check once, over every spider callback.
WARN_ON_GENERATOR_RETURN_VALUE = False
# What one response's callback yields goes through the spider middlewares and pipelines this
# many at a time. Scrapy starts that many asyncio tasks per response, however little the
# callback yields (CONCURRENT_ITEMS defaults to 100): 23% of the crawl's Scrapy machinery.
# Not 1: a listing yields its `Listed` item (which waits for the writer thread) before its
# event requests, and one at a time those requests waited behind it -- 0.4 s per listing page,
# 6 s of a 8.5 s slice crawl without a request sent. With 16 the `Listed` item holds one
# while the others schedule the requests; a slice crawl took 5.2-5.3 s against 5.9-6.2 s
# with 100 (bench/crawl_bench.py's slice, 3 runs each).
CONCURRENT_ITEMS = 16

# Retries: 5xx, 429 and 403 are retried with exponential backoff, Retry-After honoured.
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429, 403]
# Let error statuses reach the spider's errback with the response (recorded, never dropped).
HTTPERROR_ALLOWED_CODES: list[int] = []

DOWNLOADER_MIDDLEWARES = {
    # Nothing is requested from another host, redirects included (Scrapy's offsite filter lets
    # dont_filter requests through); before robots.txt so no foreign robots.txt is fetched.
    "kremlin_archive.middlewares.KremlinHostsOnlyMiddleware": 40,
    # Retry with backoff and Retry-After instead of Scrapy's immediate retry.
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "kremlin_archive.middlewares.BackoffRetryMiddleware": 550,
    # Consecutive refusals stop the run ('blocked'); sits just above the retry middleware so
    # that it sees every attempt.
    "kremlin_archive.middlewares.RefusalBrakeMiddleware": 560,
    # A host that never answers (DNS, refused, timeout, TLS, only 403s) is given up within
    # seconds and said so; between the brake and the retry, so its failures are not retried.
    "kremlin_archive.middlewares.ReachabilityMiddleware": 555,
    # Conditional requests (If-None-Match / If-Modified-Since) from the previous fetch.
    "kremlin_archive.middlewares.ConditionalRequestMiddleware": 570,
    # Every exchange, as received (before redirects and retries consume it), to WARC + fetches.
    "kremlin_archive.middlewares.FetchRecorderMiddleware": 610,
}

EXTENSIONS = {
    "kremlin_archive.crawl_run.CrawlRun": 100,
    "kremlin_archive.crawl_progress.CrawlProgress": 900,  # a bar in a terminal only
}

ITEM_PIPELINES = {
    "kremlin_archive.pipelines.ValidatePipeline": 200,
    "kremlin_archive.pipelines.StorePipeline": 800,
    "kremlin_archive.pipelines.CoveragePipeline": 900,
}

# -- the project's own settings --------------------------------------------------------------
KREMLIN_DB = os.environ.get("KREMLIN_DB", "data/kremlin.db")
KREMLIN_WARC_DIR = os.environ.get("KREMLIN_WARC_DIR", "data/warc")
KREMLIN_WARC_ENABLED = True
KREMLIN_WARC_MAX_SIZE = 1_000_000_000
KREMLIN_BRAKE_REFUSALS = 10  # consecutive 403/429 answers before the run stops as 'blocked'
KREMLIN_BRAKE_PAUSE = 60.0  # seconds to back off once before giving up
KREMLIN_RETRY_BACKOFF_BASE = 5.0  # seconds; doubled per attempt unless Retry-After says more
KREMLIN_RETRY_BACKOFF_MAX = 300.0
# Before a host has answered once: how long a request waits, and how many network failures
# (or refusals of pages) give it up (middlewares.ReachabilityMiddleware).
KREMLIN_FIRST_CONTACT_TIMEOUT = 15.0
KREMLIN_FIRST_CONTACT_ATTEMPTS = 2
KREMLIN_CONDITIONAL_REQUESTS = True
KREMLIN_LOCK = True  # one run at a time per database

# The Internet Archive's Wayback Machine, the second source (-a source=wayback|auto): its
# address (another archive that speaks the same API -- a local pywb, a national web archive --
# may stand in), and its own budget: one request at a time, at least KREMLIN_WAYBACK_DELAY s
# apart (AutoThrottle on top, Retry-After honoured, a refusal brake of its own).
KREMLIN_WAYBACK_URL = os.environ.get("KREMLIN_WAYBACK_URL", "http://web.archive.org")
KREMLIN_WAYBACK_DELAY = 1.0
KREMLIN_WAYBACK_CDX_LIMIT = 1000  # rows per page of a CDX index query
# Requests to the Wayback go to their own download slot (request.meta["download_slot"]);
# run_crawl sets its delay from KREMLIN_WAYBACK_DELAY.
DOWNLOAD_SLOTS = {"wayback": {"concurrency": 1, "delay": KREMLIN_WAYBACK_DELAY}}

FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = os.environ.get("KREMLIN_LOG_LEVEL", "INFO")
# Items are logged by their key and URL, not printed whole (crawl_log).
LOG_FORMATTER = "kremlin_archive.crawl_log.ItemLogFormatter"
REQUEST_FINGERPRINTER_IMPLEMENTATION = "2.7"
TWISTED_REACTOR = "twisted.internet.asyncioreactor.AsyncioSelectorReactor"
