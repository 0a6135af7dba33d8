"""The public API: the main functions import from the package itself, lazily."""

import subprocess
import sys

import airss_msc


def test_every_exported_name_resolves_to_its_module_object():
    for name, module in airss_msc._EXPORTS.items():
        value = getattr(airss_msc, name)
        assert value.__module__ == module, name
        assert value.__doc__, f"{name} has no docstring"


def test_importing_the_package_loads_no_engine():
    code = "import sys, airss_msc; print(any(m.split('.')[0] in ('torch', 'pyscf', 'chgnet') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_generate_from_the_package(tmp_path):
    from airss_msc import GeneratorSettings, generate_cluster

    atoms = generate_cluster("Cd3Se3", 1, GeneratorSettings())
    assert atoms.get_chemical_formula() == "Cd3Se3" and atoms.info["seed"] == 1
