// Drives Debian's chromium (through playwright-core) against a real switchyard daemon's
// dashboard. tests/it/dashboard.rs sets the scene (a daemon, a queue with a verify
// held at a gate) and runs this script; it prints "ok: ..." per check and exits
// non-zero with the reason at the first one that fails.
//
// Environment: DASHBOARD_URL, DASHBOARD_TOKEN, SWITCHYARD_BIN, SWITCHYARD_REPO,
// HOLD_FILE (deleting it lets the held verify finish), ARTIFACTS (a directory for the
// screenshots), CHROMIUM (default /usr/bin/chromium).
"use strict";

const { chromium } = require("playwright-core");
const { execFileSync } = require("child_process");
const fs = require("fs");
const os = require("os");
const path = require("path");

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const URL_ = env("DASHBOARD_URL").replace(/\/$/, "");
const TOKEN = env("DASHBOARD_TOKEN");
const BIN = env("SWITCHYARD_BIN");
const REPO = env("SWITCHYARD_REPO");
const HOLD = env("HOLD_FILE");
const ARTIFACTS = env("ARTIFACTS");
const WAIT = 30000;

function ok(what) {
  console.log(`ok: ${what}`);
}

function check(cond, what) {
  if (!cond) throw new Error(`failed: ${what}`);
  ok(what);
}

// The CLI, as a person at a terminal would run it.
function cli(...args) {
  return execFileSync(BIN, ["--repo", REPO, ...args], { encoding: "utf8" });
}

(async () => {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "switchyard-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    viewport: { width: 1280, height: 800 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
  context.setDefaultTimeout(WAIT);
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  // The 401s and the 404 this script asks for are logged as failed loads; anything
  // else on the console is the page's own trouble.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) {
      problems.push(`console: ${m.text()}`);
    }
  });
  try {
    // Signing in: the page asks for the token; a wrong one is refused.
    let response = await page.goto(URL_ + "/");
    check(response.status() === 401, "without the token, the queue page answers 401");
    await page.fill("input[name=token]", "not-the-token-at-all");
    await page.click("button:has-text('Sign in')");
    await page.getByText("That is not the token.").waitFor();
    ok("a wrong token is refused on the form");
    await page.fill("input[name=token]", TOKEN);
    await page.fill("input[name=name]", "Lead");
    await Promise.all([page.waitForURL(URL_ + "/"), page.click("button:has-text('Sign in')")]);
    await page.locator("#conn", { hasText: "live" }).waitFor();
    ok("signed in; the live stream is connected");

    // The queue page: lanes, what verifies now with its expected time, the slots, the
    // task that came back.
    const queue = page.locator("section.queue");
    await queue.getByText("Lane 1").waitFor();
    const t5 = queue.locator("li.entry", { hasText: "Speed up search" });
    await t5.locator(".badge", { hasText: "verifying" }).waitFor();
    await queue.locator("li.entry", { hasText: "Docs for search" }).locator(".badge", { hasText: "waiting" }).waitFor();
    await queue.locator("li.entry", { hasText: "Change the CI pipeline" }).locator(".badge", { hasText: "awaiting approval" }).waitFor();
    ok("the queue shows lane 1: t5 verifying, t6 waiting, t4 awaiting approval");
    const verifying = page.locator("section.verifying");
    await verifying.getByText("Speed up search").waitFor();
    await verifying.getByText(/expected/).waitFor();
    await verifying.getByText(/median of the last 2 passing runs/).waitFor();
    ok("the running verify shows elapsed and expected time");
    const slots = page.locator("section.slots");
    await slots.locator(".slot", { hasText: "api" }).getByText("3 of 3").waitFor();
    await slots.locator(".slot", { hasText: "web" }).getByText("Refactor login").waitFor();
    await slots.getByText("gus").waitFor();
    ok("the slots show who holds api (full) and web");
    const back = page.locator("section.returned");
    await back.getByText("Break the build").waitFor();
    await back.getByText(/verify failed on attempt 1/).waitFor();
    ok("the task that came back shows with its reason");
    const html = await page.content();
    check(!html.includes(TOKEN), "the token is nowhere in the page");
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard.png") });
    ok("screenshot at 1280x800");

    // Live: changes arrive without a reload (no navigation; a mark on the window stays).
    let navigations = 0;
    page.on("framenavigated", (f) => {
      if (f === page.mainFrame()) navigations += 1;
    });
    await page.evaluate(() => {
      window.__stillHere = "yes";
    });
    cli("pause", "--reason", "lunch break", "--by", "lead");
    await page.locator("section.banner.paused", { hasText: "lunch break" }).waitFor();
    ok("a pause from the CLI shows up live");
    cli("resume", "--by", "lead");
    await page.locator("section.banner.running").waitFor();
    ok("the resume shows up live");
    fs.unlinkSync(HOLD);
    const merged = page.locator(".count", { has: page.locator(".st-merged") }).locator("b");
    await page.waitForFunction(
      () => {
        const b = [...document.querySelectorAll(".count")].find((c) => c.querySelector(".st-merged"));
        return b && b.querySelector("b").textContent === "4";
      },
      null,
      { timeout: 60000 },
    );
    await queue.locator("li.entry", { hasText: "Docs for search" }).waitFor({ state: "detached" });
    check((await merged.textContent()) === "4", "t5 and t6 landed, live: 4 merged");
    check((await queue.locator("li.entry").count()) === 1, "only t4 is left in the queue, at its checkpoint");
    check(navigations === 0, "no navigation happened meanwhile");
    check((await page.evaluate(() => window.__stillHere)) === "yes", "the page was never reloaded");

    // A phone's width: one column, nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForFunction(() => window.innerWidth === 390);
    const wide = await page.evaluate(() => document.documentElement.scrollWidth);
    check(wide <= 390, `at 390px nothing scrolls sideways (${wide}px)`);
    await page.screenshot({ path: path.join(ARTIFACTS, "dashboard-phone.png"), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 800 });

    // A task's page: the story, the evidence, the log's tail.
    await page.goto(URL_ + "/tasks/t3");
    await page.locator("h1", { hasText: "Break the build" }).waitFor();
    await page.locator("ol.timeline").getByText(/verify failed on attempt 1: `\.\/check\.sh` exited 1/).waitFor();
    await page.locator("pre.log").first().getByText("found BROKEN").waitFor();
    await page.locator("dl.facts").getByText("cy").first().waitFor();
    ok("t3's page: timeline, evidence and the log's tail");
    await page.screenshot({ path: path.join(ARTIFACTS, "task.png"), fullPage: true });

    // An action: approving t4 from its page, recorded as the name signed in with.
    await page.goto(URL_ + "/tasks/t4");
    await page.getByText("Waiting for a person").waitFor();
    await Promise.all([
      page.waitForURL(URL_ + "/tasks/t4"),
      page.click("button:has-text('Approve')"),
    ]);
    await page.locator("ol.timeline").getByText("approved by lead (attempt 1)").waitFor();
    ok("approving from the page is recorded as lead");

    response = await page.goto(URL_ + "/tasks/t999");
    check(response.status() === 404, "an unknown task's page is a 404 page");
    await page.getByText(/no task t999/i).waitFor();
    ok("it says there is no such task");

    check(problems.length === 0, `no script errors (${problems.join("; ")})`);
    console.log("DONE");
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
})().catch((e) => {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
});
