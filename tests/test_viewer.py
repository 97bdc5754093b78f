"""The HTML viewer, on real recordings, in a real headless browser (Debian's chromium, driven by Playwright)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import threading
from pathlib import Path

import gymnasium as gym
import pytest
from conftest import SMALL, call

from ptb_gym import viewer
from ptb_gym.cli import main as cli
from ptb_gym.recording import read_episode

# Agent-written text that would run as script if the page ever put recorded text in as markup.
HOSTILE = '</script><script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> &amp; \u2028 end'


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    """One whole episode: a hostile observation, a failing call, a short training job, an evaluate, a submit."""
    root = tmp_path_factory.mktemp("viewer")
    env = gym.make("PTB/math-v0", **SMALL, workdir=str(root / "episodes"), record_dir=str(root / "runs"))
    records = "".join(json.dumps({"prompt": f"Question: {a} plus {a}?\nAnswer:", "completion": f" {a}+{a}={2 * a} #### {2 * a}"})
                      + "\n" for a in range(40))
    try:
        env.reset(seed=3)
        for action in (call("write_file", path="note.txt", content=HOSTILE), call("run", command="cat note.txt"),
                       call("read_file", path="no/such/file"), call("write_file", path="sft.jsonl", content=records),
                       call("train", data="sft.jsonl", output_dir="final_model", max_steps=30, batch_size=4),
                       call("wait", job_id="job-1", timeout_s=600), call("evaluate", checkpoint="final_model", limit=16),
                       call("submit", checkpoint="final_model")):
            *_, info = env.step(action)
        assert info["scores"], info
    finally:
        env.close()
    (path,) = (root / "runs").glob("*.jsonl")
    return path


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api", reason="the [test] extra installs playwright")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/setup installs it (apt-get install chromium)")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        yield browser
        browser.close()


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1300, "height": 1400})
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
    page.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    page.requests = []
    page.on("request", lambda r: page.requests.append(r.url))
    page.goto(url)
    return page, problems


def lines_of(path: Path) -> list[bytes]:
    """A recording's lines (bytes split at newlines only: recorded text may hold U+2028, a line break to str)."""
    return path.read_bytes().splitlines(keepends=True)


def test_episode_data_holds_what_the_page_shows(recording):
    data = viewer.episode_data(read_episode(recording))
    assert [s["tool"] for s in data["steps"]] == ["write_file", "run", "read_file", "write_file", "train", "wait",
                                                  "evaluate", "submit"]
    assert data["steps"][2]["error"] and "no/such/file" in data["steps"][2]["error"]
    assert HOSTILE in data["steps"][1]["observation"]
    (curve,) = data["losses"].values()  # the one training job, merged over the waits that reported it
    assert len(curve) >= 2 and all(a[0] < b[0] for a, b in itertools.pairwise(curve))
    (evaluation,) = data["evaluations"]
    assert set(evaluation["scores"]) == set(data["final"]["scores"])
    assert data["final"]["primary_harness"] in data["final"]["scores"] and data["final"]["failure"] is None
    assert data["budget_limit_s"] == 600


def test_the_page_renders_offline_without_errors_and_never_runs_recorded_text(recording, browser, tmp_path):
    out = tmp_path / "report.html"
    assert cli(["view", str(recording), "-o", str(out)]) == 0
    html = out.read_text()
    assert "<script>window.__pwned" not in html
    page, problems = open_page(browser, out.as_uri())
    assert page.requests == [out.as_uri()]  # nothing fetched beside the file itself: no CDN, works offline
    assert page.locator("tr.step").count() == 8
    assert page.locator("#scores tr").count() == 1 + len(viewer.episode_data(read_episode(recording))["final"]["scores"])
    assert page.locator("#plots svg").count() == 3 and page.locator("#plots polyline").count() >= 2  # budget, loss
    assert page.locator("pre.observation").count() == 0  # observations are built when a step is opened
    page.locator("tr.step").nth(1).click()
    assert HOSTILE.replace("\u2028", "") in page.locator("pre.observation").inner_text().replace("\u2028", "")
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(tmp_path / "episode.png"), full_page=True)
    assert (tmp_path / "episode.png").stat().st_size > 10_000
    assert problems == []


def test_several_recordings_open_on_a_comparison(recording, browser, tmp_path):
    interrupted = tmp_path / "interrupted.jsonl"  # the same episode cut before its footer, as after a crash
    interrupted.write_bytes(b"".join(lines_of(recording)[:5]))
    out = viewer.write_html([recording, interrupted], tmp_path / "compare.html")
    page, problems = open_page(browser, out.as_uri())
    table = page.locator("#comparison").inner_text()
    assert "interrupted.jsonl" in table and recording.name in table
    assert page.locator("nav button").count() == 3
    page.locator("nav button").nth(2).click()  # the interrupted episode's own page
    assert "interrupted (no footer)" in page.locator("main").inner_text()
    assert page.locator("tr.step").count() == 4
    page.screenshot(path=str(tmp_path / "compare.png"))
    assert problems == []


def test_a_long_recording_renders_every_step(recording, browser, tmp_path):
    lines = lines_of(recording)
    header, step = lines[0], json.loads(lines[2])
    long = tmp_path / "long.jsonl"
    with long.open("w") as f:
        f.write(header.decode())
        for index in range(2000):
            f.write(json.dumps({**step, "index": index, "observation": "x" * 5000}) + "\n")
    page, problems = open_page(browser, viewer.write_html([long], tmp_path / "long.html").as_uri())
    assert page.locator("tr.step").count() == 2000
    page.locator("tr.step").nth(1999).click()
    assert page.locator("pre.observation").inner_text().startswith("x" * 100)
    page.locator("button.more").click()  # the fold opens to the whole observation
    assert len(page.locator("pre.observation").inner_text()) == 5000
    assert problems == []


def test_serve_follows_a_growing_recording(recording, browser, tmp_path):
    lines = lines_of(recording)
    live = tmp_path / "live.jsonl"
    live.write_bytes(b"".join(lines[:3]))  # header and two steps: the episode is still running
    server = viewer.make_server([live], port=0)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        _check_live_page(browser, f"http://127.0.0.1:{server.server_address[1]}/", live, lines[3:])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def _check_live_page(browser, url: str, live: Path, rest: list[bytes]) -> None:
    page, problems = open_page(browser, url)
    assert page.locator("tr.step").count() == 2 and "running (live)" in page.locator("main").inner_text()
    with live.open("ab") as f:
        f.writelines(rest)  # the rest of the episode, footer included
    page.wait_for_function("document.querySelectorAll('tr.step').length === 8", timeout=15_000)
    page.wait_for_selector("#scores")
    assert problems == []


def play(agent_name: str, root: Path, **agent_options) -> Path:
    from ptb_gym.baselines import make_agent, play_episode

    env = gym.make("PTB/math-v0", **SMALL, workdir=str(root / "episodes"), record_dir=str(root / agent_name))
    try:
        play_episode(env, make_agent(agent_name, **agent_options), seed=0)
    finally:
        env.close()
    (path,) = (root / agent_name).glob("*.jsonl")
    return path


def test_the_baseline_agents_episodes_side_by_side(browser, tmp_path):
    """The README's screenshots: `PTB_SCREENSHOT_DIR=docs pytest tests/test_viewer.py -k baseline` writes them."""
    scripted, random = play("scripted", tmp_path, max_steps=40), play("random", tmp_path, seed=0)
    shots = Path(os.environ.get("PTB_SCREENSHOT_DIR") or tmp_path)
    out = viewer.write_html([scripted, random], tmp_path / "baselines.html")
    page, problems = open_page(browser, out.as_uri())
    page.screenshot(path=str(shots / "viewer-compare.png"))
    page.locator("nav button").nth(1).click()  # the scripted agent's own page
    assert page.locator("#plots polyline").count() >= 2 and page.locator("#scores").count() == 1
    page.screenshot(path=str(shots / "viewer-episode.png"))
    page.locator("nav button").nth(2).click()
    assert page.locator("tr.step").count() == len(read_episode(random).steps)
    assert problems == []
