// The inbox's calls, typed by the client generated from the service's OpenAPI document (schema.d.ts, made
// by openapi-typescript). `tsc --noEmit` fails when the service changes a path, a field or a type the
// inbox relies on (tests/test_generated_client.py runs it; docs/integration.md).
import createClient from "openapi-fetch";
import type { components, paths } from "./schema";

type Suggestion = components["schemas"]["Suggestion"];
type Problem = components["schemas"]["Problem"];
type JobStatus = components["schemas"]["JobOut"]["status"];
type Resolved = paths["/v1/assist/resolve"]["post"]["responses"][200]["content"]["application/json"];

const api = createClient<paths>({
  baseUrl: "http://invekto-knowledge:7104",
  headers: { Authorization: "Bearer ik_moda-tr_dODqEsVsUNHugYVSHIYNDTguOkAkBx_S" },
});

function fail(problem: Problem): never {
  // Errors are RFC 9457 problems: type, title, status, detail (and errors on 422).
  const fields = (problem.errors ?? []).map((e) => `${e.location}: ${e.message}`).join("; ");
  throw new Error(`${problem.status} ${problem.title}: ${problem.detail ?? ""} ${fields}`);
}

// 1. A customer message arrives: up to three suggestions for the agent, best first.
export async function onCustomerMessage(conversationId: string, text: string): Promise<Suggestion[]> {
  const { data, error } = await api.POST("/v1/assist/suggest", {
    body: { conversation_id: conversationId, channel: "whatsapp", messages: [{ role: "customer", text }] },
    headers: { "X-Request-ID": `inbox-${conversationId}` },
  });
  if (error) fail(error);
  for (const s of data.suggestions) {
    const sources = s.citations.map((c) => `${c.doc_id}#${c.chunk_id} ${c.title ?? ""}`).join(", ");
    const confidence: number = s.confidence;
    console.log(`${Math.round(confidence * 100)}% [${s.strategy}] ${s.text} (${sources}) ${s.caution ?? ""}`);
  }
  const mode: string = data.mode;
  const language: "tr" | "en" = data.language;
  console.log(mode, language, data.note ?? "");
  return data.suggestions;
}

// 2. On an auto-resolved channel: send the answer, or hand the chat to an agent with its summary.
export async function onAutoChannelMessage(conversationId: string, text: string): Promise<string> {
  const resolved = await api.POST("/v1/assist/resolve", {
    body: { conversation_id: conversationId, messages: [{ role: "customer", text }] },
    headers: { Accept: "application/json" },
  });
  if (resolved.error) fail(resolved.error);
  // 200 is JSON, or server-sent events when asked for: this call asks for JSON.
  const data = resolved.data as Resolved;
  if (data.decision === "handoff") {
    console.log(`handoff (${data.reason ?? "?"}): ${data.summary ?? ""}`);
  }
  return data.text ?? "";
}

// 3. The agent sends: accepted as suggested, edited (with what was sent), or rejected.
export async function onAgentSend(suggestion: Suggestion, sentText: string): Promise<void> {
  const edited = sentText !== suggestion.text;
  const { data, error } = await api.POST("/v1/feedback", {
    body: edited
      ? { suggestion_id: suggestion.id, action: "edited", final_text: sentText }
      : { suggestion_id: suggestion.id, action: "accepted" },
  });
  if (error) fail(error);
  const learned: string | null | undefined = data.learned_doc_id;
  console.log(data.id, data.action, learned ?? "");
}

// 4. The conversation is closed as resolved: index it, then follow its job until it is done.
export async function onConversationClosed(conversationId: string): Promise<JobStatus | null> {
  const { data, error } = await api.POST("/v1/conversations/closed", {
    body: {
      conversation_id: conversationId,
      channel: "whatsapp",
      status: "resolved",
      messages: [
        { role: "customer", text: "İade süresi kaç gün?", ts: "2026-11-30T10:01:10+03:00" },
        { role: "agent", text: "30 gün içinde iade edebilirsiniz.", ts: "2026-11-30T10:03:00+03:00", agent_id: "a-7" },
      ],
    },
    headers: { "Idempotency-Key": conversationId },
  });
  if (error) fail(error);
  if (!data.indexed || !data.job) {
    console.log(data.note);
    return null;
  }
  for (;;) {
    const job = await api.GET("/v1/jobs/{job_id}", { params: { path: { job_id: data.job.id } } });
    if (job.error) fail(job.error);
    const { status, files_done, files_total, files } = job.data;
    console.log(`${status} ${files_done}/${files_total}`, files.map((f) => `${f.name}: ${f.status}`));
    if (status !== "queued" && status !== "running") return status;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// 5. A CRM backend acting for many tenants: one service key, the tenant named on each request, and the
// webhook signed with that tenant's webhook secret (HMAC-SHA256 of "<timestamp>.<body>", hex, as "v1=").
type Conversation = components["schemas"]["Conversation"];

const crm = createClient<paths>({
  baseUrl: "http://invekto-knowledge:7104",
  headers: { Authorization: "Bearer isk_Q2hvbmcxR3tLm8Vw2Xc5Nb7Pq9Zs4Hd6J" },
});

async function signature(secret: string, timestamp: string, body: string): Promise<string> {
  const utf8 = new TextEncoder();
  const key = await crypto.subtle.importKey("raw", utf8.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const mac = await crypto.subtle.sign("HMAC", key, utf8.encode(`${timestamp}.${body}`));
  return Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function onConversationClosedFor(
  tenantId: string,
  webhookSecret: string,
  conversation: Conversation,
): Promise<boolean> {
  const body = JSON.stringify(conversation);
  const timestamp = String(Math.floor(Date.now() / 1000));
  const { data, error } = await crm.POST("/v1/conversations/closed", {
    body: conversation,
    bodySerializer: () => body, // the bytes signed are the bytes sent
    params: {
      header: {
        "X-Invekto-Tenant": tenantId,
        "X-Invekto-Timestamp": timestamp,
        "X-Invekto-Signature": `v1=${await signature(webhookSecret, timestamp, body)}`,
      },
    },
    headers: { "Idempotency-Key": conversation.conversation_id },
  });
  if (error) fail(error);
  return data.indexed;
}
