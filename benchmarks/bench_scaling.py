"""Weak scaling of cmajax's ``mesh=`` over d = 1, 2, 4, 8 devices: overhead and bytes sent.

``mesh=`` splits cmajax's work over the devices of a ``jax.sharding.Mesh`` in two ways
(``cmajax/sharding.py``). This script measures both at a fixed amount of work *per device*
(weak scaling: the problem grows with d), each against the same program without a mesh:

1. **Independent runs** (``restarts``): ``batched_restarts`` of ``cma_es(2.0)`` on 10-D
   Rastrigin, x0 ~ U[-4, 4]^10, 64 slots per device (64·d in all), a fixed number of
   generations. Without a mesh all 64·d slots run on one device; with the mesh each device runs
   64 of them.
2. **One run's population** (``sep-mlp``): a neuroevolution-like objective, the mean squared
   error of a 16-48-24-1 tanh MLP (2,017 weights, flat params) on a fixed generated batch of
   256 examples, minimised by ``sep_cma_es`` with λ = 16·d. One call is a jitted ``lax.scan``
   of ask-evaluate-tell generations; the λ candidates are evaluated by ``jax.vmap(loss)``
   (no mesh) or by ``cmajax.sharding.split_evaluation(jax.vmap(loss), mesh)`` (each device
   evaluates 16 of them, the λ values are all-gathered; the state is replicated).
3. **The same with full CMA-ES** (``full-cma-n100``): ``cma_es`` with λ = 16·d on the
   100-D ellipsoid, to show that its 100×100 covariance never crosses devices.

For every program: the seconds to trace, lower and compile it (``jit(...).lower(...).compile()``
timed on its own), and the seconds per generation of the compiled program (median over
``--repeats`` calls after one warm-up call; the mesh and no-mesh programs of a d are timed in
interleaved rounds so that drift of the machine hits both alike), with the ratio mesh / no-mesh.
The bytes communicated are read from the compiled programs' HLO text: every collective
operation (all-gather, all-reduce, ...), its result shape and bytes (elements × item size), and
whether it sits inside the generation loop (a ``while`` body: it runs once per generation) or
outside it (once per call).

On a CPU the devices are simulated (``--xla_force_host_platform_device_count``) and share this
machine's cores, so no speed-up is expected: the tables show the overhead of splitting, not
scaling. (A mesh may still beat the no-mesh program by up to the number of cores, since the
no-mesh program runs mostly on one core; and a split population's replicated update is computed
by every simulated device on the same cores, so it costs d times more.) On real devices (GPUs,
TPU cores) the mesh's seconds per generation would stay flat as d grows while the no-mesh ones
grow with the work.

The script simulates 16 CPU devices (unless ``XLA_FLAGS`` already sets a device count) and
uses meshes of the first 1, 2, 4 and 8 of them. Why 16 and not 8: XLA's CPU client runs each
device's program on a thread of one intra-op pool of max(cores, devices) threads, and jaxlib's
batched LAPACK kernels (the eigendecompositions of the 64 runs of a device) split their batch
into tasks on that same pool and block until the tasks finish. When every thread of the pool is
a device program blocked that way, no thread is left to run the tasks: a mesh over all 8 of 8
simulated devices hangs in ``batched_restarts`` with 64 slots per device at n = 10 (seen with
jax 0.10.2; 32 per device stays under jaxlib's threshold for splitting). With 16 simulated
devices, 8 threads stay free. A ``restarts`` case whose mesh would use every thread of the pool
is skipped with a note. JAX_PLATFORMS defaults to ``cpu`` here; set it (e.g. ``cuda``) to
measure real devices. OPENBLAS_NUM_THREADS defaults to 1 (LAPACK's own threads only add
contention with the device threads on a few cores).

Results: ``scaling.md``, ``scaling.json`` and ``scaling.png`` in ``--out``.

Run: python benchmarks/bench_scaling.py [--quick] [--devices 1,2,4,8] [--repeats 7]
[--out benchmarks/results]
"""

from __future__ import annotations

import os

# Before jax is imported anywhere: the device count of JAX's CPU backend is fixed at import.
DEVICE_FLAG = "--xla_force_host_platform_device_count"
SIMULATED_DEVICES = 16  # twice the largest mesh: see the module docstring
if DEVICE_FLAG not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + f" {DEVICE_FLAG}={SIMULATED_DEVICES}"
    ).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import math  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, NamedTuple  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench_utils as bu  # noqa: E402

CASES = ("restarts", "sep-mlp", "full-cma-n100")
SLOTS_PER_DEVICE = 64
POP_PER_DEVICE = 16
RASTRIGIN_DIM, LOW, HIGH, RESTART_SIGMA0 = 10, -4.0, 4.0, 2.0
MLP_LAYERS = (16, 48, 24, 1)  # 16·48+48 + 48·24+24 + 24+1 = 2,017 weights
MLP_BATCH = 256
MLP_SIGMA0 = 0.1
FULL_DIM, FULL_SIGMA0 = 100, 0.5


# --------------------------------------------------------------------------- programs


class Program(NamedTuple):
    """A jitted program and the arguments of its calls.

    ``args(i)`` are the arguments of call ``i`` (a fresh key per call, the rest fixed);
    ``generations`` is the number of generations one call runs.
    """

    jitted: Any
    args: Callable[[int], tuple]
    generations: int


def restarts_program(devices: int, mesh: Any, generations: int) -> Program:
    """``batched_restarts`` of ``cma_es(2.0)`` on 10-D Rastrigin with 64·d slots.

    Without a mesh every slot runs on the default device; with one, each device runs 64.
    """
    import functools

    import jax

    import cmajax

    def x0_fn(key):
        return jax.random.uniform(key, (RASTRIGIN_DIM,), minval=LOW, maxval=HIGH)

    jitted = jax.jit(
        functools.partial(
            cmajax.batched_restarts,
            cmajax.cma_es(RESTART_SIGMA0),
            cmajax.functions.rastrigin,
            x0_fn,
            slots=SLOTS_PER_DEVICE * devices,
            generations=generations,
            mesh=mesh,
        )
    )
    return Program(jitted, lambda i: (jax.random.key(i),), generations)


def mlp_problem() -> tuple[Callable, Any, Any, Any]:
    """``(loss, params0, x, y)``: an MSE loss of flat MLP weights on a fixed generated batch.

    The inputs are standard normal; the targets come from a fixed random "teacher" MLP of the
    same shape plus a little noise, so the loss is a real regression problem. Everything is
    drawn from fixed PRNG keys: no downloads, the same numbers in every run.
    """
    import jax
    import jax.numpy as jnp
    from jax.flatten_util import ravel_pytree

    def init(key):
        keys = jax.random.split(key, len(MLP_LAYERS) - 1)
        return [
            {
                "w": jax.random.normal(k, (fan_in, fan_out)) / jnp.sqrt(fan_in),
                "b": jnp.zeros(fan_out),
            }
            for k, fan_in, fan_out in zip(keys, MLP_LAYERS[:-1], MLP_LAYERS[1:], strict=True)
        ]

    def forward(params, x):
        for layer in params[:-1]:
            x = jnp.tanh(x @ layer["w"] + layer["b"])
        return x @ params[-1]["w"] + params[-1]["b"]

    data_key, teacher_key, noise_key, student_key = jax.random.split(jax.random.key(2024), 4)
    x = jax.random.normal(data_key, (MLP_BATCH, MLP_LAYERS[0]))
    y = forward(init(teacher_key), x) + 0.05 * jax.random.normal(noise_key, (MLP_BATCH, 1))
    params0, unravel = ravel_pytree(init(student_key))

    def loss(flat, x, y):
        return jnp.mean((forward(unravel(flat), x) - y) ** 2)

    return loss, params0, x, y


def split_population_program(
    strategy: Any, fun: Callable, x0: Any, shared: tuple, mesh: Any, generations: int
) -> Program:
    """``generations`` ask-evaluate-tell generations of one run as one jitted ``lax.scan``.

    ``fun(x, *shared)`` is the objective of one candidate. Without a mesh the λ candidates are
    evaluated by ``jax.vmap(fun)`` on one device; with one, by ``split_evaluation`` (each device
    evaluates λ/d of them, the values are all-gathered), and the state and ``shared`` are
    replicated on the mesh's devices. Every call starts from the same initial state.
    """
    import jax

    from cmajax import sharding
    from cmajax.base import evaluation_points

    batched = jax.vmap(fun, in_axes=(0, *(None for _ in shared)))
    evaluate = batched if mesh is None else sharding.split_evaluation(batched, mesh)

    def run(state, key, *shared):
        def generation(state, step_key):
            population = strategy.ask(step_key, state)
            fitness = evaluate(evaluation_points(population), *shared)
            return strategy.tell(state, population, fitness), None

        state, _ = jax.lax.scan(generation, state, jax.random.split(key, generations))
        return state

    state = strategy.init(x0)
    if mesh is not None:
        state, shared = sharding.replicated((state, shared), mesh)
    return Program(jax.jit(run), lambda i: (state, jax.random.key(i), *shared), generations)


def sep_mlp_program(devices: int, mesh: Any, generations: int) -> Program:
    """``sep_cma_es`` with λ = 16·d on the MLP's loss, stopping criteria off."""
    import cmajax

    loss, params0, x, y = mlp_problem()
    strategy = cmajax.sep_cma_es(
        MLP_SIGMA0, POP_PER_DEVICE * devices, termination=cmajax.TerminationOptions.never()
    )
    return split_population_program(strategy, loss, params0, (x, y), mesh, generations)


def full_cma_program(devices: int, mesh: Any, generations: int) -> Program:
    """``cma_es`` with λ = 16·d on the 100-D ellipsoid from ones(100), stopping criteria off."""
    import jax.numpy as jnp

    import cmajax

    strategy = cmajax.cma_es(
        FULL_SIGMA0, popsize=POP_PER_DEVICE * devices, termination=cmajax.TerminationOptions.never()
    )
    x0 = jnp.ones(FULL_DIM)
    return split_population_program(strategy, cmajax.functions.ellipsoid, x0, (), mesh, generations)


BUILDERS = {
    "restarts": restarts_program,
    "sep-mlp": sep_mlp_program,
    "full-cma-n100": full_cma_program,
}


# --------------------------------------------------------------------------- HLO collectives

COLLECTIVE_OPS = ("all-gather", "all-reduce", "all-to-all", "collective-permute", "reduce-scatter")
ITEM_BYTES = {
    "pred": 1, "s4": 1, "u4": 1, "s8": 1, "u8": 1, "s16": 2, "u16": 2, "f16": 2, "bf16": 2,
    "s32": 4, "u32": 4, "f32": 4, "s64": 8, "u64": 8, "f64": 8, "c64": 8, "c128": 16,
}  # fmt: skip
_INSTRUCTION = re.compile(
    r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(?P<shape>.+?)\s+"
    r"(?P<op>" + "|".join(COLLECTIVE_OPS) + r")(?P<start>-start)?\("
)
_ARRAY = re.compile(r"\b([a-z]+[0-9a-z]*)\[([0-9,]*)\]")
_CALLEE = re.compile(
    r"\b(body|condition|calls|to_apply|true_computation|false_computation)=%?([\w.\-]+)"
)
_BRANCHES = re.compile(r"branch_computations=\{([^}]*)\}")


def array_bytes(shape: str) -> list[int]:
    """Bytes of every array in an HLO shape string (``f32[16]{0}`` or a tuple of them)."""
    sizes = []
    for dtype, dims in _ARRAY.findall(shape):
        count = math.prod(int(v) for v in dims.split(",") if v) if dims else 1
        sizes.append(count * ITEM_BYTES.get(dtype, 1 if dtype.startswith("f8") else 4))
    return sizes


def hlo_computations(text: str) -> tuple[str, dict[str, list[str]]]:
    """``(entry name, {computation name: its instruction lines})`` of compiled HLO text."""
    computations: dict[str, list[str]] = {}
    entry, current = "", None
    for line in text.splitlines():
        if current is None:
            header = re.match(r"^(ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$", line)
            if header and not line.startswith((" ", "HloModule")):
                current = header.group(2)
                computations[current] = []
                entry = current if header.group(1) else entry
        elif line.startswith("}"):
            current = None
        else:
            computations[current].append(line)
    return entry, computations


def loop_depths(entry: str, computations: dict[str, list[str]]) -> dict[str, int]:
    """How many ``while`` loops enclose each computation reachable from the entry (fewest).

    A computation reached as a ``while``'s ``body`` or ``condition`` runs once per iteration:
    its depth is one more than its caller's. Fused computations, reducers and branches keep
    their caller's depth.
    """
    depths = {entry: 0}
    stack = [entry]
    while stack:
        name = stack.pop()
        for line in computations.get(name, []):
            callees = [(kind, callee) for kind, callee in _CALLEE.findall(line)]
            for group in _BRANCHES.findall(line):
                callees += [("branch", c.strip().lstrip("%")) for c in group.split(",")]
            for kind, callee in callees:
                depth = depths[name] + (kind in ("body", "condition") and " while(" in line)
                if callee in computations and depth < depths.get(callee, 1 << 30):
                    depths[callee] = depth
                    stack.append(callee)
    return depths


def collectives(hlo_text: str) -> list[dict[str, Any]]:
    """Every collective of a compiled program: op, result shape, bytes and loop depth.

    ``bytes`` is the size of the op's result (elements × item size); an asynchronous
    ``-start`` op's result tuple also holds its input, so only its last array is counted.
    ``loop_depth`` 0: once per call; 1: inside the generation loop, once per generation.
    """
    entry, computations = hlo_computations(hlo_text)
    depths = loop_depths(entry, computations)
    found = []
    for name, lines in computations.items():
        if name not in depths:
            continue
        for line in lines:
            match = _INSTRUCTION.match(line)
            if not match:
                continue
            shape = re.sub(r"\{[^}]*\}", "", match.group("shape"))  # drop layouts
            sizes = array_bytes(shape)
            found.append(
                {
                    "op": match.group("op") + (match.group("start") or ""),
                    "shape": shape,
                    "bytes": sizes[-1] if match.group("start") else sum(sizes),
                    "loop_depth": depths[name],
                }
            )
    return found


def communication(found: list[dict[str, Any]]) -> dict[str, Any]:
    """Bytes per call (outside any loop) and per generation (inside the generation loop)."""
    return {
        "collectives": found,
        "bytes_per_call_outside_loop": sum(c["bytes"] for c in found if c["loop_depth"] == 0),
        "bytes_per_generation": sum(c["bytes"] for c in found if c["loop_depth"] == 1),
        "bytes_in_nested_loops": sum(c["bytes"] for c in found if c["loop_depth"] > 1),
    }


# --------------------------------------------------------------------------- measurement


def compile_program(program: Program) -> tuple[Any, float, dict[str, Any]]:
    """``(compiled, seconds to trace + lower + compile, communication)`` of a program."""
    start = time.perf_counter()
    compiled = program.jitted.lower(*program.args(0)).compile()
    seconds = time.perf_counter() - start
    return compiled, seconds, communication(collectives(compiled.as_text()))


def time_interleaved(compiled: dict[str, Any], program: Program, repeats: int) -> dict:
    """Seconds per call of each compiled variant, one call of each per round.

    One untimed warm-up call each first (allocations, thread pools). Every variant gets the
    same arguments in a round (key = round + 1).
    """
    import jax

    for variant in compiled.values():
        jax.block_until_ready(variant(*program.args(10**6)))
    timings: dict[str, bu.Timing] = {name: bu.Timing([], []) for name in compiled}
    for round_ in range(repeats):
        for name, variant in compiled.items():
            args = program.args(round_ + 1)
            timing = bu.time_repeats(lambda _, v=variant, a=args: jax.block_until_ready(v(*a)), 1)
            timings[name].times.extend(timing.times)
            timings[name].loads.extend(timing.loads)
    return timings


def would_deadlock(case: str, devices: int) -> bool:
    """True where a ``restarts`` mesh would occupy every thread of XLA's CPU pool (a hang)."""
    import jax

    pool = max(os.cpu_count() or 1, jax.device_count())
    return case == "restarts" and jax.default_backend() == "cpu" and devices >= pool


def measure(case: str, devices: int, generations: int, repeats: int) -> dict[str, Any]:
    """Compile and time ``case`` at d devices without and with a mesh of the first d."""
    import jax
    from jax.sharding import Mesh

    row: dict[str, Any] = {"devices": devices, "generations": generations}
    if devices > jax.device_count():
        return {**row, "skipped": f"only {jax.device_count()} devices"}
    if would_deadlock(case, devices):
        return {**row, "skipped": "the mesh would use every thread of XLA's CPU pool (hangs)"}
    mesh = Mesh(np.array(jax.devices()[:devices]), ("devices",))
    programs = {"no_mesh": BUILDERS[case](devices, None, generations)}
    programs["mesh"] = BUILDERS[case](devices, mesh, generations)
    compiled = {}
    for name, program in programs.items():
        compiled[name], compile_s, comm = compile_program(program)
        row[name] = {"compile_s": compile_s, **comm}
    timings = time_interleaved(compiled, programs["no_mesh"], repeats)
    for name, timing in timings.items():
        per_generation = bu.median(timing.times) / generations
        row[name].update(
            times_s=timing.times, foreign_load=timing.loads, s_per_generation=per_generation
        )
    row["ratio"] = bu.ratio(row["mesh"]["s_per_generation"], row["no_mesh"]["s_per_generation"])
    row["compile_ratio"] = bu.ratio(row["mesh"]["compile_s"], row["no_mesh"]["compile_s"])
    if case == "restarts":
        outcome = {n: float(c(*programs[n].args(1)).best_fitness) for n, c in compiled.items()}
        row["best_f"] = outcome  # the same key: equal up to float differences
    else:
        row["popsize"] = POP_PER_DEVICE * devices
    return row


# --------------------------------------------------------------------------- output


def describe_collectives(found: list[dict[str, Any]]) -> str:
    """``op shape (where) ×count`` of every distinct collective, or ``none``."""
    counts: dict[tuple, int] = {}
    for c in found:
        where = {0: "per call", 1: "per gen"}.get(c["loop_depth"], f"loop depth {c['loop_depth']}")
        key = (c["op"], c["shape"], where)
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return "none"
    return "; ".join(
        f"{op} `{shape}` ({where}){f' ×{n}' if n > 1 else ''}"
        for (op, shape, where), n in counts.items()
    )


def timing_table(rows: list[dict[str, Any]], extra: str) -> list[str]:
    """Markdown table of compile seconds, seconds per generation and mesh / no-mesh ratios."""
    lines = [
        f"| d | {extra} | compile s, no mesh | compile s, mesh | s/gen, no mesh | s/gen, mesh "
        "| mesh / no mesh |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        if "skipped" in row:
            lines.append(f"| {row['devices']} | - | skipped: {row['skipped']} | | | | |")
            continue
        size = row.get("popsize", SLOTS_PER_DEVICE * row["devices"])
        lines.append(
            f"| {row['devices']} | {size} | {bu.fmt(row['no_mesh']['compile_s'])} "
            f"| {bu.fmt(row['mesh']['compile_s'])} | {bu.fmt(row['no_mesh']['s_per_generation'])} "
            f"| {bu.fmt(row['mesh']['s_per_generation'])} | {bu.fmt(row['ratio'], 3)}× |"
        )
    return lines


def bytes_table(doc: dict[str, Any]) -> list[str]:
    """Markdown table of the collectives of every mesh program and their bytes."""
    lines = [
        "| case | d | collectives of the mesh program (result shape) | bytes per call, "
        "outside the loop | bytes per generation |",
        "|---|---:|---|---:|---:|",
    ]
    for case, rows in doc["cases"].items():
        for row in rows:
            if "skipped" in row:
                continue
            mesh = row["mesh"]
            nested = mesh["bytes_in_nested_loops"]
            lines.append(
                f"| {case} | {row['devices']} | {describe_collectives(mesh['collectives'])} "
                f"| {mesh['bytes_per_call_outside_loop']:,} | {mesh['bytes_per_generation']:,}"
                f"{f' (+{nested:,} in nested loops)' if nested else ''} |"
            )
    return lines


def case_sections(doc: dict[str, Any]) -> list[str]:
    """The timing section of every measured case."""
    cases, lines = doc["cases"], []
    if "restarts" in cases:
        lines += [
            f"## 1. Independent runs: `batched_restarts`, {doc['restarts_generations']} "
            "generations",
            "",
            f"`cma_es({RESTART_SIGMA0})` (default options, a stopped run restarts in place) on "
            f"{RASTRIGIN_DIM}-D Rastrigin, x0 ~ U[{LOW:g}, {HIGH:g}]^{RASTRIGIN_DIM}, λ = 10, "
            f"{SLOTS_PER_DEVICE} slots per device. No mesh: all 64·d slots on one device.",
            "",
            *timing_table(cases["restarts"], "slots"),
            "",
        ]
    if "sep-mlp" in cases:
        lines += [
            f"## 2. One run's population: sep-CMA-ES on an MLP, {doc['split_generations']} "
            "generations per call",
            "",
            f"MLP {'-'.join(map(str, MLP_LAYERS))} with tanh ({doc['mlp_weights']:,} weights, "
            f"flat), mean squared error on a fixed generated batch of {MLP_BATCH} examples; "
            f"`sep_cma_es({MLP_SIGMA0}, λ = 16·d)`, stopping criteria off; one call is a jitted "
            "`lax.scan` of ask-evaluate-tell. No mesh: `jax.vmap(loss)`; mesh: "
            "`split_evaluation(jax.vmap(loss), mesh)` with the state replicated.",
            "",
            *timing_table(cases["sep-mlp"], "λ"),
            "",
        ]
    if "full-cma-n100" in cases:
        lines += [
            f"## 3. One run's population: full CMA-ES at n = {FULL_DIM}, "
            f"{doc['split_generations']} generations per call",
            "",
            f"`cma_es({FULL_SIGMA0}, popsize = 16·d)` on the {FULL_DIM}-D ellipsoid from "
            f"ones({FULL_DIM}), stopping criteria off, evaluated as in 2.",
            "",
            *timing_table(cases["full-cma-n100"], "λ"),
            "",
        ]
    return lines


def largest_load(rows: list[dict[str, Any]]) -> float:
    """The largest share of the CPU other processes used during a kept timed call."""
    return max(
        (
            load
            for row in rows
            for name in ("no_mesh", "mesh")
            if name in row
            for load in row[name]["foreign_load"]
        ),
        default=0.0,
    )


def markdown_report(doc: dict[str, Any]) -> str:
    """The whole ``scaling.md`` text."""
    info = doc["machine"]
    cpu = info["jax_backend"] == "cpu"
    cases = doc["cases"]
    no_mesh_collectives = sorted(
        {
            c["op"]
            for rows in cases.values()
            for row in rows
            if "no_mesh" in row
            for c in row["no_mesh"]["collectives"]
        }
    )
    lines = [
        "# Weak scaling of `mesh=`: overhead and bytes communicated",
        "",
        *bu.machine_markdown(info),
        f"- XLA_FLAGS: `{doc['xla_flags']}`; {doc['device_count']} devices, meshes of the "
        f"first d = {', '.join(map(str, doc['devices']))}",
        "",
    ]
    if cpu:
        lines += [
            f"**Simulated devices: no speed-up is expected.** The {doc['device_count']} CPU "
            f"devices are simulated (`{DEVICE_FLAG}`) and share this machine's "
            f"{info['cpu_count']} cores: d devices do d times the work on the same cores. The "
            "tables show the overhead of splitting (mesh / no mesh ≈ 1: none), not scaling. Two "
            "effects bend the ratios on a CPU: the no-mesh program runs mostly on one core while "
            f"a mesh's devices run on all {info['cpu_count']} (a ratio down to "
            f"1/{info['cpu_count']} is that, not a gain from splitting), and in a split "
            "population every device computes the same replicated update, so the update's "
            "cost is paid d times on the shared cores (a ratio above 1 that grows with d and "
            "with the update's share of the work, e.g. the O(n²) update of full CMA-ES). On d "
            "real devices the mesh's seconds per generation would stay flat as d grows.",
            "",
        ]
    lines += [
        f"Weak scaling: the work grows with d (64·d slots; λ = 16·d), so each device of a mesh "
        f"has the same share at every d. Compile s: `jit(...).lower(...).compile()` timed on "
        f"its own (trace, lower, XLA compile). s/gen: median over {doc['repeats']} calls of the "
        "compiled program after a warm-up call, divided by the generations per call; the mesh "
        "and no-mesh programs of a d are timed in interleaved rounds.",
        "",
        *case_sections(doc),
        "## 4. Bytes communicated (from the compiled HLO)",
        "",
        "Every collective op of each mesh program, with its result shape and bytes (elements × "
        "item size: f32 4, s32 4, pred 1, ...). *per call*: outside the generation loop, once "
        "per call; *per gen*: inside the `while` loop of the generations, once per generation. "
        "The no-mesh programs have "
        + (
            "no collectives."
            if not no_mesh_collectives
            else f"these collectives: {', '.join(no_mesh_collectives)}."
        ),
        "",
        *bytes_table(doc),
        "",
        "- `batched_restarts`: every collective sits outside the generation loop: the runs "
        "never talk, so a generation communicates 0 bytes. Once per call, each device's best "
        "solution and value cross devices (f32[d, n], f32[d]), with the argmin's own gather of "
        "d values and indices (f32[d], s32[d]): d·(n + 3) numbers, whatever the number of "
        "slots.",
        "- Split population: the all-gather of the λ fitness values (λ·4 bytes in float32) is "
        "the only collective per generation, for sep-CMA-ES (n = "
        f"{doc['mlp_weights']:,}) and full CMA-ES (n = {FULL_DIM}) alike: no n-vector and no "
        "n×n matrix crosses devices; the update is computed on every device.",
        "",
        "The machine may be shared: a timed call during which other processes used more than "
        f"{doc['load_threshold']:.0%} of the CPU was timed again (at most "
        f"{doc['load_retries']} times); waited for quiet {doc['waited_for_quiet_s']:.0f} s; "
        "largest foreign load that remained in a kept call: "
        + ", ".join(f"{case} {largest_load(rows):.0%}" for case, rows in cases.items())
        + ". "
        f"Wall time of the whole script: {doc['wall_s']:.0f} s"
        + (" (`--quick`: tiny sizes, the figures mean little)." if doc["quick"] else "."),
        "",
    ]
    return "\n".join(lines)


def plot(doc: dict[str, Any], path: Path) -> None:
    """Seconds per generation against d, mesh and no mesh, one panel per case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {
        "restarts": "batched_restarts, 64 slots/device",
        "sep-mlp": f"sep-CMA-ES MLP (n = {doc['mlp_weights']:,}), λ = 16/device",
        "full-cma-n100": f"full CMA-ES n = {FULL_DIM}, λ = 16/device",
    }
    fig, axes = plt.subplots(1, len(doc["cases"]), figsize=(5 * len(doc["cases"]), 4))
    for ax, (case, rows) in zip(np.atleast_1d(axes), doc["cases"].items(), strict=True):
        done = [r for r in rows if "skipped" not in r]
        for name, style in (("no_mesh", "o-"), ("mesh", "s--")):
            ax.plot(
                [r["devices"] for r in done],
                [r[name]["s_per_generation"] for r in done],
                style,
                label=name.replace("_", " "),
            )
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(doc["devices"], [str(d) for d in doc["devices"]])
        ax.set(xlabel="devices d (work grows with d)", ylabel="seconds per generation")
        ax.set_title(titles[case], fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    bu.finish_figure(fig, doc["machine"], path)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None):
    """Command-line options."""
    parser = bu.script_parser(
        __doc__.split("\n")[0], "d = 1 and 8, a few generations, 2 repeats: a smoke check"
    )
    parser.add_argument("--devices", default="1,2,4,8", help="mesh sizes d (default %(default)s)")
    parser.add_argument(
        "--generations", type=int, default=100, help="batched_restarts generations (100)"
    )
    parser.add_argument(
        "--split-generations", type=int, default=100, help="generations per split-population call"
    )
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per program (7)")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated subset")
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.generations, args.split_generations, args.repeats = "1,8", 10, 5, 2
    args.devices = [int(d) for d in args.devices.split(",")]
    args.cases = [c for c in CASES if c in args.cases.split(",")]
    return args


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    bu.prepare(args.quick)
    if not args.quick:
        # A shared machine: wait a little for quiet, but keep the script within minutes.
        bu.set_load_control(retries=2, max_wait_s=10.0, budget_s=60.0)
    import jax

    started = time.perf_counter()
    generations = {
        "restarts": args.generations,
        "sep-mlp": args.split_generations,
        "full-cma-n100": args.split_generations,
    }
    cases: dict[str, list[dict[str, Any]]] = {}
    for case in args.cases:
        cases[case] = []
        for devices in args.devices:
            bu.log(f"{case}, d = {devices}")
            row = measure(case, devices, generations[case], args.repeats)
            cases[case].append(row)
            if "skipped" in row:
                bu.log(f"  skipped: {row['skipped']}")
            else:
                bu.log(
                    f"  s/gen no mesh {row['no_mesh']['s_per_generation']:.3g}, mesh "
                    f"{row['mesh']['s_per_generation']:.3g} (×{row['ratio']:.3g}); compile "
                    f"{row['no_mesh']['compile_s']:.3g} / {row['mesh']['compile_s']:.3g} s; "
                    f"{row['mesh']['bytes_per_generation']} B/gen"
                )
    doc = {
        "quick": args.quick,
        "devices": args.devices,
        "device_count": jax.device_count(),
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "repeats": args.repeats,
        "restarts_generations": args.generations,
        "split_generations": args.split_generations,
        "mlp_layers": list(MLP_LAYERS),
        "mlp_weights": sum(a * b + b for a, b in zip(MLP_LAYERS[:-1], MLP_LAYERS[1:], strict=True)),
        "cases": cases,
        "waited_for_quiet_s": bu.LoadControl.waited_s,
        "load_threshold": bu.LoadControl.threshold,
        "load_retries": bu.LoadControl.retries,
        "wall_s": time.perf_counter() - started,
        "machine": bu.machine_info(),
    }
    bu.write_outputs(doc, args.out, "scaling", markdown_report, plot)
    print(markdown_report(doc))


if __name__ == "__main__":
    main()
