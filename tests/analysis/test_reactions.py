"""Reaction energies from stored clusters (airss_msc.analysis.reactions)."""

import numpy as np
import pytest

from airss_msc.analysis.reactions import parse_reaction, reaction_energy, substitution_steps
from airss_msc.composition import parse_formula, symbols_of
from airss_msc.errors import InputError
from airss_msc.results.record import Result

RANK = "sevennet:7net-0"
PBE = "pyscf:PBE/def2-SVP"


def row(
    formula: str, energy: float, row_id: int, pbe: float | None = None, status: str = "relaxed", **provenance
) -> Result:
    symbols = symbols_of(parse_formula(formula))
    energies = {RANK: energy, **({PBE: pbe} if pbe is not None else {})}
    return Result(
        symbols=tuple(symbols),
        positions=np.arange(3 * len(symbols), dtype=float).reshape(-1, 3),
        status=status,
        method="chgnet:0.3.0",
        energy=0.0,
        energies=energies,
        id=row_id,
        source="r.db",
        provenance=provenance,
    )


def test_parse_balances_and_canonicalises():
    r = parse_reaction("Te13Cd13 + SeCd -> Cd13Te12Se + CdTe")
    assert str(r) == "Cd13Te13 + CdSe -> Cd13Te12Se + CdTe"
    assert str(parse_reaction("Cd13Te13 + Cd13Se13 -> Cd13Te7Se6 + Cd13Te6Se7")).count("+") == 2
    assert parse_reaction("2 CdSe -> Cd2Se2").reactants == ((2, "CdSe"),)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("Cd13Te13 + CdSe -> Cd13Te12Se", "does not balance.*Cd -1.*Te -1"),
        ("Cd13Te13 CdSe", "write it as"),
        ("Cd13Te13 + -> CdTe", "cannot read"),
        ("Cd13Qq13 -> Cd13Qq13", "unknown element"),
    ],
)
def test_bad_equations_are_one_clear_error(text, match):
    with pytest.raises(InputError, match=match):
        parse_reaction(text)


def test_each_species_at_its_lowest_by_the_stated_method():
    rows = [
        row("Cd13Te13", -100.0, 1, pbe=-1000.0),
        row("Cd13Te13", -101.0, 2, pbe=-999.0),  # lowest: 2
        row("CdSe", -5.0, 3, pbe=-50.0),
        row("Cd13Te12Se", -103.5, 4, pbe=-1003.0),
        row("CdTe", -4.0, 5, pbe=-47.0),
        row("Cd13Te12Se", -200.0, 6, status="collapsed"),  # not a minimum: never used
        row("CdTe", -90.0, 7, bare_parent=5),
    ]  # a capped copy is not the bare species
    e = reaction_energy("Cd13Te13 + CdSe -> Cd13Te12Se + CdTe", rows, RANK)
    assert [s.row_id for s in e.species] == [2, 3, 4, 5]
    assert e.delta_eV == pytest.approx((-103.5 - 4.0) - (-101.0 - 5.0))  # -1.5 eV: downhill
    assert e.downhill and e.error and "Spearman" in e.error  # the method's measured error travels along
    assert e.reference == PBE  # on the same rows, where every one has it
    assert e.reference_delta_eV == pytest.approx((-1003.0 - 47.0) - (-999.0 - 50.0))


def test_a_missing_species_is_named():
    rows = [row("Cd13Te13", -100.0, 1), row("CdSe", -5.0, 2)]
    with pytest.raises(InputError, match="no relaxed Cd13Te12Se, CdTe with a sevennet:7net-0 energy"):
        reaction_energy("Cd13Te13 + CdSe -> Cd13Te12Se + CdTe", rows, RANK)


def test_substitution_steps_walk_from_the_parent_to_the_other_end_member():
    steps = substitution_steps("Cd13Te13", "Te", "Se", "CdSe")
    assert len(steps) == 13
    assert str(steps[0]) == "Cd13Te13 + CdSe -> Cd13Te12Se + CdTe"
    assert str(steps[-1]) == "Cd13TeSe12 + CdSe -> Cd13Se13 + CdTe"
    fragment = substitution_steps("Cd13Se13", "Se", "Te", "Cd2Te2", steps=2)
    assert [str(s) for s in fragment] == [
        "Cd13Se13 + Cd2Te2 -> Cd13TeSe12 + Cd2TeSe",
        "Cd13TeSe12 + Cd2Te2 -> Cd13Te2Se11 + Cd2TeSe",
    ]
    exchange = substitution_steps("Zn13Se13", "Zn", "Cd", "CdSe", steps=1)
    assert str(exchange[0]) == "Zn13Se13 + CdSe -> Zn12CdSe13 + ZnSe"
    for s in steps + fragment + exchange:
        parse_reaction(str(s))  # every step balances
    with pytest.raises(InputError, match="holds no Se"):
        substitution_steps("Cd13Te13", "Te", "Se", "CdTe")


def test_the_reaction_command_over_a_database(tmp_path, run_cli):
    from airss_msc.results.store import ResultsDB

    db = tmp_path / "r.db"
    with ResultsDB(db, write=True) as store:
        for r in [
            row("Cd13Te13", -101.0, 0, pbe=-999.0),
            row("CdSe", -5.0, 0, pbe=-50.0),
            row("Cd13Te12Se", -103.5, 0, pbe=-1003.0),
            row("CdTe", -4.0, 0, pbe=-47.0),
        ]:
            store.add(r)
    code, out, err = run_cli(
        "reaction", db, "--parent", "Cd13Te13", "--replace", "Te=Se", "--unit", "CdSe", "--steps", "1", "--energy", RANK
    )
    assert code == 0, err
    line = next(x for x in out.splitlines() if x.startswith("Cd13Te13 + CdSe"))
    assert "-1.500" in line and "downhill" in line and "+1.000" not in line and "-1.000" in line  # PBE dE -1.0
    assert "measured error of sevennet:7net-0" in out
    code, out, err = run_cli("reaction", db, "-e", "Cd13Te12Se + CdSe -> Cd13Te11Se2 + CdTe", "--energy", RANK)
    assert code == 2 and "no relaxed Cd13Te11Se2" in err and len(err.strip().splitlines()) == 1
