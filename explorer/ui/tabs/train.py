"""Train tab: start, watch, stop and resume a training run (a `dcgan train` subprocess), or attach to a CLI run.

A gr.Timer polls the run directory; the trainer and the app share files, never memory. Finished runs appear in the
model picker at once (the catalog rescans the runs folder).
"""
from typing import Any, Optional

import gradio as gr
import pandas as pd
from gradio.data_classes import FileData

from ... import service
from ...derived import Catalog
from ...training import TrainingManager, TrainSettings, timelapse_gif
from ..context import TRAINING_QUEUE, Context, guard

POLL_SECONDS = 2.0
STATES = {"starting": "⏳ starting", "running": "🟢 running", "finished": "✅ finished", "stopped": "⏹ stopped",
          "failed": "❌ failed", "dead": "⚠️ process gone", "unknown": "❔ unknown"}


def _eta(seconds: Optional[float]) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs:02d} s"


def status_markdown(status: dict[str, Any]) -> str:
    """The run's state in plain words (what the status panel shows)."""
    lines = [f"**{status['name']}** — {STATES.get(status['state'], status['state'])} · step {status['step']} · "
             f"epoch {status['epoch']:.2f} · {status['img_per_s'] or 0:.0f} img/s · ETA {_eta(status['eta_s'])} · "
             f"{status['images_seen']:,} images seen"]
    lines += [f"> ⚠️ {w}" for w in status["warnings"]]
    if status.get("error"):
        lines.append(f"> ❌ {status['error']}")
    metrics = status.get("last_metrics")
    if metrics:
        rows = "".join(f"| {k} | {v:.4g} | {metrics.get('floor', {}).get(k, float('nan')):.4g} |\n"
                       for k, v in metrics.get("metrics", {}).items() if isinstance(v, (int, float)))
        lines.append("\n| metric | value | real floor |\n|---|---|---|\n" + rows)
    if status.get("log_tail"):
        lines.append(f"```\n{status['log_tail']}\n```")
    return "\n\n".join(lines)


def loss_frames(status: dict[str, Any]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Long-format frames for the two plots: losses (lossD, lossG) and D outputs (D(x), D(G(z)))."""
    def frame(keys: dict[str, str]) -> pd.DataFrame:
        rows = [{"step": r["step"], "value": r[k], "series": label} for r in status["losses"] for k, label in keys.items() if k in r]
        return pd.DataFrame(rows, columns=["step", "value", "series"])
    return frame({"lossD": "loss D", "lossG": "loss G"}), frame({"D_x": "D(x)", "D_G_z": "D(G(z))"})


def session_of(request: gr.Request | None) -> str:
    """The Gradio session (a browser tab, or one gradio_client.Client) making a request: a run's owner."""
    return getattr(request, "session_hash", None) or ""


def train_tab(ctx: Context) -> None:
    manager: TrainingManager = ctx.training
    allow_folders = manager.limits.allow_folders
    datasets = manager.available_datasets()
    with gr.Tab("Train", id="train"):
        gr.Markdown("Train a DCGAN here and watch it learn: the fixed-noise grid (seeds 0-63) is redrawn every few steps. "
                    f"Training runs in its own process; this app runs {manager.limits.max_concurrent} at a time, "
                    f"each at most {manager.limits.max_minutes:g} minutes.")
        with gr.Row():
            with gr.Column(scale=1):
                dataset = gr.Dropdown(datasets, value=datasets[0] if datasets else None, label="Data set")
                folder = gr.Textbox(label="Image folder on this machine", visible=False, placeholder="/path/to/images")
                arch = gr.Radio(["dcgan", "keras"], value="dcgan", label="Architecture", info="keras: the 28x28 seed nets")
                image_size = gr.Dropdown([16, 28, 32, 64, 128], value=32, label="Image size", info="dcgan: 16-128; keras: 28",
                                         elem_id="train-size")
                width = gr.Slider(8, 128, 32, step=8, label="Width (ngf = ndf)", elem_id="train-width")
                batch = gr.Slider(8, manager.limits.max_batch_size, 64, step=8, label="Batch size", elem_id="train-batch")
                minutes = gr.Number(5, minimum=0.1, maximum=manager.limits.max_minutes, label="Budget (minutes)", elem_id="train-minutes")
                epochs = gr.Number(None, minimum=0, label="or epochs (optional)")
                sample_every = gr.Number(25, precision=0, minimum=1, label="Preview every N steps", elem_id="train-every")
                start = gr.Button("Start", variant="primary", elem_id="train-start")
                gr.Markdown("---")
                run = gr.Dropdown(manager.list_runs(), value=None, label="Run", allow_custom_value=False, elem_id="train-run")
                with gr.Row():
                    stop = gr.Button("Stop (saves a checkpoint)", variant="stop", elem_id="train-stop")
                    resume = gr.Button("Resume")
                with gr.Row(visible=allow_folders):
                    attach_path = gr.Textbox(label="Attach a run directory (read-only)", placeholder="runs/00003-mnist-32", scale=3)
                    attach = gr.Button("Attach", scale=1)
            with gr.Column(scale=2):
                status_md = gr.Markdown("Start a run, or pick one to watch.", elem_id="train-status")
                latest = gr.Image(label="Latest preview grid", format="png", interactive=False, elem_id="train-latest",
                                  elem_classes=["pixelated"])
                with gr.Row():
                    frame = gr.Slider(0, 1, 0, step=1, label="Time-lapse: preview number", scale=3)
                    gif_btn = gr.Button("Time-lapse GIF", scale=1)
                timelapse = gr.Image(label="Preview at that point", format="png", interactive=False, elem_classes=["pixelated"])
                gif_file = gr.File(label="Time-lapse GIF")
                with gr.Row():
                    losses = gr.LinePlot(x="step", y="value", color="series", label="Losses", height=220)
                    d_out = gr.LinePlot(x="step", y="value", color="series", label="D outputs", y_lim=[0, 1], height=220)
        timer = gr.Timer(POLL_SECONDS, active=False)
        samples = gr.State([])

        def start_run(ds, fold, ar, size, w, b, mins, eps, every, request: gr.Request):
            settings = TrainSettings(dataset=ds, folder=fold or "", arch=ar, image_size=size, width=w, batch_size=b, minutes=mins,
                                     epochs=eps, sample_every=every if every is not None else 25)
            return started(manager.start(settings, owner=session_of(request)))

        def stop_run(name, request: gr.Request):
            manager.stop(name, session_of(request))

        def resume_run(name, mins, request: gr.Request):
            return started(manager.resume(name, mins, session_of(request)))

        def started(name: str):
            return gr.update(choices=manager.list_runs(), value=name), gr.Timer(active=True)

        def poll(name):
            if not name:
                return [gr.skip()] * 7 + [gr.Timer(active=False)]
            status = manager.status(name)
            loss_df, d_df = loss_frames(status)
            done = status["state"] not in ("running", "starting")
            if done and status["has_generator"]:
                service.refresh(ctx.catalog)  # the finished run is explorable right away
            paths = [p for _, p in status["samples"]]
            return (status_markdown(status), status["latest_grid"], loss_df, d_df, paths,
                    gr.update(maximum=max(1, len(paths) - 1), value=max(0, len(paths) - 1)),
                    status["latest_grid"], gr.Timer(active=not done))

        def show_frame(paths, index):
            return paths[int(index)] if paths and 0 <= int(index) < len(paths) else None

        def make_gif(name):
            return str(timelapse_gif(manager.run_dir(name), ctx.out.path(f"{name}-timelapse", ".gif")))

        inputs = [dataset, folder, arch, image_size, width, batch, minutes, epochs, sample_every]
        poll_outputs = [status_md, latest, losses, d_out, samples, frame, timelapse, timer]
        dataset.change(lambda ds: gr.update(visible=ds == "folder"), dataset, folder, api_visibility="private", queue=False)
        start.click(guard(start_run), inputs, [run, timer], api_visibility="private")
        stop.click(guard(stop_run), run, None, api_visibility="private").then(guard(poll), run, poll_outputs, api_visibility="private")
        resume.click(guard(resume_run), [run, minutes], [run, timer], api_visibility="private")
        attach.click(guard(lambda path: started(manager.attach(path))), attach_path, [run, timer], api_visibility="private")
        gr.on([run.change, timer.tick], guard(poll), run, poll_outputs, api_visibility="private", show_progress="hidden",
              trigger_mode="always_last")
        frame.input(show_frame, [samples, frame], timelapse, api_visibility="private", show_progress="hidden",
                    trigger_mode="always_last", queue=False)
        gif_btn.click(guard(make_gif), run, gif_file, api_visibility="private")


def register_training_api(manager: TrainingManager, catalog: Catalog) -> None:
    """/train_start, /train_status, /train_stop, /train_resume for gradio_client (call inside gr.Blocks).
    A run that has stopped with a generator is added to the model list at once."""

    def train_start(dataset: str = "mnist", image_size: int = 32, arch: str = "dcgan", width: int = 32, batch_size: int = 64,
                    minutes: Optional[float] = 5.0, epochs: Optional[float] = None, max_steps: Optional[int] = None,
                    sample_every: int = 25, eval_every: int = 0, request: gr.Request = None) -> str:
        """Start a training run in a subprocess; returns its name. Data sets: those available offline on the server.
        On a public app, only this client (its session) may later stop or resume the run."""
        settings = TrainSettings(dataset=dataset, arch=arch, image_size=image_size, width=width, batch_size=batch_size,
                                 minutes=minutes, epochs=epochs, max_steps=max_steps, sample_every=sample_every, eval_every=eval_every)
        return manager.start(settings, owner=session_of(request))

    def train_status(run: str) -> tuple[dict, Optional[FileData]]:
        """({state, step, epoch, img_per_s, eta_s, images_seen, last_metrics, warnings, ...}, latest preview grid PNG)."""
        status = manager.status(run)
        if status["state"] not in ("running", "starting") and status["has_generator"]:
            service.refresh(catalog)
        grid = FileData(path=status["latest_grid"]) if status["latest_grid"] else None
        keep = ("name", "state", "step", "epoch", "img_per_s", "eta_s", "images_seen", "last_metrics", "warnings",
                "has_generator", "error", "log_tail")
        return {k: status[k] for k in keep}, grid

    def train_stop(run: str, request: gr.Request = None) -> dict:
        """Stop a run: it saves a checkpoint and exits; returns its final status."""
        status = manager.stop(run, session_of(request))
        service.refresh(catalog)
        return {k: status[k] for k in ("name", "state", "step")}

    def train_resume(run: str, minutes: Optional[float] = None, request: gr.Request = None) -> str:
        """Continue a stopped or finished run exactly from its last checkpoint, for up to `minutes` more."""
        return manager.resume(run, minutes, session_of(request))

    for fn in (train_start, train_status, train_stop, train_resume):
        gr.api(guard(fn), api_name=fn.__name__, concurrency_limit=4, concurrency_id=TRAINING_QUEUE)
