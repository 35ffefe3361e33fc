// The official Socket.IO client (socket.io-client 4.x) in the live room, written only from
// docs/realtime.md. tests/test_js_client.py runs it against a real server:
//
//   node tests/js/live_client.mjs <server url> <show id> <viewer token> <second viewer token> [text]
//
// (or SHOWROOM_URL, SHOWROOM_SHOW_ID, SHOWROOM_TOKEN, SHOWROOM_TOKEN_2, SHOWROOM_TEXT).
// The show must be live. On success it prints one JSON line of what it saw and exits 0; on any
// failure, or after SHOWROOM_TIMEOUT_MS (default 15 s), it prints why on stderr and exits 1.

import { io } from "socket.io-client";

const [argUrl, argShow, argToken, argToken2, argText] = process.argv.slice(2);
const url = (argUrl ?? process.env.SHOWROOM_URL ?? "").replace(/\/+$/, "");
const showId = argShow ?? process.env.SHOWROOM_SHOW_ID;
const token = argToken ?? process.env.SHOWROOM_TOKEN;
const token2 = argToken2 ?? process.env.SHOWROOM_TOKEN_2;
const text = argText ?? process.env.SHOWROOM_TEXT ?? `hello from socket.io-client 你好 👋 ${Date.now()}`;
const timeoutMs = Number(process.env.SHOWROOM_TIMEOUT_MS ?? 15000);

const sockets = [];
let step = "starting";

function fail(message) {
  for (const s of sockets) s.disconnect();
  process.stderr.write(`live_client.mjs failed at "${step}": ${message}\n`);
  process.exit(1);
}

if (!url || !showId || !token || !token2) {
  fail("usage: node tests/js/live_client.mjs <url> <show id> <viewer token> <second viewer token> [text]");
}

const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);

function check(condition, message, value) {
  if (!condition) throw new Error(`${message}: ${JSON.stringify(value)}`);
}

const isInt = (v) => Number.isInteger(v);
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function checkAuthor(author, where) {
  check(isObject(author), `${where}: author is an object`, author);
  check(typeof author.id === "string" && author.id.length > 0, `${where}: author.id`, author);
  check(typeof author.name === "string", `${where}: author.name`, author);
  check(["viewer", "guest", "host", "admin"].includes(author.role), `${where}: author.role`, author);
}

function checkChatMessage(m, where) {
  check(isObject(m) && m.type === "chat.message", `${where}: type is chat.message`, m);
  check(isInt(m.seq) && m.seq > 0, `${where}: seq`, m);
  check(typeof m.id === "string" && m.id.length > 0, `${where}: id`, m);
  checkAuthor(m.author, where);
  check(typeof m.text === "string", `${where}: text`, m);
  check(typeof m.created_at === "string" && !Number.isNaN(Date.parse(m.created_at)), `${where}: created_at`, m);
}

function checkQuestion(q, where) {
  check(isObject(q) && q.type === "question", `${where}: type is question`, q);
  check(isInt(q.seq) && typeof q.id === "string", `${where}: seq and id`, q);
  checkAuthor(q.author, where);
  check(typeof q.text === "string", `${where}: text`, q);
  check(["open", "answering", "answered", "dismissed"].includes(q.state), `${where}: state`, q);
  check(isInt(q.votes) && q.votes >= 0, `${where}: votes`, q);
}

function checkSnapshot(ack, where) {
  check(isObject(ack) && ack.ok === true && isObject(ack.snapshot), `${where}: {ok: true, snapshot}`, ack);
  const s = ack.snapshot;
  const keys = [
    "show", "seq", "messages", "questions", "my_votes", "reactions", "pinned",
    "slow_mode_seconds", "pinned_products", "viewers", "stream", "you",
  ];
  for (const key of keys) check(key in s, `${where}: snapshot has ${key}`, Object.keys(s));
  check(isObject(s.show) && s.show.id === showId, `${where}: show.id`, s.show);
  check(typeof s.show.title === "string", `${where}: show.title`, s.show);
  check(s.show.state === "live", `${where}: show.state is live`, s.show);
  check(typeof s.show.locale === "string" && typeof s.show.currency === "string", `${where}: show.locale and currency`, s.show);
  check(isInt(s.seq) && s.seq >= 0, `${where}: seq`, s.seq);
  check(Array.isArray(s.messages) && s.messages.length <= 50, `${where}: messages`, s.messages);
  s.messages.forEach((m) => checkChatMessage(m, `${where}: snapshot message`));
  check(Array.isArray(s.questions), `${where}: questions`, s.questions);
  s.questions.forEach((q) => checkQuestion(q, `${where}: snapshot question`));
  check(Array.isArray(s.my_votes), `${where}: my_votes`, s.my_votes);
  check(isObject(s.reactions), `${where}: reactions`, s.reactions);
  check(s.pinned === null || isObject(s.pinned), `${where}: pinned`, s.pinned);
  check(s.slow_mode_seconds === 0, `${where}: slow_mode_seconds`, s.slow_mode_seconds);
  check(Array.isArray(s.pinned_products) && s.pinned_products.length === 0, `${where}: pinned_products`, s.pinned_products);
  check(isInt(s.viewers) && s.viewers >= 1, `${where}: viewers`, s.viewers);
  check(isObject(s.you) && s.you.role === "viewer", `${where}: you.role`, s.you);
  check(typeof s.you.author_id === "string" && s.you.author_id.startsWith("a_"), `${where}: you.author_id`, s.you);
  check(s.you.moderator === false, `${where}: you.moderator`, s.you);
  return s;
}

function checkErrorAck(ack, code, where) {
  check(isObject(ack) && ack.ok === false && isObject(ack.error), `${where}: {ok: false, error}`, ack);
  check(ack.error.code === code, `${where}: error.code is ${code}`, ack);
  check(typeof ack.error.message === "string" && ack.error.message.length > 0, `${where}: error.message`, ack);
}

/** A socket that keeps every frame it gets, so a wait never misses one that came early. */
function open(options) {
  const socket = io(`${url}/live`, { reconnection: false, forceNew: true, timeout: 5000, ...options });
  sockets.push(socket);
  const frames = [];
  const waiters = [];
  socket.on("frame", (frame) => {
    if (!(isObject(frame) && frame.show_id === showId && Array.isArray(frame.events))) {
      fail(`a frame is not {show_id, events}: ${JSON.stringify(frame)}`);
    }
    frames.push(frame);
    for (const w of [...waiters]) w();
  });
  const waitForEvent = (predicate) =>
    new Promise((resolve) => {
      const look = () => {
        for (const frame of frames) {
          const found = frame.events.find(predicate);
          if (found) {
            waiters.splice(waiters.indexOf(look), 1);
            resolve(found);
            return;
          }
        }
      };
      waiters.push(look);
      look();
    });
  const connected = new Promise((resolve, reject) => {
    socket.on("connect", resolve);
    socket.on("connect_error", (err) =>
      reject(new Error(`connect_error: ${err.message} ${JSON.stringify(err.data)}`)),
    );
  });
  return { socket, frames, waitForEvent, connected };
}

async function main() {
  // Without credentials, or with invalid ones, the connection is refused. The page says
  // connect_error carries {code: "unauthorized", message} in err.data; what arrives is
  // reported as is, and tests/test_js_client.py judges it.
  const refusal = (auth) =>
    new Promise((resolve, reject) => {
      const s = io(`${url}/live`, { reconnection: false, forceNew: true, transports: ["websocket"], auth });
      sockets.push(s);
      s.on("connect", () => reject(new Error(`connected with auth ${JSON.stringify(auth)}`)));
      s.on("connect_error", (err) => {
        s.disconnect();
        resolve({ message: err.message, data: err.data ?? null });
      });
    });
  step = "connect without credentials";
  const refused = { no_credentials: await refusal(undefined) };
  step = "connect with an invalid token";
  refused.invalid_token = await refusal({ token: "shr_admin_forged" });

  // A member over websocket, as docs/realtime.md connects.
  step = "connect over websocket";
  const ws = open({ auth: { token }, transports: ["websocket"] });
  await ws.connected;
  check(ws.socket.io.engine.transport.name === "websocket", "transport", ws.socket.io.engine.transport.name);

  // A second member over long-polling only.
  step = "connect over long-polling";
  const poll = open({ auth: { token: token2 }, transports: ["polling"] });
  await poll.connected;
  check(poll.socket.io.engine.transport.name === "polling", "transport", poll.socket.io.engine.transport.name);

  step = "join over websocket";
  const snap = checkSnapshot(await ws.socket.emitWithAck("join", { show_id: showId }), "websocket join");
  const me = snap.you.author_id;

  step = "join over long-polling";
  const pollSnap = checkSnapshot(await poll.socket.emitWithAck("join", { show_id: showId }), "polling join");
  check(pollSnap.you.author_id !== me, "two members have two author ids", [me, pollSnap.you.author_id]);

  step = "chat:send";
  const sent = await ws.socket.emitWithAck("chat:send", { text });
  check(isObject(sent) && sent.ok === true, "chat:send ack", sent);
  checkChatMessage(sent.message, "chat:send ack message");
  check(sent.message.text === text && sent.message.author.id === me, "chat:send ack: my text, my author id", sent.message);
  check(sent.message.seq > snap.seq, "a new message comes after the snapshot", [snap.seq, sent.message]);

  step = "wait for my chat.message in a frame";
  const echoed = await ws.waitForEvent(
    (e) => e.type === "chat.message" && e.text === text && e.author?.id === me,
  );
  checkChatMessage(echoed, "frame chat.message");
  check(echoed.id === sent.message.id && echoed.seq === sent.message.seq, "the frame carries the acked message", [echoed, sent.message]);

  step = "wait for the chat.message on the long-polling socket";
  const polled = await poll.waitForEvent((e) => e.type === "chat.message" && e.id === sent.message.id);
  check(polled.text === text && polled.author.id === me, "polling frame chat.message", polled);

  step = "bad event";
  const bad = await ws.socket.emitWithAck("chat:send", { text: 42 });
  checkErrorAck(bad, "bad_payload", "chat:send with a non-string text");
  check(typeof bad.error.field === "string", "bad_payload names the field", bad);
  const unknown = await ws.socket.emitWithAck("dance", {});
  checkErrorAck(unknown, "unknown_event", "an unknown event");

  step = "question:ask";
  const asked = await ws.socket.emitWithAck("question:ask", { text: "有冇細碼？" });
  check(isObject(asked) && asked.ok === true, "question:ask ack", asked);
  checkQuestion(asked.question, "question:ask ack question");
  check(asked.question.state === "open" && asked.question.votes === 0 && asked.question.author.id === me, "a new open question", asked.question);
  const questionEvent = await ws.waitForEvent((e) => e.type === "question" && e.id === asked.question.id);
  checkQuestion(questionEvent, "frame question");

  step = "react";
  const reacted = await ws.socket.emitWithAck("react", { kind: "heart", count: 3 });
  check(isObject(reacted) && reacted.ok === true, "react ack", reacted);
  const totals = await ws.waitForEvent((e) => e.type === "reactions" && (e.totals?.heart ?? 0) >= 3);
  check(isObject(totals.totals), "reactions totals", totals);
  const pollTotals = await poll.waitForEvent((e) => e.type === "reactions" && (e.totals?.heart ?? 0) >= 3);

  step = "leave";
  const left = await poll.socket.emitWithAck("leave", {});
  check(isObject(left) && left.ok === true, "leave ack", left);

  const report = {
    ok: true,
    refused: refused,
    websocket: {
      transport: ws.socket.io.engine.transport.name,
      snapshot_keys: Object.keys(snap).sort(),
      snapshot_seq: snap.seq,
      show_state: snap.show.state,
      viewers: snap.viewers,
      you: snap.you,
      message: sent.message,
      frame_message: echoed,
      bad_ack: bad,
      unknown_ack: unknown,
      question: asked.question,
      frame_question: questionEvent,
      reactions: totals.totals,
      frames: ws.frames.length,
    },
    polling: {
      transport: poll.socket.io.engine.transport.name,
      you: pollSnap.you,
      frame_message: polled,
      reactions: pollTotals.totals,
      frames: poll.frames.length,
    },
  };
  for (const s of sockets) s.disconnect();
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(report) + "\n", () => process.exit(0));
}

main().catch((err) => fail(err?.stack ?? String(err)));
