"""The keys this project puts into `Request.meta`: what spiders tell the middlewares and the run
about a request, and what the fetch recorder hands back. One place, so that a key cannot be
misspelled in one module and read under another name elsewhere."""

from __future__ import annotations


class Meta:
    """`request.meta[Meta.KIND]` and so on."""

    KIND = "kremlin_kind"  # event | listing | feed (robots and others are told by their URL)
    EVENT_ID = "kremlin_event_id"  # the event's key, ru-66419
    REF = "kremlin_ref"  # urls.EventURL of the requested event, as a tuple
    SOURCE_URL = "kremlin_source_url"  # the URL as the user or the listing gave it
    CONDITIONAL = "kremlin_conditional"  # ask with the validators of the last fetch
    LANG = "kremlin_lang"  # language of a listing or feed request
    FALLBACK_DAY = "kremlin_fallback_day"  # listing walk: the by-date day to re-enter at
    FALLBACK_TRIES = "kremlin_fallback_tries"  # listing walk: days gone back so far
    PREVIOUS_PAGE = "kremlin_previous_page"  # listing walk: the page whose link led here
    BRAKE_ROUND = "kremlin_brake_round"  # the refusal brake's pause round at sending time
    FETCH = "kremlin_fetch"  # set by the recorder: the `fetches` row (with its id)
    VIA = "kremlin_via"  # site | wayback: who the request asks
    ORIGINAL = "kremlin_original"  # wayback: the URL whose capture is asked for
    CAPTURED = "kremlin_captured"  # wayback: a timestamp the index lists a 200 capture at
    SITE_ERROR = "kremlin_site_error"  # auto: the site's failure a Wayback copy stands in for
    CDX = "kremlin_cdx"  # a CDX index query: (lang, prefix, tries)
    FIRST_CONTACT = "kremlin_first_contact"  # sent before its host answered: a short timeout
