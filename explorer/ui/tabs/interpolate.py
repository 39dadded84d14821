"""Interpolation: lerp/slerp walks through keyframe seeds as a looping GIF, an MP4 and a PNG strip, with a smoothness
meter (per-frame change; sharp jumps flagged), and the paper's walk through 9 random points (section 6.1)."""
import gradio as gr
import pandas as pd

from ... import service
from ..context import Context


def interpolate_tab(ctx: Context) -> None:
    catalog, out = ctx.catalog, ctx.out
    with gr.Tab("Interpolation", id="interpolation"):
        with gr.Row():
            keyframes = gr.Textbox("0,1,2,3", label="Keyframe seeds", scale=3,
                                   info=f"two or more seeds, at most {service.MAX_KEYFRAMES}")
            walk_seed = gr.Number(0, precision=0, minimum=0, label="Walk seed", scale=1)
            walk = gr.Button(f"Paper: walk through {service.WALK_POINTS} random points", scale=1)
        with gr.Row():
            method = gr.Radio(list(service.METHODS), value="slerp", label="Interpolation")
            loop = gr.Radio([("loop back to the first", "loop"), ("ping-pong", "pingpong"), ("once (open path)", "once")],
                            value="loop", label="Path")
            frames = gr.Slider(1, service.MAX_FRAMES_PER_SEGMENT, 16, step=1, label="Frames per segment")
            fps = gr.Slider(service.FPS_RANGE[0], service.FPS_RANGE[1], 12, step=1, label="Frames per second")
        gr.Markdown(f"At most {service.MAX_TOTAL_FRAMES} frames in all. The GIF loops forever at native size; the MP4 is "
                    f"enlarged (nearest neighbour) to at least {service.MP4_MIN_SIDE} px because video codecs smear tiny frames.")
        make = gr.Button("Make animation", variant="primary")
        with gr.Row():
            gif = gr.Image(label="GIF", type="filepath", height=256, interactive=False, elem_classes=["pixelated", "big"], elem_id="gif")
            mp4 = gr.Video(label="MP4", height=256, interactive=False, autoplay=True, loop=True, elem_classes=["pixelated"])
        strip = gr.Image(label="Path strip (one row per keyframe pair)", format="png", interactive=False, elem_classes=["pixelated"])
        files = gr.File(label="Downloads (GIF, MP4, PNG strip)", file_count="multiple")
        with gr.Row():
            plot = gr.LinePlot(x="frame", y="change", title="Smoothness: mean change per frame (grey levels)",
                               x_title="frame", y_title="mean |Δ| (0-255)", height=220, scale=3)
            verdict = gr.Markdown()
        ctx.shared.update(keyframes=keyframes, frames=frames, method=method, loop=loop, fps=fps)

        def run(model, seeds, n, how, rate, mode, psi):
            result = service.interpolate(catalog, model, seeds, int(n), how, rate, mode, psi, out=out)
            table = pd.DataFrame({"frame": range(len(result.changes)), "change": result.changes})
            median = result.median_change
            if result.jumps:
                listed = ", ".join(f"{t}→{(t + 1) % len(result.frames)} ({result.changes[t]:.1f})" for t in result.jumps[:12])
                text = (f"**{len(result.jumps)} sharp jump(s)** (over {service.JUMP_FACTOR:g}× the median change of {median:.2f}): "
                        f"{listed}. The paper reads smooth walks as a sign the model did not memorise (section 6.1); "
                        "a jump means the path crosses an abrupt boundary (e.g. one digit turning into another).")
            else:
                text = f"**Smooth:** no frame changes more than {service.JUMP_FACTOR:g}× the median ({median:.2f} grey levels)."
            text += f"\n\n{len(result.frames)} frames."
            paths = [str(result.gif_path), str(result.mp4_path), str(result.strip_path)]
            return str(result.gif_path), str(result.mp4_path), str(result.strip_path), paths, table, text

        def refresh(model, seeds, n, how, rate, mode, psi, shown_gif):
            """A new model: the animation shown is made again for it (nothing shown: nothing to do)."""
            return run(model, seeds, n, how, rate, mode, psi) if shown_gif else (gr.skip(),) * 6

        inputs = [ctx.model, keyframes, frames, method, fps, loop, ctx.truncation]
        outputs = [gif, mp4, strip, files, plot, verdict]
        ctx.on_light(walk.click, lambda s: ",".join(map(str, service.walk_keyframes(s))), walk_seed, keyframes)
        ctx.on([make.click, keyframes.submit], run, inputs, outputs)
        ctx.on(ctx.model.change, refresh, [*inputs, gif], outputs, show_progress="hidden")
