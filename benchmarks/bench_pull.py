"""Time and memory of pulling registry entries from a mirror, next to a plain copy of the same bytes.

Every registry entry gets a full-size stand-in checkpoint (``tests.fixtures.build(..., full_size=True)``),
served by a loopback HTTP server used as ``SSL_ZOO_MIRROR``. Each round, side by side:

    plain copy        urllib GET of every file into a temp dir, read/written sequentially in 1 MiB chunks
    pull, jobs=1      ssl_zoo.pull_many(names, jobs=1) (download + verify + convert + write each model folder)
    pull, jobs=4      the same with the CLI default of 4 parallel entries

Each variant runs in a fresh child process (the server stays in this one) with a fresh SSL_ZOO_HOME, so its
time and memory are measured alone: the child reports its wall time, and its peak RSS (``VmHWM`` from
/proc/self/status, the mark reset right after imports) minus its RSS after importing torch, timm and ssl_zoo.
Target: that growth <= 2x the largest checkpoint file pulled. The wall-time ratio is for information.

Usage (from the repository root)::

    python benchmarks/bench_pull.py [--repeat N] [--quick] [--per-entry]   # --quick: 3 entries only
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

TARGET_RSS_VS_LARGEST = 2.0
JOBS = (1, 4)  # 4 is the CLI default
QUICK_NAMES = ("moco-v2", "supervised-r18", "supervised-d121")  # one entry per architecture
CHILD_FLAG = "--child"


# --- the child process: one measured task (pull or copy) ---------------------------------------------------


def unpin_registry() -> None:
    """Drop the sha256 pins (the ``supervised-*`` entries): stand-in files cannot match the real digests."""
    import dataclasses

    from ssl_zoo.registry import all_entries

    entries = all_entries()
    for name, entry in list(entries.items()):
        if any(source.pinned for source in entry.sources):
            sources = tuple(dataclasses.replace(s, sha256=None, sha256_prefix=None) for s in entry.sources)
            entries[name] = dataclasses.replace(entry, sources=sources)


def import_heavy_modules() -> None:
    """Import what a pull uses, so that the RSS baseline taken next already includes every module."""
    import safetensors.torch  # noqa: F401
    import timm  # noqa: F401
    import torch  # noqa: F401

    import ssl_zoo.converters.convert  # noqa: F401
    import ssl_zoo.store.download  # noqa: F401
    import ssl_zoo.pulling  # noqa: F401


def pull_entries(jobs: int, names: list[str]) -> dict:
    """Pull ``names`` from ``SSL_ZOO_MIRROR`` into ``SSL_ZOO_HOME`` with ``jobs`` workers; return the failures."""
    from ssl_zoo.pulling import pull_many

    unpin_registry()
    return {"failures": {r.name: r.error for r in pull_many(names, jobs=jobs, progress=False) if not r.ok}}


def copy_entries(dest: Path, names: list[str]) -> dict:
    """GET each entry's file from ``SSL_ZOO_MIRROR`` into ``dest`` in 1 MiB chunks, sequentially."""
    from ssl_zoo.registry import get_entry

    base = os.environ["SSL_ZOO_MIRROR"]
    for name in names:
        filename = get_entry(name).checkpoint.filename
        (dest / name).mkdir(parents=True, exist_ok=True)
        with urllib.request.urlopen(f"{base}/{name}/{filename}") as response, open(dest / name / filename, "wb") as out:
            while chunk := response.read(MiB):
                out.write(chunk)
    return {"failures": {}}


def reset_peak_rss() -> None:
    """Reset this process's peak-RSS mark to its current RSS (Linux >= 4.0); elsewhere a no-op."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss() -> int:
    """This process's peak RSS in bytes: ``VmHWM`` on Linux, else ``ru_maxrss``.

    Not ``ru_maxrss`` on Linux: it survives fork + exec, so a child reports at least its parent's RSS.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        import resource

        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def child_main(mode: str, arg: str, names: list[str]) -> None:
    """Run one measured task and print one JSON line: wall time, RSS after imports, peak RSS, failures.

    ``mode`` "pull" takes the number of jobs as ``arg``, "copy" the destination folder.
    """
    import psutil

    import_heavy_modules()
    baseline = psutil.Process().memory_info().rss
    reset_peak_rss()
    start = time.perf_counter()
    outcome = pull_entries(int(arg), names) if mode == "pull" else copy_entries(Path(arg), names)
    wall = time.perf_counter() - start
    peak = peak_rss()
    print(json.dumps({"wall_s": wall, "rss_after_imports": baseline, "peak_rss": peak, **outcome}))


# --- the parent: fixtures, server, plain copy, children ----------------------------------------------------


def build_fixtures(root: Path, names: list[str]) -> dict[str, Path]:
    """Write the full-size default fixture of every name under ``root`` (the mirror layout)."""
    from tests.fixtures import build

    return {name: build(name, root, full_size=True).path for name in names}


def run_child(base_url: str, names: list[str], mode: str, arg: str, scratch: Path) -> dict:
    """Run ``child_main`` in a fresh process with an empty SSL_ZOO_HOME; return its report. ``scratch`` is emptied."""
    env = {**os.environ, "SSL_ZOO_HOME": str(scratch / "home"), "SSL_ZOO_MIRROR": base_url, "SSL_ZOO_QUIET": "1"}
    os.sync()  # start from no dirty pages: the previous variant's writeback is not charged to this one
    command = [sys.executable, str(Path(__file__).resolve()), CHILD_FLAG, mode, arg, *names]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    _empty(scratch)
    if done.returncode != 0:
        raise SystemExit(f"{mode} child failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["failures"]:
        raise SystemExit(f"{mode} failed for {report['failures']}")
    return report


def _empty(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)


def measure(base_url: str, files: dict[str, Path], workdir: Path, repeat: int) -> dict[str, list[dict]]:
    """Run the plain copy and each pull ``repeat`` times, round robin; return the raw measurements."""
    runs: dict[str, list[dict]] = {"plain copy": [], **{f"pull, jobs={j}": [] for j in JOBS}}
    names, scratch = list(files), workdir / "scratch"
    for _ in range(repeat):
        runs["plain copy"].append(run_child(base_url, names, "copy", str(scratch / "copy"), scratch))
        for jobs in JOBS:
            runs[f"pull, jobs={jobs}"].append(run_child(base_url, names, "pull", str(jobs), scratch))
    return runs


def peak_growth(reports: list[dict]) -> int:
    """The largest peak-RSS growth over the rounds of one variant, in bytes."""
    return max(r["peak_rss"] - r["rss_after_imports"] for r in reports)


def report(runs: dict[str, list[dict]], largest: int) -> None:
    """Print the table and the ratios against the plain copy and the largest checkpoint file."""
    copy_s = median([r["wall_s"] for r in runs["plain copy"]])
    rows = []
    for label, reports in runs.items():
        wall = median([r["wall_s"] for r in reports])
        growth = peak_growth(reports)
        rows.append((label, wall, wall / copy_s, growth / MiB, f"{growth / largest:.2f}"))
    print_table(("variant", "median s", "vs copy", "peak RSS growth MiB", "vs largest file"), rows)
    print()
    for label in (f"pull, jobs={j}" for j in JOBS):
        ratio_line(f"{label}: wall / plain copy", median([r["wall_s"] for r in runs[label]]) / copy_s)
        ratio_line(f"{label}: peak RSS growth / largest file", peak_growth(runs[label]) / largest, TARGET_RSS_VS_LARGEST)


def per_entry(base_url: str, files: dict[str, Path], workdir: Path) -> None:
    """Pull each entry alone (jobs=1) and print its peak RSS growth against its own file (for information)."""
    rows = []
    for name, path in files.items():
        result = run_child(base_url, [name], "pull", "1", workdir / "scratch")
        growth, size = result["peak_rss"] - result["rss_after_imports"], path.stat().st_size
        rows.append((name, size / MiB, result["wall_s"], growth / MiB, f"{growth / size:.2f}"))
    print("\neach entry pulled alone (jobs=1):")
    print_table(("entry", "file MiB", "wall s", "peak RSS growth MiB", "vs own file"), rows)


def main(argv: list[str] | None = None) -> int:
    parser = make_parser(__doc__.splitlines()[0], default_repeat=1)
    parser.add_argument("--per-entry", action="store_true", help="also pull each entry alone and show its memory")
    args = parser.parse_args(argv)
    from ssl_zoo.registry import list_models

    names = list(QUICK_NAMES) if args.quick else list_models()
    with scratch_dir("ssl_zoo_bench_pull_") as workdir, private_home(workdir / "parent-home"):
        files = build_fixtures(workdir / "mirror", names)
        print(f"bench_pull: {machine_line()}")
        print(f"{len(files)} entries, {sum(sizes(files)) / MiB:,.0f} MiB in all, largest file "
              f"{max(sizes(files)) / MiB:,.0f} MiB; {max(1, args.repeat)} round(s)\n")
        benchmark(files, workdir, max(1, args.repeat), args.per_entry)
    return 0


def sizes(files: dict[str, Path]) -> list[int]:
    """The byte size of every file."""
    return [path.stat().st_size for path in files.values()]


def benchmark(files: dict[str, Path], workdir: Path, repeat: int, each: bool) -> None:
    """Serve ``files`` from a loopback server, run and report the variants (and each entry alone with ``each``)."""
    from tests.loopback import LoopbackServer

    server = LoopbackServer(workdir / "mirror")
    try:
        report(measure(server.url, files, workdir, repeat), max(sizes(files)))
        if each:
            per_entry(server.url, files, workdir)
    finally:
        server.close()


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[1] == CHILD_FLAG:
        child_main(sys.argv[2], sys.argv[3], sys.argv[4:])
        sys.exit(0)
    sys.exit(main())
