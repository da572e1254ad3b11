"""Run the benchmarks: ``python -m rgenima_lib.bench --out results/bench [--only NAME ...] [--full]``."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import pkgutil
import time
from pathlib import Path

import rgenima_lib.bench as bench_pkg
from rgenima_lib.io import write_json


def machine() -> dict:
    """Where a benchmark ran: results are only comparable on the same machine."""
    return {"host": platform.node(), "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d %H:%M:%S")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rgenima_lib.bench", description=__doc__)
    parser.add_argument("--out", default="results/bench", type=Path)
    parser.add_argument("--only", nargs="*", help="benchmark names (default: all)")
    parser.add_argument("--full", action="store_true", help="paper-scale sizes (slow)")
    args = parser.parse_args(argv)
    names = sorted(m.name.removeprefix("bench_") for m in pkgutil.iter_modules(bench_pkg.__path__)
                   if m.name.startswith("bench_"))
    for name in args.only or names:
        module = importlib.import_module(f"rgenima_lib.bench.bench_{name}")
        print(f"== bench {name}", flush=True)
        start = time.perf_counter()
        result = module.run(args.out, args.full)
        record = {"benchmark": name, "full": args.full, "machine": machine(),
                  "wall_s": round(time.perf_counter() - start, 2), "results": result}
        write_json(record, args.out / f"{name}.json")
        print(json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
