// @xmpp/client logging in with SASL2 (XEP-0388), Bind 2 and FAST tokens (XEP-0484), driven by
// tests/integration/test_sasl2_clients.py:
//   node fast_client.mjs SERVICE JID PASSWORD TOKEN_FILE AGENT_ID
// The FAST token is kept in TOKEN_FILE (JSON) between runs, as an app keeps it on the phone.
// Prints one JSON line per event: what it authenticated with, the <success/> it got, "online"
// with its full JID; exits 0 once online (then stops), 1 on error/timeout.
import { readFileSync, writeFileSync, existsSync, unlinkSync } from "node:fs";
import { client, xml } from "@xmpp/client";

const [service, jid, password, tokenFile, agentId] = process.argv.slice(2);
const [local, domain] = jid.split("@");
const say = (event) => process.stdout.write(JSON.stringify(event) + "\n");
const userAgent = xml("user-agent", { id: agentId }, xml("software", {}, "xmppd tests"),
                      xml("device", {}, "node"));
// timeout: xmpp.js waits 2 s by default for each answer (the SASL2 exchange among them); a
// loaded test machine can take longer, and the 30 s timer below bounds the whole run.
const xmpp = client({ service, domain, username: local, password, resource: "fastjs",
                      userAgent, timeout: 20000 });
const timer = setTimeout(() => { say({ event: "timeout" }); process.exit(1); }, 30000);

xmpp.fast.saveToken = async (token) => {
  writeFileSync(tokenFile, JSON.stringify(token));
  say({ event: "token-saved", mechanism: token.mechanism });
};
xmpp.fast.fetchToken = async () =>
  existsSync(tokenFile) ? JSON.parse(readFileSync(tokenFile, "utf8")) : null;
xmpp.fast.deleteToken = async () => {
  if (existsSync(tokenFile)) unlinkSync(tokenFile);
  say({ event: "token-deleted" });
};

xmpp.on("send", (el) => {
  if (el.is("authenticate", "urn:xmpp:sasl:2")) {
    say({ event: "authenticate", mechanism: el.attrs.mechanism,
          fast: !!el.getChild("fast", "urn:xmpp:fast:0"),
          requestToken: !!el.getChild("request-token", "urn:xmpp:fast:0"),
          bind: !!el.getChild("bind", "urn:xmpp:bind:0") });
  }
});
xmpp.on("element", (el) => {
  if (el.is("success", "urn:xmpp:sasl:2")) {
    say({ event: "success", token: !!el.getChild("token", "urn:xmpp:fast:0"),
          bound: !!el.getChild("bound", "urn:xmpp:bind:0"),
          enabled: !!el.getChild("bound", "urn:xmpp:bind:0")?.getChild("enabled",
                                                                         "urn:xmpp:sm:3") });
  } else if (el.is("failure", "urn:xmpp:sasl:2")) {
    say({ event: "failure", condition: el.getChildElements()[0]?.name });
  }
});
xmpp.on("error", (err) => {
  say({ event: "error", error: String(err) });
  clearTimeout(timer);
  process.exit(1);
});
xmpp.on("online", async (address) => {
  say({ event: "online", jid: address.toString() });
  clearTimeout(timer);
  await xmpp.stop();
  process.exit(0);
});
xmpp.start().catch((err) => {
  say({ event: "error", error: String(err) });
  process.exit(1);
});
