// @xmpp/client over WebSocket, driven by tests/integration/test_web_clients.py:
//   node --experimental-websocket xmpp_client.mjs URL JID PASSWORD PEER
// Logs in, sends "ping from xmpp.js" to PEER, waits for PEER's answer, then sends it back
// as "echo: <body>". Prints one JSON line per event; exits 0 once done, 1 on error/timeout.
import { client, xml } from "@xmpp/client";

const [service, jid, password, peer] = process.argv.slice(2);
const [local, domain] = jid.split("@");
const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const xmpp = client({ service, domain, username: local, password, resource: "xmppjs" });
const timer = setTimeout(() => { say({ event: "timeout" }); process.exit(1); }, 30000);

xmpp.on("error", (err) => { say({ event: "error", error: String(err) }); process.exit(1); });
xmpp.on("online", async (address) => {
  say({ event: "online", jid: address.toString() });
  await xmpp.send(xml("presence"));
  await xmpp.send(xml("message", { to: peer, type: "chat" }, xml("body", {}, "ping from xmpp.js")));
});
xmpp.on("stanza", async (stanza) => {
  if (!stanza.is("message")) return;
  const body = stanza.getChildText("body");
  if (body === null) return;
  say({ event: "message", from: stanza.attrs.from, body });
  await xmpp.send(xml("message", { to: stanza.attrs.from, type: "chat" }, xml("body", {}, "echo: " + body)));
  clearTimeout(timer);
  await xmpp.stop();
  say({ event: "stopped" });
  process.exit(0);
});
xmpp.start().catch((err) => { say({ event: "error", error: String(err) }); process.exit(1); });
