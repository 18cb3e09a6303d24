"""Where the pricing service gets quotes from REST while the stream is down, and when.

:class:`LatestQuoteSource` is the pluggable interface of the refresher;
:class:`AlpacaLatestQuotes` implements it with alpaca-py's ``StockHistoricalDataClient``.

:class:`Refresher` is off unless a service is given a source. Its named thread sleeps on an
event that the service sets each time the session is lost and after each failed reconnect
attempt, so its request rate is bounded by the backoff policy and it has no timer of its own.
It then fetches the latest quotes of the stale symbols. REST quotes live in a dict of their own
that only refreshes write (one at a time, under a lock the stream's loop never takes).
"""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlsplit

from streamfsm.credentials import Credentials
from streamfsm.errors import ConfigurationError
from streamfsm.logs import StreamLogger
from streamfsm.markets import Feed, Market, market_of_feed
from streamfsm.models import Quote
from streamfsm.pricing.snapshots import QuoteEntry, QuoteSnapshot, Source

if TYPE_CHECKING:
    from alpaca.data.models import Quote as AlpacaQuote

__all__ = [
    "REFRESHER_JOIN_TIMEOUT",
    "AlpacaLatestQuotes",
    "LatestQuoteSource",
    "Refresher",
]

#: How long :meth:`Refresher.stop` waits for the thread (one REST call at most).
REFRESHER_JOIN_TIMEOUT: Final = 5.0


class LatestQuoteSource(Protocol):
    """Where the refresher gets quotes during an outage.

    ``latest_quotes`` is called on the refresher thread with the symbols to refresh and returns
    the quotes it found, keyed by symbol; symbols it has nothing for are left out. It may block
    (it is a network call) and may raise: the refresher logs and counts the failure and carries on.
    """

    def latest_quotes(self, symbols: Sequence[str]) -> Mapping[str, Quote]:
        """The latest quote of each symbol that has one."""
        ...


def _check_rest_url(url: str | None) -> str | None:
    """Accept https://, and http:// for loopback hosts only (the secret goes in a header)."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if parts.scheme == "https" and host:
        return url.rstrip("/")
    if parts.scheme == "http" and loopback:
        return url.rstrip("/")
    raise ConfigurationError("url_override", "an https:// URL, or http:// on a loopback host", url)


def _code(value: object) -> str | None:
    """An exchange code as a plain string (alpaca-py gives str or its ``Exchange`` enum)."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


class AlpacaLatestQuotes:
    """Latest quotes from Alpaca's REST API through alpaca-py's historical data clients.

    The feed decides the market and the client: ``iex``, ``sip`` or ``delayed_sip`` ask
    ``StockHistoricalDataClient``, ``us`` asks ``CryptoHistoricalDataClient`` and ``indicative``
    or ``opra`` ask ``OptionHistoricalDataClient``; pass the stream's own feed.

    Args:
        credentials: the same key as the stream.
        feed: the feed to ask for (see above).
        url_override: the REST base URL instead of Alpaca's (``http://127.0.0.1:PORT`` for a
            local fake); ``https://`` or a loopback ``http://`` only.

    Caveats of alpaca-py, documented rather than patched: its client holds the secret as a
    plain attribute, sets no request timeout, and sleeps and retries on 429 and 504 (three times,
    three seconds apart). :meth:`Refresher.stop` therefore bounds how long it waits for a
    refresh in flight.

    Raises:
        ConfigurationError: for a feed alpaca-py's REST API does not serve, or a URL that would
            send the key in clear text to another host.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        feed: Feed | str = Feed.IEX,
        url_override: str | None = None,
    ) -> None:
        known = {member.value: member for member in REST_FEEDS}
        if not isinstance(feed, str) or feed not in known:
            raise ConfigurationError("feed", f"one of {', '.join(known)}", feed)
        self._feed = known[feed]
        self._fetch = _client(
            self._feed,
            api_key=credentials.key_id,
            secret_key=credentials.reveal(),
            url_override=_check_rest_url(url_override),
        )

    def latest_quotes(self, symbols: Sequence[str]) -> Mapping[str, Quote]:
        """Fetch the latest quotes of ``symbols`` in one request.

        Raises:
            alpaca.common.exceptions.APIError: for an HTTP error status.
            requests.RequestException: when the server cannot be reached.
            ValueError: for a response alpaca-py cannot parse.
        """
        result = self._fetch(list(symbols))
        return {symbol: _from_alpaca(quote) for symbol, quote in result.items()}

    def __repr__(self) -> str:
        return f"AlpacaLatestQuotes(feed={self._feed.value!r})"


#: The feeds alpaca-py's latest-quote endpoints serve, per market.
REST_FEEDS: Final = (
    Feed.IEX,
    Feed.SIP,
    Feed.DELAYED_SIP,
    Feed.US,
    Feed.INDICATIVE,
    Feed.OPRA,
)


def _client(feed: Feed, **keys: Any) -> Callable[[list[str]], Mapping[str, AlpacaQuote]]:
    """The latest-quote call of the alpaca-py client for ``feed``'s market."""
    # alpaca-py is imported here, not with the module: it costs about a second.
    from alpaca.data import enums, requests

    market = market_of_feed(feed)
    if market is Market.CRYPTO:
        from alpaca.data.historical.crypto import CryptoHistoricalDataClient

        crypto = CryptoHistoricalDataClient(**keys)
        location = enums.CryptoFeed(feed.value)
        return lambda symbols: crypto.get_crypto_latest_quote(
            requests.CryptoLatestQuoteRequest(symbol_or_symbols=symbols), feed=location
        )
    if market is Market.OPTIONS:
        from alpaca.data.historical.option import OptionHistoricalDataClient

        options = OptionHistoricalDataClient(**keys)
        option_feed = enums.OptionsFeed(feed.value)
        return lambda symbols: options.get_option_latest_quote(
            requests.OptionLatestQuoteRequest(symbol_or_symbols=symbols, feed=option_feed)
        )
    from alpaca.data.historical.stock import StockHistoricalDataClient

    stocks = StockHistoricalDataClient(**keys)
    data_feed = enums.DataFeed(feed.value)
    return lambda symbols: stocks.get_stock_latest_quote(
        requests.StockLatestQuoteRequest(symbol_or_symbols=symbols, feed=data_feed)
    )


def _from_alpaca(quote: AlpacaQuote) -> Quote:
    """The fast model of an alpaca-py quote (option conditions stay one string, as streamed)."""
    conditions = quote.conditions
    return Quote(
        symbol=quote.symbol,
        timestamp=quote.timestamp,
        bid_price=quote.bid_price,
        bid_size=quote.bid_size,
        bid_exchange=_code(quote.bid_exchange),
        ask_price=quote.ask_price,
        ask_size=quote.ask_size,
        ask_exchange=_code(quote.ask_exchange),
        conditions=conditions,
        tape=quote.tape,
    )


class Refresher:
    """REST quotes for stale symbols: on demand, and on a thread woken by stream failures.

    Args:
        source: where quotes come from.
        members: the symbols that may be stored (the service's published membership).
        stale_symbols: the tracked symbols whose quote is stale or missing, as of the call.
        clock: monotonic seconds, for receive times.
        wall: wall-clock epoch seconds, for receive times.
        on_refresh: called on the refresher thread with the snapshots each refresh stored.
        log: the service's logger.
        thread_name: the name of the refresher thread.

    Attributes:
        quotes: the REST quotes stored, per symbol, with their receive times; read anywhere.
        refreshes: refreshes that returned.
        failures: refreshes (or ``on_refresh`` calls) that raised.
    """

    def __init__(
        self,
        source: LatestQuoteSource,
        *,
        members: Callable[[], Mapping[str, object]],
        stale_symbols: Callable[[], tuple[str, ...]],
        clock: Callable[[], float],
        wall: Callable[[], float],
        on_refresh: Callable[[Mapping[str, QuoteSnapshot]], object] | None,
        log: StreamLogger,
        thread_name: str,
    ) -> None:
        self._source = source
        self._members = members
        self._stale_symbols = stale_symbols
        self._clock = clock
        self._wall = wall
        self._on_refresh = on_refresh
        self._log = log
        self._thread_name = thread_name
        # Written under _lock by the thread or refresh() callers; read anywhere.
        self._lock = threading.Lock()
        self.quotes: dict[str, QuoteEntry] = {}
        self.refreshes = 0
        self.failures = 0
        self._wanted = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None

    def wake(self) -> None:
        """Ask the thread for a refresh of the stale symbols; never blocks (the loop calls it)."""
        self._wanted.set()

    def forget(self, symbol: str) -> None:
        """Drop the stored quote of a symbol that is no longer tracked."""
        self.quotes.pop(symbol, None)

    def refresh(
        self, symbols: Iterable[str] | None, keep: Callable[[], bool] = lambda: True
    ) -> dict[str, QuoteSnapshot]:
        """Fetch and store REST quotes for tracked ``symbols`` (default: the stale ones).

        Runs in the caller's thread and blocks for one call of the source; refreshes run one
        at a time. A quote is stored only for a tracked symbol, under its own symbol, and when
        it is not older than the one stored before. Nothing is stored when ``keep()`` turns
        false during the call (the service stopped).

        Returns:
            The snapshots stored, keyed by symbol.

        Raises:
            Whatever the source raises; it is counted in :attr:`failures`.
        """
        requested = self._stale_symbols() if symbols is None else tuple(symbols)
        with self._lock:
            members = self._members()
            wanted = tuple(symbol for symbol in requested if symbol in members)
            if not wanted:
                return {}
            try:
                fetched = self._source.latest_quotes(wanted)
            except BaseException:
                self.failures += 1
                raise
            received_at, received_wall = self._clock(), self._wall()
            stored: dict[str, QuoteSnapshot] = {}
            if not keep():
                return stored
            members = self._members()
            for symbol, quote in fetched.items():
                previous = self.quotes.get(symbol)
                if (
                    symbol not in members
                    or quote.symbol != symbol
                    or (previous is not None and previous[0].timestamp > quote.timestamp)
                ):
                    continue
                self.quotes[symbol] = (quote, received_at)
                stored[symbol] = QuoteSnapshot.from_quote(
                    quote,
                    received_at=received_at,
                    received_wall=received_wall,
                    now=received_at,
                    source=Source.REST,
                )
            self.refreshes += 1
        self._log.debug("quotes_refreshed", requested=len(wanted), stored=len(stored))
        return stored

    def start(self) -> None:
        """Start the thread; a no-op when it runs already."""
        if self._thread is not None:
            return
        self._closing = False
        self._wanted.clear()
        thread = threading.Thread(target=self._main, name=self._thread_name, daemon=True)
        self._thread = thread
        thread.start()

    def stop(self) -> None:
        """Stop the thread; waits for it up to :data:`REFRESHER_JOIN_TIMEOUT`. Idempotent.

        A call to the source in flight that outlasts the wait is logged and abandoned: the
        thread is a daemon and stores nothing once stopped.
        """
        thread = self._thread
        if thread is None:
            return
        self._closing = True
        self._wanted.set()
        if thread is not threading.current_thread():
            thread.join(REFRESHER_JOIN_TIMEOUT)
            if thread.is_alive():
                self._log.warning("refresher_abandoned", timeout=REFRESHER_JOIN_TIMEOUT)
        self._thread = None

    def _main(self) -> None:
        """The thread: wait for a wake-up, refresh, repeat until stopped."""
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                return
            try:
                stored = self.refresh(None, keep=lambda: not self._closing)
            except Exception as exc:  # noqa: BLE001 - a failing source must not end the refresher; refresh() counted it
                self._log.warning("refresh_failed", error_type=type(exc).__name__, error=str(exc))
                continue
            if stored and self._on_refresh is not None:
                try:
                    self._on_refresh(stored)
                except Exception as exc:  # noqa: BLE001 - a user hook must not end the refresher; logged and counted
                    with self._lock:
                        self.failures += 1
                    self._log.warning(
                        "on_refresh_failed", error_type=type(exc).__name__, error=str(exc)
                    )
