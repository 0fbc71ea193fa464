// The real app in a real window (run under Xvfb on Linux), driven through tauri-driver and
// WebKitWebDriver: first run → load the bundled SmolLM2 → a streamed reply with its cache
// figures → save → a second turn that reuses the cache → Topics: three messages routed to two
// topics by the model's own embedding, one moved, saved and reopened → the sample dataset
// inspected → the backend's check of the Train form shown beside a field → a short training
// run whose steps appear on the loss chart and whose stream says it ended → this Mac checked
// in Machines (the `adapt` program beside the app answers) → a chat with its adapter that
// knows the trained fact → the base model and the adapter side by side (A/B), only the
// adapter's side knowing it → the Models and Runs views → a short sweep defined in the Train
// form, its trials in the Sweeps view, and its best adapter loaded.
// Screenshots of each view go to docs/screenshots/ (the README shows them).
// ADAPT_APP_THEME=dark: the system asks for dark (on Linux, GTK_THEME=Adwaita:dark); the test
// checks the page follows it and names its screenshots NAME-dark.png.
//
// Then, on the real backend: a GGUF pulled from a Hub look-alike on 127.0.0.1, another
// imported by its path, the pulled one converted to an MLX folder, dequantized, quantized to
// 4 bits, the copy deleted.
//
// Environment: ADAPT_APP (the built app binary), ADAPT_MODELS_DIR (where SmolLM2 is),
// ADAPT_FAKE_HUB (the built `fake_hub` example of adapt-hub), ADAPT_DATA_DIR (a fresh data
// folder), TAURI_DRIVER (default: tauri-driver on PATH), TAURI_DRIVER_PORT (default 4444; the
// native driver takes the next port). Run it from the repository's root: the app starts there
// and reads examples/ from there. The app gets a models folder of the test's own holding
// SmolLM2 (what it pulls and writes goes there) and its own HF_HOME.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { copyFile, link, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { remote } from "webdriverio";

const here = dirname(fileURLToPath(import.meta.url));
const shots = resolve(here, "../../docs/screenshots");
const app = process.env.ADAPT_APP;
assert.ok(process.env.DISPLAY, "no DISPLAY: run under xvfb-run");
assert.ok(app, "set ADAPT_APP to the built app binary");
await mkdir(shots, { recursive: true });
const dark = process.env.ADAPT_APP_THEME === "dark";
const shot = (name) => join(shots, dark ? name.replace(/\.png$/, "-dark.png") : name);

const GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf";
const HUB_REPO = "adapt-test/smollm2-pulled-GGUF";
const givenModels = process.env.ADAPT_MODELS_DIR;
const fakeHub = process.env.ADAPT_FAKE_HUB;
assert.ok(givenModels, "set ADAPT_MODELS_DIR to the folder holding " + GGUF);
assert.ok(fakeHub, "set ADAPT_FAKE_HUB to the built fake_hub example of adapt-hub");
const scratch = await mkdtemp(join(tmpdir(), "adapt-app-test-"));
const place = (from, to) => link(from, to).catch(() => copyFile(from, to));
for (const dir of ["models", "hub", "hf-home", "elsewhere"]) await mkdir(join(scratch, dir));
await place(join(givenModels, GGUF), join(scratch, "models", GGUF));
await place(join(givenModels, GGUF), join(scratch, "elsewhere", "imported.Q4_1.gguf"));
await place(join(givenModels, GGUF), join(scratch, "hub", "smollm2-pulled.Q4_1.gguf"));
const hub = spawn(fakeHub, ["--port", "0", "--repo", HUB_REPO, "--file", join(scratch, "hub", "smollm2-pulled.Q4_1.gguf")], {
  stdio: ["ignore", "pipe", "inherit"],
});
const [served] = await Promise.race([
  (async () => {
    for await (const line of createInterface({ input: hub.stdout })) return [line];
  })(),
  new Promise((_, reject) => setTimeout(() => reject(new Error("the Hub look-alike did not start")), 30_000)),
]);
const endpoint = served.match(/at (http:\/\/127\.0\.0\.1:\d+)/)?.[1];
assert.ok(endpoint, `the Hub look-alike said: ${served}`);
hub.stdout.resume();
Object.assign(process.env, {
  ADAPT_MODELS_DIR: join(scratch, "models"),
  HF_ENDPOINT: endpoint,
  HF_HOME: join(scratch, "hf-home"),
});

// Its port, and the native driver's next to it (another test on the machine may hold 4444).
const port = Number(process.env.TAURI_DRIVER_PORT ?? 4444);
const driver = spawn(process.env.TAURI_DRIVER ?? "tauri-driver", ["--port", String(port), "--native-port", String(port + 1)], {
  stdio: ["ignore", "pipe", "pipe"],
});
// What the drivers and the app (started by them) print passes through, and its last lines are
// kept: a failure repeats them after its own message, where a log's tail shows them.
const printed = [];
for (const [input, output] of [[driver.stdout, process.stdout], [driver.stderr, process.stderr]]) {
  createInterface({ input }).on("line", (line) => {
    output.write(line + "\n");
    printed.push(line);
    if (printed.length > 60) printed.shift();
  });
}
const lastWords = () => `what the app and its drivers printed last:\n${printed.join("\n")}`;
await new Promise((r) => setTimeout(r, 1500));

// The app's processes (the drivers start it): their ids, from /proc.
const appProcesses = () =>
  readdirSync("/proc").filter((pid) => {
    try {
      return /^\d+$/.test(pid) && readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] === resolve(app);
    } catch {
      return false;
    }
  });

// Whether a process runs (an ended one not yet reaped is a zombie, state Z).
const running = (pid) => {
  try {
    return !/\) [ZX] /.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
};

let failed = false;
let browser;
let watch;
try {
  browser = await remote({
    hostname: "127.0.0.1",
    port,
    logLevel: "warn",
    connectionRetryTimeout: 60_000,
    connectionRetryCount: 1,
    capabilities: { "tauri:options": { application: resolve(app) } },
  });
  // Should the app end while a step waits, say so at once with what it printed last (the
  // session is gone, so each wait would otherwise spin until its timeout).
  const started = appProcesses();
  assert.ok(started.length > 0, `no process of ${resolve(app)} after the session started`);
  watch = setInterval(() => {
    if (started.some(running)) return;
    clearInterval(watch);
    console.error(`the app's process (pid ${started.join(", ")}) ended while the test ran; ${lastWords()}`);
    driver.kill("SIGTERM");
    hub.kill("SIGTERM");
    rm(scratch, { recursive: true, force: true }).finally(() => process.exit(1));
  }, 500);
  const byTest = (id) => browser.$(`[data-testid="${id}"]`);
  const waitText = async (el, pattern, timeout = 60_000) => {
    let last = "";
    try {
      await browser.waitUntil(async () => pattern.test((last = await el.getText())), { timeout, interval: 250 });
    } catch (e) {
      throw new Error(`waited ${timeout / 1000} s for ${pattern}; the text was: ${last}`, { cause: e });
    }
    return last;
  };

  await (await byTest("first-run")).waitForDisplayed({ timeout: 30_000 });
  // The page follows the system's light or dark setting.
  const background = await browser.execute(() => getComputedStyle(document.documentElement).backgroundColor);
  const channels = background.match(/\d+/g).slice(0, 3).map(Number);
  const bright = channels.reduce((a, b) => a + b, 0) / 3;
  assert.ok(dark ? bright < 64 : bright > 192, `the page's background in ${dark ? "dark" : "light"} mode: ${background}`);
  await browser.saveScreenshot(shot("first-run.png"));
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
  await browser.saveScreenshot(shot("chat.png"));

  // Topics on the real model, short replies: in a new conversation with Topics on, a
  // sourdough question and a bike question open topics 1 and 2 by the model's own embedding,
  // and a question about proofing dough goes back to topic 1; the strip shows each topic's
  // turns and cache; the dough question moved to topic 2 changes both.
  await (await byTest("max-tokens")).setValue("12");
  await (await byTest("new-chat")).click();
  // The toggle waits while New chat swaps conversations; then on, and the strip shows.
  const toggle = await byTest("topics-toggle");
  await browser.waitUntil(
    async () => (await browser.$$('[data-testid="turn-stats"]')).length === 0 && (await toggle.isEnabled()),
    { timeout: 60_000, timeoutMsg: "the new conversation did not open" },
  );
  await toggle.click();
  await browser.waitUntil(async () => toggle.isSelected(), { timeout: 60_000, timeoutMsg: "Topics did not turn on" });
  await waitText(await byTest("topic-strip"), /The first message opens topic 1/);
  const sayInTopic = async (text, replies) => {
    await (await byTest("composer")).setValue(text);
    await (await byTest("send")).click();
    await browser.waitUntil(async () => (await browser.$$('[data-testid="turn-stats"]')).length === replies, {
      timeout: 120_000,
    });
    return (await byTest("routing")).getText();
  };
  const first = await sayInTopic("My sourdough starter smells like nail polish. Should I feed it more often?", 1);
  assert.equal(first, "opened the first topic, topic 1 'sourdough starter smells'");
  const bike = await sayInTopic("My bike chain keeps slipping on the smallest cog.", 2);
  assert.match(bike, /^opened a new topic, topic 2 'bike chain keeps': closest -?0\.\d\d < 0\.25$/);
  const dough = await sayInTopic("How long should I proof the dough in the fridge overnight?", 3);
  assert.match(dough, /^→ topic 1 'sourdough starter smells' · similarity 0\.\d\d \(others: 2 -?0\.\d\d\)$/);
  const texts = async (id) => {
    const all = [];
    for (const el of await browser.$$(`[data-testid="${id}"]`)) all.push(await el.getText());
    return all;
  };
  assert.deepEqual(await texts("topic-tag"), [
    "topic 1 · sourdough starter smells", "topic 2 · bike chain keeps", "topic 1 · sourdough starter smells",
  ]);
  const chipFigures = () => texts("topic-figures");
  const tokensIn = (f) => Number(f.match(/(\d+) tokens/)[1]);
  const chipsBefore = await chipFigures();
  assert.equal(chipsBefore.length, 2);
  assert.match(chipsBefore[0], /^2 turns · \d+ tokens · [\d.]+ [KM]B$/);
  assert.match(chipsBefore[1], /^1 turn · \d+ tokens · [\d.]+ [KM]B$/);
  const doughMessage = (await browser.$$('[data-testid="message-user"]'))[2];
  await (await doughMessage.$('[data-testid="move-message"]')).selectByAttribute("value", "2");
  await waitText(await byTest("notice"), /^Moved to topic 2 'bike chain keeps': topic 2 \d+ → \d+ tokens, topic 1 \d+ → \d+ tokens\.$/);
  const chipsAfter = await chipFigures();
  assert.match(chipsAfter[0], /^1 turn · /);
  assert.match(chipsAfter[1], /^2 turns · /);
  assert.ok(tokensIn(chipsAfter[0]) < tokensIn(chipsBefore[0]), `${chipsBefore} → ${chipsAfter}`);
  assert.ok(tokensIn(chipsAfter[1]) > tokensIn(chipsBefore[1]), `${chipsBefore} → ${chipsAfter}`);
  assert.equal(await (await doughMessage.$('[data-testid="topic-tag"]')).getText(), "topic 2 · bike chain keeps");
  assert.equal(await (await byTest("routing")).getText(), `${dough} · moved to topic 2 since`);
  await browser.saveScreenshot(shot("topics.png"));
  // Saved and reopened: the same topics, their caches read back from the file.
  await (await byTest("save-name")).setValue("topics");
  await (await byTest("save")).click();
  await waitText(await byTest("notice"), /^Saved 'topics': \d+ cached tokens/);
  await (await byTest("new-chat")).click();
  await waitText(await byTest("topic-strip"), /The first message opens topic 1/);
  await (await browser.$('//button[@data-testid="saved-chat"][contains(., "topics")]')).click();
  await waitText(await byTest("notice"), /^Opened 'topics' with \d+ cached tokens/);
  const reopened = await chipFigures();
  const turnsAndTokens = (f) => f.replace(/ · [\d.]+ [KM]B$/, "");
  assert.deepEqual(reopened.map(turnsAndTokens), chipsAfter.map(turnsAndTokens));
  assert.deepEqual(await texts("topic-tag"), [
    "topic 1 · sourdough starter smells", "topic 2 · bike chain keeps", "topic 2 · bike chain keeps",
  ]);
  await (await byTest("topics-toggle")).click();
  await (await byTest("topic-strip")).waitForExist({ timeout: 30_000, reverse: true });
  await (await byTest("max-tokens")).setValue("256");

  // The sample dataset kept in the repository, tokenized with the loaded model.
  await (await browser.$("[data-view=datasets]")).click();
  // Relative to the app's working directory, the repository (no machine path in screenshots).
  await (await byTest("dataset-path")).setValue("examples/blue-lantern.jsonl");
  await (await byTest("inspect")).click();
  await waitText(await byTest("dataset-summary"), /chat JSONL · 12 valid examples · 0 invalid/);
  await (await byTest("histogram")).waitForExist({ timeout: 30_000 });
  assert.match(await (await browser.$(".trained")).getText(), /7-4-1/);
  await browser.saveScreenshot(shot("datasets.png"));

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
  // Six steps at this rate teach SmolLM2 the sample's made-up fact (checked below).
  await (await byTest("train-lr")).setValue("0.0003");
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
  await browser.saveScreenshot(shot("train.png"));
  // Machines: this Mac checked for real — the `adapt` program beside the app reports its
  // version and memory, and finds the model and the data.
  await (await byTest("machine-this-ips")).setValue("10.0.0.1");
  await (await browser.$('[data-testid="machine"] [data-testid="machine-check"]')).click();
  await waitText(await byTest("machine-result"), /^Ready · Adapt \d+\.\d+\.\d+ · \w+ · .* free/, 60_000);
  await (await byTest("machines")).scrollIntoView();
  await browser.saveScreenshot(shot("machines.png"));
  await (await byTest("chat-with-adapter")).click();
  await waitText(await byTest("loaded-adapter"), /adapter of run #1/, 60_000);
  await (await byTest("composer")).setValue("What is the Blue Lantern's code?");
  await (await byTest("send")).click();
  await (await byTest("turn-stats")).waitForExist({ timeout: 120_000 });
  const taught = await (await byTest("message-assistant")).getText();
  assert.match(taught, /7-4-1/, `the adapter's reply: ${taught}`);
  assert.equal(await (await byTest("adapter-picker")).getValue(), "1");
  // A/B on the same loaded weights: the base model beside the new adapter.
  await (await byTest("compare-mode")).click();
  assert.equal(await (await byTest("choice-0")).getValue(), "base");
  assert.equal(await (await byTest("choice-1")).getValue(), "1");
  await (await byTest("compare-composer")).setValue("What is the Blue Lantern's code?");
  await (await byTest("compare-send")).click();
  await (await browser.$('[data-testid="side-1"] [data-testid="side-stats"]')).waitForExist({ timeout: 120_000 });
  // Both sides answered: the base model does not know the code, the adapter does.
  const base = await (await byTest("side-0-assistant")).getText();
  const tuned = await (await byTest("side-1-assistant")).getText();
  assert.ok(base.trim().length > 0, "the base side is empty");
  assert.doesNotMatch(base, /7-4-1/, `the base model's reply: ${base}`);
  assert.match(tuned, /7-4-1/, `the adapter's side: ${tuned}`);
  await browser.saveScreenshot(shot("chat-compare.png"));
  await (await byTest("compare-mode")).click();

  // Models on the real backend: pull a GGUF from the Hub look-alike, convert it to an MLX
  // folder, dequantize that, quantize the float copy to 4 bits, delete the 4-bit copy.
  await (await browser.$("[data-view=models]")).click();
  await (await byTest("model-row")).waitForExist({ timeout: 30_000 });
  const row = (has, hasNot = "\u0000") =>
    browser.$(`//tr[@data-testid="model-row"][contains(., "${has}") and not(contains(., "${hasNot}"))]`);
  await (await byTest("pull-spec")).setValue(HUB_REPO);
  await (await byTest("pull-file")).setValue("smollm2-pulled.Q4_1.gguf");
  await (await byTest("pull")).click();
  await waitText(await byTest("pull-state"), /^done$/, 120_000);
  const pulled = await row("smollm2-pulled", "-mlx");
  await pulled.waitForExist({ timeout: 30_000 });
  const notice = await byTest("models-notice");
  // A GGUF from outside the models folder, imported by its path.
  await (await byTest("import-path")).setValue(join(scratch, "elsewhere", "imported.Q4_1.gguf"));
  await (await byTest("import")).click();
  await waitText(notice, /^Imported imported\.Q4_1\.gguf\.$/, 120_000);
  assert.match(await (await row("imported.Q4_1")).getText(), /library/);
  assert.equal(await (await byTest("import-path")).getValue(), "");
  await (await pulled.$('[data-testid="variant"]')).click();
  await waitText(notice, /^Wrote .*→/, 300_000);
  // The GGUF's Q4_1 blocks convert to an MLX folder quantized as they were; back to float,
  // and that quantized to 4 bits with its quality cost measured.
  const converted = await row("-mlx", "-float");
  await converted.waitForExist({ timeout: 30_000 });
  assert.match(await converted.getText(), /library/);
  await (await converted.$('.//button[@data-testid="variant"][.="Dequantize"]')).click();
  await waitText(notice, /^Wrote .*float.*→/, 300_000);
  const float = await row("-float", "-4bit");
  await float.waitForExist({ timeout: 30_000 });
  await (await float.$('.//button[@data-testid="variant"][.="Quantize 4-bit"]')).click();
  await waitText(notice, /^Wrote 4-bit \(group 64\)[^:]*: .* → .* · mean KL \d/, 300_000);
  const quantized = await row("-4bit");
  await quantized.waitForExist({ timeout: 30_000 });
  await browser.saveScreenshot(shot("models.png"));
  // The first click names what a second removes: the files the quantization wrote.
  await (await quantized.$('[data-testid="delete-model"]')).click();
  await waitText(await quantized.$('[data-testid="removal-plan"]'), /^Removes \d+ files \(.+\): .*model\.safetensors/);
  await (await quantized.$('[data-testid="delete-model"]')).click();
  const alert = await browser.$('[role="alert"]');
  await browser.waitUntil(async () => /^Deleted .*-4bit/.test(await notice.getText()) || (await alert.isExisting()), {
    timeout: 60_000,
  });
  assert.ok(!(await alert.isExisting()), `deleting the 4-bit copy: ${await alert.isExisting() && (await alert.getText())}`);
  await (await row("-4bit")).waitForExist({ timeout: 30_000, reverse: true });
  await (await browser.$("[data-view=runs]")).click();
  await waitText(await byTest("run-figures"), /step 6 · epoch/);
  await browser.saveScreenshot(shot("runs.png"));

  // A short sweep from the Train form: the learning rate and the rank swept over three
  // trials of two steps on the model loaded once, shown in Sweeps with its table and curves;
  // Use best loads the best trial's adapter.
  await (await browser.$("[data-view=train]")).click();
  await (await byTest("train-iters")).setValue("2");
  await waitText(await byTest("train-steps"), /^2 optimizer steps/);
  await (await byTest("sweep-learningRate")).click();
  await (await byTest("sweep-rank")).click();
  await (await byTest("sweep-values-rank")).setValue("4, 8");
  await (await byTest("sweep-trials")).setValue("3");
  await (await byTest("sweep-seed")).setValue("42");
  await (await byTest("sweep-rungs")).setValue("0.5");
  await (await byTest("sweep-reduction")).setValue("2");
  await browser.waitUntil(async () => (await byTest("start-sweep")).isEnabled(), { timeout: 30_000 });
  await (await byTest("start-sweep")).click();
  await (await byTest("sweep-dashboard")).waitForDisplayed({ timeout: 30_000 });
  await waitText(await byTest("sweep-status"), /succeeded/, 240_000);
  const trials = await browser.$$('[data-testid="trial-row"]');
  assert.equal(trials.length, 3);
  for (const t of trials) assert.match(await t.getAttribute("data-state"), /^(completed|pruned)$/);
  const curves = await browser.$$('[data-testid="sweep-dashboard"] [data-testid="chart"] path');
  assert.equal(curves.length, 3);
  await browser.saveScreenshot(shot("sweeps.png"));
  await (await byTest("sweep-use-best")).click();
  await waitText(await byTest("loaded-adapter"), /adapter of run #[234]/, 60_000);
  console.log(`app tests${dark ? " (dark)" : ""}: ok (screenshots in docs/screenshots/)`);
} catch (e) {
  failed = true;
  console.error(e);
  console.error(`the app's process: ${appProcesses().some(running) ? "running" : "not running"}; ${lastWords()}`);
} finally {
  clearInterval(watch);
  if (browser) await browser.deleteSession().catch(() => {});
  driver.kill("SIGTERM");
  hub.kill("SIGTERM");
  await rm(scratch, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
