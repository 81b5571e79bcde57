"""Validators of the EU recognizers (no model needed)."""

from __future__ import annotations

import pytest

from tunegate.pii.recognizers import PeselRecognizer, deobfuscate_email, iban_is_valid, luhn_ok


@pytest.mark.parametrize("pesel", ["44051401359", "02070803628", "90090515836"])
def test_pesel_valid(pesel: str) -> None:
    assert PeselRecognizer.is_valid(pesel)


@pytest.mark.parametrize("pesel", ["44051401358", "44151401359", "4405140135", "44053201350"])
def test_pesel_invalid_checksum_or_date(pesel: str) -> None:
    assert not PeselRecognizer.is_valid(pesel)


@pytest.mark.parametrize(
    "iban",
    [
        "PL61 1090 1014 0000 0712 1981 2874",
        "DE89 3704 0044 0532 0130 00",
        "FR14 2004 1010 0505 0001 3M02 606",
        "de89-3704-0044-0532-0130-00",
        "NL91ABNA0417164300",
        "GB39HKOI2982207783422",  # 21 characters (GB is 22) with valid check digits: Faker en_IN's
    ],
)
def test_iban_valid(iban: str) -> None:
    assert iban_is_valid(iban)


@pytest.mark.parametrize(
    "iban", ["PL61 1090 1014 0000 0712 1981 2875", "DE89 3704 0044 0532 0130", "XX00 1234"]
)
def test_iban_invalid(iban: str) -> None:
    assert not iban_is_valid(iban)


def test_deobfuscate_email_forms() -> None:
    assert deobfuscate_email("jan.kowalski [at] example [dot] com") == "jan.kowalski@example.com"
    assert deobfuscate_email("anna(at)example.com") == "anna@example.com"
    assert deobfuscate_email("bob at mail dot example dot org") == "bob@mail.example.org"
    assert deobfuscate_email("ola%2Bnews%40example.pl") == "ola+news@example.pl"
    assert deobfuscate_email("anna&#64;example&#46;com") == "anna@example.com"
    assert deobfuscate_email("anna&#x40;example.com") == "anna@example.com"
    assert deobfuscate_email("a.nowak @ example.pl") == "a.nowak@example.pl"


def test_luhn() -> None:
    assert luhn_ok("4111111111111111")
    assert not luhn_ok("4111111111111112")
