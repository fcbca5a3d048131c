"""Time and memory of converting the foreign-framework entries (SimCLR v1/v2 from TF1, BYOL from Haiku/dill).

Each entry's full-size fixture (real-size ResNet-50 checkpoint in the upstream format: the v1 zip, the five
v2 files, the 2020 dill pickle) is served by a loopback HTTP server used as ``SSL_ZOO_MIRROR``. Per entry, side
by side in one run, each in a fresh child process with a fresh SSL_ZOO_HOME:

    plain copy     urllib GET of every file of the entry, 1 MiB chunks
    pull           ssl_zoo.pull (download + sha256 + read TF bundle / restricted unpickle + rules + write
                   the model folder, including the exact=False parity measurement)

Reported: wall time, its ratio to the copy, and the child's peak RSS growth over its RSS after imports
(``VmHWM``), also as a ratio to the entry's bytes. Usage: ``python benchmarks/bench_foreign.py [--repeat N]``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import _common  # noqa: F401  (puts the repository root on sys.path)
from _common import MiB, machine_line, make_parser, median, print_table, private_home, ratio_line, scratch_dir
from bench_pull import import_heavy_modules, peak_rss, reset_peak_rss

NAMES = ("simclr-v1", "simclr-v2", "byol")
CHILD_FLAG = "--child"


def copy_entry(dest: Path, name: str) -> None:
    """GET every file of ``name`` from ``SSL_ZOO_MIRROR`` into ``dest``."""
    from ssl_zoo.registry import get_entry

    base = os.environ["SSL_ZOO_MIRROR"]
    dest.mkdir(parents=True, exist_ok=True)
    for source in get_entry(name).sources:
        with urllib.request.urlopen(f"{base}/{name}/{source.filename}") as response, \
                open(dest / source.filename, "wb") as out:
            while chunk := response.read(MiB):
                out.write(chunk)


def child_main(mode: str, name: str, dest: str) -> None:
    """One measured task in this fresh process; prints wall time and RSS as one JSON line."""
    import psutil

    import_heavy_modules()
    baseline = psutil.Process().memory_info().rss
    reset_peak_rss()
    start = time.perf_counter()
    if mode == "pull":
        from ssl_zoo.pulling import pull

        pull(name, progress=False)
    else:
        copy_entry(Path(dest), name)
    print(json.dumps({"wall_s": time.perf_counter() - start, "growth": peak_rss() - baseline}))


def run_child(base_url: str, mode: str, name: str, scratch: Path) -> dict:
    env = {**os.environ, "SSL_ZOO_HOME": str(scratch / "home"), "SSL_ZOO_MIRROR": base_url, "SSL_ZOO_QUIET": "1"}
    os.sync()
    command = [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, mode, name, str(scratch / "copy")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    shutil.rmtree(scratch, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"{mode} {name} failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def entry_bytes(root: Path, name: str) -> int:
    return sum(p.stat().st_size for p in (root / name).iterdir())


def main(argv: list[str] | None = None) -> int:
    args = make_parser(__doc__.splitlines()[0], default_repeat=1).parse_args(argv)
    from tests.fixtures import build
    from tests.loopback import LoopbackServer

    with scratch_dir("ssl_zoo_bench_foreign_") as workdir, private_home(workdir / "parent-home"):
        root = workdir / "mirror"
        for name in NAMES:
            build(name, root, full_size=True)
        print(f"bench_foreign: {machine_line()}; {max(1, args.repeat)} round(s)\n")
        server = LoopbackServer(root)
        rows, ratios = [], []
        try:
            for name in NAMES:
                runs = {m: [run_child(server.url, m, name, workdir / "scratch") for _ in range(max(1, args.repeat))]
                        for m in ("copy", "pull")}
                copy_s, pull_s = (median([r["wall_s"] for r in runs[m]]) for m in ("copy", "pull"))
                growth, size = max(r["growth"] for r in runs["pull"]), entry_bytes(root, name)
                rows.append((name, size / MiB, copy_s, pull_s, f"{pull_s / copy_s:.1f}", growth / MiB,
                             f"{growth / size:.2f}"))
                ratios.append((name, pull_s / copy_s, growth / size))
        finally:
            server.close()
        print_table(("entry", "files MiB", "copy s", "pull s", "pull/copy", "peak RSS growth MiB", "vs files"), rows)
        print()
        for name, wall, memory in ratios:
            ratio_line(f"{name}: pull wall / plain copy", wall)
            ratio_line(f"{name}: pull peak RSS growth / entry bytes", memory)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 4 and sys.argv[1] == CHILD_FLAG:
        child_main(*sys.argv[2:5])
        sys.exit(0)
    sys.exit(main())
