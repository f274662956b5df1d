# tests: tests/core/test_sasl.py
"""The SASL failure conditions of RFC 6120 §6.5, as an exception both SASL profiles use
(RFC 6120 `<failure/>`, XEP-0388 SASL2 `<failure/>`)."""
from __future__ import annotations

CONDITIONS = frozenset(
    {
        "aborted",
        "account-disabled",
        "credentials-expired",
        "encryption-required",
        "incorrect-encoding",
        "invalid-authzid",
        "invalid-mechanism",
        "malformed-request",
        "mechanism-too-weak",
        "not-authorized",
        "temporary-auth-failure",
    }
)
"""The SASL failure conditions of RFC 6120 §6.5."""


class SaslFailure(Exception):
    """A SASL exchange failed: send `<failure><{condition}/>[<text/>]</failure>` (RFC 6120 §6.4.5).

    `text` is for the client and never contains the payload, the username or the password.
    """

    condition: str
    text: str | None

    def __init__(self, condition: str, text: str | None = None) -> None:
        if condition not in CONDITIONS:
            raise ValueError(f"not an RFC 6120 §6.5 SASL condition: {condition!r}")
        super().__init__(condition if text is None else f"{condition}: {text}")
        self.condition = condition
        self.text = text
