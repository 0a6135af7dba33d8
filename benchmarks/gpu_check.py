"""The GPU paths, proven (issue 23 item 2): one table from a machine with an NVIDIA GPU.

Installs nothing and downloads nothing; every part is skipped with its reason where its library
(CUDA for torch, gpu4pyscf with a device CuPy sees) is missing, and parts that would run past the
time budget (default 9 minutes) are skipped as such. Parts, in order:

1. batched CHGNet and SevenNet-0 relaxations of 256 random Cd13Se13 starts (``relax_batch``,
   256 per call, fmax 0.05 eV/A, 500 steps): structures per second, statuses, force calls,
   out-of-memory fallbacks;
2. PBE/def2-SVP single point and gradient of Cd4Se4 and of the 26-atom cluster (Cd13Se13 where its
   CPU energy is committed, else the Cd13Te13 parent) on the GPU, against the CPU energies in
   benchmarks/reference/pbe_def2svp.jsonl (agreement: 1e-5 Ha);
3. TDA-PBE0/def2-SVP (5 states) of Cd3Se3, against the CPU run (first bright state 2.921 eV,
   BENCHMARKS.md TDA table, commit 11e7eba, same reference geometry), and of Cd4Se4 (no CPU run:
   the GPU number only).

    python -m benchmarks.gpu_check [--budget 540] [--starts 256] [--out benchmarks/out/gpu_check.md]

Without a GPU it prints the table of skipped parts and exits 0; ``--allow-cpu`` runs the ML part
on the CPU instead (to test the code path; slow, use --starts 2 --formula Cd3Se3).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.io import read

from airss_msc.calc.engines import Role, default_method
from airss_msc.calc.relax import RelaxSettings
from airss_msc.calc.relax_batch import BatchFallbackWarning, relax_batch
from airss_msc.generation.generate import generate_cluster
from benchmarks.paths import OUT, PBE, STRUCTURES
from benchmarks.provenance import git_commit

HARTREE_EV = 27.211386245988
#: Agreement required of a GPU PBE energy with the committed CPU one (Ha).
PBE_TOLERANCE_HA = 1e-5
#: The batched relaxation's models: the default geometry engine and the ranking model.
ML_METHODS = (default_method(Role.GEOMETRY), default_method(Role.RANKING))
#: CPU TDA-PBE0/def2-SVP (5 states) first bright states (eV) committed in BENCHMARKS.md (tda_timing table).
CPU_TDA_FIRST_BRIGHT = {"Cd3Se3": (2.921, "BENCHMARKS.md TDA table, commit 11e7eba")}
#: The CHGNet geometry the TDA timing used: the lowest CHGNet frame of the formula in structures.extxyz.
TDA_GEOMETRY_ENGINE = default_method(Role.GEOMETRY)


@dataclass
class Row:
    part: str
    case: str
    result: str
    reference: str = ""
    verdict: str = ""
    seconds: float | None = None


def torch_gpu() -> str | None:
    """The CUDA device torch sees (its name), or None."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return str(torch.cuda.get_device_name(0))


def pyscf_gpu() -> bool:
    from airss_msc.calc.engines.pyscf import has_gpu4pyscf

    return has_gpu4pyscf()


class Budget:
    def __init__(self, seconds: float):
        self.start = time.perf_counter()
        self.seconds = seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


def ml_part(rows: list[Row], device: str | None, starts: int, formula: str, budget: Budget) -> None:
    if device is None:
        for method in ML_METHODS:
            rows.append(Row("batched relaxation", method, "skipped: no GPU (torch sees no CUDA device)"))
        return
    from airss_msc.calc.engines.batched import batch_model

    clusters = [generate_cluster(formula, seed=s) for s in range(starts)]
    for method in ML_METHODS:
        if budget.left() < 60:
            rows.append(Row("batched relaxation", method, "skipped: time budget spent"))
            continue
        model = batch_model(method, device)
        assert model is not None
        settings = RelaxSettings(method=method, fmax=0.05, steps=500)
        relax_batch(clusters[:2], settings, model=model)  # load the model, warm the kernels
        peak = _reset_peak()
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", BatchFallbackWarning)
            results = relax_batch(clusters, settings, batch_size=starts, model=model)
        seconds = time.perf_counter() - t0
        fallbacks = [str(w.message) for w in caught if issubclass(w.category, BatchFallbackWarning)]
        statuses = {str(r.status) for r in results}
        calls = statistics.median(r.force_calls for r in results)
        text = (
            f"{len(results)} {formula} on {model.device}: {len(results) / seconds:.2f} structures/s; "
            + ", ".join(f"{s} {sum(str(r.status) == s for r in results)}" for s in sorted(statuses))
            + f"; median {calls:.0f} force calls; peak memory {peak()}"
        )
        verdict = "ok" if not fallbacks else f"{len(fallbacks)} fallbacks: {fallbacks[-1]}"
        rows.append(Row("batched relaxation", method, text, "", verdict, seconds))


def _reset_peak() -> Callable[[], str]:
    try:
        import torch
    except ImportError:
        return lambda: "n/a"
    if not torch.cuda.is_available():
        return lambda: "n/a (CPU)"
    torch.cuda.reset_peak_memory_stats()
    return lambda: f"{torch.cuda.max_memory_allocated() / 2**30:.1f} GiB"


def _reference_records() -> list[dict]:
    records = []
    for line in PBE.read_text().splitlines():
        if line.strip():
            record = json.loads(line)
            if record.get("type") == "single_point" and record.get("status") == "ok":
                records.append(record)
    return records


def _structure(name: str) -> Atoms:
    for frame in read(STRUCTURES, ":"):
        if frame.info.get("name") == name:
            return Atoms(frame.get_chemical_symbols(), positions=frame.positions)
    raise KeyError(f"{name} not in {STRUCTURES}")


def pbe_cases() -> list[tuple[str, dict | None, str]]:
    """(label, CPU record or None, note) for Cd4Se4 and the 26-atom cluster."""
    records = _reference_records()
    out = []
    for formula, stand_in in (("Cd4Se4", None), ("Cd13Se13", "Cd13Te13")):
        found = [r for r in records if r["formula"] == formula]
        note = ""
        if not found and stand_in:
            found = [r for r in records if r["formula"] == stand_in]
            note = f"no {formula} CPU energy committed yet: {stand_in} instead"
        out.append((formula, found[0] if found else None, note))
    return out


def pbe_part(rows: list[Row], gpu: bool, budget: Budget) -> None:
    method = default_method(Role.REFINE)
    for formula, record, note in pbe_cases():
        if not gpu:
            rows.append(Row("PBE single point + gradient", formula, "skipped: gpu4pyscf or a CUDA device missing"))
            continue
        if record is None:
            rows.append(Row("PBE single point + gradient", formula, f"skipped: no CPU {formula} energy committed"))
            continue
        if budget.left() < 90:
            rows.append(Row("PBE single point + gradient", record["name"], "skipped: time budget spent"))
            continue
        from airss_msc.calc.engines import make_calculator

        atoms = _structure(record["name"])
        atoms.calc = make_calculator(method)
        t0 = time.perf_counter()
        try:
            energy = float(atoms.get_potential_energy())
            forces = atoms.get_forces()
        except Exception as exc:  # report, go on with the other parts
            rows.append(Row("PBE single point + gradient", record["name"], f"failed: {type(exc).__name__}: {exc}"))
            continue
        seconds = time.perf_counter() - t0
        diff = (energy - float(record["energy_eV"])) / HARTREE_EV
        rows.append(
            Row(
                "PBE single point + gradient",
                record["name"] + (f" ({note})" if note else ""),
                f"E = {energy / HARTREE_EV:.6f} Ha, max |F| {np.abs(forces).max():.3f} eV/A",
                f"CPU {float(record['energy_eV']) / HARTREE_EV:.6f} Ha",
                f"{'ok' if abs(diff) < PBE_TOLERANCE_HA else 'DIFFERS'}: {diff:+.1e} Ha",
                seconds,
            )
        )


def tda_geometry(formula: str) -> tuple[Atoms, str]:
    frames = [
        a
        for a in read(STRUCTURES, ":")
        if a.info.get("formula") == formula and a.info.get("geometry_engine") == TDA_GEOMETRY_ENGINE
    ]
    best = min(frames, key=lambda a: a.info["geometry_energy"])
    return Atoms(best.get_chemical_symbols(), positions=best.positions), str(best.info["name"])


def tda_part(rows: list[Row], gpu: bool, budget: Budget) -> None:
    from airss_msc.calc.excite import excite

    method = default_method(Role.EXCITATION)
    for formula in ("Cd3Se3", "Cd4Se4"):
        if not gpu:
            rows.append(Row("TDA-PBE0, 5 states", formula, "skipped: gpu4pyscf or a CUDA device missing"))
            continue
        if budget.left() < 120:
            rows.append(Row("TDA-PBE0, 5 states", formula, "skipped: time budget spent"))
            continue
        atoms, name = tda_geometry(formula)
        t0 = time.perf_counter()
        states = excite(atoms, method, 5)
        seconds = time.perf_counter() - t0
        bright = states.first_bright()
        if str(states.status) != "done" or bright is None:
            rows.append(Row("TDA-PBE0, 5 states", name, f"{states.status}: {states.message[:120]}", "", "", seconds))
            continue
        reference, verdict = "no CPU run", ""
        if formula in CPU_TDA_FIRST_BRIGHT:
            value, source = CPU_TDA_FIRST_BRIGHT[formula]
            reference = f"CPU first bright {value:.3f} eV ({source})"
            verdict = f"{'ok' if abs(bright[0] - value) < 0.002 else 'DIFFERS'}: {bright[0] - value:+.3f} eV"
        energies = ", ".join(f"{e:.3f}" for e in states.energies_eV)
        rows.append(
            Row(
                "TDA-PBE0, 5 states",
                name,
                f"first bright {bright[0]:.3f} eV; states {energies}",
                reference,
                verdict,
                seconds,
            )
        )


def table(rows: list[Row], header: str) -> str:
    lines = [header, "", "| part | case | result | CPU reference | agreement | wall s |", "|---|---|---|---|---|---|"]
    for r in rows:
        seconds = "" if r.seconds is None else f"{r.seconds:.1f}"
        lines.append(f"| {r.part} | {r.case} | {r.result} | {r.reference} | {r.verdict} | {seconds} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--budget", type=float, default=540.0, help="seconds for all parts (default 9 minutes)")
    ap.add_argument("--starts", type=int, default=256)
    ap.add_argument("--formula", default="Cd13Se13")
    ap.add_argument("--allow-cpu", action="store_true", help="run the ML part on the CPU where there is no GPU")
    ap.add_argument("--out", type=Path, default=OUT / "gpu_check.md")
    args = ap.parse_args(argv)
    budget = Budget(args.budget)
    name = torch_gpu()
    gpu = pyscf_gpu()
    if name is None and not gpu:
        print("no GPU: torch sees no CUDA device and gpu4pyscf has none; GPU parts skipped")
    device = "cuda" if name else ("cpu" if args.allow_cpu else None)
    rows: list[Row] = []
    ml_part(rows, device, args.starts, args.formula, budget)
    pbe_part(rows, gpu, budget)
    tda_part(rows, gpu, budget)
    spent = time.perf_counter() - budget.start
    header = (
        f"# GPU check: {name or 'no GPU'}\n\ncommit {git_commit()}; gpu4pyscf on a device: {'yes' if gpu else 'no'}; "
        f"total {spent:.0f} s wall (budget {args.budget:.0f} s)."
    )
    text = table(rows, header)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
