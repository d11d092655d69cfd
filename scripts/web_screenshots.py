"""Screenshots of every page of `worldsim serve` (docs/web.md), taken in Debian's headless chromium.

    python scripts/web_screenshots.py --root outputs/demo --ckpt dit --store data --out docs/images

`--ckpt` and `--store` are paths relative to the root (the model to play and generate with, the store whose
episode to show). Needs chromium and chromedriver (scripts/setup.sh installs them) and the web extra.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True)
    p.add_argument("--ckpt", required=True, help="a world-model run under the root")
    p.add_argument("--store", required=True, help="a store under the root")
    p.add_argument("--report", default="", help="an evaluation or demo report folder under the root ('' = the root)")
    p.add_argument("--out", default="docs/images")
    p.add_argument("--prompt", default="")
    args = p.parse_args()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from worldsim.web.app import create_app, serve_in_thread

    base, server = serve_in_thread(create_app([args.root]))
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--hide-scrollbars"):
        opts.add_argument(arg)
    d = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver")), options=opts)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    def shot(name: str, url: str, wait: float = 1.0, then=None) -> None:
        d.get(base + url)
        time.sleep(wait)
        if then is not None:
            then()
        d.save_screenshot(str(out / f"web_{name}.png"))
        print(f"{out / f'web_{name}.png'}: {url}")

    shot("datasets", "/")
    shot("dataset", f"/dataset/0/{args.store}")
    shot("episode", f"/episode/0/{args.store}?episode=0", 4.0)
    shot("models", "/models")
    shot("model", f"/model/0/{args.ckpt}")
    shot("report", f"/eval/0/{args.report}", 2.0)

    def play() -> None:
        d.find_element(By.ID, "start").click()
        time.sleep(2.0)
        d.find_element(By.ID, "engine-view").click()
        ActionChains(d).key_down("w").pause(0.6).key_down(Keys.ARROW_LEFT).pause(0.4).key_up(Keys.ARROW_LEFT) \
            .pause(0.4).key_up("w").perform()
        time.sleep(0.5)

    shot("play", f"/play?ckpt=0/{args.ckpt}", 1.0, play)

    def generate() -> None:
        if args.prompt:
            box = d.find_element(By.ID, "g-prompt")
            box.clear()
            box.send_keys(args.prompt)
        d.find_element(By.ID, "g-go").click()
        for _ in range(600):
            if d.find_element(By.ID, "g-result").is_displayed() or d.find_elements(By.ID, "error"):
                break
            time.sleep(0.1)
        time.sleep(1.5)

    shot("generate", f"/generate?ckpt=0/{args.ckpt}", 1.0, generate)
    d.quit()
    server.should_exit = True
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
