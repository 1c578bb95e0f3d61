"""The Errors page: which test digits each model gets wrong, and what it takes them for."""
import streamlit as st

from ..analysis.features import upscale
from ..analysis.inference import evaluate
from ..data.arrays import digits
from ..i18n import LabError
from ..plots import inside as inside_plots
from .nav import link_to_lab, models_note
from .session import models_job
from .text import lang, t

PAGE = 40  # wrong digits shown at a time
LIMIT = 2000  # test images evaluated: all of the bundled 1,000; of the full sets' 10,000 the first 2,000 (~1 s)


def evaluated(job, step: int) -> list:
    """Each model's test-set errors with the weights at `step`, kept per job and step: an evaluation of the
    whole test set costs about a second, so it runs once, not on every click."""
    key = (id(job), step)
    cache = st.session_state.get("_errors")
    if cache is None or cache[0] != key:
        test = digits(job.dataset, job.train.class_list)
        with st.spinner(t("errors.evaluating")):
            results = [evaluate(net, test.test_images[:LIMIT], test.test_labels[:LIMIT], stats=test.stats)
                       for net in job.nets]
        cache = st.session_state["_errors"] = (key, results)
    return cache[1]


def page() -> None:
    st.title(t("errors.title"))
    job, reference = models_job()
    snap = job.snapshot()
    if snap.step == 0:  # this session's run has not taken its first step
        st.info(t("errors.no_models"))
        link_to_lab()
        return
    models_note(job, reference)
    job.touch()
    # The evaluation stays at the step it was made until the user asks for the newer weights.
    owner, shown = st.session_state.get("_errors_step", (None, 0))
    now = snap.weights_at  # a replay's nets hold the weights of its run's end
    if owner != id(job) or not 0 < shown <= now:
        shown = now
    if shown != now:
        c1, c2 = st.columns([3, 1], vertical_alignment="center")
        c1.caption(t("errors.stale", step=shown, now=now))
        if c2.button(t("errors.refresh"), icon=":material/refresh:", width="stretch"):
            shown = now
    st.session_state["_errors_step"] = (id(job), shown)
    try:
        results = evaluated(job, shown)
        test = digits(job.dataset, job.train.class_list)
    except LabError as e:  # a reopened run trained on a dataset this server does not have
        st.error(e.text(lang()))
        return
    classes = test.class_names(lang())
    names = [v.name for v in snap.models]
    n = len(test.test_labels)
    st.caption(t("errors.intro", n=n, step=shown) if n <= LIMIT else t("errors.intro_part", n=LIMIT, of=n, step=shown))
    counted = min(n, LIMIT)
    # The Lab's summary tests on fewer digits (TrainSpec.eval_size): both headers say on how many, and the
    # note says why the two can differ.
    lab_n = min(job.train.eval_size, n)
    if lab_n < counted:
        st.caption(t("errors.lab_differs", lab=lab_n, n=counted))
    st.dataframe([{t("table.model"): name, t("errors.accuracy_n", n=counted): f"{100 * r.accuracy:.1f}%",
                   t("errors.count"): int((r.predicted != r.labels).sum())} for name, r in zip(names, results)],
                 hide_index=True)
    chosen = st.radio(t("errors.model"), range(len(names)), format_func=names.__getitem__, horizontal=True,
                      key="errors_model")
    r = results[chosen]
    left, right = st.columns([1, 1.3], gap="large")
    left.plotly_chart(inside_plots.confusion_figure(r.confusion(), t, t("errors.confusion_title", name=names[chosen]),
                                                    classes),
                      key="confusion", config={"displaylogo": False})
    with right:
        wrong = r.wrong()
        st.markdown(t("errors.wrong_title", name=names[chosen], n=len(wrong)))
        if not len(wrong):
            st.success(t("errors.none_wrong"))
            return
        pages = (len(wrong) + PAGE - 1) // PAGE
        page_no = st.number_input(t("errors.page", pages=pages), 1, pages, 1, key="errors_page") if pages > 1 else 1
        shown_idx = wrong[(page_no - 1) * PAGE:page_no * PAGE]
        captions = [t("errors.caption", true=classes[int(r.labels[i])], pred=classes[int(r.predicted[i])]
                      if r.predicted[i] >= 0 else "–", pct=100 * r.confidence[i]) for i in shown_idx]
        st.image([upscale(test.test_images[i], 3) for i in shown_idx], caption=captions, width=84)
        st.caption(t("errors.order"))
