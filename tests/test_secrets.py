"""The secret never shows: credentials, errors, log events and redaction."""

from __future__ import annotations

import gc
import pickle

import pytest

from streamfsm.credentials import KEY_ID_VARIABLE, SECRET_VARIABLE, Credentials
from streamfsm.errors import ConfigurationError, MissingCredentialsError
from streamfsm.logs import REDACTED, StreamLogger, capture_events, redact_secrets

KEY_ID = "PKTESTKEY0000000WXYZ"
SECRET = "s3cr3t-value-that-must-never-show-0123"


def test_repr_and_str_show_only_a_fingerprint() -> None:
    """repr and str show the key id's last four characters and never the secret."""
    credentials = Credentials(KEY_ID, SECRET)
    for text in (repr(credentials), str(credentials), f"{credentials}", repr([credentials])):
        assert SECRET not in text
        assert KEY_ID not in text
        assert "WXYZ" in text
    assert credentials.fingerprint == "...WXYZ"
    assert credentials.reveal() == SECRET


def test_credentials_refuse_to_be_pickled() -> None:
    """Pickling would write the secret to disk: it raises instead."""
    with pytest.raises(TypeError):
        pickle.dumps(Credentials(KEY_ID, SECRET))


@pytest.mark.parametrize(("key_id", "secret"), [("", SECRET), (KEY_ID, "  "), (KEY_ID, None)])
def test_blank_values_are_configuration_errors(key_id: str, secret: object) -> None:
    """A blank key id or secret is refused, and the error never echoes the secret."""
    with pytest.raises(ConfigurationError) as caught:
        Credentials(key_id, secret)  # type: ignore[arg-type]
    assert SECRET not in str(caught.value)


def test_from_env_reads_alpacas_variables() -> None:
    """from_env reads APCA_API_KEY_ID and APCA_API_SECRET_KEY, trimming blanks."""
    credentials = Credentials.from_env({KEY_ID_VARIABLE: f" {KEY_ID} ", SECRET_VARIABLE: SECRET})
    assert credentials == Credentials(KEY_ID, SECRET)


def test_from_env_names_every_missing_variable() -> None:
    """Missing or blank variables are named, all of them, in one typed error."""
    with pytest.raises(MissingCredentialsError) as caught:
        Credentials.from_env({SECRET_VARIABLE: "   "})
    assert caught.value.variables == (KEY_ID_VARIABLE, SECRET_VARIABLE)
    assert KEY_ID_VARIABLE in str(caught.value)
    assert SECRET_VARIABLE in str(caught.value)


def test_redaction_masks_secret_keys_and_registered_secrets() -> None:
    """Secret-looking keys are masked, and a registered secret inside any value is too."""
    credentials = Credentials(KEY_ID, SECRET)  # registers the secret while it lives
    event = redact_secrets(
        None,
        "info",
        {
            "secret": "anything",
            "Authorization": "Bearer x",
            "note": f"auth frame {SECRET} sent",
            "nested": {"apca-api-secret-key": "y", "list": [SECRET]},
            "error": ValueError(f"bad {SECRET}"),
        },
    )
    assert event["secret"] == REDACTED
    assert event["Authorization"] == REDACTED
    assert SECRET not in repr(event)
    assert event["nested"]["apca-api-secret-key"] == REDACTED
    assert credentials.reveal() == SECRET


def test_stream_logger_redacts_before_any_processor_sees_the_event() -> None:
    """Events of streamfsm's logger reach the logging handlers already redacted."""
    credentials = Credentials(KEY_ID, SECRET)
    with capture_events() as logs:
        StreamLogger(correlation_id="c").error("oops", detail=f"secret is {SECRET}")
    assert logs
    assert SECRET not in repr(logs)
    assert credentials.fingerprint == "...WXYZ"


def test_the_registry_forgets_secrets_of_credentials_that_are_gone() -> None:
    """Only live credentials are searched for: a dropped credential's secret leaves the registry."""
    other = "another-secret-that-is-dropped-42"
    credentials = Credentials(KEY_ID, other)
    assert other not in repr(redact_secrets(None, "", {"note": other}))
    del credentials
    gc.collect()
    assert redact_secrets(None, "", {"note": other})["note"] == other


def test_equal_credentials_each_keep_their_secret_registered() -> None:
    """Two equal credentials: dropping one leaves the other's secret masked."""
    first, second = Credentials(KEY_ID, SECRET), Credentials(KEY_ID, SECRET)
    assert first == second
    del first
    gc.collect()
    assert SECRET not in repr(redact_secrets(None, "", {"note": SECRET}))
    assert second.reveal() == SECRET


@pytest.mark.parametrize(
    ("key_id", "secret", "field"),
    [
        ("PK KEY", SECRET, "key_id"),
        ("PKKEY\n", SECRET, "key_id"),
        ("PK\u00e9KEY", SECRET, "key_id"),
        ("K" * 129, SECRET, "key_id"),
        (42, SECRET, "key_id"),
        (KEY_ID, SECRET + " x", "secret"),
        (KEY_ID, SECRET + "\u2028", "secret"),
        (KEY_ID, "s" * 257, "secret"),
        (KEY_ID, b"bytes-secret", "secret"),
    ],
)
def test_keys_that_could_never_authenticate_are_refused(
    key_id: object, secret: object, field: str
) -> None:
    """Spaces, control or non-ASCII characters, huge or non-str values fail at construction."""
    with pytest.raises(ConfigurationError) as caught:
        Credentials(key_id, secret)  # type: ignore[arg-type]
    assert caught.value.field == field
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "environ",
    [[], "APCA_API_KEY_ID=x", {KEY_ID_VARIABLE: 5, SECRET_VARIABLE: SECRET}],
)
def test_from_env_refuses_what_is_not_an_environment(environ: object) -> None:
    """A non-mapping, or a non-string value in it, is a ConfigurationError, not AttributeError."""
    with pytest.raises(ConfigurationError):
        Credentials.from_env(environ)  # type: ignore[arg-type]
