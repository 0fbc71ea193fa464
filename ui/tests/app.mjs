// The real app in a real window (run under Xvfb on Linux), driven through tauri-driver and
// WebKitWebDriver: first run → load the bundled SmolLM2 → a streamed reply with its cache
// figures → save → a second turn that reuses the cache → the sample dataset inspected → the
// backend's check of the Train form shown beside a field → a short training run whose steps
// appear on the loss chart and whose stream says it ended → this Mac checked in Machines (the
// `adapt` program beside the app answers) → a chat with its adapter → the
// base model and the adapter side by side (A/B) → the Models and Runs views.
// Screenshots of each view go to docs/screenshots/ (the README shows them).
//
// Environment: ADAPT_APP (the built app binary), ADAPT_MODELS_DIR (where SmolLM2 is),
// ADAPT_DATA_DIR (a fresh data folder), TAURI_DRIVER (default: tauri-driver on PATH). Run it
// from the repository's root: the app starts there and reads examples/ from there.
import { spawn } from "node:child_process";
import { mkdir } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { remote } from "webdriverio";

const here = dirname(fileURLToPath(import.meta.url));
const shots = resolve(here, "../../docs/screenshots");
const app = process.env.ADAPT_APP;
assert.ok(process.env.DISPLAY, "no DISPLAY: run under xvfb-run");
assert.ok(app, "set ADAPT_APP to the built app binary");
await mkdir(shots, { recursive: true });

const driver = spawn(process.env.TAURI_DRIVER ?? "tauri-driver", ["--port", "4444"], {
  stdio: ["ignore", "inherit", "inherit"],
});
await new Promise((r) => setTimeout(r, 1500));

let failed = false;
let browser;
try {
  browser = await remote({
    hostname: "127.0.0.1",
    port: 4444,
    logLevel: "warn",
    connectionRetryTimeout: 60_000,
    connectionRetryCount: 1,
    capabilities: { "tauri:options": { application: resolve(app) } },
  });
  const byTest = (id) => browser.$(`[data-testid="${id}"]`);
  const waitText = async (el, pattern, timeout = 60_000) => {
    await browser.waitUntil(async () => pattern.test(await el.getText()), { timeout, interval: 250 });
    return el.getText();
  };

  await (await byTest("first-run")).waitForDisplayed({ timeout: 30_000 });
  await browser.saveScreenshot(join(shots, "first-run.png"));
  await (await byTest("load-bundled")).click();
  await waitText(await byTest("loaded-model"), /SmolLM2|Smollm2/i);

  const composer = await byTest("composer");
  await composer.setValue("What is the capital of France?");
  await (await byTest("send")).click();
  const stats = await byTest("turn-stats");
  await stats.waitForExist({ timeout: 120_000 });
  const reply = await (await byTest("message-assistant")).getText();
  assert.match(reply, /Paris/, reply);
  assert.match(await stats.getText(), /^0 reused · \d+ new · first token/);

  await (await byTest("save-name")).setValue("trip");
  await (await byTest("save")).click();
  await waitText(await byTest("notice"), /Saved 'trip': \d+ cached tokens/);
  await composer.setValue("And of Germany?");
  await (await byTest("send")).click();
  await browser.waitUntil(async () => (await browser.$$('[data-testid="turn-stats"]')).length === 2, { timeout: 120_000 });
  const second = await (await browser.$$('[data-testid="turn-stats"]'))[1].getText();
  assert.match(second, /^[1-9]\d* reused · \d+ new/, second);
  const replies = await browser.$$('[data-testid="message-assistant"]');
  assert.match(await replies[1].getText(), /Berlin/);
  await waitText(await byTest("cache-state"), /on disk/);
  await browser.saveScreenshot(join(shots, "chat.png"));

  // The sample dataset kept in the repository, tokenized with the loaded model.
  await (await browser.$("[data-view=datasets]")).click();
  // Relative to the app's working directory, the repository (no machine path in screenshots).
  await (await byTest("dataset-path")).setValue("examples/blue-lantern.jsonl");
  await (await byTest("inspect")).click();
  await waitText(await byTest("dataset-summary"), /chat JSONL · 12 valid examples · 0 invalid/);
  await (await byTest("histogram")).waitForExist({ timeout: 30_000 });
  assert.match(await (await browser.$(".trained")).getText(), /7-4-1/);
  await browser.saveScreenshot(join(shots, "datasets.png"));

  // A short training run on the sample data: the memory estimate, then points on the loss
  // chart as the steps report, then a chat with the new adapter.
  await (await browser.$("[data-view=train]")).click();
  await (await byTest("train-dataset")).setValue("examples/blue-lantern.jsonl");
  await waitText(await byTest("train-dataset-note"), /^12 examples · \d+ to train on/);
  // The backend's check of the form, shown beside the field, stops Start until it is fixed.
  await (await byTest("train-rank")).setValue("0");
  await (await byTest("problem-config.lora_parameters.rank")).waitForExist({ timeout: 30_000 });
  assert.equal(await (await byTest("start-training")).isEnabled(), false);
  await (await byTest("train-rank")).setValue("8");
  await (await byTest("problem-config.lora_parameters.rank")).waitForExist({ timeout: 30_000, reverse: true });
  await (await byTest("train-length-by")).selectByAttribute("value", "iters");
  await (await byTest("train-iters")).setValue("6");
  await (await byTest("train-batch")).setValue("2");
  await (await byTest("train-max-len")).setValue("128");
  await waitText(await byTest("train-steps"), /^6 optimizer steps/);
  await (await byTest("estimate")).click();
  await waitText(await byTest("memory-estimate"), /batch size 2 at \d+ tokens/, 120_000);
  await (await byTest("start-training")).click();
  await waitText(await byTest("train-progress"), /step [1-5] of 6/, 180_000);
  const points = async () => {
    const d = await (await browser.$('[data-testid="training"] path[data-series="train"]')).getAttribute("d");
    return d ? d.split("L").length : 0;
  };
  const early = await points();
  await waitText(await byTest("train-status"), /succeeded/, 180_000);
  assert.ok(early >= 1 && early < 6, `points while training: ${early}`);
  assert.equal(await points(), 6);
  await browser.saveScreenshot(join(shots, "train.png"));
  // Machines: this Mac checked for real — the `adapt` program beside the app reports its
  // version and memory, and finds the model and the data.
  await (await byTest("machine-this-ips")).setValue("10.0.0.1");
  await (await browser.$('[data-testid="machine"] [data-testid="machine-check"]')).click();
  await waitText(await byTest("machine-result"), /^Ready · Adapt \d+\.\d+\.\d+ · \w+ · .* free/, 60_000);
  await (await byTest("machines")).scrollIntoView();
  await browser.saveScreenshot(join(shots, "machines.png"));
  await (await byTest("chat-with-adapter")).click();
  await waitText(await byTest("loaded-adapter"), /adapter of run #1/, 60_000);
  await (await byTest("composer")).setValue("What is the Blue Lantern's code?");
  await (await byTest("send")).click();
  await (await byTest("turn-stats")).waitForExist({ timeout: 120_000 });
  assert.ok((await (await byTest("message-assistant")).getText()).trim().length > 0);
  assert.equal(await (await byTest("adapter-picker")).getValue(), "1");
  // A/B on the same loaded weights: the base model beside the new adapter.
  await (await byTest("compare-mode")).click();
  assert.equal(await (await byTest("choice-0")).getValue(), "base");
  assert.equal(await (await byTest("choice-1")).getValue(), "1");
  await (await byTest("compare-composer")).setValue("What is the Blue Lantern's code?");
  await (await byTest("compare-send")).click();
  await (await browser.$('[data-testid="side-1"] [data-testid="side-stats"]')).waitForExist({ timeout: 120_000 });
  assert.ok((await (await byTest("side-0-assistant")).getText()).trim().length > 0);
  await browser.saveScreenshot(join(shots, "chat-compare.png"));
  await (await byTest("compare-mode")).click();

  await (await browser.$("[data-view=models]")).click();
  await (await byTest("model-row")).waitForExist({ timeout: 30_000 });
  await browser.saveScreenshot(join(shots, "models.png"));
  await (await browser.$("[data-view=runs]")).click();
  await waitText(await byTest("run-figures"), /step 6 · epoch/);
  await browser.saveScreenshot(join(shots, "runs.png"));
  console.log("app tests: ok (screenshots in docs/screenshots/)");
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  if (browser) await browser.deleteSession().catch(() => {});
  driver.kill("SIGTERM");
}
process.exit(failed ? 1 : 0);
