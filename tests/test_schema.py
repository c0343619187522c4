from riskcap.schema import CONDITION_CODES, is_acs, nhs_number_valid


def test_nhs_number_mod11():
    assert nhs_number_valid("9434765919")
    assert not nhs_number_valid("9434765918")
    assert not nhs_number_valid("943476591")
    assert not nhs_number_valid("94347659AA")


def test_acs_codes():
    assert is_acs("I50.0") and is_acs("J44") and is_acs("E11.9")
    assert not is_acs("S72.0") and not is_acs(None) and not is_acs("I11.1")


def test_twenty_qof_registers_plus_frailty():
    assert len(CONDITION_CODES) == 21 and "frailty" in CONDITION_CODES
