"""Where the pricing service gets quotes from REST while the stream is down.

:class:`LatestQuoteSource` is the pluggable interface of the refresher;
:class:`AlpacaLatestQuotes` implements it with alpaca-py's ``StockHistoricalDataClient``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from streamfsm.config import Feed
from streamfsm.credentials import Credentials
from streamfsm.errors import ConfigurationError
from streamfsm.models import Quote

if TYPE_CHECKING:
    from alpaca.data.historical.stock import StockHistoricalDataClient
    from alpaca.data.models import Quote as AlpacaQuote

__all__ = [
    "AlpacaLatestQuotes",
    "LatestQuoteSource",
]


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
    """Latest quotes from Alpaca's REST API through alpaca-py's ``StockHistoricalDataClient``.

    Args:
        credentials: the same key as the stream.
        feed: the feed to ask for (``iex``, ``sip`` or ``delayed_sip``).
        url_override: the REST base URL instead of Alpaca's (``http://127.0.0.1:PORT`` for a
            local fake); ``https://`` or a loopback ``http://`` only.

    Caveats of alpaca-py, documented rather than patched: its client holds the secret as a
    plain attribute, sets no request timeout, and sleeps and retries on 429 and 504 (three times,
    three seconds apart). :meth:`~streamfsm.pricing.service.PricingService.stop` therefore bounds
    how
    long it waits for a refresh in flight.

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
        # alpaca-py is imported here, not with the module: it costs about a second.
        from alpaca.data.enums import DataFeed
        from alpaca.data.historical.stock import StockHistoricalDataClient

        try:
            self._feed = DataFeed(Feed(feed).value)
        except ValueError:
            raise ConfigurationError("feed", "iex, sip or delayed_sip", feed) from None
        self._client: StockHistoricalDataClient = StockHistoricalDataClient(
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
        from alpaca.data.requests import StockLatestQuoteRequest

        request = StockLatestQuoteRequest(symbol_or_symbols=list(symbols), feed=self._feed)
        # Parsed models, since the client was built with raw_data=False (its default).
        result = self._client.get_stock_latest_quote(request)
        return {symbol: _from_alpaca(quote) for symbol, quote in result.items()}

    def __repr__(self) -> str:
        return f"AlpacaLatestQuotes(feed={self._feed.value!r})"


def _from_alpaca(quote: AlpacaQuote) -> Quote:
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
        conditions=[conditions] if isinstance(conditions, str) else conditions,
        tape=quote.tape,
    )
