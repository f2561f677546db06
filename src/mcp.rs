//! The MCP front: the memory as tools (Signet's names and input schemas),
//! served over Streamable HTTP at `/mcp` by the `rmcp` SDK and reached
//! over stdio through `signet mcp` (a bridge to `/mcp`, see
//! `cli::mcp`).
//!
//! A tool call turns its arguments into a typed request and calls one
//! memory operation on the caller the HTTP edge verified (carried in the
//! request's extensions), so permission, scope, rate limits and the kill
//! switch are decided by the domain layer as for every other front. A
//! refused call is a tool result with `isError` (never a transport
//! failure): the text `<Verb> failed: <JSON body>` as Signet words it, and
//! `structuredContent` `{error, code, …}` (`code` the HTTP-class status:
//! 400, 403, 404, 409, 429, 503).
//!
//! Where Signet's tools do not do what their schema says, these do:
//! `memory_store` stores `type` and `tags` as fields, `memory_list`
//! filters by `type` and lists live memories only, and `memory_search`'s
//! `min_score` is a floor on the score (Signet used it on importance).

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, JsonObject, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ServerCapabilities, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{json, Value};

use crate::memory::requests::{Edit, FeedbackRequest, RecallRequest, RememberRequest, TagsInput};
use crate::memory::{Caller, MemoryError, MemoryService};
use crate::store::memories::ForgetRequest;
use crate::store::search::RecallFilter;

/// The name and version `initialize` reports (Signet's, so clients that
/// key on them keep working).
pub const SERVER_NAME: &str = "signet";
/// See [`SERVER_NAME`].
pub const SERVER_VERSION: &str = "0.1.0";

/// Protocol versions this server speaks (`initialize` takes the client's
/// when listed, else the newest; a request naming another in its
/// `mcp-protocol-version` header is refused with 400).
pub const PROTOCOL_VERSIONS: &[&str] = &["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// The memory tools, in Signet's order.
pub const TOOL_NAMES: &[&str] = &[
    "memory_search",
    "memory_store",
    "memory_get",
    "memory_list",
    "memory_modify",
    "memory_forget",
    "memory_feedback",
];

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

/// The seven tools with Signet's input schemas.
pub fn tools() -> Vec<Tool> {
    let s = |t: &str| json!({ "type": t });
    vec![
        Tool::new(
            "memory_search",
            "Search memories with hybrid vector + keyword search. `type` keeps one memory type; \
             `min_score` drops results scoring below it (0..1).",
            schema(json!({
                "type": "object",
                "properties": {
                    "query": { "type": "string", "description": "What to search for" },
                    "limit": { "type": "number", "description": "Max results (default 10)" },
                    "type": { "type": "string", "description": "Only this memory type" },
                    "min_score": { "type": "number", "description": "Lowest score kept (0..1)" },
                },
                "required": ["query"],
            })),
        ),
        Tool::new(
            "memory_store",
            "Save a new memory. `type` and `tags` (comma-separated) are stored with it; \
             `importance` is 0..1.",
            schema(json!({
                "type": "object",
                "properties": {
                    "content": { "type": "string", "description": "The memory" },
                    "type": s("string"),
                    "importance": s("number"),
                    "tags": { "type": "string", "description": "Comma-separated tags" },
                },
                "required": ["content"],
            })),
        ),
        Tool::new(
            "memory_get",
            "Get a memory by id.",
            schema(json!({
                "type": "object",
                "properties": { "id": s("string") },
                "required": ["id"],
            })),
        ),
        Tool::new(
            "memory_list",
            "List live memories, newest first, optionally of one type.",
            schema(json!({
                "type": "object",
                "properties": {
                    "limit": { "type": "number", "description": "Max results (default 100)" },
                    "offset": s("number"),
                    "type": s("string"),
                },
            })),
        ),
        Tool::new(
            "memory_modify",
            "Edit a memory by id; `reason` is recorded in its history.",
            schema(json!({
                "type": "object",
                "properties": {
                    "id": s("string"),
                    "reason": s("string"),
                    "content": s("string"),
                    "type": s("string"),
                    "tags": s("string"),
                    "importance": s("number"),
                },
                "required": ["id", "reason"],
            })),
        ),
        Tool::new(
            "memory_forget",
            "Soft-delete a memory by id (it can be recovered); `reason` is recorded.",
            schema(json!({
                "type": "object",
                "properties": { "id": s("string"), "reason": s("string") },
                "required": ["id", "reason"],
            })),
        ),
        Tool::new(
            "memory_feedback",
            "Rate memories you were given: -1 harmful, 0 unused, 1 helpful.",
            schema(json!({
                "type": "object",
                "properties": {
                    "session_key": s("string"),
                    "ratings": {
                        "type": "object",
                        "additionalProperties": { "type": "number" },
                        "description": "memory id -> rating",
                    },
                },
                "required": ["session_key", "ratings"],
            })),
        ),
    ]
}

/// The MCP server of one request: the memory operations and the caller's
/// identity (read per call from the HTTP request's extensions).
#[derive(Clone)]
pub struct MemoryTools {
    memories: MemoryService,
}

impl MemoryTools {
    /// Tools over the memory operations.
    pub fn new(memories: MemoryService) -> Self {
        MemoryTools { memories }
    }
}

/// Arguments that do not fit the schema: Signet's wording.
fn invalid(msg: impl std::fmt::Display) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "MCP error -32602: Input validation error: {msg}"
    ))])
}

struct Args<'a>(&'a JsonObject);

impl Args<'_> {
    fn str(&self, key: &str) -> Result<Option<String>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(format!("{key} must be a string")),
        }
    }

    fn required(&self, key: &str) -> Result<String, String> {
        self.str(key)?
            .ok_or_else(|| format!("{key} is required (a string)"))
    }

    fn num(&self, key: &str) -> Result<Option<f64>, String> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(_) => Err(format!("{key} must be a number")),
        }
    }

    fn int(&self, key: &str) -> Result<Option<i64>, String> {
        match self.num(key)? {
            None => Ok(None),
            Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => Ok(Some(x as i64)),
            Some(_) => Err(format!("{key} must be a whole number")),
        }
    }
}

/// Render an operation's answer as Signet does (the daemon's JSON, pretty)
/// plus `structuredContent`, or its refusal as an error result.
fn render<T: serde::Serialize>(verb: &str, out: Result<T, MemoryError>) -> CallToolResult {
    match out {
        Ok(v) => {
            let value = serde_json::to_value(&v).unwrap_or(Value::Null);
            let text = serde_json::to_string_pretty(&value).unwrap_or_default();
            let mut r = CallToolResult::success(vec![ContentBlock::text(text)]);
            r.structured_content = Some(value);
            r
        }
        Err(e) => {
            let (status, mut body) = e.status_and_body();
            let text = format!("{verb} failed: {body}");
            body["code"] = json!(status);
            let mut r = CallToolResult::error(vec![ContentBlock::text(text)]);
            r.structured_content = Some(body);
            r
        }
    }
}

impl MemoryTools {
    async fn call(&self, caller: &Caller, name: &str, args: &JsonObject) -> CallToolResult {
        let a = Args(args);
        let m = &self.memories;
        match name {
            "memory_search" => {
                let parsed = (|| {
                    Ok::<_, String>((
                        a.required("query")?,
                        a.int("limit")?,
                        a.str("type")?,
                        a.num("min_score")?,
                    ))
                })();
                let (query, limit, kind, min_score) = match parsed {
                    Ok(p) => p,
                    Err(e) => return invalid(e),
                };
                let req = RecallRequest {
                    query,
                    limit: Some(limit.unwrap_or(10)),
                    filter: RecallFilter {
                        kind,
                        ..RecallFilter::default()
                    },
                    vector_text: None,
                    vector_wait: None,
                };
                let out = m.recall(caller, req).await.map(|mut r| {
                    if let Some(floor) = min_score {
                        r.results.retain(|s| s.score >= floor);
                    }
                    r
                });
                render("Search", out)
            }
            "memory_store" => {
                let parsed = (|| {
                    Ok::<_, String>(RememberRequest {
                        content: Some(a.required("content")?),
                        kind: a.str("type")?,
                        importance: a.num("importance")?,
                        tags: a.str("tags")?.map(TagsInput::Joined),
                        ..RememberRequest::default()
                    })
                })();
                match parsed {
                    Ok(req) => render("Store", m.remember(caller, req).await),
                    Err(e) => invalid(e),
                }
            }
            "memory_get" => match a.required("id") {
                Ok(id) => render("Get", m.get(caller, id).await),
                Err(e) => invalid(e),
            },
            "memory_list" => {
                let parsed =
                    (|| Ok::<_, String>((a.int("limit")?, a.int("offset")?, a.str("type")?)))();
                match parsed {
                    Ok((limit, offset, kind)) => render(
                        "List",
                        m.list(
                            caller,
                            limit.unwrap_or(100),
                            offset.unwrap_or(0),
                            RecallFilter {
                                kind,
                                ..RecallFilter::default()
                            },
                        )
                        .await,
                    ),
                    Err(e) => invalid(e),
                }
            }
            "memory_modify" => {
                let parsed = (|| {
                    Ok::<_, String>(Edit {
                        id: a.required("id")?,
                        reason: Some(a.required("reason")?),
                        content: a.str("content")?,
                        kind: a.str("type")?,
                        tags: a.str("tags")?.map(|t| Some(TagsInput::Joined(t))),
                        importance: a.num("importance")?,
                        ..Edit::default()
                    })
                })();
                match parsed {
                    Ok(edit) => render("Modify", m.modify(caller, edit).await),
                    Err(e) => invalid(e),
                }
            }
            "memory_forget" => {
                let parsed = (|| Ok::<_, String>((a.required("id")?, a.required("reason")?)))();
                match parsed {
                    Ok((id, reason)) => render(
                        "Forget",
                        m.forget(
                            caller,
                            ForgetRequest {
                                id,
                                reason: Some(reason),
                                force: false,
                                if_version: None,
                                scope: Default::default(),
                                autonomous: false,
                            },
                        )
                        .await,
                    ),
                    Err(e) => invalid(e),
                }
            }
            "memory_feedback" => {
                let body = json!({
                    "sessionKey": args.get("session_key"),
                    "feedback": args.get("ratings"),
                });
                match FeedbackRequest::parse(&body) {
                    Ok(req) => render("Feedback", m.feedback(caller, req).await),
                    Err(e) => invalid(e),
                }
            }
            other => invalid(format!("Tool {other} not found")),
        }
    }
}

/// The caller the HTTP edge verified for this request. `None` only if the
/// service was reached around the edge, which the router never does.
fn caller_of(ctx: &RequestContext<RoleServer>) -> Option<Caller> {
    ctx.extensions
        .get::<warp::http::request::Parts>()
        .and_then(|p| p.extensions.get::<Caller>())
        .cloned()
}

impl ServerHandler for MemoryTools {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_tool_list_changed()
                .build(),
        )
        .with_server_info(Implementation::new(SERVER_NAME, SERVER_VERSION))
        .with_protocol_version(ProtocolVersion::V_2025_11_25)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(&[
            ProtocolVersion::V_2025_11_25,
            ProtocolVersion::V_2025_06_18,
            ProtocolVersion::V_2025_03_26,
            ProtocolVersion::V_2024_11_05,
        ])
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(caller) = caller_of(&context) else {
            return Err(ErrorData::internal_error("no verified caller", None));
        };
        let args = request.arguments.unwrap_or_default();
        Ok(self.call(&caller, &request.name, &args).await.into())
    }
}
