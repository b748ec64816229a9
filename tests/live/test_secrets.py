"""Keys come from env vars or a mode-0600 file and never show up in reprs, messages or logs."""

from __future__ import annotations

import logging
import os

import pytest

from ztb_core.live.venue.exchange_config import ExchangeConfig
from ztb_core.live.venue.factory import make_adapter
from ztb_core.live.venue.secrets import (
    Credentials,
    CredentialsError,
    SecretsFilter,
    install_log_filter,
    load_credentials,
    redact,
    remove_log_filter,
)

KEY, SECRET = "AKIA-live-key-98765", "s3cr3t-value-abcdef"


def test_env_vars_named_after_the_exchange():
    creds = load_credentials(
        ExchangeConfig(exchange="coincheck"), env={"COINCHECK_API_KEY": KEY, "COINCHECK_API_SECRET": SECRET}
    )
    assert (creds.api_key, creds.secret, creds.source) == (KEY, SECRET, "env:COINCHECK_API_KEY")
    zaif = load_credentials(ExchangeConfig(exchange="zaif"), env={"ZAIF_API_KEY": "k", "ZAIF_API_SECRET": "s"})
    assert zaif.api_key == "k"
    custom = ExchangeConfig(credentials={"api_key_env": "MY_K", "api_secret_env": "MY_S"})
    assert load_credentials(custom, env={"MY_K": "a", "MY_S": "b"}).secret == "b"


def test_missing_or_half_set_keys_say_what_to_set():
    with pytest.raises(CredentialsError, match="COINCHECK_API_KEY and COINCHECK_API_SECRET"):
        load_credentials(ExchangeConfig(), env={})
    assert load_credentials(ExchangeConfig(), env={}, required=False) is None
    with pytest.raises(CredentialsError, match="COINCHECK_API_KEY is set but COINCHECK_API_SECRET is not"):
        load_credentials(ExchangeConfig(), env={"COINCHECK_API_KEY": KEY})


def test_key_file_must_be_0600(tmp_path):
    path = tmp_path / "keys.yaml"
    path.write_text(f"api_key: {KEY}\nsecret: {SECRET}\n")
    cfg = ExchangeConfig(credentials={"key_file": str(path)})
    os.chmod(path, 0o644)
    with pytest.raises(CredentialsError) as info:
        load_credentials(cfg, env={})
    assert str(path) in str(info.value) and "0644" in str(info.value) and "chmod 600" in str(info.value)
    os.chmod(path, 0o600)
    creds = load_credentials(cfg, env={})
    assert (creds.api_key, creds.secret, creds.source) == (KEY, SECRET, str(path))
    path.write_text(f"api_key: {KEY}\n")
    with pytest.raises(CredentialsError, match="lacks secret"):
        load_credentials(cfg, env={})
    path.write_text(f"api_key: [{SECRET}\n")  # broken YAML: the message must not quote the content
    with pytest.raises(CredentialsError) as broken:
        load_credentials(cfg, env={})
    assert SECRET not in str(broken.value)
    with pytest.raises(CredentialsError, match="not found"):
        load_credentials(ExchangeConfig(credentials={"key_file": str(tmp_path / "nope.yaml")}), env={})


def test_repr_and_redact_hide_the_values():
    creds = Credentials(KEY, SECRET)
    for text in (repr(creds), str(creds), f"{creds}", repr([creds])):
        assert KEY not in text and SECRET not in text and "***" in text
    assert redact(f"sent {KEY} signed with {SECRET}.", creds) == "sent *** signed with ***."
    assert redact("nothing here", None) == "nothing here"


def test_log_filter_scrubs_ccxt_debug_logging_of_signed_requests(exchange_config, test_credentials, caplog):
    """ccxt's debug log prints request headers, ACCESS-KEY included; the filter removes it."""
    filt = install_log_filter(test_credentials, loggers=("", "ccxt", "ccxt.base.exchange"))
    caplog.handler.addFilter(filt)
    try:
        with caplog.at_level(logging.DEBUG):
            adapter = make_adapter(exchange_config, test_credentials)
            adapter.fetch_balance()
            logging.getLogger("ztb_core.live").warning(
                "oops key=%s secret=%s", test_credentials.api_key, test_credentials.secret
            )
    finally:
        caplog.handler.removeFilter(filt)
        remove_log_filter(filt, loggers=("", "ccxt", "ccxt.base.exchange"))
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "ACCESS-KEY" in text, "ccxt did log the signed request headers"
    assert test_credentials.api_key not in text and test_credentials.secret not in text
    assert "oops key=*** secret=***" in text


def test_filter_handles_records_with_arguments():
    creds = Credentials(KEY, SECRET)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "headers %r", ({"ACCESS-KEY": KEY},), None)
    assert SecretsFilter(creds).filter(record) is True
    assert KEY not in record.getMessage() and "***" in record.getMessage()


def test_bundled_configs_match_the_model_defaults():
    """configs/exchange.yaml and configs/emulator.yaml document the defaults, so they must equal them."""
    from ztb_core.config import load_config
    from ztb_core.live.emulator import EmulatorConfig

    assert load_config(ExchangeConfig) == ExchangeConfig()
    assert load_config(EmulatorConfig) == EmulatorConfig()
    cfg = load_config(
        ExchangeConfig,
        overrides=[
            "markets.BTC/JPY.amount_step=0.001",
            "markets.BTC/JPY.price_step=5",
            "markets.BTC/JPY.min_amount=0.001",
        ],
    )
    assert str(cfg.market_override("BTC/JPY").amount_step) == "0.001"
