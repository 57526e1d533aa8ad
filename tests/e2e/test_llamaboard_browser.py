"""LlamaBoard in a real browser: `llamafactory-cli webui` on 127.0.0.1, driven by headless Chromium.

A user's path through it: pick the `Unlearning` stage, a method (the example plugin's `wga` is offered
too), fill the keys for the tiny model and the synthetic data, preview the command, start, wait for the run
to finish and read the loss curve with its terms. Debian's `chromium` and `chromium-driver` (scripts/test.sh
installs them) and selenium; nothing is downloaded at run time.

SAFEERASER_BOARD_SCREENSHOT=docs/llamaboard_unlearn.png also saves the final screenshot there.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest
from conftest import BIN, REPO, log_history, subprocess_env

import yaml

pytestmark = pytest.mark.slow

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1400,2000",
)
RUN_ARGS = {  # LlamaBoard's "Extra arguments" box: a short CPU run, a log line per step
    "optim": "adamw_torch",
    "max_steps": 6,
    "logging_steps": 1,
    "per_device_train_batch_size": 2,
    "gradient_accumulation_steps": 1,
    "preprocessing_num_workers": 1,
    "dataloader_num_workers": 0,
    "save_strategy": "no",
    "seed": 233,
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def plugin_site(tmp_path):
    """The example plugin (examples/custom_method: `wga`, key `wga_alpha`) installed into its own folder."""
    site, source = tmp_path / "site", tmp_path / "custom_method"
    shutil.copytree(REPO / "examples/custom_method", source)
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target"]
    subprocess.run([*install, str(site), str(source)], check=True, env=subprocess_env(), capture_output=True)
    return site


@pytest.fixture
def webui(tmp_path, plugin_site):
    """`llamafactory-cli webui` serving on 127.0.0.1, working in tmp_path/board (where it writes saves/)."""
    workdir, port = tmp_path / "board", free_port()
    workdir.mkdir()
    env = subprocess_env(
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        GRADIO_ANALYTICS_ENABLED="False",
        BROWSER="true",  # the launch's "open a browser" runs `true URL`
        PYTHONPATH=os.pathsep.join(filter(None, [str(plugin_site), os.environ.get("PYTHONPATH")])),
    )
    log = (tmp_path / "webui.log").open("w")
    server = subprocess.Popen(
        [str(BIN / "llamafactory-cli"), "webui"],
        cwd=workdir,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: the training runs it starts stop with it
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "webui.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "LlamaBoard did not start within 180 s"
            try:
                urllib.request.urlopen(url, timeout=5)
                break
            except OSError:
                time.sleep(1)
        yield url, workdir
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        log.close()


@pytest.fixture
def browser():
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver, "install Debian's chromium and chromium-driver (scripts/test.sh does)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tempfile.mkdtemp(prefix="chromium-")
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    session = webdriver.Chrome(service=Service(driver), options=options)
    try:
        yield session
    finally:
        session.quit()
        shutil.rmtree(profile, ignore_errors=True)


class Board:
    """LlamaBoard's widgets as a user finds them: by their label, or by the element id of ours."""

    def __init__(self, driver) -> None:
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver, self.by = driver, By
        self.wait = WebDriverWait(driver, 30, ignored_exceptions=(StaleElementReferenceException,))

    def block(self, label: str):
        """The block of the widget labelled ``label``, or of our widget with element id ``#id``."""
        if label.startswith("#"):
            return self.driver.find_element(self.by.CSS_SELECTOR, label)
        return self.driver.find_element(
            self.by.XPATH,
            f"//span[@data-testid='block-info' and normalize-space()='{label}']"
            "/ancestor::div[contains(concat(' ', @class, ' '), ' block ')][1]",
        )

    def options(self, label: str) -> list[str]:
        self.block(label).find_element(self.by.CSS_SELECTOR, "input").click()
        items = self.wait.until(lambda d: d.find_elements(self.by.CSS_SELECTOR, "ul.options li"))
        names = [item.get_attribute("aria-label") for item in items]
        self.driver.find_element(self.by.TAG_NAME, "h1").click()  # closes the list
        return names

    def pick(self, label: str, value: str) -> None:
        self.block(label).find_element(self.by.CSS_SELECTOR, "input").click()
        option = f"//ul[contains(@class, 'options')]/li[@aria-label='{value}']"
        self.wait.until(lambda d: d.find_element(self.by.XPATH, option).click() or True)
        self.driver.find_element(self.by.TAG_NAME, "h1").click()
        time.sleep(0.5)  # the pick's events (lists, visibility) settle

    def fill(self, label: str, text: str) -> None:
        from selenium.webdriver.common.keys import Keys

        box = self.block(label).find_element(self.by.CSS_SELECTOR, "textarea, input")
        box.send_keys(Keys.CONTROL, "a")
        box.send_keys(Keys.DELETE)
        box.send_keys(text)

    def value(self, label: str) -> str:
        return self.block(label).find_element(self.by.CSS_SELECTOR, "textarea, input").get_attribute("value")

    def shown(self, element_id: str) -> bool:
        found = self.driver.find_elements(self.by.ID, element_id)
        return bool(found) and found[0].is_displayed()

    def click(self, text: str) -> None:
        self.driver.find_element(
            self.by.XPATH, f"//button[normalize-space()='{text}' or .//span[normalize-space()='{text}']]"
        ).click()

    def wait_for_text(self, text: str, timeout: float = 30) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout, poll_frequency=1).until(lambda d: text in d.page_source)

    def preview(self) -> str:
        self.click("Preview command")
        code = self.wait.until(
            lambda d: [c.text for c in d.find_elements(self.by.TAG_NAME, "code") if "llamafactory-cli train" in c.text]
        )
        return code[0]


def command_args(preview: str) -> dict[str, str]:
    """`--key value` pairs of a previewed `llamafactory-cli train` command."""
    return dict(re.findall(r"^\s*--(\S+) (.*?)\s*\\?\s*$", preview, flags=re.MULTILINE))


def test_unlearning_in_llamaboard_from_pick_to_curve(webui, browser, tiny_model_dir, prepared_dir, tmp_path):
    from gradio.processing_utils import encode_plot_to_base64

    from llamafactory_safeeraser.integration.llamaboard import loss_terms_figure

    url, workdir = webui
    browser.get(url)
    board = Board(browser)
    board.wait.until(lambda d: board.block("Stage"))
    board.pick("Model name", "Custom")
    board.fill("Model path", str(tiny_model_dir))
    board.pick("Chat template", "llava")
    assert not board.shown("unlearn_box")  # SFT, the default stage: LlamaBoard as it is
    board.pick("Stage", "Unlearning")
    assert board.shown("unlearn_box")
    below_stage = board.block("#unlearn_box").rect["y"]
    assert board.block("Stage").rect["y"] < below_stage < board.block("Learning rate").rect["y"]

    board.fill("Data dir", str(prepared_dir))
    board.pick("Dataset", "safeeraser_forget")
    assert board.options("#unlearn_unlearn_method") == ["ga", "gd", "idkdpo", "kl", "npo", "po", "rmu", "simnpo", "wga"]
    board.pick("#unlearn_unlearn_method", "wga")  # the plugin's method shows its own key
    assert board.shown("unlearn_wga_alpha") and board.value("#unlearn_wga_alpha") == "1.0"
    board.pick("#unlearn_unlearn_method", "npo")
    assert not board.shown("unlearn_wga_alpha") and not board.shown("unlearn_forget_nll_guard")
    assert board.value("#unlearn_npo_beta") == "0.1" and board.value("#unlearn_retain_weight") == "0.0"
    board.pick("#unlearn_pd_dataset", "safeeraser_pd")
    board.fill("Learning rate", "1e-3")
    board.pick("Compute type", "fp32")
    board.click("Extra configurations")
    board.fill("Extra arguments", json.dumps(RUN_ARGS))
    board.click("Extra configurations")

    board.fill("#unlearn_npo_beta", "abc")  # a bad value is named before anything runs
    board.click("Preview command")
    board.wait_for_text("Unlearning: `npo_beta` 'abc' is not a number.")
    board.fill("#unlearn_npo_beta", "0.2")
    preview = command_args(board.preview())
    assert preview["stage"] == "unlearn" and preview["unlearn_method"] == "npo" and preview["npo_beta"] == "0.2"
    assert preview["pd_dataset"] == "safeeraser_pd" and preview["retain_weight"] == "0.0"
    assert "retain_dataset" not in preview and "wga_alpha" not in preview
    board.click("Save arguments")  # LlamaBoard's saved arguments keep the box: a change is undone by a load
    board.wait_for_text("Arguments have been saved at")
    board.fill("#unlearn_npo_beta", "0.5")
    board.click("Load arguments")
    board.wait.until(lambda d: board.value("#unlearn_npo_beta") == "0.2")
    assert board.shown("unlearn_npo_beta") and not board.shown("unlearn_wga_alpha")

    board.click("Start")
    board.wait_for_text("Finished.", timeout=240)
    assert "Failed." not in browser.page_source
    (output_dir,) = (workdir / "saves/Custom/lora").iterdir()

    # the run ran the previewed YAML, with our keys
    ran = yaml.safe_load((output_dir / "training_args.yaml").read_text())
    assert {key: str(value) for key, value in ran.items()} == preview
    assert "Unlearning with npo" in (output_dir / "running_log.txt").read_text()
    assert "npo_beta=0.2" in (output_dir / "running_log.txt").read_text()
    saved = yaml.safe_load((output_dir / "llamaboard_config.yaml").read_text())
    assert saved["train.training_stage"] == "Unlearning" and saved["unlearn.npo_beta"] == "0.2"

    # trainer_log.jsonl carries every step's terms, as the trainer logged them
    lines = [json.loads(line) for line in (output_dir / "trainer_log.jsonl").read_text().splitlines()]
    history = {entry["step"]: entry for entry in log_history(output_dir) if "loss" in entry}
    with_terms = [line for line in lines if "loss_terms" in line]
    assert [line["current_steps"] for line in with_terms] == list(range(1, 7)) == sorted(history)
    for line in with_terms:
        assert set(line["loss_terms"]) == {"forget_nll", "npo_loss", "npo_log_ratio", "pd_nll"}
        assert line["loss_terms"] == {name: history[line["current_steps"]][name] for name in line["loss_terms"]}
    assert (output_dir / "training_pd_nll.png").is_file() and (output_dir / "training_npo_loss.png").is_file()

    # the curve on the page is the loss and its terms drawn from that file (the last poll saw >= 2 steps)
    plot = browser.find_element(board.by.CSS_SELECTOR, "[data-testid='matplotlib'] img")  # the one plot: "Loss"
    drawn = {k: encode_plot_to_base64(loss_terms_figure(lines[:k]), "webp") for k in range(2, len(lines) + 1)}
    assert plot.get_attribute("src") in drawn.values()

    bottom = browser.execute_script("return arguments[0].getBoundingClientRect().bottom + window.scrollY", plot)
    page_top_to_curve = {"x": 0, "y": 0, "width": 1400, "height": int(bottom) + 30, "scale": 1}
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"clip": page_top_to_curve, "captureBeyondViewport": True})
    (tmp_path / "llamaboard_unlearn.png").write_bytes(base64.b64decode(shot["data"]))
    if target := os.environ.get("SAFEERASER_BOARD_SCREENSHOT"):
        shutil.copyfile(tmp_path / "llamaboard_unlearn.png", target)
