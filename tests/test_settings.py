"""One schema per settings object: the dataclass, the TOML reader, the command-line options and
the documented defaults must agree on every field (issue 22: a refine relaxation had defaulted
to 100 steps from the CLI, 200 in a study and 500 in RelaxSettings)."""

import inspect
import re
import sys
from dataclasses import MISSING, fields
from pathlib import Path

import pytest

from airss_msc import cli
from airss_msc.calc.relax import REFINE_RELAX, RelaxSettings
from airss_msc.errors import InputError
from airss_msc.generation.generate import GeneratorSettings
from airss_msc.search.config import SECTIONS, SearchConfig, config_from_dict
from airss_msc.search.strategy import StrategySettings
from airss_msc.search.study import (
    STEP_KINDS,
    Study,
    StudyStep,
    defaults_document,
    load_study,
    step_defaults,
    study_from_dict,
)
from airss_msc.settings import default_of, read_table, spec, specs, toml_keys, toml_section

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

README = Path(__file__).resolve().parents[1] / "README.md"
CLASSES = [*SECTIONS.values(), Study, StudyStep]
#: Fields that are no TOML key of their own table, and where their value comes from instead.
NOT_KEYS = {
    (SearchConfig, "generate"),
    (SearchConfig, "relax"),
    (SearchConfig, "strategy"),  # their own sections
    (SearchConfig, "source"),  # the loader sets it
    (GeneratorSettings, "extra"),  # API callers' notes
    (StrategySettings, "move_settings"),  # the [strategy.MOVE] tables
    (Study, "search"),
    (Study, "mode"),
    (Study, "modes"),  # the other sections, --mode, [mode.NAME]
    (StudyStep, "name"),  # the table's name
}


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_field_is_declared_once_with_help_and_is_a_toml_key_or_says_why_not(cls):
    declared = specs(cls)  # raises for a field declared without setting()
    assert [s.name for s in declared] == [f.name for f in fields(cls)]
    for s in declared:
        assert s.help, f"{cls.__name__}.{s.name} has no help"
        assert (s.key is None) == ((cls, s.name) in NOT_KEYS), f"{cls.__name__}.{s.name}"
    # the class docstring lists every field (pdoc's reference shows it)
    assert all(f"``{f.name}``" in cls.__doc__ for f in fields(cls))


def test_push_iterations_and_placement_trials_are_config_keys():
    doc = {
        "search": {"compositions": ["Cd2Se2"], "candidates": 1},
        "generate": {"push_iterations": 50, "placement_trials": 4},
        "relax": {"method": "lj"},
    }
    config = config_from_dict(doc)
    assert (config.generate.push_iterations, config.generate.placement_trials) == (50, 4)


@pytest.mark.parametrize(("name", "cls"), [*SECTIONS.items(), ("study", Study)], ids=lambda x: str(x))
def test_the_documented_defaults_read_back_as_the_dataclass_defaults(name, cls):
    """Dataclass default == the default the TOML reader gives back from the printed document."""
    text = toml_section(cls, name)
    read = read_table(cls, tomllib.loads(text)[name], name)
    for s in specs(cls):
        if s.key is None:
            continue
        assert re.search(rf"^#? ?{s.key} = ", text, re.M), f"[{name}] {s.key} is not documented"
        if s.name in read:
            assert read[s.name] == s.default and type(read[s.name]) is type(s.default), s.name
        else:  # left out of the document: no value of its own (None, required, worked out elsewhere)
            assert s.default is MISSING or s.default is None or s.shown, s.name


def test_each_study_step_kind_reads_back_as_its_defaults():
    doc = tomllib.loads(defaults_document())
    for kind in STEP_KINDS:
        values = read_table(StudyStep, doc["study"][kind], f"study.{kind}")
        default = step_defaults(kind)
        for field_name, value in values.items():
            assert value == getattr(default, field_name), (kind, field_name)
    # a study step written with nothing but its kind is the kind's defaults
    plan = study_from_dict(
        {
            "search": {"compositions": ["X4"], "candidates": 1},
            "relax": {"method": "lj"},
            "study": {"steps": list(STEP_KINDS), **{k: {} for k in STEP_KINDS}},
        }
    )
    assert plan.steps == tuple(step_defaults(k) for k in STEP_KINDS)


def _typed_values(cls) -> dict:
    """A TOML value for every key of ``cls``: numbers as TOML integers where the field is a float."""
    out = {}
    for s in specs(cls):
        if s.key is None or s.parse is not None:
            continue
        value = s.default
        if value is MISSING or value is None:
            continue
        out[s.key] = (
            int(value)
            if isinstance(value, float) and value.is_integer()
            else (list(value) if isinstance(value, tuple) else value)
        )
    return out


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_key_is_taken_with_integers_as_floats_and_arrays_as_tuples(cls):
    table = _typed_values(cls)
    read = read_table(cls, table, "t")
    for s in specs(cls):
        if s.key in table:
            assert read[s.name] == s.default and type(read[s.name]) is type(s.default), s.name
    assert read_table(RelaxSettings, {"fmax": 1}, "relax") == {"fmax": 1.0}
    assert type(read_table(RelaxSettings, {"fmax": 1}, "relax")["fmax"]) is float
    assert read_table(GeneratorSettings, {"axes": [3, 2, 1.5]}, "generate") == {"axes": (3.0, 2.0, 1.5)}


@pytest.mark.parametrize(
    ("name", "cls"), [*SECTIONS.items(), ("study", Study), ("study.x", StudyStep)], ids=lambda x: str(x)
)
def test_unknown_keys_are_refused_with_every_known_key_listed(name, cls):
    with pytest.raises(InputError) as err:
        read_table(cls, {"no_such_key": 1}, name)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"unknown key 'no_such_key' in [{name}]; known keys: ")
    assert set(message.split("known keys: ")[1].split(", ")) >= set(toml_keys(cls))


@pytest.mark.parametrize(
    ("section", "table", "expected"),
    [
        ("relax", {"steps": 1.5}, "[relax] steps = 1.5 has the wrong type: expected an integer"),
        ("relax", {"fmax": True}, "[relax] fmax = True has the wrong type: expected a number"),
        (
            "relax",
            {"single_points": "lj"},
            "[relax] single_points = 'lj' has the wrong type: expected a list of strings",
        ),
        ("generate", {"axes": [1, 2]}, "[generate] axes = [1, 2] has the wrong type: expected a list of 3 numbers"),
        (
            "strategy",
            {"moves": {"shake": "x"}},
            "[strategy] moves = {'shake': 'x'} has the wrong type: expected a table of move = weight",
        ),
        ("search", {"compositions": ["Cd2Se2"], "walltime": [1]}, "[search] walltime = [1] has the wrong type"),
    ],
)
def test_a_value_of_the_wrong_type_is_one_line_saying_what_is_expected(section, table, expected):
    doc = {"search": {"compositions": ["Cd2Se2"]}, "relax": {"method": "lj"}}
    doc[section] = {**doc.get(section, {}), **table}
    with pytest.raises(InputError) as err:
        config_from_dict(doc)
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)


def test_relax_stages_are_read_with_the_relax_schema_but_set_no_protocol_keys():
    stages = read_table(RelaxSettings, {"stage": [{"method": "lj", "fmax": 1}, {"steps": 10}]}, "relax")["stages"]
    assert stages == ({"method": "lj", "fmax": 1.0}, {"steps": 10})
    with pytest.raises(InputError, match=r"unknown key 'single_points' in \[relax.stage 2\]"):
        read_table(RelaxSettings, {"stage": [{}, {"single_points": []}]}, "relax")


def _option_default(command, param: str):
    return inspect.signature(command).parameters[param].default.default


#: (command, parameter, settings source, field): every option that is a setting.
CLI_SETTINGS = [
    (cli.generate, "slack", GeneratorSettings, "slack"),
    (cli.generate, "shape", GeneratorSettings, "shape"),
    (cli.generate, "radius", GeneratorSettings, "radius"),
    (cli.generate, "inner", GeneratorSettings, "inner"),
    (cli.generate, "symmetry", GeneratorSettings, "symmetry"),
    (cli.generate, "max_attempts", GeneratorSettings, "max_attempts"),
    (cli.relax, "method", RelaxSettings, "method"),
    (cli.relax, "fmax", RelaxSettings, "fmax"),
    (cli.relax, "steps", RelaxSettings, "steps"),
    (cli.relax, "optimizer", RelaxSettings, "optimizer"),
    (cli.relax, "max_seconds", RelaxSettings, "max_seconds"),
    (cli.rescore, "method", step_defaults("rescore"), "method"),
    *[
        (cli.refine, p, step_defaults("refine"), f)
        for p, f in [
            ("top", "top"),
            ("method", "method"),
            ("relax_", "relax"),
            ("fmax", "fmax"),
            ("steps", "steps"),
            ("energy", "energy"),
        ]
    ],
    *[(cli.spectrum, p, step_defaults("spectrum"), p) for p in ("top", "method", "states", "energy", "rows")],
    *[(cli.cap, p, step_defaults("cap"), p) for p in ("ligand", "sites", "top", "method", "fmax", "steps", "energy")],
    (cli.report, "top", Study, "report_top"),
]


@pytest.mark.parametrize(
    ("command", "param", "source", "name"), CLI_SETTINGS, ids=[f"{c.__name__}-{p}" for c, p, _, _ in CLI_SETTINGS]
)
def test_each_command_line_default_is_the_schema_default(command, param, source, name):
    assert _option_default(command, param) == default_of(source, name)


def test_the_relaxation_defaults_agree_across_commands_studies_and_settings():
    """One default per purpose: a search relaxation (and cap) 500 steps, a refinement's 100."""
    assert _option_default(cli.relax, "steps") == RelaxSettings().steps == 500
    assert _option_default(cli.cap, "steps") == step_defaults("cap").steps == RelaxSettings().steps
    assert _option_default(cli.refine, "steps") == step_defaults("refine").steps == REFINE_RELAX.steps == 100
    assert _option_default(cli.refine, "method") == REFINE_RELAX.method == "pyscf:PBE/def2-SVP"
    assert _option_default(cli.refine, "top") == _option_default(cli.spectrum, "top") == StudyStep.top == 3
    assert spec(StudyStep, "fmax").default == RelaxSettings().fmax == _option_default(cli.refine, "fmax")


def test_the_readme_key_tables_are_the_generated_ones():
    text = README.read_text()
    m = re.search(r"<!-- config keys:[^\n]*-->\n(.*?)<!-- end of config keys -->", text, re.S)
    assert m, "README has no generated config key tables"
    assert m.group(1) == defaults_document(markdown=True), (
        "README config keys are stale: paste the output of 'airss-msc config --defaults --markdown'"
    )


def test_config_prints_the_defaults_and_a_config_as_read(tmp_path, run_cli):
    code, out, err = run_cli("config", "--defaults")
    assert code == 0 and "push_iterations = 300" in out and "[study.refine]" in out
    tomllib.loads(out)  # a TOML document
    code, out, err = run_cli("config")
    assert code == 2 and err.count("\n") == 1 and "--defaults" in err
    path = tmp_path / "s.toml"
    path.write_text(
        '[search]\ncompositions = ["X4"]\ncandidates = 1\ndb = "x.db"\n[relax]\nmethod = "lj"\n'
        '[[relax.stage]]\nfmax = 0.5\n[[relax.stage]]\nsteps = 7\n[strategy]\nname = "mix"\n'
        "moves = { shake = 1 }\n[strategy.shake]\namplitude = 0.3\n"
        '[study]\nsteps = ["r"]\n[study.r]\ndo = "refine"\nmethod = "lj"\nrelax = true\n'
    )
    code, out, err = run_cli("config", path)
    assert code == 0, err
    plan = load_study(path)
    again = study_from_dict(tomllib.loads(out), str(path))  # every path in it is already resolved
    assert again.search == plan.search and again.steps == plan.steps and again.report == plan.report
    assert "steps = 100  # step limit per relaxation" in out  # the refine step's own default, written out
