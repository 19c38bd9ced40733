import pytest

from units.phones import PhoneInvalid, phone_normalize


@pytest.mark.parametrize(
    "raw",
    ["13912345678", "+86 139-1234-5678", "0086 13912345678", "8613912345678", "(139)1234 5678"],
)
def test_every_typed_form_of_one_number_normalises_to_eleven_digits(raw):
    assert phone_normalize(raw) == "13912345678"


@pytest.mark.parametrize("raw", ["", None, "12345", "12912345678", "139123456789"])
def test_what_is_not_a_mainland_mobile_is_refused(raw):
    with pytest.raises(PhoneInvalid):
        phone_normalize(raw)


def test_a_number_excel_turned_into_scientific_notation_is_named_as_such():
    with pytest.raises(PhoneInvalid) as info:
        phone_normalize("1.39123E+10")
    assert info.value.scientific
