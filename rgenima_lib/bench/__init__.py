"""Benchmarks (``make bench``): speed and memory targets are measured here, never in unit tests.

Each module ``rgenima_lib/bench/bench_<name>.py`` defines
``run(out_dir: Path, full: bool) -> dict`` returning JSON-ready results; the
runner writes them to ``results/bench/<name>.json`` with the machine it ran on.
``full`` selects the paper-scale sizes, which may take long on a laptop.
"""
