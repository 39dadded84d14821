"""Latent sliders: SeFa and PCA directions for every model, class/attribute directions where a classifier exists.

A fixed pool of slider slots is relabelled when the model changes; a list of direction names (gr.State) says which
direction each slot drives. Sliders update the image while they are dragged (last position wins).
"""
import gradio as gr

from dcgan.directions import LABELLED_KINDS

from ... import service
from ..context import Context

SLOTS = {"sefa": 10, "pca": 10, "labelled": 10}  # sliders per group; more directions than slots are not shown
SLIDER_RANGE = 5.0   # UI range of each slider (the API accepts up to ±dcgan.directions.MAX_AMOUNT)
FEATURED = ("Smiling", "Male", "Eyeglasses", "Blond_Hair", "Young", "Bald", "Wavy_Hair", "Heavy_Makeup", "Mustache", "Pale_Skin")


def _slider_updates(names: list[str], labels: dict[str, str], count: int, *, reset: bool = True,
                    amounts: dict[str, float] | None = None) -> list:
    """Relabel ``count`` slots for ``names``; with ``reset``, each goes to its amount in ``amounts`` (0 if none)."""
    def value(name: str) -> dict:
        return {"value": (amounts or {}).get(name, 0)} if reset else {}
    return [gr.update(label=labels[n], visible=True, **value(n)) for n in names[:count]] + \
           [gr.update(label="unused", visible=False, **value("")) for _ in range(count - len(names[:count]))]


def featured(labelled: list[str]) -> list[str]:
    """The labelled directions shown by default: the featured attributes a model has, else its first ones."""
    return [n for n in FEATURED if n in labelled] or labelled[:SLOTS["labelled"]]


def sliders_tab(ctx: Context) -> None:
    catalog = ctx.catalog
    sliders: dict[str, list[gr.Slider]] = {}
    with gr.Tab("Latent sliders", id="sliders"):
        with gr.Row():
            with gr.Column(scale=2):
                with gr.Row():
                    original = gr.Image(label="Original", format="png", height=256, interactive=False,
                                        elem_classes=["pixelated", "big"])
                    edited = gr.Image(label="Edited", format="png", height=256, interactive=False,
                                      elem_classes=["pixelated", "big"], elem_id="edited")
                reset = gr.Button("Reset all sliders")
                snippet = gr.Code(language="python", label="Reproduce this edit (seed + direction amounts)", lines=12,
                                  elem_classes=["snippet"], interactive=False, wrap_lines=True)
            with gr.Column(scale=3):
                status = gr.Markdown()
                with gr.Accordion("Unsupervised: SeFa (closed-form factorisation of the first layer)", open=True):
                    with gr.Row():
                        sliders["sefa"] = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, 0, step=0.05, visible=False, min_width=200,
                                                     elem_classes=["dir-slider"]) for _ in range(SLOTS["sefa"])]
                with gr.Accordion("Unsupervised: PCA of first-layer features (GANSpace)", open=False):
                    with gr.Row():
                        sliders["pca"] = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, 0, step=0.05, visible=False, min_width=200,
                                                    elem_classes=["dir-slider"])
                                          for _ in range(SLOTS["pca"])]
                with gr.Accordion("Named attributes / classes (InterFaceGAN boundaries)", open=True):
                    shown_labels = gr.Dropdown([], value=[], multiselect=True, max_choices=SLOTS["labelled"],
                                               label="Show sliders for", info="strength = held-out accuracy of the boundary")
                    keep_fixed = gr.Checkbox(False, label="Keep the other shown attributes fixed",
                                             info="their directions are projected out, then each is held where the classifier judged it")
                    with gr.Row():
                        sliders["labelled"] = [gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, 0, step=0.05, visible=False, min_width=200,
                                                         elem_classes=["dir-slider"])
                                               for _ in range(SLOTS["labelled"])]
        slot_names = gr.State([""] * sum(SLOTS.values()))
        timer = gr.Timer(3.0, active=False)
        all_sliders = sliders["sefa"] + sliders["pca"] + sliders["labelled"]
        link = gr.State(None)  # what a shared link asks of the sliders; the tab stays as it is until the link is for its model
        ctx.shared.update(slot_names=slot_names, sliders=all_sliders, shown=shown_labels, keep_fixed=keep_fixed, slider_link=link)

        def setup(model, chosen=None, keep_unsupervised=False, link=None):
            """Relabel the slots for ``model``; keep the labelled choice when it still applies (and, when labelled
            directions arrive late, the positions of the SeFa/PCA sliders the user may be moving). ``link``: a shared
            link's {"model", "shown", "amounts"} (ui/share.py), placed when it is for ``model``."""
            info = service.direction_info(catalog, model)
            labels = {d["name"]: d["label"] for d in info}
            by_kind = {k: [d["name"] for d in info if d["kind"] == k] for k in ("sefa", "pca")}
            labelled = [d["name"] for d in info if d["kind"] in LABELLED_KINDS]
            link = link if link and link["model"] == model else {}
            if link.get("shown") is not None:
                chosen = [n for n in link["shown"] if n in labelled][:SLOTS["labelled"]]
            if chosen is None or not set(chosen) <= set(labelled):
                chosen = featured(labelled)
            names = (by_kind["sefa"][:SLOTS["sefa"]] + [""] * (SLOTS["sefa"] - len(by_kind["sefa"][:SLOTS["sefa"]]))
                     + by_kind["pca"][:SLOTS["pca"]] + [""] * (SLOTS["pca"] - len(by_kind["pca"][:SLOTS["pca"]]))
                     + chosen + [""] * (SLOTS["labelled"] - len(chosen)))
            pending, status_text = service.directions_status(catalog, model)
            note = status_text or ("" if labelled else "_No class/attribute directions for this model (no classifier for its data set)._")
            keep = {"reset": not keep_unsupervised, "amounts": link.get("amounts")}
            updates = (_slider_updates(by_kind["sefa"], labels, SLOTS["sefa"], **keep)
                       + _slider_updates(by_kind["pca"], labels, SLOTS["pca"], **keep)
                       + _slider_updates(chosen, labels, SLOTS["labelled"], amounts=link.get("amounts")))
            dropdown = gr.update(choices=[(labels[n], n) for n in labelled], value=chosen, visible=bool(labelled))
            timer_update = gr.Timer(active=pending)
            return [names, dropdown, note, timer_update, *updates]

        def render(model, seed, psi, keep, names, *values):
            amounts = {n: float(v) for n, v in zip(names, values) if n and v}
            labelled = [n for n in names[SLOTS["sefa"] + SLOTS["pca"]:] if n]
            fixed = labelled if keep else []
            img = service.edit(catalog, model, seed, amounts, psi, fixed)
            return img, service.edit_snippet(catalog, model, seed, amounts, float(psi), fixed, url=ctx.url)

        setup_outputs = [slot_names, shown_labels, status, timer, *all_sliders]

        def poll(model, chosen, link):
            if service.directions_status(catalog, model)[0]:
                return [gr.skip()] * len(setup_outputs)
            return setup(model, chosen or None, keep_unsupervised=True, link=link)

        render_inputs = [ctx.model, ctx.seed, ctx.truncation, keep_fixed, slot_names, *all_sliders]
        ctx.then(ctx.on([ctx.demo.load, ctx.model.change], lambda model, link: setup(model, link=link), [ctx.model, link],
                        setup_outputs), render, render_inputs, [edited, snippet])
        ctx.then(ctx.on(shown_labels.input, lambda model, chosen: setup(model, chosen, keep_unsupervised=True),
                        [ctx.model, shown_labels], setup_outputs),
                 render, render_inputs, [edited, snippet])
        ctx.on(timer.tick, poll, [ctx.model, shown_labels, link], setup_outputs)
        # live: every drag step asks for an image; "always_last" drops stale ones so the last position always wins
        ctx.on([s.input for s in all_sliders] + [s.release for s in all_sliders] + [keep_fixed.change, ctx.seed.change,
                                                                                    ctx.truncation.release],
               render, render_inputs, [edited, snippet], trigger_mode="always_last", show_progress="hidden")
        ctx.on([ctx.seed.change, ctx.truncation.release], lambda model, seed, psi: service.seed_image(catalog, model, seed, psi),
               [ctx.model, ctx.seed, ctx.truncation], original, trigger_mode="always_last", show_progress="hidden")
        ctx.on([ctx.demo.load, ctx.model.change], lambda model, seed, psi: service.seed_image(catalog, model, seed, psi),
               [ctx.model, ctx.seed, ctx.truncation], original, show_progress="hidden")
        ctx.on(reset.click, lambda model, seed, psi: [0] * len(all_sliders) + [service.seed_image(catalog, model, seed, psi),
                                                                           service.edit_snippet(catalog, model, seed, {},
                                                                                                float(psi), url=ctx.url)],
               [ctx.model, ctx.seed, ctx.truncation], [*all_sliders, edited, snippet])
