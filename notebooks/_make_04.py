"""Writes notebooks/04_drug_like_conformers.ipynb (run: python notebooks/_make_04.py).

The written notebook reads the shipped model (``models/conformers-tp-T500``) and reference data
(``datasets/conformers/T300_test.sdf``, ``T300_test_energies.npz``). For a test run against
stand-ins, override them (the paths are written into the notebook as given, so regenerate
without the options afterwards)::

    python notebooks/_make_04.py --model /tmp/mini_model --data /tmp/ref
"""

import argparse
from pathlib import Path

from _nb import code, md, write

parser = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--model", default=None,
                    help="checkpoint file or folder (default: ROOT/models/conformers-tp-T500)")
parser.add_argument("--data", default=None,
                    help="folder with T300_test.sdf and T300_test_energies.npz "
                         "(default: ROOT/datasets/conformers)")
args = parser.parse_args()
MODEL_EXPR = (f"Path({str(Path(args.model).resolve())!r})  # test override"
              if args.model else 'ROOT / "models/conformers-tp-T500"')
DATA_EXPR = (f"Path({str(Path(args.data).resolve())!r})  # test override"
             if args.data else 'ROOT / "datasets/conformers"')

md(r"""
# Drug-like molecules: from SMILES to a 300 K conformer ensemble with FKC

A chirality-aware tensor-product score model (`models/conformers-tp-T500`) was trained on MMFF94
Boltzmann samples at $T_{train} = 500$ K of the *training-split* molecules (replica-exchange HMC
ground truth, `python -m fkc.conformers.build ensembles`; the molecules are split by Bemis–Murcko
scaffold, so test molecules have scaffolds the model has not seen). Conditioned on a molecular
graph it represents $q \propto e^{-E_{MMFF}/k_B T_{train}}$; the 300 K ensemble is $q^\beta$ with
$\beta = 500/300 = 5/3$. `fkc.conformers.generate` samples it with the Feynman–Kac corrected
sampler: the conformers are SMC particles carried with log-weights and resampled when the
effective sample size (ESS) drops below half the particles, and they are returned as a
**weighted** ensemble (per-conformer `log_weight`, no final resampling). `correct=False` gives
the uncorrected annealed sampler (same drift, noise and seed, no weights).

This notebook shows:

1. two molecules from SMILES (paracetamol and a chiral ester) → FKC and uncorrected ensembles at
   300 K, with sampler diagnostics, MMFF94 energies and a check that the chirality of the SMILES
   is kept; RDKit ETKDGv3 + MMFF minimisation as the usual cheminformatics baseline;
2. 3D views of a few aligned conformers;
3. test-split molecules against the 300 K reference (`datasets/conformers/T300_test.sdf`): FKC,
   uncorrected and ETKDGv3 + MMFF with $2K$ conformers for $K$ reference conformers, evaluated
   with COV-R / MAT-R / COV-P / MAT-P (heavy-atom, symmetry-aware RMSD), MMFF94 energy $W_1$
   against all reference Boltzmann samples and the failure fraction, plus energy histograms and
   coverage-vs-threshold curves;
4. writing an ensemble to SDF and reading it back.

This notebook runs in CI at a **small size** (few molecules, conformers and SDE steps), so its
numbers are noisy and illustrate the workflow only; the README table
(`benchmarks/conformers_table.py`: the test molecules of the reference file, 200 SDE steps) is
the measurement.

**What to expect from the shipped model** (its model card and the README table): it is a first,
small model (24 k parameters, 54 min of CPU training). Its raw conformers have the right
torsional shapes more often than not, but a third of them have a bond more than 25 % off and
their MMFF94 energies sit hundreds of kcal/mol above the 300 K ensemble; with few particles FKC's
weights degenerate and the ensemble collapses onto a few lineages, so on the test molecules FKC
is no better than the uncorrected sampler and both trail ETKDGv3 + MMFF. `generate(...,
relax=True)` (or `fkc conformers --relax`) MMFF-minimises the conformers; the README table has
those rows. Double-bond E/Z stereo is not a model input yet, so `stereo_ok` fails for about half
the conformers of molecules with a stereo C=C.
""")
code(rf"""
import math
import shutil
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from IPython.display import Markdown, display
from rdkit import Chem, rdBase
from rdkit.Chem import Draw, rdForceFieldHelpers, rdMolAlign, rdMolDescriptors

from fkc.conformers import conformer_arrays, generate
from fkc.conformers.evaluate import (conformer_failures, evaluate_molecule, expected_stereo,
                                     mmff_energies, read_conformer_sdf, rmsd_matrix,
                                     stereo_matches, subset_conformers, write_conformer_sdf)
from fkc.datasets import embed_etkdg, mol_from_smiles

torch.set_num_threads(1)
ROOT = Path.cwd() if (Path.cwd() / "models").exists() else Path.cwd().parent
MODEL = {MODEL_EXPR}
DATA = {DATA_EXPR}
REFERENCE = DATA / "T300_test.sdf"             # K distinct 300 K conformers per test molecule
REF_ENERGIES = DATA / "T300_test_energies.npz"  # all 300 K Boltzmann-sample energies per molecule
for p in (MODEL, REFERENCE, REF_ENERGIES):
    assert p.exists(), f"{{p}} is missing"

T = 300.0
SEED = 0
N, STEPS = 24, 80        # CI size (conformers per SMILES molecule, SDE steps); README: more steps
N_TEST_MOLECULES = 2     # test-split molecules compared with the reference (README: all)
METHODS = ("FKC", "uncorrected", "ETKDGv3 + MMFF")


def model_ensemble(mol_or_smiles, n, method):
    # FKC (weighted) or uncorrected conformers at T from the score model
    return generate(mol_or_smiles, n, temperature=T, model=MODEL, seed=SEED,
                    correct=method == "FKC", n_steps=STEPS)


def etkdg_mmff(mol, n):
    # RDKit baseline: n ETKDGv3 embeddings (seeded), each MMFF94-minimised
    out = embed_etkdg(mol, n, SEED, min_confs=1)
    with rdBase.BlockLogs():
        rdForceFieldHelpers.MMFFOptimizeMoleculeConfs(out, maxIters=2000)
    return out


def weights(mol):
    # normalised conformer weights: exp(log_weight) for the model, uniform for RDKit
    c = mol.GetConformer(0)
    if not c.HasProp("log_weight"):
        return np.full(mol.GetNumConformers(), 1.0 / mol.GetNumConformers())
    lw = conformer_arrays(mol)["log_weight"]
    return np.exp(lw - np.logaddexp.reduce(lw))


def ess(w):
    return 1.0 / np.sum(w ** 2)
""")

md(r"""
## 1. From SMILES to a weighted 300 K ensemble

`generate` parses the SMILES (explicit hydrogens added), builds the graph features, anneals the
500 K model to 300 K and returns an RDKit `Mol` with `N` conformers. Per conformer: `log_weight`
(normalised, $\log\sum e^{w} = 0$), `energy` (MMFF94, kcal/mol) and `stereo_ok` (the chirality /
double-bond stereo of the SMILES is reproduced by the 3D coordinates); per molecule: the number
of resampling steps, the minimum ESS during the run and the wall time. The weighted mean energy
$\sum_i w_i E_i$ is the FKC estimate of $\langle E \rangle_{300\,K}$; for the uncorrected sampler
and RDKit all conformers count equally.
""")
code(r"""
SMILES = {"paracetamol": "CC(=O)Nc1ccc(O)cc1",
          "phenyl (S)-alaninate": "C[C@H](N)C(=O)Oc1ccccc1"}
display(Draw.MolsToGridImage([Chem.MolFromSmiles(s) for s in SMILES.values()],
                             legends=list(SMILES), molsPerRow=len(SMILES), subImgSize=(260, 200)))

ens, wall = {}, {}
for name, smi in SMILES.items():
    for method in METHODS:
        start = time.perf_counter()
        if method == "ETKDGv3 + MMFF":
            mol = etkdg_mmff(mol_from_smiles(smi), N)
        else:
            mol = model_ensemble(smi, N, method)
        wall[name, method] = time.perf_counter() - start
        ens[name, method] = mol
        assert mol.GetNumConformers() == N, (name, method, mol.GetNumConformers())

T_train = ens["paracetamol", "FKC"].GetDoubleProp("fkc_training_temperature")
beta = ens["paracetamol", "FKC"].GetDoubleProp("fkc_beta")
assert math.isclose(beta, T_train / T)
print(f"model: {ens['paracetamol', 'FKC'].GetProp('fkc_model')}")
print(f"T_train = {T_train:g} K -> T = {T:g} K, beta = {beta:.4f}; N = {N}, {STEPS} SDE steps\n")

print(f"{'molecule':<22}{'method':<16}{'resamplings':>12}{'min ESS':>9}{'final ESS':>10}"
      f"{'stereo ok':>10}{'wall (s)':>9}{'<E> MMFF':>12}")
for (name, method), mol in ens.items():
    w = weights(mol)
    if method == "ETKDGv3 + MMFF":
        e = mmff_energies(mol)
        ok = np.array([stereo_matches(mol, c.GetId()) for c in mol.GetConformers()])
        res, min_ess = "-", "-"
    else:
        a = conformer_arrays(mol)
        e, ok = a["energy"], a["stereo_ok"]
        res, min_ess = (f"{mol.GetDoubleProp('fkc_n_resampling'):.0f}",
                        f"{mol.GetDoubleProp('fkc_min_ess'):.1f}")
        assert np.isclose(np.logaddexp.reduce(a["log_weight"]), 0.0)
        assert math.isclose(mol.GetDoubleProp("fkc_stereo_ok_fraction"), ok.mean())
        if method == "uncorrected":   # no weights, no resampling
            assert mol.GetDoubleProp("fkc_n_resampling") == 0 and np.allclose(w, 1.0 / N)
    fin = np.isfinite(e)
    mean_e = np.sum(w[fin] * e[fin]) / np.sum(w[fin]) if w[fin].sum() > 0 else math.nan
    print(f"{name:<22}{method:<16}{res:>12}{min_ess:>9}{ess(w):>10.1f}{ok.mean():>10.2f}"
          f"{wall[name, method]:>9.1f}{mean_e:>12.4g}")
""")
md(r"""
`<E> MMFF` is in kcal/mol (weighted for FKC; MMFF-minimised structures for RDKit, so lower than
any thermal average). The ETKDGv3 + MMFF ensemble is a set of local minima, not a Boltzmann
ensemble at any temperature: it has no thermal spread, and its conformers are not distributed
with their Boltzmann populations.

**Chirality.** The network has odd-parity (pseudo-scalar) channels, so it can tell a
stereocentre from its mirror image, but nothing in the sampler forces the SMILES chirality:
`stereo_ok` checks it per conformer (CIP label assigned from the 3D coordinates vs the label of
the SMILES). FKC's weighted fraction is the weight mass on conformers with the right chirality.
""")
code(r"""
name = "phenyl (S)-alaninate"
atoms, bonds = expected_stereo(ens[name, "FKC"])
assert atoms, "the SMILES specifies a stereocentre"
print("stereocentres of the SMILES (atom index: CIP label):", atoms)
for method in METHODS:
    mol = ens[name, method]
    ok = np.array([stereo_matches(mol, c.GetId()) for c in mol.GetConformers()])
    print(f"{method:<16} chirality kept in {ok.mean():5.1%} of the conformers "
          f"(weighted: {np.sum(weights(mol) * ok):5.1%})")
    if method == "ETKDGv3 + MMFF":
        assert ok.all(), "ETKDG enforces the input chirality"
""")

md(r"""
## 2. 3D views

Up to six distinct (heavy-atom RMSD ≥ 0.25 Å) FKC conformers of each molecule, highest weight
first (finite ones with the SMILES stereo where possible), aligned on their heavy atoms with
`rdMolAlign.AlignMolConformers`. With [py3Dmol](https://pypi.org/project/py3Dmol/) installed
the view is interactive; otherwise a matplotlib stick plot of the heavy atoms (one colour per
conformer) is drawn.
""")
code(r"""
N_SHOW = 6


def top_conformers(mol, k=N_SHOW, min_rmsd=0.25):
    # up to k distinct (heavy-atom RMSD >= min_rmsd Å) conformers in order of decreasing weight;
    # resampling copies particles, so the top weights may belong to near-duplicates
    a = conformer_arrays(mol)
    order = np.argsort(-a["log_weight"], kind="stable")
    order = ([i for i in order if a["finite"][i] and a["stereo_ok"][i]]
             + [i for i in order if a["finite"][i] and not a["stereo_ok"][i]])
    assert order, "no finite conformer to show"
    heavy_mol = Chem.RemoveHs(mol)
    ids = [c.GetId() for c in heavy_mol.GetConformers()]
    pick = []
    for i in order:
        if all(rdMolAlign.GetBestRMS(Chem.Mol(heavy_mol), heavy_mol, ids[i], ids[j]) >= min_rmsd
               for j in pick):
            pick.append(i)
        if len(pick) == k:
            break
    sub = subset_conformers(mol, pick)
    heavy = [at.GetIdx() for at in sub.GetAtoms() if at.GetAtomicNum() > 1]
    rdMolAlign.AlignMolConformers(sub, atomIds=heavy)
    return sub


shown = {name: top_conformers(ens[name, "FKC"]) for name in SMILES}
try:
    import py3Dmol   # optional, not a dependency of fkc
except ImportError:
    py3Dmol = None

if py3Dmol is not None:
    for name, sub in shown.items():
        print(name)
        view = py3Dmol.view(width=420, height=320)
        for c in sub.GetConformers():
            view.addModel(Chem.MolToMolBlock(sub, confId=c.GetId()), "sdf")
        view.setStyle({"stick": {"radius": 0.12}})
        view.zoomTo()
        view.show()
else:
    ELEMENT_COLOURS = {6: "0.35", 7: "tab:blue", 8: "tab:red", 9: "tab:green", 16: "gold",
                       17: "tab:green", 15: "tab:orange", 35: "brown", 53: "purple"}
    fig = plt.figure(figsize=(5 * len(shown), 4.5))
    for k, (name, sub) in enumerate(shown.items()):
        ax = fig.add_subplot(1, len(shown), k + 1, projection="3d")
        heavy = np.array([at.GetAtomicNum() > 1 for at in sub.GetAtoms()])
        z = np.array([at.GetAtomicNum() for at in sub.GetAtoms()])
        bonds = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in sub.GetBonds()
                 if heavy[b.GetBeginAtomIdx()] and heavy[b.GetEndAtomIdx()]]
        for j, c in enumerate(sub.GetConformers()):
            x = c.GetPositions()
            for a, b in bonds:
                ax.plot(*x[[a, b]].T, color=f"C{j}", lw=2, alpha=0.8)
            ax.scatter(*x[heavy].T, c=[ELEMENT_COLOURS.get(int(e), "k") for e in z[heavy]],
                       s=18, depthshade=False)
        xyz = np.concatenate([c.GetPositions()[heavy] for c in sub.GetConformers()])
        centre, half = xyz.mean(0), 0.55 * np.ptp(xyz, axis=0).max()
        ax.set(xlim=(centre[0] - half, centre[0] + half),
               ylim=(centre[1] - half, centre[1] + half),
               zlim=(centre[2] - half, centre[2] + half),
               title=f"{name}: {sub.GetNumConformers()} distinct FKC conformers")
        ax.set_box_aspect((1, 1, 1))
        ax.set_axis_off()
    plt.tight_layout()
    plt.show()
""")

md(r"""
## 3. Test-split molecules against the 300 K reference

`T300_test.sdf` holds, for each test-split molecule, $K$ (up to 20) distinct conformers picked
from replica-exchange HMC MMFF94 samples at 300 K (no two within 0.25 Å heavy-atom RMSD), grouped
by `fkc_id` with their `energy`; `T300_test_energies.npz` holds the energies of all Boltzmann
samples of each molecule. To stay fast we take the smallest molecules (by atom count, hydrogens
included) that have at least one rotatable bond and at least four reference conformers, and
generate $2K$ conformers per method.
""")
code(r"""
refs, ref_props = read_conformer_sdf(REFERENCE)
with np.load(REF_ENERGIES) as f:
    ref_energy_ids = set(f.files)


def n_rotatable(mol):
    return rdMolDescriptors.CalcNumRotatableBonds(mol)


candidates = sorted(refs, key=lambda i: (refs[i].GetNumAtoms(), i))
flexible = [i for i in candidates if n_rotatable(refs[i]) >= 1 and refs[i].GetNumConformers() >= 4]
chosen = (flexible + [i for i in candidates if i not in flexible])[:N_TEST_MOLECULES]
with np.load(REF_ENERGIES) as f:
    ref_e = {i: f[i] for i in chosen}
print(f"{len(refs)} test molecules in {REFERENCE.name}; chosen:")
for i in chosen:
    assert i in ref_energy_ids, f"{i} has no reference energies"
    print(f"  {i}: {Chem.MolToSmiles(Chem.RemoveHs(refs[i]))}  ({refs[i].GetNumAtoms()} atoms, "
          f"{n_rotatable(refs[i])} rotatable bonds, K = {refs[i].GetNumConformers()} reference "
          f"conformers, {ref_e[i].size} reference energies)")
""")
code(r"""
gen, gen_wall = {}, {}
for i in chosen:
    template = Chem.Mol(refs[i])       # the graph of the reference molecule, no coordinates
    template.RemoveAllConformers()
    n = 2 * refs[i].GetNumConformers()
    for method in METHODS:
        start = time.perf_counter()
        if method == "ETKDGv3 + MMFF":
            mol = etkdg_mmff(template, n)
        else:
            mol = model_ensemble(template, n, method)
        gen_wall[i, method] = time.perf_counter() - start
        gen[i, method] = mol
        assert mol.GetNumConformers() == n or method == "ETKDGv3 + MMFF", (i, method)


def evaluate(i, method):
    # evaluate_molecule, plus the per-reference-conformer minimum RMSD over the valid conformers
    mol, ref = gen[i, method], refs[i]
    failed = conformer_failures(mol, ref)
    w = weights(mol) if method == "FKC" else None
    use_energy = w is None or w[~failed].sum() > 0      # all FKC weight on failed conformers?
    row = evaluate_molecule(mol, ref, ref_energies=ref_e[i], gen_weights=w, energies=use_energy)
    if not use_energy:
        row["energy_w1"] = math.nan
    valid = np.flatnonzero(~failed)
    if valid.size:
        min_rmsd = rmsd_matrix(ref, subset_conformers(mol, valid)).min(axis=1)   # (K,)
    else:
        min_rmsd = np.full(ref.GetNumConformers(), np.inf)
    assert row["n_generated"] == mol.GetNumConformers() and row["n_valid"] == valid.size
    assert math.isclose(row["cov_r@0.75"], np.mean(min_rmsd < 0.75))
    return row, min_rmsd


rows, min_rmsd = {}, {}
for key in gen:
    rows[key], min_rmsd[key] = evaluate(*key)


def fmt(x, scale=1.0, digits=2):
    return "n/a" if not math.isfinite(x) else f"{x * scale:.{digits}f}"


lines = ["| molecule | method | L | COV-R (%) | MAT-R (Å) | COV-P (%) | MAT-P (Å) | "
         "energy W1 (kcal/mol) | failed (%) | wall (s) |",
         "|:--|:--|--:|--:|--:|--:|--:|--:|--:|--:|"]
for (i, method), r in rows.items():
    lines.append(f"| {i} | {method} | {r['n_generated']} | {fmt(r['cov_r@0.75'], 100, 0)} | "
                 f"{fmt(r['mat_r'])} | {fmt(r['cov_p@0.75'], 100, 0)} | {fmt(r['mat_p'])} | "
                 f"{fmt(r['energy_w1'], digits=3)} | {fmt(r['failure_fraction'], 100, 0)} | "
                 f"{gen_wall[i, method]:.1f} |")
display(Markdown("COV at 0.75 Å, heavy-atom symmetry-aware RMSD; energy W1 against all "
                 "reference samples (FKC weighted)\n\n" + "\n".join(lines)))
""")
md(r"""
Failed conformers (non-finite coordinates, a bond more than 25 % off its reference length, or the
wrong stereochemistry) cover nothing, count as imprecise in COV-P and are left out of the energy
$W_1$. Note that RDKit's minimised structures can cover the reference conformers geometrically
while their energies sit at the bottom of the thermal distribution.

### MMFF94 energies

Reference: all 300 K Boltzmann samples; FKC: valid conformers weighted by their FKC weights;
uncorrected and ETKDGv3 + MMFF: valid conformers, equal weights. Energies beyond the plotted
range are piled into the outermost bins.
""")
code(r"""
fig, axes = plt.subplots(1, len(chosen), figsize=(5.5 * len(chosen), 3.8), squeeze=False)
for ax, i in zip(axes[0], chosen):
    e_ref = ref_e[i]
    lo, hi = np.percentile(e_ref, 0.5) - 5.0, np.percentile(e_ref, 99.5) + 10.0
    bins = np.linspace(lo, hi, 41)
    ax.hist(e_ref, bins=bins, density=True, color="0.75", label=f"reference 300 K ({e_ref.size})")
    for k, method in enumerate(METHODS):
        mol = gen[i, method]
        valid = np.flatnonzero(~conformer_failures(mol, refs[i]))
        if valid.size == 0:
            continue
        e = mmff_energies(subset_conformers(mol, valid))
        w = weights(mol)[valid]
        if not (np.isfinite(e).all() and w.sum() > 0):
            continue
        ax.hist(np.clip(e, lo, hi), bins=bins, weights=w / w.sum() / np.diff(bins)[0],
                histtype="step", lw=2, color=f"C{k}", label=f"{method} ({valid.size})")
    ax.set(xlabel="MMFF94 energy (kcal/mol)", ylabel="density", title=i)
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
""")
md(r"""
### Coverage as a function of the threshold

For each reference conformer the RMSD to the closest valid generated conformer; the curve is
$\mathrm{COV\text{-}R}(\delta)$, the fraction of reference conformers with a generated conformer
closer than $\delta$ (the table reports $\delta = 0.75$ Å, dotted line; MAT-R is the mean of the
per-reference minima).
""")
code(r"""
delta = np.linspace(0.0, 2.0, 201)
fig, axes = plt.subplots(1, len(chosen), figsize=(5.5 * len(chosen), 3.8), squeeze=False)
for ax, i in zip(axes[0], chosen):
    for k, method in enumerate(METHODS):
        m = min_rmsd[i, method]
        cov = (m[None, :] < delta[:, None]).mean(axis=1)
        ax.plot(delta, cov, color=f"C{k}", lw=2,
                label=f"{method} (MAT-R {fmt(rows[i, method]['mat_r'])} Å)")
    ax.axvline(0.75, color="k", ls=":", lw=1)
    ax.set(xlabel="threshold δ (Å)", ylabel="COV-R(δ)", ylim=(-0.02, 1.02), xlim=(0, 2),
           title=f"{i} (K = {refs[i].GetNumConformers()})")
    ax.legend(fontsize=8, loc="lower right")
plt.tight_layout()
plt.show()
""")

md(r"""
## 4. Writing and reading ensembles

`write_conformer_sdf` writes one SDF record per conformer, grouped by the SD property `fkc_id`,
with the isomeric SMILES of the graph (`fkc_smiles`, so the stereochemistry survives the round
trip) and any per-conformer values as SD properties; `read_conformer_sdf` groups the records back
into one `Mol` per id. From the command line, `fkc conformers --smiles SMILES --n 40 --out
out.sdf` writes the same format and `fkc evaluate-conformers out.sdf --reference
datasets/conformers/T300_test.sdf` evaluates it. The files here go to a temporary folder, removed
at the end.
""")
code(r"""
OUT = Path(tempfile.mkdtemp(prefix="fkc_conformers_"))
path = OUT / "fkc_300K.sdf"
to_write = {name.replace(" ", "_"): ens[name, "FKC"] for name in SMILES}
props = {}
for mol_id, mol in to_write.items():
    a = conformer_arrays(mol)
    props[mol_id] = {"log_weight": a["log_weight"], "energy": a["energy"],
                     "stereo_ok": a["stereo_ok"].astype(float)}
write_conformer_sdf(path, to_write, props)

back, back_props = read_conformer_sdf(path)
assert list(back) == list(to_write)
for mol_id, mol in back.items():
    assert mol.GetNumConformers() == N
    np.testing.assert_allclose(back_props[mol_id]["log_weight"], props[mol_id]["log_weight"])
    np.testing.assert_allclose(conformer_arrays(to_write[mol_id])["x"],
                               np.stack([c.GetPositions() for c in mol.GetConformers()]),
                               atol=1e-4)   # molfile coordinates have 4 decimals
    print(f"{mol_id}: {mol.GetNumConformers()} conformers, "
          f"SMILES {Chem.MolToSmiles(Chem.RemoveHs(mol))}, properties {sorted(back_props[mol_id])}")
print(f"{path.stat().st_size / 1024:.0f} KiB in {path}")
shutil.rmtree(OUT)   # remove this line to keep the files
""")

write("04_drug_like_conformers.ipynb")
