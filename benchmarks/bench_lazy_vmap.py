"""Does cmajax's lazy eigendecomposition stay lazy under ``vmap``?

Under ``jax.vmap`` a ``lax.cond`` with a batched predicate turns into a ``select`` that runs
both branches, so a naive lazy eigendecomposition would run every generation in a batch of
runs. This script measures 64 vmapped runs at n = 200 (default λ) on the sphere, as one jitted
scan, twice: with cmajax's default lazy decomposition (``decomposition_gap=None``) and with the
decomposition forced every generation (``decomposition_gap=0``). If laziness survives ``vmap``
the lazy batch is faster by about the same factor as a single lazy run is over a single forced
run. The script also traces both batched programs and reports whether the lazy one puts its
``eigh`` inside a ``cond`` of its own.

Usage::

    python benchmarks/bench_lazy_vmap.py [--quick] [--out benchmarks/results]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import _bench_utils as bu  # noqa: E402

SIGMA0 = 1.0
MODES = {"lazy (default)": None, "forced every generation": 0}


@dataclasses.dataclass(frozen=True)
class Config:
    """Sizes of one measurement."""

    n: int
    runs: int
    generations: int
    repeats: int


FULL = Config(n=200, runs=64, generations=60, repeats=3)
QUICK = Config(n=120, runs=8, generations=12, repeats=3)


def setup(n: int, runs: int | None, decomposition_gap: float | None):
    """``(step, key, state, gap)`` for cmajax on the sphere; ``runs`` batches the state.

    ``gap`` is the decomposition gap in generations that ``cmajax.cma_parameters`` resolves.
    """
    import jax
    import jax.numpy as jnp

    es = bu.cmajax_strategy(SIGMA0, decomposition_gap=decomposition_gap)

    def step(state, key):
        population = es.ask(key, state)
        return es.tell(state, population, bu.sphere_jnp(population))

    import cmajax

    key = jax.random.key(0)
    single_state = es.init(jnp.ones(n))
    gap = float(cmajax.cma_parameters(n, decomposition_gap=decomposition_gap).decomposition_gap)
    if runs is None:
        return step, key, single_state, gap
    states = jax.vmap(es.init)(jnp.ones((runs, n)))
    return step, jax.random.split(key, runs), states, gap


def sub_jaxprs(params: dict[str, Any]) -> list[Any]:
    """The jaxprs nested in an equation's parameters (scan bodies, cond branches, ...)."""
    found = []
    for value in params.values():
        items = value if isinstance(value, tuple | list) else (value,)
        for item in items:
            inner = getattr(item, "jaxpr", item)
            if hasattr(inner, "eqns"):
                found.append(inner)
    return found


def eigh_paths(jaxpr, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """For every ``eigh`` in ``jaxpr``, the primitives that enclose it (outermost first)."""
    paths = []
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "eigh":
            paths.append(path)
        for inner in sub_jaxprs(eqn.params):
            paths.extend(eigh_paths(inner, (*path, name)))
    return paths


def batched_eigh_structure(config: Config) -> dict[str, Any]:
    """Where ``eigh`` sits in the traced batched program, lazy and forced.

    A lazy decomposition that survives ``vmap`` puts ``eigh`` under one more ``cond`` than the
    forced one (other branches, e.g. skipping the update of stopped runs, enclose both alike).
    """
    import jax

    nesting = {}
    for label, gap_option in MODES.items():
        step, keys, states, _ = setup(config.n, config.runs, gap_option)
        jaxpr = jax.make_jaxpr(jax.vmap(bu.scan_run(step, 2)))(keys, states).jaxpr
        nesting[label] = [" > ".join(p) or "(top level)" for p in eigh_paths(jaxpr)]
    lazy, forced = (nesting[label] for label in MODES)
    conds = lambda paths: [p.split(" > ").count("cond") for p in paths]  # noqa: E731
    return {
        "enclosing_primitives": nesting,
        "lazy_has_extra_cond": bool(lazy and forced) and min(conds(lazy)) > max(conds(forced)),
    }


def measure(config: Config, batched: bool, gap_option: float | None) -> dict[str, Any]:
    """Median ms per generation of a (batched or single) run with one decomposition setting."""
    import jax

    runs = config.runs if batched else None
    step, key, state, gap = setup(config.n, runs, gap_option)
    run = bu.scan_run(step, config.generations)
    jitted = jax.jit(jax.vmap(run) if batched else run)
    timing, final, compile_s = bu.time_compiled_jax(jitted, key, state, config.repeats)
    ms = 1e3 * bu.median(timing.times) / config.generations
    return {
        "decomposition_gap_option": gap_option,
        "decomposition_gap_generations": gap,
        "times_s": timing.times,
        "foreign_load": timing.loads,
        "compile_s": compile_s,
        "ms_per_generation": ms,
        "ms_per_run_generation": ms / (config.runs if batched else 1),
        "stopped_any": bool(final.stopped.any()),
    }


def run_all(config: Config) -> dict[str, Any]:
    """Batched and single measurements for both modes, plus the structural check."""
    results: dict[str, Any] = {"config": dataclasses.asdict(config), "batched": {}, "single": {}}
    for label, gap_option in MODES.items():
        for kind in ("batched", "single"):
            size = f"{config.runs} runs" if kind == "batched" else "1 run"
            bu.log(f"{kind} n={config.n} ({size}), {label}: {config.generations} generations")
            entry = measure(config, kind == "batched", gap_option)
            bu.log(f"  -> {entry['ms_per_generation']:.4g} ms/generation")
            results[kind][label] = entry
    lazy, forced = MODES
    for kind in ("batched", "single"):
        results[f"{kind}_forced_over_lazy"] = (
            results[kind][forced]["ms_per_generation"] / results[kind][lazy]["ms_per_generation"]
        )
    bu.log("tracing the batched program for the structural check")
    results["structure"] = batched_eigh_structure(config)
    return results


def markdown_report(doc: dict[str, Any]) -> str:
    """The whole ``lazy_vmap.md`` text."""
    cfg = doc["config"]
    info = doc["machine"]
    lines = [
        "# cmajax benchmark: lazy eigendecomposition under vmap",
        "",
        *bu.machine_markdown(info),
        "",
        f"**This is a {info['jax_backend'].upper()} run.** Absolute times are only indicative; "
        "the ratios are the result.",
        "",
        f"Setup: sphere, n = {cfg['n']}, λ = {bu.default_popsize(cfg['n'])} (default), "
        f"x0 = ones, sigma0 = {SIGMA0}, {cfg['generations']} generations per timed run as one "
        f"jitted `lax.scan`, median of {cfg['repeats']} repeats, compilation and one warm-up run "
        "excluded. Batched = `jax.vmap` over "
        f"{cfg['runs']} independent runs. Lazy = `cmajax.cma_es(..., decomposition_gap=None)` "
        "(default); forced = `decomposition_gap=0` (eigendecomposition every generation). "
        "Termination criteria are disabled so no run stops.",
        "",
        "| runs | mode | decomposition gap (generations) | ms / generation "
        "| ms / run-generation | max foreign load | stopped |",
        "|---:|---|---:|---:|---:|---:|---|",
    ]
    for kind, runs in (("batched", cfg["runs"]), ("single", 1)):
        for label, e in doc[kind].items():
            lines.append(
                f"| {runs} | {label} | {bu.fmt(e['decomposition_gap_generations'])} | "
                f"{bu.fmt(e['ms_per_generation'])} | {bu.fmt(e['ms_per_run_generation'])} | "
                f"{max(e['foreign_load']):.0%} | {e['stopped_any']} |"
            )
    structure = doc["structure"]
    lazy_label, forced_label = MODES
    lines += [
        "",
        f"- Forced / lazy time, batched ({cfg['runs']} runs): "
        f"**{bu.fmt(doc['batched_forced_over_lazy'], 3)}x**",
        f"- Forced / lazy time, single run: **{bu.fmt(doc['single_forced_over_lazy'], 3)}x**",
        "- Traced batched program, primitives enclosing `eigh`: lazy: "
        f"{'; '.join(structure['enclosing_primitives'][lazy_label]) or 'none'}; forced: "
        f"{'; '.join(structure['enclosing_primitives'][forced_label]) or 'none'}. "
        f"The lazy `eigh` sits in a branch of its own: **{structure['lazy_has_extra_cond']}**",
        "",
        "Reading: if the batched ratio is well above 1 and close to the single-run ratio, and "
        "the lazy `eigh` sits in a `cond` of its own, the lazy decomposition stays lazy under "
        "`vmap` (a `select` would run it every generation and make the batched ratio about 1).",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = bu.script_parser(__doc__.split("\n\n")[0])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point."""
    args = parse_args(argv)
    bu.prepare(args.quick)
    doc = run_all(QUICK if args.quick else FULL)
    doc["machine"] = bu.machine_info()
    doc["waited_for_quiet_s"] = bu.LoadControl.waited_s
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lazy_vmap.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    report = markdown_report(doc)
    (args.out / "lazy_vmap.md").write_text(report, encoding="utf-8")
    bu.log(f"wrote {args.out / 'lazy_vmap.md'} and lazy_vmap.json")
    print(report)


if __name__ == "__main__":
    main()
