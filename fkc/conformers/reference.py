r"""Reference Boltzmann ensembles of one molecule under MMFF94: replica-exchange HMC.

Target. Replica ``k`` samples ``p_k(x) ∝ exp(-E(x) / (k_B T_k))`` with ``E`` the MMFF94 energy
(:class:`~fkc.conformers.mmff.MMFFEnergy`, kcal/mol, positions in Å); ``T_0`` is the requested
temperature and ``T_0 < T_1 < ... < T_{K-1}`` a geometric ladder up to ``t_max``.

Moves. Generalised Hamiltonian Monte Carlo (Horowitz 1991) with atomic masses ``m_i`` (amu):
the momenta persist between moves and are partially refreshed,
``p <- alpha p + sqrt(1 - alpha^2) xi``, ``xi ~ N(0, m k_B T_k)``, with
``alpha = exp(-friction * n_leapfrog * dt)`` (Langevin-like dynamics; full refreshment would be
plain HMC, whose strongly diffusive motion did not cross the butane torsion barrier at 300 K in
20 000 moves); then ``n_leapfrog`` leapfrog steps of size ``dt``, accepted with probability
``min(1, exp(-(H' - H) / (k_B T_k)))``, ``H = E(x) + sum_i |p_i|^2 / (2 m_i)``; on rejection the
momentum is negated. Each move leaves ``p_k(x) N(p; 0, m k_B T_k)`` invariant. The time unit is
``sqrt(amu Å^2 / (kcal/mol)) = 48.888 fs``; ``dt`` starts at ``dt_fs`` and, during burn-in only,
is adapted per replica towards acceptance ``target_accept`` (``log dt += (a - a*) / sqrt(j)``
per block ``j`` of 10 moves); it is frozen for production, so production is an exact Markov chain.
Translations of the whole molecule do not change ``E``; samples are returned centred.

Swaps. After every HMC move, neighbouring replicas ``(k, k+1)`` of alternating parity exchange
configurations with probability ``min(1, exp((1/(k_B T_k) - 1/(k_B T_{k+1})) (E_k - E_{k+1})))``;
their momenta are rescaled by ``sqrt(T_new / T_old)``, a bijection that maps ``N(0, m k_B T_old)``
onto ``N(0, m k_B T_new)``, so the joint invariant distribution is kept.

Starts. Replica ``k`` starts from the MMFF minimum of ETKDGv3 conformer ``k`` (seeded), so
distinct basins are occupied from the beginning.

Randomness: ``seed`` drives ``numpy.random.default_rng`` and the ETKDG seed; same seed, same
ensemble.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from rdkit import Chem

from fkc.conformers.mmff import KB_KCAL, MMFFEnergy
from fkc.datasets.smiles import embed_etkdg, mol_label

TIME_UNIT_FS = 48.88821  # sqrt(amu * Å^2 / (kcal/mol)) in femtoseconds


@dataclass
class BoltzmannEnsemble:
    """Samples of one molecule at ``temperature``.

    x: ``(n_samples, n_atoms, 3)`` Å, centred; energies: ``(n_samples,)`` kcal/mol.
    temperatures: the ladder ``(n_replicas,)`` K; accept: HMC acceptance per replica in
    production; swap_accept: ``(n_replicas - 1,)``; dt_fs: frozen step sizes ``(n_replicas,)``;
    round_trips: completed cold -> hot -> cold trips of replica labels (mixing evidence).
    """

    x: np.ndarray
    energies: np.ndarray
    temperature: float
    temperatures: np.ndarray
    accept: np.ndarray
    swap_accept: np.ndarray
    dt_fs: np.ndarray
    round_trips: int
    settings: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {"n_samples": int(self.x.shape[0]), "temperature": self.temperature,
                "mean_energy": float(self.energies.mean()),
                "mean_energy_halves": [float(h.mean()) for h in np.array_split(self.energies, 2)],
                "accept_min": float(self.accept.min()),
                "swap_accept_min": float(self.swap_accept.min()) if self.swap_accept.size else 1.0,
                "round_trips": self.round_trips}


def temperature_ladder(t_min: float, t_max: float, n: int) -> np.ndarray:
    """Geometric ladder ``(n,)`` from ``t_min`` to ``t_max`` (one rung if ``n == 1``)."""
    if not (t_min > 0 and math.isfinite(t_min)):
        raise ValueError(f"temperature must be finite and > 0, got {t_min}")
    if n < 1:
        raise ValueError(f"n_replicas must be >= 1, got {n}")
    if n == 1:
        return np.array([float(t_min)])
    if not t_max > t_min:
        raise ValueError(f"t_max must exceed the temperature {t_min}, got {t_max}")
    return t_min * (t_max / t_min) ** (np.arange(n) / (n - 1))


def _ghmc_move(energy: MMFFEnergy, x, p, e, g, kt, dt, n_steps, alpha, rng):
    """One generalised-HMC move: partial momentum refresh, ``n_steps`` leapfrog steps,
    Metropolis test; on rejection the momentum is negated (Horowitz 1991)."""
    m = energy.masses[:, None]
    p = alpha * p + math.sqrt(1.0 - alpha * alpha) * rng.standard_normal(x.shape) * np.sqrt(m * kt)
    h0 = e + 0.5 * float((p * p / m).sum())
    xn, pn, gn, en = x, p - 0.5 * dt * g, g, e
    for s in range(n_steps):
        xn = xn + dt * pn / m
        en, gn = energy.energy_grad(xn)
        if not math.isfinite(en):
            return x, -p, e, g, False
        if s < n_steps - 1:
            pn = pn - dt * gn
    pn = pn - 0.5 * dt * gn
    h1 = en + 0.5 * float((pn * pn / m).sum())
    if math.log(rng.random() + 1e-300) < -(h1 - h0) / kt:
        return xn, pn, en, gn, True
    return x, -p, e, g, False


def sample_boltzmann(mol: Chem.Mol, temperature: float, n_samples: int, *, seed: int = 0,
                     t_max: float | None = None, n_replicas: int = 8, n_burn: int = 500,
                     thin: int = 5, n_leapfrog: int = 10, dt_fs: float = 1.0,
                     friction: float = 5.0, target_accept: float = 0.9,
                     progress=None) -> BoltzmannEnsemble:
    """Boltzmann samples of ``mol`` (explicit hydrogens) at ``temperature`` K under MMFF94.

    ``n_burn`` HMC moves per replica of burn-in (step-size adaptation), then
    ``n_samples * thin`` moves storing every ``thin``-th configuration of the cold replica.
    ``t_max`` defaults to ``max(3 T, 1000 K)``. ``friction`` (1/ps) sets the momentum memory
    ``alpha = exp(-friction * n_leapfrog * dt)`` of the generalised HMC moves (smaller: more
    MD-like, faster barrier crossing). ``progress``: optional callable ``(done, total)``.
    Cost: ``n_replicas (n_burn + n_samples thin) n_leapfrog`` energy+gradient evaluations.
    """
    if n_samples < 1 or thin < 1 or n_burn < 0 or n_leapfrog < 1:
        raise ValueError(f"need n_samples >= 1, thin >= 1, n_burn >= 0, n_leapfrog >= 1; got "
                         f"{n_samples}, {thin}, {n_burn}, {n_leapfrog}")
    if not (dt_fs > 0 and 0 < target_accept < 1 and friction > 0):
        raise ValueError(f"need dt_fs > 0, 0 < target_accept < 1 and friction > 0, got {dt_fs}, "
                         f"{target_accept}, {friction}")
    t_max = max(3.0 * temperature, 1000.0) if t_max is None else t_max
    temps = temperature_ladder(temperature, t_max, n_replicas)
    kts = KB_KCAL * temps
    energy = MMFFEnergy(mol)
    rng = np.random.default_rng(seed)
    starts = embed_etkdg(mol, n_replicas, seed, min_confs=1)
    n_start = starts.GetNumConformers()
    xs, es, gs = [], [], []
    for k in range(n_replicas):
        x0 = starts.GetConformer(starts.GetConformers()[k % n_start].GetId()).GetPositions()
        x0, _ = energy.minimize(x0)
        e0, g0 = energy.energy_grad(x0)
        xs.append(x0)
        es.append(e0)
        gs.append(g0)
    log_dt = np.full(n_replicas, math.log(dt_fs / TIME_UNIT_FS))
    label = np.arange(n_replicas)  # which walker sits at each rung
    direction = np.zeros(n_replicas, dtype=int)  # +1 after visiting cold, -1 after hot
    round_trips = 0
    n_prod = n_samples * thin
    total = n_burn + n_prod
    acc_block = np.zeros(n_replicas)
    acc_prod = np.zeros(n_replicas)
    swap_try = np.zeros(max(n_replicas - 1, 0))
    swap_acc = np.zeros(max(n_replicas - 1, 0))
    out_x = np.empty((n_samples, energy.n_atoms, 3))
    out_e = np.empty(n_samples)
    ps = [rng.standard_normal(x.shape) * np.sqrt(energy.masses[:, None] * kt)
          for x, kt in zip(xs, kts, strict=True)]
    for it in range(total):
        for k in range(n_replicas):
            dt = math.exp(log_dt[k])
            alpha = math.exp(-friction * n_leapfrog * dt * TIME_UNIT_FS * 1e-3)
            xs[k], ps[k], es[k], gs[k], ok = _ghmc_move(energy, xs[k], ps[k], es[k], gs[k],
                                                        kts[k], dt, n_leapfrog, alpha, rng)
            acc_block[k] += ok
            if it >= n_burn:
                acc_prod[k] += ok
        if it < n_burn and (it + 1) % 10 == 0:
            j = (it + 1) // 10
            log_dt += (acc_block / 10 - target_accept) / math.sqrt(j)
            acc_block[:] = 0
        for k in range(it % 2, n_replicas - 1, 2):
            log_a = (1 / kts[k] - 1 / kts[k + 1]) * (es[k] - es[k + 1])
            swap_try[k] += 1
            if math.log(rng.random() + 1e-300) < log_a:
                swap_acc[k] += 1
                xs[k], xs[k + 1] = xs[k + 1], xs[k]
                es[k], es[k + 1] = es[k + 1], es[k]
                gs[k], gs[k + 1] = gs[k + 1], gs[k]
                r = math.sqrt(kts[k] / kts[k + 1])  # p ~ N(0, m kT) at the new rung
                ps[k], ps[k + 1] = ps[k + 1] * r, ps[k] / r
                label[k], label[k + 1] = label[k + 1], label[k]
        if n_replicas > 1:
            cold, hot = label[0], label[-1]
            if direction[cold] == -1:
                round_trips += 1
            direction[cold] = 1
            if direction[hot] == 1:
                direction[hot] = -1
        if it >= n_burn and (it - n_burn + 1) % thin == 0:
            i = (it - n_burn + 1) // thin - 1
            out_x[i] = xs[0] - xs[0].mean(axis=0)
            out_e[i] = es[0]
        if progress is not None:
            progress(it + 1, total)
    if not np.isfinite(out_e).all():
        raise RuntimeError(f"non-finite MMFF energies while sampling {mol_label(mol)!r}")
    return BoltzmannEnsemble(
        x=out_x, energies=out_e, temperature=float(temperature), temperatures=temps,
        accept=acc_prod / max(n_prod, 1),
        swap_accept=swap_acc / np.maximum(swap_try, 1),
        dt_fs=np.exp(log_dt) * TIME_UNIT_FS, round_trips=round_trips,
        settings={"seed": seed, "t_max": t_max, "n_replicas": n_replicas, "n_burn": n_burn,
                  "thin": thin, "n_leapfrog": n_leapfrog, "friction_per_ps": friction,
                  "force_field": "MMFF94 (RDKit), vacuum"},
    )
