"""Alpaca API credentials that never show their secret.

The secret is held in a private slot and only ever leaves through :meth:`Credentials.reveal`,
which the protocol encoder calls when it builds the auth message. ``repr``, ``str``, equality
failures, pickling and every streamfsm error show a fingerprint (the last four characters of the
key id) instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final, NoReturn

import attrs

from streamfsm.errors import ConfigurationError, MissingCredentialsError
from streamfsm.logs import register_secret

__all__ = ["KEY_ID_VARIABLE", "SECRET_VARIABLE", "Credentials"]

#: The environment variables alpaca-py reads too.
KEY_ID_VARIABLE: Final = "APCA_API_KEY_ID"
SECRET_VARIABLE: Final = "APCA_API_SECRET_KEY"
#: How many trailing characters of the key id identify a credential in logs.
FINGERPRINT_CHARS: Final = 4
#: Alpaca key ids are 20 characters and secrets about 40; these bounds leave room for other
#: issuers (and the simulator) while refusing a file pasted by mistake.
MAX_KEY_ID_CHARS: Final = 128
MAX_SECRET_CHARS: Final = 256


class _Secret:
    """A string holder whose every textual form is redacted."""

    __slots__ = ("__weakref__", "_value")

    def __init__(self, value: str) -> None:
        self._value = value

    def get(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> NoReturn:
        raise TypeError("credentials cannot be pickled; rebuild them from the environment")


def _check_key(field: str, value: object, max_length: int, *, secret: bool = False) -> str:
    """``value`` when it is a key id or secret as Alpaca issues them: printable ASCII, no spaces.

    Anything else could never authenticate, and would fail only later, inside every session
    (HTTP headers are ASCII). A refused secret is never echoed.
    """
    ok = (
        isinstance(value, str)
        and 0 < len(value) <= max_length
        and value.isascii()
        and value.isprintable()
        and not any(character.isspace() for character in value)
    )
    if not ok:
        shown = "<redacted>" if secret else (value or "<blank>")
        expected = f"a non-blank ASCII string without spaces, at most {max_length} characters"
        raise ConfigurationError(field, expected, shown)
    assert isinstance(value, str)
    return value


def _key_id(_instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    _check_key(attribute.name, value, MAX_KEY_ID_CHARS)


@attrs.frozen(repr=False, init=False)
class Credentials:
    """An Alpaca key id and secret.

    Attributes:
        key_id: the public key id (``APCA_API_KEY_ID``).

    The secret has no public attribute; :meth:`reveal` returns it for the auth message only.
    """

    key_id: str = attrs.field(validator=_key_id)
    _secret: _Secret = attrs.field(alias="_secret")

    def __init__(self, key_id: str, secret: str) -> None:
        """Build credentials.

        Raises:
            ConfigurationError: when either value is not a non-blank string.
        """
        holder = _Secret(_check_key("secret", secret, MAX_SECRET_CHARS, secret=True))
        register_secret(holder)
        self.__attrs_init__(key_id, holder)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials:
        """Read ``APCA_API_KEY_ID`` and ``APCA_API_SECRET_KEY``.

        Args:
            environ: the mapping to read; ``os.environ`` when None.

        Raises:
            MissingCredentialsError: naming every variable that is unset or blank.
            ConfigurationError: when ``environ`` is not a mapping, or a value could never
                authenticate (spaces, control or non-ASCII characters).
        """
        if environ is not None and not isinstance(environ, Mapping):
            raise ConfigurationError("environ", "a mapping of variable names to values", environ)
        env = os.environ if environ is None else environ
        variables = (KEY_ID_VARIABLE, SECRET_VARIABLE)
        raw = [env.get(variable, "") for variable in variables]
        values = [value.strip() if isinstance(value, str) else value for value in raw]
        missing = [variable for variable, value in zip(variables, values, strict=True) if not value]
        if missing:
            raise MissingCredentialsError(*missing)
        return cls(values[0], values[1])

    @property
    def fingerprint(self) -> str:
        """A short, non-secret identifier: ``...`` and the key id's last four characters."""
        return "..." + self.key_id[-FINGERPRINT_CHARS:]

    def reveal(self) -> str:
        """Return the secret. Only the auth encoder and header builder call this."""
        return self._secret.get()

    def __repr__(self) -> str:
        return f"Credentials(key_id={self.fingerprint!r}, secret='***')"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("credentials cannot be pickled; rebuild them from the environment")
