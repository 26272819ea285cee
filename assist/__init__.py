"""Agent assist: reply suggestions for the inbox, auto-resolution with handoff, and the learning loop.

Entry point: `assist.service.AssistService` (suggest, resolve, feedback). The steps, each usable alone:

- models: the request and response models (AssistRequest, Suggestion, Citation, ResolveResponse, ...)
- query: conversation -> search query (deterministic, or an LLM rewrite)
- language: tr/en detection and the content terms texts are compared by
- sentences, extractive: grounded replies without an LLM (FAQ answers, past replies, best sentences)
- confidence: retrieval evidence -> confidence in [0, 1]
- providers, prompts, generate, grounding: the LLM path and its post-checks
- safety, resolve, handoff: when not to answer, and the summary a human agent gets
- learning: accepted and edited replies back into the index as `chat` knowledge

Kept free of imports so that `import assist.models` stays cheap.
"""
