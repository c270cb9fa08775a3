"""Shared helpers for the benchmark scripts: dataset paths and result files."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(os.environ.get("PERSONAE_DATA", ROOT.parent / "shared" / "data"))
RUNS = ROOT / "runs"


def parser(doc: str | None = None, **defaults) -> argparse.ArgumentParser:
    """An argument parser with one ``--flag`` per keyword (``anneal_cap`` -> ``--anneal-cap``),
    typed by its default; a default of None takes an int. Scripts add their other flags."""
    ap = argparse.ArgumentParser(description=doc)
    for name, value in defaults.items():
        kind = int if value is None else type(value)
        ap.add_argument("--" + name.replace("_", "-"), type=kind, default=value)
    return ap


def cpu() -> str:
    """The CPU model and the instruction sets that matter here, for the record of every run."""
    import platform

    name = platform.processor() or "unknown CPU"
    try:
        info = Path("/proc/cpuinfo").read_text().splitlines()
        name = next(x.split(":", 1)[1].strip() for x in info if x.startswith("model name"))
        flags = next(x for x in info if x.startswith("flags")).split()
        isa = [f for f in ("avx2", "fma", "avx512f", "avx512_vnni", "amx_int8") if f in flags]
        name += " (" + ", ".join(isa or ["no AVX2"]) + ")"
    except (OSError, StopIteration):
        pass
    return name


def need(path: Path) -> Path:
    if not path.exists():
        sys.exit(f"missing dataset {path}: set PERSONAE_DATA to the shared data folder")
    return path


def gowalla():
    """(train, test) Interactions of the LightGCN Gowalla split, on one item vocabulary."""
    from personae import Interactions

    d = need(DATA / "gowalla")
    train = Interactions.from_lightgcn(d / "train.txt")
    test = Interactions.from_lightgcn(
        d / "test.txt", user_ids=train.user_ids, item_ids=train.item_ids, drop_unknown=True
    )
    return train, test


def fit_and_report(script: str, args, est, fit_kwargs: dict, recommend, test) -> Path:
    """Shared tail of the Gowalla scripts: fits `est` (saving to ``args.out``), scores the test
    users with ``recommend(model) -> ids`` (top-20), and writes runs/``args.name``.json with a
    command that reruns it, the metrics, timings and the per-epoch history."""
    import time

    from personae.metrics import evaluate

    t = time.perf_counter()
    est.fit(**fit_kwargs, checkpoint_dir=args.out, show_progress=not args.quiet)
    train_s = time.perf_counter() - t
    est.save(args.out)
    t = time.perf_counter()
    ids = recommend(est)
    rec_s = time.perf_counter() - t
    m = evaluate(ids, test.matrix, 20)
    flags = " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {v}")
        for k, v in vars(args).items()
        if k not in {"out", "quiet", "name"} and v is not None and v is not False
    )
    training = est.manifest["training"]
    return write_result(
        args.name,
        {
            "command": f"python benches/{script} {flags}",
            "recall@20": m["recall@20"],
            "ndcg@20": m["ndcg@20"],
            "users": m["users"],
            "train_seconds": train_s,
            "recommend_seconds": rec_s,
            "device": training.get("device", "?"),
            "best_epoch": training["best_epoch"],
            "epochs_run": len(est.history),
            "params": est.params,
            "history": est.history,
        },
    )


def best_of(f, repeat: int) -> float:
    """The fastest of `repeat` calls of `f`, in seconds."""
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def write_result(name: str, result: dict, echo: bool = True) -> Path:
    """Writes runs/`name`.json (printing it when `echo`, else one line naming it)."""
    RUNS.mkdir(exist_ok=True)
    p = RUNS / f"{name}.json"
    p.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1) if echo else f"wrote {p} ({result.get('cpu', '')})")
    return p


def run_child(code: str, *args) -> dict:
    """Runs `code` in a fresh Python process with `args` (so its peak memory is its own) and
    returns the JSON object its last line of output prints."""
    import subprocess

    r = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def rss_gib() -> float:
    """This process's resident set now, GiB (``/proc/self/statm``)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**30


class PhasePeaks:
    """This process's RSS sampled every 10 ms in a daemon thread, each sample credited to the
    phase running then: :meth:`tag` wraps a module's function so that its call is a phase (and
    what follows it, ``after <name>``). ``peaks`` maps each phase to its largest RSS, GiB."""

    def __init__(self):
        import threading

        self.phase = ["before the fit"]
        self.peaks: dict[str, float] = {}
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            p = self.phase[-1]
            self.peaks[p] = max(self.peaks.get(p, 0.0), rss_gib())
            time.sleep(0.01)

    def tag(self, module, name: str) -> None:
        orig = getattr(module, name)

        def wrapped(*a, **k):
            self.phase.append(name)
            try:
                return orig(*a, **k)
            finally:
                self.phase.append(f"after {name}")

        setattr(module, name, wrapped)

    def done(self) -> float:
        """Ends the sampling's last phase; returns the largest RSS of every phase, GiB."""
        self.phase.append("done")
        time.sleep(0.05)
        return max(v for k, v in self.peaks.items() if k != "done")

    def report(self) -> None:
        for k, v in self.peaks.items():
            if k != "done":
                print(f"  {k:<28} {v:.3f} GiB")
