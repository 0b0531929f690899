"""REML and ML for a linear mixed model with crossed random intercepts, fitted on cell means.

The gains of one cell (a model x language x target task x intermediate task) differ only by
seed, and every fixed effect and every random intercept is constant within a cell. The
likelihood of all rows therefore factorises exactly into the likelihood of the cell means
(variance ``cell + residual / n_seeds`` plus the crossed components) and that of the
within-cell deviations (variance ``residual``), so the model is fitted on a few thousand cell
means instead of every row, with the lme4 formulation (relative standard deviations ``theta``,
the residual variance profiled out, one Cholesky factor of ``Lambda Z' W Z Lambda + I`` per
evaluation). The result is the same model and the same likelihood as statsmodels ``MixedLM`` with
one variance component per crossing and a cell component (a test checks it on a small case),
fitted in seconds where ``MixedLM``'s dense all-rows design takes minutes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sparse
from scipy import linalg, optimize

# optimiser name (as the fit reports it) -> scipy.optimize.minimize method; all honour the
# lower bound 0 on each relative standard deviation
OPTIMISERS = {"lbfgs": "L-BFGS-B", "powell": "Powell", "nm": "Nelder-Mead"}


class DesignError(ValueError):
    """The data cannot support the requested model; the message says what to change."""


@dataclass
class Component:
    """One variance component: a random intercept per level of ``factors`` (jointly)."""

    name: str
    factors: tuple[str, ...]


@dataclass
class Problem:
    """Everything the deviance needs, computed once per data set and formula."""

    y_cell: np.ndarray
    x_cell: np.ndarray
    n_cell: np.ndarray
    within_ss: float
    within_df: int
    z: sparse.csr_matrix
    sizes: list[int]
    components: list[Component]
    has_cell: bool
    log_n: float
    pivot_columns: np.ndarray
    rest_columns: np.ndarray
    z_pivot: sparse.csc_matrix
    z_rest: sparse.csc_matrix

    @property
    def n_obs(self) -> int:
        return len(self.y_cell) + self.within_df


@dataclass
class Solution:
    """The deviance's by-products at one ``theta``."""

    deviance: float
    beta: np.ndarray
    sigma2: float
    xtvx: np.ndarray
    factor: BlockFactor
    lam: np.ndarray
    weights: np.ndarray
    v_inverse_residual: np.ndarray


@dataclass
class CrossedFit:
    """A fitted model; its attributes mirror the parts of a statsmodels ``MixedLMResults`` the
    report functions use (``fe_params``, ``cov_params()``, ``fittedvalues``, ``resid``,
    ``random_effects``, ``model.data.model_spec``, ``llf``)."""

    fe_params: pd.Series
    covariance: pd.DataFrame
    llf: float
    reml: bool
    theta: np.ndarray
    sigma2: float
    variance_components: dict[str, float]
    components: list[Component]
    has_cell: bool
    fittedvalues: pd.Series
    resid: pd.Series
    random_effects: dict[str, pd.Series]
    random_effects_cov: dict[str, pd.DataFrame]
    model: object
    nobs: int
    converged: bool
    message: str
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def bse_fe(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.covariance.to_numpy())), index=self.fe_params.index)

    def cov_params(self) -> pd.DataFrame:
        return self.covariance

    @property
    def aic(self) -> float:
        return -2 * self.llf + 2 * (len(self.fe_params) + len(self.theta) + 1)


@dataclass
class DesignModel:
    """The fixed-effects design of a fit: ``data.model_spec`` is patsy's design information
    (used to build predictions), ``exog`` the row-level matrix, ``exog_names`` its columns."""

    formula: str
    exog: np.ndarray
    exog_names: list[str]
    data: object


def cell_structure(frame: pd.DataFrame, cell: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Each row's cell number and the number of rows per cell."""
    codes = frame.groupby(list(cell), sort=True, observed=True).ngroup().to_numpy()
    return codes, np.bincount(codes)


def build_problem(frame: pd.DataFrame, y: np.ndarray, x: np.ndarray, names: list[str],
                  components: list[Component], cell: tuple[str, ...]):
    """Cell means, within-cell sums of squares and the sparse random-effects design; components
    the design cannot separate are dropped by rule, with the reason."""
    codes, counts = cell_structure(frame, cell)
    m = len(counts)
    y_cell = np.bincount(codes, weights=y) / counts
    within = y - y_cell[codes]
    x_cell = np.zeros((m, x.shape[1]))
    np.add.at(x_cell, codes, x)
    x_cell /= counts[:, None]
    varying = np.abs(x - x_cell[codes]).max(axis=0) > 1e-9 * (1 + np.abs(x).max(axis=0))
    if varying.any():
        raise DesignError(f"fixed-effect column(s) {[n for n, v in zip(names, varying, strict=True) if v]} "
                          f"vary within a cell ({', '.join(cell)}); the model takes terms that are "
                          "constant over seeds")
    first_row = np.zeros(m, dtype=int)
    first_row[codes[::-1]] = np.arange(len(codes))[::-1]
    cells = frame.iloc[first_row]
    kept, blocks, sizes, dropped, partitions = [], [], [], {}, []
    for component in components:
        levels = cells.groupby(list(component.factors), sort=True, observed=True).ngroup().to_numpy()
        count = int(levels.max()) + 1
        if count < 2:
            dropped[component.name] = "one level only: not estimable"
            continue
        if count == m:
            dropped[component.name] = "one level per cell: the same as the cell component"
            continue
        key = _partition_key(levels)
        if key in partitions:
            dropped[component.name] = "the same grouping as an earlier component"
            continue
        partitions.append(key)
        kept.append(component)
        sizes.append(count)
        blocks.append(sparse.csr_matrix((np.ones(m), (np.arange(m), levels)), shape=(m, count)))
    if not kept:
        raise DesignError("no variance component can be estimated from these data: every "
                          f"crossing has one level, or one level per cell; cells: {m}")
    within_df = int(len(y) - m)
    z = sparse.hstack(blocks, format="csc")
    largest = int(np.argmax(sizes))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    columns = np.arange(offsets[-1])
    pivot = columns[offsets[largest]:offsets[largest + 1]]
    rest = np.setdiff1d(columns, pivot)
    problem = Problem(y_cell=y_cell, x_cell=x_cell, n_cell=counts.astype(float),
                      within_ss=float(within @ within), within_df=within_df, z=z.tocsr(),
                      sizes=sizes, components=kept, has_cell=within_df > 0,
                      log_n=float(np.log(counts).sum()), pivot_columns=pivot, rest_columns=rest,
                      z_pivot=z[:, pivot], z_rest=z[:, rest])
    return problem, codes, cells, dropped


def _partition_key(levels: np.ndarray) -> tuple:
    """The same tuple for two level codings that split the cells the same way."""
    _, canonical = np.unique(levels, return_inverse=True)
    order = pd.unique(canonical)
    relabel = np.empty(len(order), dtype=int)
    relabel[order] = np.arange(len(order))
    return tuple(relabel[canonical])


class BlockFactor:
    """``A = Lambda Z' W Z Lambda + I`` factorised by eliminating the largest component first:
    each cell has one level of it, so its block of ``A`` is diagonal, and only the Schur
    complement of the other components (a few hundred levels) needs a dense Cholesky factor."""

    def __init__(self, problem: Problem, lam: np.ndarray, weights: np.ndarray):
        self.pivot, self.rest = problem.pivot_columns, problem.rest_columns
        z_pivot = problem.z_pivot.multiply(lam[self.pivot][None, :]).tocsc()
        z_rest = problem.z_rest.multiply(lam[self.rest][None, :]).tocsc()
        self.diagonal = np.asarray(z_pivot.multiply(z_pivot).T @ weights).ravel() + 1
        weighted_pivot = z_pivot.T.multiply(weights[None, :]).tocsr()
        self.cross = (weighted_pivot @ z_rest).tocsr()
        complement = (z_rest.T.multiply(weights[None, :]).tocsr() @ z_rest
                      - self.cross.T @ self.cross.multiply(1 / self.diagonal[:, None])).toarray()
        complement[np.diag_indices_from(complement)] += 1
        self.chol = linalg.cholesky(complement, lower=True, check_finite=False)
        self.size = len(lam)

    def log_det(self) -> float:
        return float(np.log(self.diagonal).sum() + 2 * np.log(np.diag(self.chol)).sum())

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        top, bottom = rhs[self.pivot], rhs[self.rest]
        scaled = top / self.diagonal.reshape(-1, *([1] * (rhs.ndim - 1)))
        lower = linalg.cho_solve((self.chol, True), bottom - self.cross.T @ scaled,
                                 check_finite=False)
        out = np.empty_like(rhs, dtype=float)
        out[self.rest] = lower
        out[self.pivot] = (top - self.cross @ lower) / self.diagonal.reshape(
            -1, *([1] * (rhs.ndim - 1)))
        return out


def solve(problem: Problem, theta: np.ndarray, reml: bool) -> Solution:
    """The (RE)ML deviance at ``theta`` (relative standard deviations: one per component, then
    the cell component's when there is one), with the residual variance profiled out."""
    k = len(problem.components)
    tau2 = theta[k] ** 2 if problem.has_cell else 0.0
    ratio = tau2 + 1 / problem.n_cell
    weights = 1 / ratio
    lam = np.repeat(theta[:k], problem.sizes)
    zl = problem.z.multiply(lam[None, :]).tocsr()
    factor = BlockFactor(problem, lam, weights)
    both = np.column_stack([problem.x_cell, problem.y_cell])
    weighted = both * weights[:, None]
    projected = factor.solve(zl.T @ weighted)
    v_inverse = weighted - (zl @ projected) * weights[:, None]
    x, p = problem.x_cell, problem.x_cell.shape[1]
    xtvx = x.T @ v_inverse[:, :p]
    xtvy = x.T @ v_inverse[:, p]
    beta = linalg.solve(xtvx, xtvy, assume_a="pos", check_finite=False)
    quadratic = float(problem.y_cell @ v_inverse[:, p] - beta @ xtvy) + problem.within_ss
    log_det = float(np.log(ratio).sum()) + factor.log_det()
    n = problem.n_obs
    dof = n - p if reml else n
    sigma2 = quadratic / dof
    deviance = dof * math.log(2 * math.pi * sigma2) + log_det + dof + problem.log_n
    if reml:
        deviance += float(np.linalg.slogdet(xtvx)[1])
    residual = v_inverse[:, p] - v_inverse[:, :p] @ beta
    return Solution(deviance=deviance, beta=beta, sigma2=sigma2, xtvx=xtvx, factor=factor,
                    lam=lam, weights=weights, v_inverse_residual=residual)


def optimise(problem: Problem, reml: bool, method: str, start: np.ndarray | None = None):
    """Minimise the deviance over ``theta >= 0`` with one scipy method, from ``start`` (e.g.
    a related fit's estimates) where it has one value per component of this problem."""
    size = len(problem.components) + problem.has_cell
    start = (np.full(size, 0.5) if start is None or len(start) != size
             else np.asarray(start, dtype=float))

    def deviance(theta: np.ndarray) -> float:
        try:
            return solve(problem, np.abs(theta), reml).deviance
        except (np.linalg.LinAlgError, ValueError):
            return np.inf

    return optimize.minimize(deviance, start, method=OPTIMISERS[method],
                             bounds=[(0, None)] * size,
                             options={"maxiter": 2000} if method != "lbfgs" else {"maxiter": 500})


def conditional_effects(problem: Problem, solution: Solution, theta: np.ndarray):
    """Conditional means of the random intercepts (and of the cell effects) and the conditional
    variances of the intercepts."""
    k = len(problem.components)
    scaled = solution.lam**2
    effects = scaled * (problem.z.T @ solution.v_inverse_residual)
    inverse = solution.factor.solve(np.eye(len(scaled)))
    variances = solution.sigma2 * solution.lam**2 * np.diag(inverse)
    cell = (theta[k] ** 2 if problem.has_cell else 0.0) * solution.v_inverse_residual
    return effects, variances, cell
