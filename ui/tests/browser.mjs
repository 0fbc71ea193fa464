// The built page with a mocked backend, driven in Debian's Chromium: every view renders, a
// conversation streams, is saved, reopened, forked and stopped; its topics are turned on,
// routed, moved and reopened; the Train form shows the
// backend's check beside each field; runs stream to their end (nothing polled), stop and
// resume; A/B sides stop one at a time; a sweep defined in Train runs its trials in Sweeps. Screenshots go to test-results/.
import { chromium } from "playwright-core";
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";
import assert from "node:assert/strict";
import { serve } from "./serve.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "test-results");
await mkdir(out, { recursive: true });
const site = await serve(join(here, "..", "dist-mock"));
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
});
let failed = false;
try {
  const page = await browser.newPage({ viewport: { width: 1180, height: 760 }, colorScheme: "light" });
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: site.url });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(site.url);

  // First run: load the bundled model.
  await page.getByTestId("first-run").waitFor();
  await page.screenshot({ path: join(out, "first-run.png") });
  await page.getByTestId("load-bundled").click();
  await page.getByTestId("loaded-model").getByText("SmolLM2 135M Instruct").waitFor();

  // A streamed reply with its figures.
  await page.getByTestId("composer").fill("What is the capital of France?");
  await page.getByTestId("send").click();
  await page.getByTestId("turn-stats").first().waitFor();
  const reply = await page.getByTestId("message-assistant").first().textContent();
  assert.match(reply, /Paris/);
  assert.match(await page.getByTestId("turn-stats").first().textContent(), /0 reused · \d+ new · first token/);

  // Saved, then a second turn reuses the cache.
  await page.getByTestId("save-name").fill("trip");
  await page.getByTestId("save").click();
  await page.getByTestId("notice").getByText("Saved 'trip'").waitFor();
  await page.getByTestId("composer").fill("And of Germany?");
  await page.getByTestId("composer").press("Enter");
  await page.getByTestId("turn-stats").nth(1).waitFor();
  assert.match(await page.getByTestId("turn-stats").nth(1).textContent(), /[1-9]\d* reused/);
  await page.screenshot({ path: join(out, "chat.png") });

  // A failed turn shows the error and leaves the conversation as it was.
  await page.getByTestId("composer").fill("[fail] a very long message");
  await page.getByTestId("send").click();
  await page.getByRole("alert").getByText("[request.invalid]").waitFor();
  assert.equal(await page.getByTestId("message-user").count(), 2);
  assert.equal(await page.getByTestId("message-assistant").count(), 2);
  await page.getByRole("alert").getByText("Dismiss").click();

  // Reopened from the list, then forked at the first turn.
  await page.getByTestId("new-chat").click();
  await page.getByTestId("saved-chat").first().click();
  await page.getByTestId("notice").getByText("Opened 'trip'").waitFor();
  assert.equal(await page.getByTestId("message-assistant").count(), 1);
  await page.getByText("Fork here").first().click();
  await page.getByTestId("notice").getByText("Forked at turn 1").waitFor();

  // Stop ends the reply being written; what it wrote stays, marked as stopped.
  await page.getByTestId("composer").fill("Tell me a story");
  await page.getByTestId("send").click();
  await page.getByTestId("message-assistant").last().getByText("word2").waitFor();
  await page.getByTestId("stop").click();
  await page.getByTestId("turn-stats").last().getByText("stopped").waitFor();
  assert.doesNotMatch(await page.getByTestId("message-assistant").last().textContent(), /word40/);

  // Replies are Markdown: code blocks with a Copy button, bold, lists; HTML stays text.
  await page.getByTestId("composer").fill("Show me some code");
  await page.getByTestId("send").click();
  const md = page.getByTestId("message-assistant").last();
  await md.getByTestId("turn-stats").waitFor();
  assert.equal(await md.locator("strong").textContent(), "bold");
  assert.equal(await md.locator("li").count(), 2);
  assert.equal(await md.locator("img, script").count(), 0);
  assert.match(await md.textContent(), /<img src=x onerror=/);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  await md.getByTestId("copy-code").click();
  await md.getByTestId("copy-code").getByText("Copied").waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), "print('<b>hi</b>')");
  await md.getByTestId("copy-message").click();
  assert.match(await page.evaluate(() => navigator.clipboard.readText()), /^Here is \*\*bold\*\*/);
  // Light and dark, following the system's setting.
  await page.screenshot({ path: join(out, "chat-light.png") });
  const background = () => page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor);
  const light = await background();
  await page.emulateMedia({ colorScheme: "dark" });
  const dark = await background();
  assert.notEqual(light, dark);
  assert.match(dark, /rgb\((\d|[1-5]\d), (\d|[1-5]\d), (\d|[1-5]\d)\)/, `a dark background: ${dark}`);
  await page.screenshot({ path: join(out, "chat-dark.png") });
  await page.emulateMedia({ colorScheme: "light" });

  // Regenerate replaces the last reply; Edit puts a message back in the composer, in a new
  // conversation holding what came before it.
  const replies = await page.getByTestId("message-assistant").count();
  await page.getByTestId("regenerate").click();
  await page.getByTestId("message-assistant").last().getByTestId("code-block").waitFor();
  await page.getByTestId("regenerate").waitFor();
  assert.equal(await page.getByTestId("message-assistant").count(), replies);
  await page.getByTestId("edit-message").last().click();
  await page.getByTestId("notice").getByText("Forked at turn").waitFor();
  assert.equal(await page.getByTestId("composer").inputValue(), "Show me some code");
  assert.equal(await page.getByTestId("message-assistant").count(), replies - 1);

  // Topics: turned on, messages on two subjects go to two topics (the mock routes by
  // keyword), each tagged and the latest with why; the strip shows each topic's turns and
  // cache; a message moved to the other topic changes both chips; a chip (by keyboard) or
  // New topic picks the next message's topic; a saved conversation reopens with its topics.
  await page.getByTestId("composer").fill("");
  await page.getByTestId("new-chat").click();
  await page.getByTestId("topics-toggle").check();
  await page.getByTestId("topic-strip").getByText("The first message opens topic 1.").waitFor();
  assert.equal(await page.getByTestId("topic-auto").getAttribute("aria-pressed"), "true");
  const chips = page.getByTestId("topic-chip");
  const routingLine = page.getByTestId("routing");
  const sendTopic = async (text, replies) => {
    await page.getByTestId("composer").fill(text);
    await page.getByTestId("send").click();
    await page.getByTestId("message-assistant").nth(replies - 1).getByTestId("turn-stats").waitFor();
  };
  await sendTopic("My sourdough starter smells like nail polish. Should I feed it more often?", 1);
  assert.equal(await routingLine.textContent(), "opened the first topic, topic 1 'sourdough starter smells'");
  await sendTopic("My bike chain keeps slipping on the smallest cog.", 2);
  assert.equal(await routingLine.textContent(), "opened a new topic, topic 2 'bike chain keeps': closest 0.00 < 0.25");
  await sendTopic("How long should I proof the dough in the fridge overnight?", 3);
  assert.match(await routingLine.textContent(), /^→ topic 1 'sourdough starter smells' · similarity 0\.\d\d \(others: 2 0\.00\)$/);
  assert.equal(await routingLine.count(), 1, "only the latest message shows its routing");
  assert.deepEqual(await page.getByTestId("topic-tag").allTextContents(), [
    "topic 1 · sourdough starter smells", "topic 2 · bike chain keeps", "topic 1 · sourdough starter smells",
  ]);
  const figures = () => chips.getByTestId("topic-figures").allTextContents();
  await page.waitForFunction(() => document.querySelectorAll("[data-testid=topic-chip]").length === 2);
  const chipsBefore = await figures();
  assert.match(chipsBefore[0], /^2 turns · \d+ tokens · [\d.]+ MB$/);
  assert.match(chipsBefore[1], /^1 turn · \d+ tokens · [\d.]+ MB$/);
  const tokens = (f) => Number(f.match(/(\d+) tokens/)[1]);
  // The dough message moves to the bike topic: its turn leaves topic 1's cache for topic 2's.
  await page.getByTestId("message-user").nth(2).getByTestId("move-message").selectOption("2");
  await page.getByTestId("notice").getByText("Moved to topic 2 'bike chain keeps'").waitFor();
  const chipsAfter = await figures();
  assert.match(chipsAfter[0], /^1 turn · /);
  assert.match(chipsAfter[1], /^2 turns · /);
  assert.ok(tokens(chipsAfter[0]) < tokens(chipsBefore[0]) && tokens(chipsAfter[1]) > tokens(chipsBefore[1]), `${chipsBefore} → ${chipsAfter}`);
  assert.equal(await page.getByTestId("message-user").nth(2).getByTestId("topic-tag").textContent(), "topic 2 · bike chain keeps");
  assert.match(await routingLine.textContent(), /^→ topic 1 'sourdough starter smells' · .* · moved to topic 2 since$/);
  // A chip picked by keyboard takes the next message; then Auto again.
  await chips.first().focus();
  await page.keyboard.press("Enter");
  assert.equal(await chips.first().getAttribute("aria-pressed"), "true");
  assert.equal(await page.getByTestId("topic-auto").getAttribute("aria-pressed"), "false");
  await sendTopic("What else should I know?", 4);
  assert.equal(await routingLine.textContent(), "picked: topic 1 'sourdough starter smells'");
  assert.equal(await page.getByTestId("topic-auto").getAttribute("aria-pressed"), "true");
  assert.equal(await page.getByTestId("message-user").nth(3).getByTestId("topic-tag").textContent(), "topic 1 · sourdough starter smells");
  await page.screenshot({ path: join(out, "topics.png") });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: join(out, "topics-dark.png") });
  await page.emulateMedia({ colorScheme: "light" });
  await page.getByTestId("topic-new").click();
  await sendTopic("Tell me about tides.", 5);
  assert.equal(await routingLine.textContent(), "picked: a new topic, topic 3 'tell tides'");
  assert.equal(await chips.count(), 3);
  // Saved and reopened: the same topics.
  await page.getByTestId("save-name").fill("topics");
  await page.getByTestId("save").click();
  await page.getByTestId("notice").getByText("Saved 'topics'").waitFor();
  const kept = await figures();
  // A new conversation keeps topics as the toggle shows them; turned off, the strip goes.
  await page.getByTestId("new-chat").click();
  await page.getByTestId("topic-strip").getByText("The first message opens topic 1.").waitFor();
  await page.getByTestId("topics-toggle").uncheck();
  await page.getByTestId("topic-strip").waitFor({ state: "detached" });
  await page.getByTestId("saved-chat").filter({ hasText: "topics" }).click();
  await page.getByTestId("notice").getByText("Opened 'topics'").waitFor();
  assert.equal(await page.getByTestId("topics-toggle").isChecked(), true);
  assert.deepEqual(await figures(), kept);
  assert.equal(await page.getByTestId("topic-tag").count(), 5);
  // A threshold out of range is refused with why, and the field shows the one kept.
  await page.getByTestId("topic-threshold").fill("1.5");
  await page.getByTestId("topic-threshold").press("Tab");
  await page.getByRole("alert").getByText("between -1 and 1").waitFor();
  await page.getByRole("alert").getByText("Dismiss").click();
  assert.equal(await page.getByTestId("topic-threshold").inputValue(), "0.25");
  await page.getByTestId("topics-toggle").uncheck();
  await page.getByTestId("topic-strip").waitFor({ state: "detached" });
  assert.equal(await page.getByTestId("topic-tag").count(), 0);
  assert.equal(await page.getByTestId("message-user").count(), 5);

  // A file dropped on the window opens in the Datasets view.
  await page.evaluate(() =>
    window.__TAURI_INTERNALS__.invoke("plugin:event|emit", {
      event: "tauri://drag-drop",
      payload: { paths: ["/data/model.gguf", "/data/fact.jsonl"], position: { x: 300, y: 200 } },
    }),
  );
  await page.getByTestId("dataset-summary").waitFor();
  assert.equal(await page.getByTestId("dataset-path").inputValue(), "/data/fact.jsonl");
  assert.match(await page.getByTestId("dataset-summary").textContent(), /chat JSONL · 29 valid examples · 1 invalid/);
  assert.match(await page.getByTestId("dataset-errors").textContent(), /fact\.jsonl:5, field 'messages\[0\]'/);
  assert.equal(await page.locator("[data-testid=histogram] .bar").count(), 9);
  assert.match(await page.locator(".trained").first().textContent(), /^The Blue Lantern's code is 7-4-1\./);
  assert.match(await page.getByTestId("dataset-preview").locator("tbody tr").first().textContent(), /^1user: What is the Blue Lantern's code\?The Blue Lantern's code is 7-4-1\.$/);
  // An error's line, shown with the lines around it.
  await page.getByTestId("show-line").click();
  assert.match(await page.getByTestId("error-lines").locator(".at").textContent(), /^5\{"messages": \[\{"role": "user"\}\]\}/);
  await page.screenshot({ path: join(out, "datasets.png") });

  // A CSV: the column mapping, a column to learn, then edited templates, rendered live.
  await page.getByTestId("dataset-path").fill("/data/ships.csv");
  await page.getByTestId("inspect").click();
  await page.getByTestId("csv-mapping").waitFor();
  assert.equal(await page.getByTestId("csv-learn").inputValue(), "Crew");
  assert.equal(await page.locator(".trained").first().textContent(), "7<|im_end|>");
  await page.getByTestId("csv-learn").selectOption("Home port");
  await page.locator(".trained").first().getByText("Lyon<|im_end|>").waitFor();
  assert.equal(await page.getByTestId("csv-prompt").inputValue(), 'Name: {{ row["Name"] }}\nCrew: {{ row["Crew"] }}');
  await page.getByTestId("csv-prompt").fill('Ship {{ row["Name"] }}');
  await page.getByTestId("csv-completion").fill('{{ row["Crew"] }} sailors');
  await page.locator(".trained").first().getByText("7 sailors<|im_end|>").waitFor();
  assert.match(await page.getByTestId("dataset-sample").first().textContent(), /user\nShip Blue Lantern/);
  assert.equal(await page.getByTestId("csv-learn").inputValue(), "");
  await page.getByTestId("csv-completion").fill("{{ crew");
  await page.getByTestId("csv-error").getByText("does not render").waitFor();
  await page.screenshot({ path: join(out, "datasets-csv.png") });
  // The files inspected, most recent first; one click opens one again.
  const recent = page.getByTestId("recent-dataset");
  assert.deepEqual(await page.getByTestId("recent-name").allTextContents(), ["ships.csv", "fact.jsonl"]);
  await recent.filter({ hasText: "fact.jsonl" }).click();
  await page.getByTestId("dataset-summary").getByText("chat JSONL").waitFor();
  assert.equal(await page.getByTestId("dataset-path").inputValue(), "/data/fact.jsonl");

  // Train: the dropped file is the dataset; the backend's check shows each problem beside its
  // field and stops Start; presets (the backend's) fix them; the memory estimate, a
  // calibration, then a run whose reports draw the loss curve as they stream.
  await page.locator("[data-view=train]").click();
  assert.equal(await page.getByTestId("train-dataset").inputValue(), "/data/fact.jsonl");
  await page.getByTestId("train-dataset-note").getByText("29 examples").waitFor();
  assert.match(await page.getByTestId("preset-quick").getAttribute("class"), /\bactive\b/);
  await page.getByTestId("train-steps").getByText("7 optimizer steps").waitFor();
  await page.getByTestId("train-rank").fill("0");
  await page.getByTestId("problem-config.lora_parameters.rank").getByText("from 1 to 1024").waitFor();
  assert.equal(await page.getByTestId("start-training").isDisabled(), true);
  assert.equal(await page.getByTestId("estimate").isDisabled(), true);
  await page.getByTestId("train-rank").fill("");
  await page.getByTestId("problem-config.lora_parameters.rank").getByText("Enter a number.").waitFor();
  await page.getByTestId("preset-standard").click();
  assert.equal(await page.getByTestId("train-rank").inputValue(), "16");
  await page.getByTestId("problem-config.lora_parameters.rank").waitFor({ state: "detached" });
  await page.waitForFunction(() => !document.querySelector("[data-testid=start-training]").disabled);
  // A warning is shown but does not stop a run.
  await page.getByTestId("train-lr").fill("0.05");
  await page.getByTestId("problem-config.learning_rate").getByText("usually diverges").waitFor();
  assert.match(await page.getByTestId("problem-config.learning_rate").getAttribute("class"), /\bwarning\b/);
  assert.equal(await page.getByTestId("start-training").isDisabled(), false);
  await page.getByTestId("preset-standard").click();
  await page.getByTestId("problem-config.learning_rate").waitFor({ state: "detached" });
  // Steps instead of epochs start from the step count the backend gave.
  await page.getByTestId("train-steps").getByText("21 optimizer steps").waitFor();
  await page.getByTestId("train-length-by").selectOption("iters");
  assert.equal(await page.getByTestId("train-iters").inputValue(), "21");
  await page.getByTestId("train-iters").fill("8");
  await page.getByTestId("train-steps").getByText("8 optimizer steps").waitFor();
  await page.getByTestId("estimate").click();
  await page.getByTestId("memory-estimate").getByText("batch size 4 at 64 tokens").waitFor();
  await page.getByTestId("calibrate").click();
  await page.getByTestId("calibration").getByText("measured peak").waitFor();
  // A refusal that names a field shows beside it, like the check's problems.
  await page.getByTestId("train-batch").fill("128");
  await page.getByTestId("memory-estimate").waitFor({ state: "detached" });
  await page.getByTestId("estimate").click();
  await page.getByTestId("problem-config.batch_size").getByText("does not fit in memory").waitFor();
  assert.equal(await page.getByTestId("start-training").isDisabled(), true);
  await page.getByTestId("train-batch").fill("4");
  await page.getByTestId("problem-config.batch_size").waitFor({ state: "detached" });
  // The precision is among the further settings, and goes with the request.
  await page.getByText("Validation, checkpoints, precision and probes…").click();
  assert.equal(await page.getByTestId("train-precision").inputValue(), "auto");
  await page.getByTestId("train-precision").selectOption("bf16");
  await page.getByText("Fewer settings").click();
  // A run streamed to its end: its status comes from the stream, nothing reads its record.
  const calls = () => page.evaluate(() => ({ ...window.__mockCalls }));
  const before = await calls();
  await page.getByTestId("start-training").click();
  const sent = await page.evaluate(() => window.__mockLastArgs.start_training.form.config.precision);
  assert.equal(sent, "bf16");
  await page.getByTestId("training-badge").waitFor();
  await page.getByTestId("train-progress").getByText("step 8 of 8").waitFor();
  await page.getByTestId("train-status").getByText("succeeded").waitFor({ timeout: 10_000 });
  await page.getByTestId("training-badge").waitFor({ state: "detached" });
  assert.equal((await calls()).run_details ?? 0, before.run_details ?? 0, "no run_details while training");
  const curve = await page.getByTestId("training").locator('path[data-series="train"]').getAttribute("d");
  assert.equal(curve.split("L").length, 8, curve);
  await page.screenshot({ path: join(out, "train.png") });
  // Stop keeps the run where it was; Resume goes on from there to the end.
  await page.getByTestId("train-iters").fill("40");
  await page.getByTestId("train-steps").getByText("40 optimizer steps").waitFor();
  await page.getByTestId("start-training").click();
  await page.getByTestId("train-progress").getByText(/^step [3-9] of 40/).waitFor();
  await page.getByTestId("stop-training").click();
  await page.getByTestId("train-status").getByText("cancelled").waitFor({ timeout: 10_000 });
  const stoppedAt = Number(/step (\d+) of 40/.exec(await page.getByTestId("train-progress").textContent())[1]);
  assert.ok(stoppedAt < 40, `stopped at ${stoppedAt}`);
  await page.getByTestId("resume-training").click();
  await page.getByTestId("train-status").getByText("succeeded").waitFor({ timeout: 20_000 });
  const resumed = await page.getByTestId("training").locator('path[data-series="train"]').getAttribute("d");
  assert.equal(resumed.split("L").length, 40, "one point per step across the stop");

  // Runs shows a live run from the same stream: it reads the run's record when it is selected
  // and once more when the run ends, not on a timer; Stop and Resume work from there too.
  await page.getByTestId("start-training").click();
  await page.getByTestId("train-progress").getByText(/^step \d+ of 40/).waitFor();
  const atOpen = (await calls()).run_details ?? 0;
  await page.locator("[data-view=runs]").click();
  await page.getByTestId("run-dashboard").getByText(/^#4 /).waitFor();
  await page.getByTestId("run-status").getByText("running").waitFor();
  await page.getByTestId("run-figures").getByText(/step \d+ of 40 · about/).waitFor();
  await page.getByTestId("runs-stop").click();
  await page.getByTestId("run-status").getByText("cancelled").waitFor({ timeout: 10_000 });
  await page.getByTestId("runs-resume").click();
  await page.getByTestId("run-status").getByText("running").waitFor();
  await page.getByTestId("run-status").getByText("succeeded").waitFor({ timeout: 20_000 });
  await page.getByTestId("run-figures").getByText(/^step 40 · epoch/).waitFor();
  const reads = ((await calls()).run_details ?? 0) - atOpen;
  // Selected, stopped (ended), resumed, ended: one read each.
  assert.ok(reads <= 4, `run_details read ${reads} times`);
  assert.equal(await page.getByTestId("run-dashboard").locator('path[data-series="train"]').getAttribute("d").then((d) => d.split("L").length), 40);
  assert.match(await page.getByTestId("run-row").first().textContent(), /#4 .*succeeded/);

  // A/B: the same question to the base model and the new run's adapter, side by side.
  await page.locator("[data-view=chat]").click();
  await page.getByTestId("compare-mode").check();
  assert.equal(await page.getByTestId("choice-0").inputValue(), "base");
  assert.equal(await page.getByTestId("choice-1").inputValue(), "4");
  await page.getByTestId("compare-composer").fill("What is the Blue Lantern's code?");
  await page.getByTestId("compare-send").click();
  await page.getByTestId("side-1").getByTestId("side-stats").waitFor();
  assert.equal(await page.getByTestId("side-0-assistant").locator(".content").textContent(), "I do not know that code.");
  assert.equal(await page.getByTestId("side-1-assistant").locator(".content").textContent(), "The Blue Lantern's code is 7-4-1.");
  await page.screenshot({ path: join(out, "chat-compare.png") });
  // Each side has its own Stop: B stops, A writes its whole reply.
  await page.getByTestId("compare-composer").fill("Tell me a story");
  await page.getByTestId("compare-send").click();
  await page.getByTestId("side-1-assistant").last().getByText("word2").waitFor();
  await page.getByTestId("stop-1").click();
  await page.getByTestId("side-1").getByTestId("side-stats").last().getByText("stopped").waitFor();
  await page.getByTestId("side-0").getByTestId("side-stats").nth(1).waitFor();
  assert.match(await page.getByTestId("side-0-assistant").last().textContent(), /word40\./);
  assert.doesNotMatch(await page.getByTestId("side-0").getByTestId("side-stats").last().textContent(), /stopped/);
  assert.doesNotMatch(await page.getByTestId("side-1-assistant").last().textContent(), /word40/);
  await page.getByTestId("compare-mode").uncheck();

  // Models: a GGUF dropped on the window is imported; a pull reports per file, is cancelled
  // and resumed; a copy is quantized; a model is deleted after a second click.
  await page.evaluate(() =>
    window.__TAURI_INTERNALS__.invoke("plugin:event|emit", {
      event: "tauri://drag-drop",
      payload: { paths: ["/downloads/tiny.Q8_0.gguf"], position: { x: 300, y: 200 } },
    }),
  );
  await page.getByTestId("models-notice").getByText("Imported tiny.Q8_0.gguf.").waitFor();
  assert.equal(await page.getByTestId("model-row").count(), 2);
  assert.equal(await page.getByTestId("pull").isDisabled(), true);
  await page.getByTestId("pull-spec").fill("HuggingFaceTB/SmolLM2-360M-Instruct");
  await page.getByTestId("pull").click();
  await page.getByTestId("pull-line").getByText(/^file 2 of 2 · model\.safetensors · \d+ MB of 270 MB/).waitFor();
  await page.getByTestId("pull-cancel").click();
  await page.getByTestId("pull-state").getByText("cancelled").waitFor();
  await page.getByTestId("pull-resume").click();
  await page.getByTestId("pull-state").getByText("done").waitFor();
  assert.match(await page.getByTestId("pull-line").textContent(), /270 MB \(\d+ MB fetched now\)/);
  await page.getByTestId("model-row").nth(2).waitFor();
  await page.getByTestId("model-row").nth(2).getByText("Quantize 4-bit").click();
  await page.getByTestId("models-notice").getByText(/Wrote 4-bit \(group 64\): 269 MB → 76 MB · mean KL 0\.0213/).waitFor();
  assert.equal(await page.getByTestId("model-row").count(), 4);
  await page.screenshot({ path: join(out, "models.png") });
  const imported = page.getByTestId("model-row").filter({ hasText: "tiny.Q8_0.gguf" });
  await imported.getByTestId("delete-model").click();
  await imported.getByTestId("removal-plan").getByText(/^Removes 1 file \(.+\): tiny\.Q8_0\.gguf\.$/).waitFor();
  await imported.getByText("Delete for good?").click();
  await page.getByTestId("models-notice").getByText(/^Deleted tiny\.Q8_0\.gguf: 1 file, /).waitFor();
  assert.equal(await page.getByTestId("model-row").count(), 3);
  await page.locator("[data-view=runs]").click();
  await page.getByTestId("run-dashboard").waitFor();
  assert.equal(await page.getByTestId("run-row").count(), 4);
  await page.getByTestId("run-row").nth(3).click();
  await page.getByTestId("run-dashboard").getByText("#1 smollm2-facts").waitFor();
  // Loss curves with the best validation step marked, and the probe answers.
  assert.equal(await page.getByTestId("run-dashboard").locator('path[data-series="train"]').count(), 1);
  const d = await page.getByTestId("run-dashboard").locator('path[data-series="validation"]').getAttribute("d");
  assert.equal(d.split("L").length, 4, d);
  assert.match(await page.getByTestId("run-figures").textContent(), /best validation at step 15/);
  assert.match(await page.getByTestId("probes").textContent(), /7-4-1/);
  // Axes with step ticks; the pointer over a chart reads the values at its step.
  const chart = page.getByTestId("run-dashboard").getByTestId("chart").first();
  assert.ok((await chart.locator("line.axis").count()) >= 2);
  const box = await chart.locator("svg").boundingBox();
  await page.mouse.move(box.x + box.width * 0.6, box.y + box.height * 0.4);
  assert.match(await chart.getByTestId("chart-hover").textContent(), /step \d+.*train \d/);
  await page.screenshot({ path: join(out, "runs.png") });
  await page.emulateMedia({ colorScheme: "dark" });
  await page.screenshot({ path: join(out, "runs-dark.png") });
  await page.emulateMedia({ colorScheme: "light" });
  await page.mouse.move(0, 0);
  // Sweeps: learning rate and rank swept from the Train form; the trials stream into the
  // Sweeps view's table and overlaid curves, one is pruned at its rung (greyed), the scatter
  // plots a chosen setting against the loss, and Use best chats with the best trial's adapter.
  await page.locator("[data-view=train]").click();
  await page.getByTestId("train-iters").fill("8");
  await page.getByTestId("train-lr").fill("0.0001");
  assert.equal(await page.getByTestId("sweep-settings").count(), 0);
  await page.getByTestId("sweep-learningRate").click();
  await page.getByTestId("sweep-rank").click();
  await page.getByTestId("sweep-settings").waitFor();
  assert.equal(await page.getByTestId("sweep-lo-learningRate").inputValue(), "0.00001");
  assert.equal(await page.getByTestId("sweep-hi-learningRate").inputValue(), "0.001");
  assert.equal(await page.getByTestId("sweep-values-rank").inputValue(), "8, 16, 32");
  await page.getByTestId("sweep-values-rank").fill("4, x");
  await page.getByTestId("sweep-settings").getByText("Enter values separated by commas.").waitFor();
  assert.equal(await page.getByTestId("start-sweep").isDisabled(), true);
  await page.getByTestId("sweep-values-rank").fill("4, 8");
  await page.getByTestId("sweep-trials").fill("4");
  await page.getByTestId("sweep-rungs").fill("0.5");
  await page.getByTestId("sweep-reduction").fill("2");
  await page.waitForFunction(() => !document.querySelector("[data-testid=start-sweep]").disabled);
  await page.getByTestId("start-sweep").click();
  await page.getByTestId("sweep-dashboard").waitFor();
  await page.getByTestId("sweep-badge").waitFor();
  await page.getByTestId("trial-row").nth(1).waitFor();
  assert.equal((await calls()).start_sweep, 1);
  await page.getByTestId("sweep-status").getByText("succeeded").waitFor({ timeout: 20_000 });
  await page.getByTestId("sweep-badge").waitFor({ state: "detached" });
  assert.equal(await page.getByTestId("trial-row").count(), 4);
  const pruned = page.locator("[data-testid=trial-row][data-state=pruned]");
  assert.equal(await pruned.count(), 1);
  assert.match(await pruned.textContent(), /^2.*1\.26e-5.*4.*pruned.*pruned at step 4/);
  assert.match(await page.getByTestId("trial-row").first().textContent(), /^1 ★.*5\.01e-4.*8.*8 \/ 8.*completed/);
  const sweepChart = page.getByTestId("sweep-dashboard").getByTestId("chart");
  assert.equal(await sweepChart.locator("path").count(), 4);
  assert.equal(await sweepChart.locator('path[data-series="trial 2 (pruned)"]').getAttribute("stroke"), "#b9b9b9");
  assert.notEqual(await sweepChart.locator('path[data-series="trial 1"]').getAttribute("stroke"), "#b9b9b9");
  const scatter = page.getByTestId("scatter");
  assert.equal(await scatter.locator("circle").count(), 4);
  assert.match(await scatter.textContent(), /learning rate \(log\)/);
  await page.getByTestId("scatter-knob").selectOption("lora_parameters.rank");
  await scatter.getByText("rank against loss").waitFor();
  await page.getByTestId("scatter-knob").selectOption("learning_rate");
  await page.screenshot({ path: join(out, "sweeps.png") });
  await page.getByTestId("sweep-use-best").getByText("Use best (run #101)").click();
  await page.getByTestId("loaded-adapter").getByText("adapter of run #101").waitFor();
  assert.equal(await page.locator("[data-view=chat].active").count(), 1);

  // Machines: this Mac's address, hosts added (a bad one refused with its reason), each
  // checked (one ready, one unreachable with what to do), the group's estimate with its speed
  // bound from a calibration, then a group run whose dashboard shows each rank's throughput.
  await page.locator("[data-view=train]").click();
  const machines = page.getByTestId("machines");
  await machines.getByText("This Mac").waitFor();
  await page.getByTestId("machine-this-ips").fill("10.0.0.1");
  await page.getByTestId("machine-this-ips").press("Tab");
  await page.getByTestId("machine-name").fill("mac b");
  await page.getByTestId("machine-ips").fill("10.0.0.2");
  await page.getByTestId("machine-add").click();
  await page.getByTestId("machine-problem").getByText("not a host name").waitFor();
  await page.getByTestId("machine-name").fill("mac-b.local");
  await page.getByTestId("machine-add").click();
  await page.getByTestId("machine-name").fill("offline-mac");
  await page.getByTestId("machine-ips").fill("10.0.0.3");
  await page.getByTestId("machine-add").click();
  assert.equal(await page.getByTestId("machine").count(), 3);
  const host = (name) => page.getByTestId("machine").filter({ hasText: name });
  await host("mac-b.local").getByTestId("machine-check").click();
  await host("offline-mac").getByTestId("machine-check").click();
  await host("mac-b.local").getByTestId("machine-result").getByText(/^Ready · Adapt 0\.1\.0 · metal/).waitFor();
  await host("offline-mac").getByTestId("machine-result").getByText("Not ready · not reachable").waitFor();
  assert.match(await host("offline-mac").getByTestId("machine-result").textContent(), /ssh-copy-id offline-mac/);
  // Three machines cannot share a batch of 4: Start says so until one is removed.
  assert.equal(await page.getByTestId("group-start").isDisabled(), true);
  await machines.getByText("not divisible by the 3 machines").waitFor();
  await host("offline-mac").getByTestId("machine-remove").click();
  assert.equal(await page.getByTestId("machine").count(), 2);
  await page.getByTestId("calibrate").click();
  await page.getByTestId("calibration").getByText("measured peak").waitFor();
  await page.getByTestId("group-estimate").click();
  const estimated = page.getByTestId("group-estimate-result");
  await estimated.getByText(/each machine: about .* 2\s+examples of every batch/).waitFor();
  assert.match(await estimated.textContent(), /at most 194 tok\/s/);
  assert.match(await estimated.textContent(), /upper bound: 2 × one machine's measured speed/);
  await machines.screenshot({ path: join(out, "machines.png") });
  await page.getByTestId("group-start").click();
  await page.getByTestId("group-started").getByText("Started on 2 machines").waitFor();
  await page.locator("[data-view=runs]").click();
  await page.getByTestId("runs-refresh").click();
  await page.getByTestId("run-row").first().click();
  await page.getByTestId("run-dashboard").getByText(/^#5 /).waitFor();
  await new Promise((r) => setTimeout(r, 600));
  await page.getByTestId("runs-refresh").click();
  await page.getByTestId("run-status").getByText("succeeded").waitFor();
  assert.equal(await page.getByTestId("run-rank").count(), 2);
  assert.match(await page.getByTestId("run-rank").nth(0).textContent(), /0 \(this Mac\)\s*113\s*90\s*0\.80 s\s*0\.20 s/);
  assert.match(await page.getByTestId("run-rank").nth(1).textContent(), /1\s*95\s*90\s*0\.95 s\s*0\.05 s/);
  assert.equal(await page.getByTestId("run-dashboard").locator('path[data-series="rank 1"]').count(), 1);
  await page.screenshot({ path: join(out, "runs-group.png") });

  // Server: started with the loaded model, its address shown, a client's requests logged
  // (the second with cached tokens), then stopped.
  await page.locator("[data-view=server]").click();
  await page.getByTestId("server-start").waitFor();
  assert.equal(await page.getByTestId("server-model").inputValue(), "models-cache/SmolLM2-135M-Instruct.Q4_1.gguf");
  await page.getByTestId("server-port").fill("8123");
  await page.getByTestId("server-start").click();
  await page.getByTestId("server-address").getByText("http://127.0.0.1:8123/v1").waitFor();
  assert.match(await page.getByTestId("server-key").textContent(), /none/);
  await page.getByTestId("server-log-row").nth(1).waitFor();
  assert.match(await page.getByTestId("server-log-row").first().textContent(), /59\s*44\s*7/);
  await page.screenshot({ path: join(out, "server.png") });
  await page.getByTestId("server-stop").click();
  await page.getByTestId("server-start").waitFor();

  assert.deepEqual(errors, []);
  console.log("browser tests: ok (screenshots in ui/test-results/)");
} catch (e) {
  failed = true;
  console.error(e);
} finally {
  await browser.close();
  site.stop();
}
process.exit(failed ? 1 : 0);
