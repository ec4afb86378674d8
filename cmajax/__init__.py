"""cmajax: CMA-ES for JAX.

The whole optimizer state is an immutable pytree; ``init``, ``ask`` and ``tell`` are pure
functions that can be ``jit``-compiled, ``vmap``-ped over many runs and ``lax.scan``-ned.

>>> import jax, jax.numpy as jnp, cmajax
>>> es = cmajax.cma_es(sigma0=0.5)
>>> state = es.init(jnp.ones(4))
>>> state = cmajax.run(es, cmajax.functions.sphere, state, jax.random.key(0), 200)
>>> bool(state.best_fitness < 1e-8)
True
"""

from cmajax import bounds, functions, hypervolume, sharding, transforms
from cmajax.base import Candidates, Layout, Strategy, evaluation_points
from cmajax.bookkeeping import RunState
from cmajax.checkpoint import CheckpointError
from cmajax.cma_es import CMAState, cma_es
from cmajax.como_cma_es import COMOState, como_cma_es
from cmajax.compilation import compiler_options, enable_compilation_cache
from cmajax.lm_ma_es import LMMAState, lm_ma_es
from cmajax.minimize import OptimizeResult, minimize
from cmajax.mo_cma_es import MOState, mo_cma_es
from cmajax.multiobjective import (
    BatchedMultiobjectiveResult,
    MultiobjectiveResult,
    batched_multiobjective,
    minimize_multiobjective,
)
from cmajax.multiobjective_base import MultiobjectiveStrategy
from cmajax.one_plus_one import OnePlusOneState, one_plus_one_cma_es
from cmajax.parameters import CMAParameters, cma_parameters, sep_cma_parameters
from cmajax.plotting import plot
from cmajax.restarts import RestartResult, SlotsResult, batched_restarts, bipop, ipop
from cmajax.run import run
from cmajax.sep_cma_es import SepCMAState, sep_cma_es
from cmajax.termination import StopFlags, TerminationOptions, stop_reasons

__all__ = [
    "BatchedMultiobjectiveResult",
    "CMAParameters",
    "COMOState",
    "CMAState",
    "Candidates",
    "CheckpointError",
    "LMMAState",
    "Layout",
    "MOState",
    "MultiobjectiveResult",
    "MultiobjectiveStrategy",
    "OnePlusOneState",
    "OptimizeResult",
    "RestartResult",
    "RunState",
    "SepCMAState",
    "SlotsResult",
    "StopFlags",
    "Strategy",
    "TerminationOptions",
    "batched_multiobjective",
    "batched_restarts",
    "bipop",
    "bounds",
    "cma_es",
    "como_cma_es",
    "cma_parameters",
    "compiler_options",
    "enable_compilation_cache",
    "evaluation_points",
    "functions",
    "hypervolume",
    "ipop",
    "lm_ma_es",
    "minimize",
    "minimize_multiobjective",
    "mo_cma_es",
    "one_plus_one_cma_es",
    "plot",
    "run",
    "sep_cma_es",
    "sharding",
    "sep_cma_parameters",
    "stop_reasons",
    "transforms",
]
__version__ = "0.1.0"
