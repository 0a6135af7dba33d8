import pytest

from airss_msc.composition import (
    canonical_formula,
    cdtese_family,
    expand_compositions,
    is_charge_balanced,
    parse_formula,
    zncdse13_family,
)
from airss_msc.errors import InputError


def test_parse_formula_counts_and_order():
    assert parse_formula("Cd7Te1Se3") == {"Cd": 7, "Te": 1, "Se": 3}
    assert parse_formula("Cd7TeSe3") == {"Cd": 7, "Te": 1, "Se": 3}
    assert canonical_formula("Se3TeCd7") == "Cd7TeSe3"
    assert canonical_formula("Cd10Zn3Se13") == "Zn3Cd10Se13"
    assert parse_formula("X38") == {"X": 38}


@pytest.mark.parametrize("bad", ["", "cd4se4", "Cd4Se-4", "Cd0Se4", "Cd4 Se4x", "4Cd", "Cd4Se4)"])
def test_malformed_formulas_are_refused(bad):
    with pytest.raises(InputError, match="malformed"):
        parse_formula(bad)


def test_unknown_element_is_named():
    with pytest.raises(InputError, match="unknown element 'Qq'"):
        parse_formula("Cd4Qq4")


def test_cdtese_family_contains_esi_ms_fragments_only_without_balance_flag():
    free = set(cdtese_family((9, 16)))
    balanced = set(cdtese_family((9, 16), charge_balanced=True))
    for fragment in ("Cd7TeSe3", "Cd6Te2Se3"):
        assert fragment in free
        assert fragment not in balanced
    assert "Cd6Te2Se4" in balanced
    assert all(is_charge_balanced(parse_formula(f)) for f in balanced)
    sizes = {sum(parse_formula(f).values()) for f in free}
    assert sizes == set(range(9, 17))
    # ternaries only by default; binaries on request
    assert "Cd6Se6" not in free and "Cd6Se6" in set(cdtese_family((12, 12), binaries=True))


def test_zncdse13_family_is_x_0_to_13():
    family = list(zncdse13_family())
    assert len(family) == 14
    assert family[0] == "Cd13Se13" and family[-1] == "Zn13Se13"
    assert all(parse_formula(f)["Se"] == 13 for f in family)


def test_expand_compositions_accepts_families_and_drops_duplicates():
    out = expand_compositions(["Cd6Se6", "cdtese:12:balanced", "Se6Cd6"])
    assert out[0] == "Cd6Se6" and out.count("Cd6Se6") == 1
    assert "Cd6Te3Se3" in out
    with pytest.raises(InputError):
        expand_compositions(["cdtese:x-y"])
