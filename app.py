"""Start the DCGAN explorer: `python app.py` serves the generators in checkpoints/ (plus any --checkpoints DIR).

Examples:
  python app.py                                   # http://127.0.0.1:7860, models from ./checkpoints
  python app.py --port 8000 --checkpoints runs    # also every run directory under runs/
  python app.py --checkpoints runs/mnist-32 --data-root ../shared/data   # with nearest-training-image checks
  python app.py --checkpoints hf://user/dcgan-mnist   # a generator from the Hugging Face Hub (pip install ".[hub]")
  GRADIO_SERVER_PORT=8000 python app.py           # the port from the environment (as on Hugging Face Spaces)
  DCGAN_TRAIN=off python app.py                   # no Train tab (how a Space's settings switch training off)

On a Hugging Face Space (SPACE_ID set) the app listens on 0.0.0.0 and runs in public mode; the README's Hugging Face Space section.
"""
from __future__ import annotations

import argparse
import atexit
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # where models come from
    p.add_argument("--checkpoints", metavar="DIR", action="append", default=[],
                   help="extra folder of generators (a run dir, or a folder of run dirs / .safetensors files), or a Hugging Face "
                        "Hub model hf://user/repo[@revision] (fetched into the Hub cache; HF_HUB_OFFLINE=1 reads only the cache); "
                        "repeatable "
                        f"[always scanned: {ROOT / 'checkpoints'}]")
    p.add_argument("--data-root", metavar="DIR", action="append", default=[],
                   help="where training data sets live, for the nearest-training-image check; repeatable "
                        "[also searched: the root in each run's config.json (first), and the Train tab's data root, --train-data (last)]")
    # training from the app (the Train tab)
    p.add_argument("--runs-dir", metavar="DIR", default=str(ROOT / "runs"),
                   help="where runs started from the app are written (and scanned for the model picker) [default: ./runs]")
    p.add_argument("--train-data", metavar="DIR", default=None,
                   help="data root for the Train tab's data sets [default: $DCGAN_DATA_ROOT, else ../shared/data if present, "
                        "else ~/.cache/dcgan-explorer/data]")
    p.add_argument("--no-train", action="store_true", help="hide the Train tab and its API [default: on unless $DCGAN_TRAIN=off]")
    p.add_argument("--public", action="store_true",
                   help="public mode (implied on Hugging Face Spaces): no folder paths from users, training capped by --train-max-minutes")
    p.add_argument("--train-max-minutes", type=float, default=None, metavar="MIN",
                   help="cap on a training run's budget [default: $DCGAN_TRAIN_MAX_MINUTES, else 120; 10 in public mode]")
    p.add_argument("--train-concurrent", type=int, default=1, metavar="N", help="training runs at once [default: 1]")
    # server
    p.add_argument("--host", default=None, help="interface to listen on [default: 127.0.0.1; 0.0.0.0 when SPACE_ID is set]")
    p.add_argument("--port", type=int, metavar="N", default=None, help="port [default: $GRADIO_SERVER_PORT or 7860]")
    p.add_argument("--device", default="cpu", help="torch device for the generators: cpu, cuda, cuda:N, mps [default: cpu]")
    p.add_argument("--threads", type=int, metavar="N", default=None,
                   help="torch CPU threads per request [default: CPU cores / --concurrency, at least 1; more threads than "
                        "free cores makes every call wait on the slowest one]")
    # load
    p.add_argument("--concurrency", type=int, metavar="N", default=2,
                   help="image requests computed at once; the rest wait in the queue [default: 2]")
    p.add_argument("--queue-size", type=int, metavar="N", default=256,
                   help="requests that may wait before new ones are refused [default: 256]")
    p.add_argument("--cache-models", type=int, metavar="N", default=4, help="generators kept loaded (LRU) [default: 4]")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    return p


def server_address(args: argparse.Namespace, environ: dict[str, str]) -> tuple[str, int]:
    """(host, port): --host, else 0.0.0.0 on Hugging Face Spaces (SPACE_ID set), else 127.0.0.1; --port, else
    $GRADIO_SERVER_PORT, else 7860."""
    host = args.host or ("0.0.0.0" if environ.get("SPACE_ID") else "127.0.0.1")
    return host, args.port or int(environ.get("GRADIO_SERVER_PORT", "7860"))


def apply_environment(args: argparse.Namespace, environ: dict[str, str]) -> argparse.Namespace:
    """Settings a Hugging Face Space passes as variables (it runs `python app.py` without arguments):
    DCGAN_TRAIN=off hides the Train tab, DCGAN_TRAIN_MAX_MINUTES caps each run. Command-line flags win."""
    if environ.get("DCGAN_TRAIN", "").strip().lower() in ("0", "off", "false", "no"):
        args.no_train = True
    if args.train_max_minutes is None and environ.get("DCGAN_TRAIN_MAX_MINUTES"):
        try:
            args.train_max_minutes = float(environ["DCGAN_TRAIN_MAX_MINUTES"])
        except ValueError:
            raise SystemExit(f"error: DCGAN_TRAIN_MAX_MINUTES={environ['DCGAN_TRAIN_MAX_MINUTES']!r} is not a number") from None
    if args.train_max_minutes is not None and not 0 < args.train_max_minutes <= 24 * 60:
        raise SystemExit(f"error: --train-max-minutes {args.train_max_minutes:g} must be between 0 and 1440")
    return args


def public_mode(args: argparse.Namespace, environ: dict[str, str]) -> bool:
    return bool(args.public or environ.get("SPACE_ID"))


def shared_data_root(args: argparse.Namespace, environ: dict[str, str]) -> Path:
    """Where the data sets live, laid out like ../shared/data: --train-data, else $DCGAN_DATA_ROOT, else
    ../shared/data if present, else ~/.cache/dcgan-explorer/data. The Train tab trains from it and the nearest-image
    check looks in it (after any --data-root)."""
    shared = ROOT.parent / "shared" / "data"
    data = args.train_data or environ.get("DCGAN_DATA_ROOT") or (str(shared) if shared.is_dir() else None)
    if data is None:
        from dcgan.datasets import default_data_root

        return default_data_root()
    return Path(data)


def training_manager(args: argparse.Namespace, environ: dict[str, str]):
    """The Train tab's back end; public mode refuses folder paths and caps each run's minutes."""
    from explorer.training import TrainingLimits, TrainingManager

    public = public_mode(args, environ)
    data = shared_data_root(args, environ)
    limits = TrainingLimits(max_concurrent=args.train_concurrent, allow_folders=not public, public=public,
                            max_minutes=args.train_max_minutes or (10.0 if public else 120.0))
    manager = TrainingManager(Path(args.runs_dir), Path(data), limits)
    atexit.register(manager.close)  # runs started here stop (and checkpoint) with the app
    return manager


def main(argv: list[str] | None = None) -> int:
    args = apply_environment(build_parser().parse_args(argv), dict(os.environ))
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    for name in ("httpx", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    host, port = server_address(args, dict(os.environ))
    if min(args.concurrency, args.queue_size, args.cache_models, 1 if args.threads is None else args.threads) < 1:
        print("error: --concurrency, --queue-size, --cache-models and --threads must be at least 1", file=sys.stderr)
        return 2

    import torch

    try:
        torch.device(args.device)
    except RuntimeError as exc:
        print(f"error: --device {args.device!r}: {exc}", file=sys.stderr)
        return 2
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(args.threads or max(1, cores // args.concurrency))
    from dcgan.errors import DCGANError
    from dcgan.hub import local_checkpoint
    from explorer.derived import Catalog
    from explorer.outputs import OutputDir
    from explorer.registry import CheckpointRegistry
    from explorer.ui.app import build_app, launch_options, security_options
    from explorer.ui.fairness import VisitorBudget
    from explorer.uploads import UploadStore

    try:
        extra = [local_checkpoint(value) for value in args.checkpoints]  # hf:// models become their cache snapshot folders
    except DCGANError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    runs = [] if args.no_train else [args.runs_dir]
    registry = CheckpointRegistry([ROOT / "checkpoints", *extra, *runs], capacity=args.cache_models, device=args.device)
    logging.getLogger("explorer").info("models: %s", ", ".join(registry.names()) or "none")
    catalog = Catalog(registry, data_roots=[*args.data_root, shared_data_root(args, dict(os.environ))])
    out = OutputDir()
    uploads = UploadStore(registry)  # a private temp folder, never served
    for folder in (out.root, uploads.root):
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a Space stops the app with SIGTERM: exit through atexit
    training = None if args.no_train else training_manager(args, dict(os.environ))
    behind_proxy = bool(os.environ.get("SPACE_ID"))  # a Space's proxy writes X-Forwarded-For; elsewhere a client could
    budget = VisitorBudget(trust_forwarded=behind_proxy) if public_mode(args, dict(os.environ)) else None  # fair shares
    demo = build_app(catalog, out=out, concurrency_limit=args.concurrency, training=training, uploads=uploads, budget=budget)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.queue_size)
    # uploads up to the largest generator accepted; served files: only what the app wrote (README: Security)
    blocked = [uploads.root, ROOT / "checkpoints", ROOT / "dcgan", ROOT / "explorer", ROOT / "tests", ROOT / "app.py"]
    security = security_options(out, blocked=blocked, budget=budget, trust_forwarded=behind_proxy)
    demo.launch(server_name=host, server_port=port, **security, **launch_options())
    return 0


if __name__ == "__main__":
    sys.exit(main())
