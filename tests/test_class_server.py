"""A whole class on one server, through the app (Streamlit's AppTest: real script runs, one process, so the
sessions share the server's run registry as a real server's do): identical runs shared, a private copy,
a finished run replayed to a latecomer, a run found again by the code in the page's address, follow the teacher
by a code, the Draw page before any training, a run too big for the server refused."""
import re
from pathlib import Path

from speed import hang_s
from streamlit.testing.v1 import AppTest
from streamlit.util import calc_hash
from test_app import assert_live_fragments_end_their_blocks, button, press_train, run_until

APP = str(Path(__file__).resolve().parent.parent / "streamlit_app.py")


def app(url_path: str = "lab", params: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=hang_s(60))
    for k, v in (params or {}).items():
        at.query_params[k] = v
    at._page_hash = calc_hash(url_path)
    at.run()
    assert not at.exception, at.exception
    return at


def has_button(at, label) -> bool:
    return any(b.label == label for b in at.button)


def texts(at) -> str:
    return "\n".join(e.value for kind in ("info", "success", "warning", "error", "caption", "markdown") for e in at.get(kind))


def train(at, steps: int, seed: int | None = None) -> None:
    at.number_input[0].set_value(steps)
    if seed is not None:
        next(n for n in at.number_input if n.label == "Seed").set_value(seed)
    press_train(at)
    assert not at.exception, at.exception


def job_of(at):
    return at.session_state["_job_holder"].job


def progress(at) -> str:
    bars = at.get("progress")
    return bars[0].proto.text if bars else ""


def test_a_second_student_with_the_same_settings_watches_the_first_run_and_can_leave_or_copy_it():
    first, second = app(), app()
    train(first, 2000, seed=11)
    train(second, 2000, seed=11)
    assert job_of(second) is job_of(first), "the same settings must not queue a second copy"
    assert "Same settings as a run already training on this server: you are watching it (2 watching)" in texts(second)
    first.run()
    for at in (first, second):  # Pause and Step would change it for the other: both are off, Stop leaves
        assert button(at, "Pause").disabled and button(at, "Step").disabled
        assert has_button(at, "Leave") and not has_button(at, "Stop")
    job = job_of(first)
    run_until(first, lambda a: re.search(r"Training · step [1-9]", progress(a)))
    button(second, "Leave").click()
    second.run()
    assert job_of(second) is None and job.snapshot().state == "running", "leaving must not stop it for the other"
    # The one left can pause and stop it again; a private copy is a run of its own.
    first.run()
    assert not button(first, "Pause").disabled and has_button(first, "Stop")
    train(second, 2000, seed=11)
    assert job_of(second) is job
    button(second, "Train my own copy").click()
    second.run()
    copy = job_of(second)
    assert copy is not job and copy.train == job.train and copy.models == job.models
    assert "watching" not in texts(second)
    for at in (second, first):
        button(at, "Stop").click()
        at.run()
    assert job.snapshot().state in ("stopped", "done") or job.join(hang_s(10))


def test_a_latecomer_watches_the_finished_run_replayed_and_may_train_it_live():
    first = app()
    train(first, 10, seed=12)
    run_until(first, lambda a: "Done · step 10/10" in progress(a), 120)
    done = job_of(first)
    late = app()
    train(late, 10, seed=12)
    replay = job_of(late)
    assert replay is not done and replay.source is done, "a replay of the run, not the run at once"
    assert "This server trained these settings before: replaying that run" in texts(late)
    assert re.search(r"Replay 1× · step \d/10", progress(late)), progress(late)
    assert not button(late, "Pause").disabled, "a replay is this session's own: its clock can pause"
    assert late.query_params["run"] != first.query_params["run"], "its own code"
    button(late, "Skip to the end").click()
    late.run()
    assert "Done · step 10/10" in progress(late) and "The replay has reached the end" in texts(late)
    button(late, "Train again live").click()
    late.run()
    live = job_of(late)
    assert live is not done and live.models == done.models and live.train == done.train
    run_until(late, lambda a: "Done · step 10/10" in progress(a), 120)
    # The new run took the old one's place: the next latecomer replays it.
    third = app()
    train(third, 10, seed=12)
    assert job_of(third).source is live


def test_the_address_finds_the_run_again_and_says_so():
    first = app()
    train(first, 2000, seed=14)
    job, code = job_of(first), first.query_params["run"]
    assert re.fullmatch(r"[A-Z0-9]{4}", code)
    run_until(first, lambda a: re.search(r"Training · step [1-9]", progress(a)))
    again = app(params={"run": code.lower()})  # a reload, or the address on another device
    assert job_of(again) is job and again.query_params["run"] == code
    assert re.search(r"Reconnected to your run at step \d+ of 2000", texts(again)), texts(again)
    first.run()
    button(first, "Leave").click()  # two sessions watch it now: Stop became Leave
    first.run()
    again.run()
    button(again, "Stop").click()
    again.run()
    assert job.join(hang_s(10)) and job.snapshot().state == "stopped"
    gone = app(params={"run": "XXXX"})
    assert "The run in this page's address (XXXX) is no longer on this server" in texts(gone)
    assert job_of(gone) is None and "run" not in gone.query_params
    odd = app(params={"run": "<b>*x*</b>"})  # only code letters are read, nothing else is shown
    assert not odd.exception and "<b>" not in texts(odd)


def test_students_follow_the_teacher_by_code_on_every_page():
    teacher = app()
    button(teacher, "Show to the class").click()
    teacher.run()
    code = teacher.session_state["_class_code"]
    assert re.fullmatch(r"[A-Z0-9]{4}", code) and [(m.label, m.value) for m in teacher.metric] == [("Class code", code)]
    student = app(params={"follow": code.lower()})  # a link, typed in any case
    assert f"Following run **{code}**" in texts(student)
    assert "The teacher has not started a run yet" in texts(student)
    assert not has_button(student, "Train"), "a follower watches, read-only"
    train(teacher, 10, seed=13)
    run_until(student, lambda a: "step" in progress(a))
    assert student.session_state["_follow_job"] is job_of(teacher)
    run_until(student, lambda a: "Done · step 10/10" in progress(a), 120)
    assert_live_fragments_end_their_blocks(student)  # the follow page keeps the Lab's layout of its fragments
    for page in ("draw", "errors", "gradients"):  # every page on the teacher's models, not the reference ones
        at = app(page, params={"follow": code})
        assert "Reference models" not in texts(at), page
    # The student types a wrong code: told so. The teacher leaves: the student keeps the last run shown.
    other = app(params={"follow": "XXXX"})
    assert "No run is shown under the code XXXX" in texts(other)
    teacher.session_state["_job_holder"].release()
    student.run()
    assert "The teacher's session has ended" in texts(student) and "Done · step 10/10" in progress(student)
    button(student, "Stop following").click()
    student.run()
    assert has_button(student, "Train") and not student.session_state["_follow"]


def test_the_draw_errors_and_gradients_pages_use_the_reference_models_before_any_training():
    at = app("draw")
    assert "Reference models: the default lesson's four nets (plain-20, res-20, plain-56, res-56)" in texts(at)
    at.segmented_control(key="draw_source").set_value("test").run()
    assert not at.exception, at.exception
    assert [c.key for c in at.get("plotly_chart")][:1] == ["prob_chart"], "every model predicts a digit"
    for page in ("errors", "gradients"):
        other = app(page)
        assert "Reference models" in texts(other), page
        assert at.get("plotly_chart") or other.get("dataframe")


def test_a_run_over_the_servers_memory_budget_is_refused_with_what_to_lower(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_RUN_MEMORY_MB", "200")
    at = app()
    button(at, "Train").click()
    at.run()
    errors = [e.value for e in at.error]
    assert any("more than this server allows one run (200 MB" in e and "batch size (now 64)" in e for e in errors), errors
    assert job_of(at) is None, "nothing started"
