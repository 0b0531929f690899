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

The residual variance may differ by the levels of one factor of the cell (nlme's ``varIdent``):
``sigma2 * r_k`` for level ``k``, with ``r = 1`` for the first level. A cell mean then has
variance ``cell + sigma2 * r_k / n_seeds`` plus the crossed components, and each level's
within-cell sum of squares is scaled by its own ``r_k``; the likelihood still factorises exactly
(a test checks it against the dense multivariate-normal likelihood of all rows).
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
    # per level of the residual-variance factor (one level when the residual is homoscedastic)
    within_ss: np.ndarray
    within_df: np.ndarray
    # each cell's level of that factor, and the levels' names (the first is the reference)
    residual_level: np.ndarray
    residual_levels: list[str]
    z: sparse.csr_matrix
    sizes: list[int]
    components: list[Component]
    has_cell: bool
    log_n: float
    pivot_columns: np.ndarray
    rest_columns: np.ndarray
    z_pivot: sparse.csc_matrix
    z_rest: sparse.csc_matrix
    # the same design as a dense array where that is cheaper (:data:`DENSE_WORK`), else None
    z_dense: np.ndarray | None = None

    @property
    def n_obs(self) -> int:
        return len(self.y_cell) + int(self.within_df.sum())

    @property
    def n_theta(self) -> int:
        """Relative SDs of the components (and of the cell), then the residual SD ratios."""
        return len(self.components) + self.has_cell + len(self.residual_levels) - 1

    def residual_ratios(self, theta: np.ndarray) -> np.ndarray:
        """Each level's residual variance over the reference level's (1 for the first)."""
        return np.concatenate([[1.0], theta[len(self.components) + self.has_cell:] ** 2])


@dataclass
class Solution:
    """The deviance's by-products at one ``theta``."""

    deviance: float
    beta: np.ndarray
    sigma2: float
    xtvx: np.ndarray
    factor: BlockFactor | DenseFactor
    lam: np.ndarray
    weights: np.ndarray
    v_inverse_residual: np.ndarray
    # for the gradient: Z Lambda, V^-1 X, the quadratic form and its degrees of freedom
    zl: np.ndarray | sparse.csr_matrix
    v_inverse_x: np.ndarray
    quadratic: float
    dof: int


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
    # the residual variance of each level of the factor it varies by (empty: one residual)
    residual_variances: dict[str, float] = field(default_factory=dict)

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
                  components: list[Component], cell: tuple[str, ...],
                  residual_by: str | None = None):
    """Cell means, within-cell sums of squares (per level of ``residual_by``, a factor of the
    cell, when the residual variance differs by it) and the sparse random-effects design;
    components the design cannot separate are dropped by rule, with the reason."""
    if residual_by is not None and residual_by not in cell:
        raise DesignError(f"the residual variance can differ only by a factor that is constant "
                          f"within a cell, one of {list(cell)}; not {residual_by!r}")
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
    if residual_by is None:
        level, level_names = np.zeros(m, dtype=int), ["all"]
    else:
        level, uniques = pd.factorize(cells[residual_by], sort=True)
        level_names = [str(name) for name in uniques]
        if len(level_names) < 2:
            raise DesignError(f"the residual variance cannot differ by {residual_by!r}: the data "
                              f"have one level of it ({level_names[0]})")
    row_level = level[codes]
    within_ss = np.bincount(row_level, weights=within**2, minlength=len(level_names))
    within_df = (np.bincount(row_level, minlength=len(level_names))
                 - np.bincount(level, minlength=len(level_names)))
    z = sparse.hstack(blocks, format="csc")
    largest = int(np.argmax(sizes))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    columns = np.arange(offsets[-1])
    pivot = columns[offsets[largest]:offsets[largest + 1]]
    rest = np.setdiff1d(columns, pivot)
    dense = z.toarray() if m * offsets[-1] ** 2 <= DENSE_WORK else None
    problem = Problem(y_cell=y_cell, x_cell=x_cell, n_cell=counts.astype(float),
                      within_ss=within_ss, within_df=within_df, residual_level=level,
                      residual_levels=level_names, z=z.tocsr(),
                      sizes=sizes, components=kept, has_cell=bool(within_df.sum() > 0),
                      log_n=float(np.log(counts).sum()), pivot_columns=pivot, rest_columns=rest,
                      z_pivot=z[:, pivot], z_rest=z[:, rest], z_dense=dense)
    return problem, codes, cells, dropped


# Below this many multiply-adds for ``Z' W Z`` (cells x levels^2) a dense factor of the whole of
# ``A`` is cheaper than the sparse block elimination, whose scipy.sparse calls cost about ten
# times more than the arithmetic on a design of a few hundred cells (the calibration benchmark's)
DENSE_WORK = 2e7


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


class DenseFactor:
    """``A = Lambda Z' W Z Lambda + I`` as one dense Cholesky factor, for small designs."""

    def __init__(self, zl: np.ndarray, weights: np.ndarray):
        a = zl.T @ (zl * weights[:, None])
        a[np.diag_indices_from(a)] += 1
        self.chol = linalg.cholesky(a, lower=True, check_finite=False)

    def log_det(self) -> float:
        return float(2 * np.log(np.diag(self.chol)).sum())

    def solve(self, rhs: np.ndarray) -> np.ndarray:
        return linalg.cho_solve((self.chol, True), rhs, check_finite=False)


def solve(problem: Problem, theta: np.ndarray, reml: bool) -> Solution:
    """The (RE)ML deviance at ``theta`` (relative standard deviations: one per component, then
    the cell component's when there is one, then each non-reference level's residual SD over the
    reference level's), with the reference residual variance profiled out."""
    k = len(problem.components)
    tau2 = theta[k] ** 2 if problem.has_cell else 0.0
    ratios = problem.residual_ratios(theta)
    ratio = tau2 + ratios[problem.residual_level] / problem.n_cell
    weights = 1 / ratio
    lam = np.repeat(theta[:k], problem.sizes)
    if problem.z_dense is None:
        zl = problem.z.multiply(lam[None, :]).tocsr()
        factor = BlockFactor(problem, lam, weights)
    else:
        zl = problem.z_dense * lam[None, :]
        factor = DenseFactor(zl, weights)
    both = np.column_stack([problem.x_cell, problem.y_cell])
    weighted = both * weights[:, None]
    projected = factor.solve(zl.T @ weighted)
    v_inverse = weighted - (zl @ projected) * weights[:, None]
    x, p = problem.x_cell, problem.x_cell.shape[1]
    xtvx = x.T @ v_inverse[:, :p]
    xtvy = x.T @ v_inverse[:, p]
    beta = linalg.solve(xtvx, xtvy, assume_a="pos", check_finite=False)
    quadratic = (float(problem.y_cell @ v_inverse[:, p] - beta @ xtvy)
                 + float((problem.within_ss / ratios).sum()))
    log_det = (float(np.log(ratio).sum()) + factor.log_det()
               + float(problem.within_df @ np.log(ratios)))
    n = problem.n_obs
    dof = n - p if reml else n
    sigma2 = quadratic / dof
    deviance = dof * math.log(2 * math.pi * sigma2) + log_det + dof + problem.log_n
    if reml:
        deviance += float(np.linalg.slogdet(xtvx)[1])
    residual = v_inverse[:, p] - v_inverse[:, :p] @ beta
    return Solution(deviance=deviance, beta=beta, sigma2=sigma2, xtvx=xtvx, factor=factor,
                    lam=lam, weights=weights, v_inverse_residual=residual, zl=zl,
                    v_inverse_x=v_inverse[:, :p], quadratic=quadratic, dof=dof)


def gradient(problem: Problem, theta: np.ndarray, reml: bool, solution: Solution) -> np.ndarray:
    """The derivative of :func:`solve`'s deviance in the squares of ``theta`` (the variance
    ratios), analytic: the optimiser needs one of these instead of a deviance per parameter,
    and in the squares a component at zero still has a slope (a test checks it against
    differences).

    With ``V`` the cell means' covariance over ``sigma2`` and ``u = V^-1 (y - X beta)``, each
    parameter ``psi`` contributes ``dof * dQ / Q + tr(V^-1 dV) [+ d log|X' V^-1 X|]`` plus the
    within-cell part's, where ``dQ = -u' dV u`` (beta is at its optimum) and
    ``d log|X' V^-1 X| = -tr((X' V^-1 X)^-1 X' V^-1 dV V^-1 X)``. A component's ``dV`` is
    ``Z_j Z_j'``; the cell's and the residual ratios' are diagonal."""
    w, u, factor, lam = (solution.weights, solution.v_inverse_residual, solution.factor,
                         solution.lam)
    dense = problem.z_dense is not None
    z = problem.z_dense if dense else problem.z
    starts = np.concatenate([[0], np.cumsum(problem.sizes)[:-1]])
    cross = (z.T * w[None, :]) @ z if dense else (z.T.multiply(w[None, :]).tocsr() @ z).toarray()
    # diag(Z' V^-1 Z) = diag(C) - diag(C Lambda A^-1 Lambda C), C = Z' W Z
    scaled = lam[:, None] * cross
    z_v_z = np.diag(cross) - (scaled * factor.solve(scaled)).sum(axis=0)
    # diag(V^-1) = w - w^2 diag(Z Lambda A^-1 Lambda Z')
    zl = solution.zl
    projected = factor.solve(zl.T if dense else zl.T.toarray())
    inner = ((zl * projected.T).sum(axis=1) if dense
             else np.asarray(zl.multiply(projected.T).sum(axis=1)).ravel())
    v_inverse_diagonal = w - w**2 * inner
    # (X'V^-1X)^-1 through its Cholesky factor: N = V^-1 X L^-T
    chol = linalg.cholesky(solution.xtvx, lower=True, check_finite=False)
    n_rows = linalg.solve_triangular(chol, solution.v_inverse_x.T, lower=True,
                                     check_finite=False).T
    z_u = np.asarray(z.T @ u).ravel()
    z_n = np.asarray(z.T @ n_rows)
    d_quadratic = [-np.add.reduceat(z_u**2, starts)]
    d_log_det = [np.add.reduceat(z_v_z, starts)]
    d_reml = [-np.add.reduceat((z_n**2).sum(axis=1), starts)]
    # the diagonal parameters: d V_cc / d psi for each cell c, and the within-cell part
    n_sq = (n_rows**2).sum(axis=1)
    diagonal = [(np.ones(len(w)), 0.0, 0.0)] if problem.has_cell else []
    ratios = problem.residual_ratios(theta)
    diagonal += [(np.where(problem.residual_level == level, 1 / problem.n_cell, 0.0),
                  -problem.within_ss[level] / ratios[level] ** 2,
                  problem.within_df[level] / ratios[level])
                 for level in range(1, len(ratios))]
    for slope, within_quadratic, within_log_det in diagonal:
        d_quadratic.append([within_quadratic - slope @ u**2])
        d_log_det.append([within_log_det + slope @ v_inverse_diagonal])
        d_reml.append([-(slope @ n_sq)])
    d_quadratic, d_log_det, d_reml = map(np.concatenate, (d_quadratic, d_log_det, d_reml))
    return solution.dof * d_quadratic / solution.quadratic + d_log_det + (d_reml if reml else 0)


# a residual SD ratio stays above this: at 0 a level's residual would be exactly 0
MIN_RATIO = 1e-4


def optimise(problem: Problem, reml: bool, method: str, start: np.ndarray | None = None):
    """Minimise the deviance over ``theta >= 0`` with one scipy method, from ``start`` (e.g.
    a related fit's estimates) where it has one value per parameter of this problem, or one per
    variance component (a homoscedastic fit's: the residual ratios then start at 1).

    The optimiser works on the squares of ``theta`` (the variance ratios): in ``theta`` the
    deviance is flat at 0 (it depends on ``theta**2``), so a component the first steps take to 0
    could never leave it, and L-BFGS-B stopped at such points with ``converged``. The result's
    ``x`` is ``theta``."""
    variances = len(problem.components) + problem.has_cell
    size = problem.n_theta
    if start is not None and len(start) == variances < size:
        start = np.concatenate([start, np.ones(size - variances)])
    start = (np.concatenate([np.full(variances, 0.5), np.ones(size - variances)])
             if start is None or len(start) != size else np.asarray(start, dtype=float))

    def deviance(squares: np.ndarray) -> float:
        try:
            return solve(problem, np.sqrt(np.abs(squares)), reml).deviance
        except (np.linalg.LinAlgError, ValueError):
            return np.inf

    def with_gradient(squares: np.ndarray) -> tuple[float, np.ndarray]:
        theta = np.sqrt(np.abs(squares))  # within the bounds, the squares are >= 0
        try:
            solution = solve(problem, theta, reml)
            return solution.deviance, gradient(problem, theta, reml, solution)
        except (np.linalg.LinAlgError, ValueError):
            return np.inf, np.zeros_like(theta)

    gradient_based = method == "lbfgs"
    outcome = optimize.minimize(
        with_gradient if gradient_based else deviance, start**2, jac=gradient_based or None,
        method=OPTIMISERS[method],
        bounds=[(0, None)] * variances + [(MIN_RATIO**2, None)] * (size - variances),
        options={"maxiter": 2000} if method != "lbfgs" else {"maxiter": 500})
    outcome.x = np.sqrt(np.abs(outcome.x))
    return outcome


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
