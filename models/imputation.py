"""Missing readings imputed on a regime's principal axes: each at its mean given the step's
other readings (a Gaussian's conditional mean), so that a gap does not read as the sensors'
correlation broken. Sized for wide lines: only each row's gaps are solved, and a gap pattern
many rows share is solved once (bench/README.md, wide lines, session 18)."""

from __future__ import annotations

import torch

# Imputation: a gap pattern shared by this many rows is solved once for them all, and the
# padded k x k systems of the other rows are solved in chunks of at most this many floats.
_SHARED_GAPS = 16
_SOLVE_ELEMENTS = 1 << 22  # 16 MB of float32


def impute_conditional(z: torch.Tensor, observed: torch.Tensor, precision: torch.Tensor,
                       regime: torch.Tensor) -> torch.Tensor:
    """Rows z [M, C] with their missing values (observed False, z 0 there) set to their mean
    given the row's observed values under N(0, P^-1), P = precision[regime] ([R, C, C], regime
    [M]): on the principal axes a missing reading imputed at its mean alone would be read as its
    sensors' correlation broken. Solves P_mm z_m = -P_mo z_o = -(P z)_m per row.

    The systems are only as large as a row's gaps (k x k, not C x C: a dense C x C system per
    row took 12.5 GB to train a C=128 line with one dead sensor), and a gap pattern many rows
    share (a dead sensor, a rack offline) is solved once for all of them."""
    missing = ~observed
    pz = _times_precision(z, precision, regime)  # [M, C]
    out = z.clone()
    gaps = missing.sum(dim=1)
    one = (gaps == 1).nonzero().flatten()  # most rows where readings drop out at random
    if len(one):  # k = 1: z_m = -(P z)_m / P_mm, no system to solve
        m = missing[one].nonzero()[:, 1]  # row order, one per row
        out[one, m] = -pz[one, m] / precision[regime[one], m, m]
    rows = (gaps > 1).nonzero().flatten()
    if len(rows):
        _impute_patterns(out, pz, missing, precision, regime, rows)
    return out


def _impute_patterns(out: torch.Tensor, pz: torch.Tensor, missing: torch.Tensor,
                     precision: torch.Tensor, regime: torch.Tensor, rows: torch.Tensor) -> None:
    """`rows` (each missing k > 1 readings) solved in place: a gap pattern shared by
    _SHARED_GAPS rows or more once for all of them, the others row by row (`_impute_rows`)."""
    ids = _pattern_ids(missing[rows], regime[rows])
    counts = torch.bincount(ids)
    by_id, ends = ids.argsort(stable=True), counts.cumsum(0).tolist()
    shared = counts >= _SHARED_GAPS
    for u in shared.nonzero().flatten().tolist():
        same = rows[by_id[ends[u] - int(counts[u]) : ends[u]]]
        m = missing[same[0]].nonzero().flatten()
        p = precision[regime[same[0]]]
        out[same[:, None], m] = -_spd_solve(p[m][:, m], pz[same][:, m].T).T
    _impute_rows(out, pz, missing, precision, regime, rows[~shared[ids]])


def _pattern_ids(missing: torch.Tensor, regime: torch.Tensor) -> torch.Tensor:
    """[M] ids, equal exactly for rows that share their regime and gap pattern ([M, C]).
    torch.unique(dim=0) compares rows one at a time (57 ms for 16k rows of 8 channels); here
    each 62 channels are one integer, ranked and folded into the ids word by word."""
    bits = 2 ** torch.arange(62, device=missing.device)
    ids = regime
    for start in range(0, missing.shape[1], 62):
        word = missing[:, start : start + 62].long() @ bits[: min(62, missing.shape[1] - start)]
        rank = torch.unique(word, return_inverse=True)[1]
        ids = torch.unique(ids * (int(rank.max()) + 1) + rank, return_inverse=True)[1]
    return ids


def _spd_solve(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a x = b for symmetric positive definite a ([..., k, k]; a precision's principal
    submatrix is one) by Cholesky: half an LU's work, and torch 2.13's CPU build hangs in a
    batched LU (linalg.solve, lu_factor, inv) of k >= ~160 with more than one thread."""
    return torch.cholesky_solve(b, torch.linalg.cholesky(a))


def _times_precision(z: torch.Tensor, precision: torch.Tensor, regime: torch.Tensor
                     ) -> torch.Tensor:
    """Rows z [M, C] -> P z [M, C] with each row's regime's precision, one matmul per regime."""
    if len(precision) == 1:
        return z @ precision[0]  # P is symmetric
    pz = torch.empty_like(z)
    for r in regime.unique().tolist():
        rows = regime == r
        pz[rows] = z[rows] @ precision[r]
    return pz


def _impute_rows(out: torch.Tensor, pz: torch.Tensor, missing: torch.Tensor,
                 precision: torch.Tensor, regime: torch.Tensor, rows: torch.Tensor) -> None:
    """The rows whose gap pattern few others share, each its own k x k system, solved in
    batches of rows missing the same number k of readings, each under _SOLVE_ELEMENTS floats.
    Padding every row of a batch to its largest k instead did 17x the Cholesky work at 15 %
    missing on 52 sensors (k 1-20)."""
    gaps = missing[rows].sum(dim=1)
    order = gaps.argsort()
    rows = rows[order]
    ks, counts = torch.unique_consecutive(gaps[order], return_counts=True)
    start = 0
    for k, n in zip(ks.tolist(), counts.tolist(), strict=True):
        step = max(1, _SOLVE_ELEMENTS // k**2)
        for a in range(start, start + n, step):
            r = rows[a : min(a + step, start + n)]
            idx = missing[r].nonzero()[:, 1].view(-1, k)  # [n, k] each row's missing channels
            system = precision[regime[r, None, None], idx[:, :, None], idx[:, None, :]]
            out[r[:, None], idx] = _spd_solve(system, -pz[r[:, None], idx].unsqueeze(2)).squeeze(2)
        start += n
