//! `github`: list and create issues, and a polling trigger for new issues.
//!
//! The base URL is a connection parameter (GitHub Enterprise Server, or a fake in tests), so
//! the connector requests every host and the operator's grant decides which one it reaches.
//! The token reaches GitHub by placeholder: the connector never sees it.

use cordon_sdk::http::Request;
use cordon_sdk::{Connector, Context, Error, Parameter, Poll, Secret, secrets};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

const DEFAULT_BASE_URL: &str = "https://api.github.com";

fn connector() -> Connector {
    Connector::new("github", env!("CARGO_PKG_VERSION"))
        .display_name("GitHub")
        .description("Issues on GitHub or GitHub Enterprise Server")
        .host("*://*:*")
        .parameter(
            Parameter::new("base_url")
                .description("API root, for example https://api.github.com or https://ghe.example.com/api/v3")
                .default_value(DEFAULT_BASE_URL.into()),
        )
        .secret(Secret::new("token").description("A personal access token or app installation token"))
        .action("list_issues", "List issues of a repository", list_issues)
        .action("create_issue", "Open an issue", create_issue)
        .trigger("new_issue", "When an issue is opened", new_issue)
}

cordon_sdk::export_connector!(connector);

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
struct User {
    login: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
struct Label {
    name: String,
}

#[derive(Serialize, Deserialize, JsonSchema, Debug, Clone)]
struct Issue {
    number: u64,
    title: String,
    #[serde(default)]
    body: Option<String>,
    state: String,
    #[serde(default)]
    html_url: String,
    #[serde(default)]
    user: Option<User>,
    #[serde(default)]
    labels: Vec<Label>,
    #[serde(default)]
    created_at: String,
    /// Present when the "issue" is a pull request; GitHub lists both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pull_request: Option<serde_json::Value>,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Repository {
    owner: String,
    repo: String,
}

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListIssues {
    owner: String,
    repo: String,
    /// open (default), closed or all
    #[serde(default)]
    state: Option<String>,
    /// Only issues with all of these labels.
    #[serde(default)]
    labels: Vec<String>,
    /// 1 to 100; 30 if not given.
    #[serde(default)]
    per_page: Option<u8>,
}

#[derive(Deserialize, JsonSchema, Serialize)]
#[serde(deny_unknown_fields)]
struct CreateIssue {
    #[serde(skip_serializing)]
    owner: String,
    #[serde(skip_serializing)]
    repo: String,
    title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    labels: Vec<String>,
}

#[derive(Serialize, Deserialize)]
struct Cursor {
    /// The highest issue number seen so far.
    last_number: u64,
}

fn base_url(ctx: &Context) -> Result<String, Error> {
    let base: String = ctx
        .parameter("base_url")?
        .unwrap_or_else(|| DEFAULT_BASE_URL.to_owned());
    Ok(base.trim_end_matches('/').to_owned())
}

fn segment(name: &str, value: &str) -> Result<String, Error> {
    let ok = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && value != "."
        && value != "..";
    if ok {
        Ok(value.to_owned())
    } else {
        Err(Error::invalid_input(format!(
            "{name} {value:?} is not a valid GitHub name (letters, digits, '-', '_', '.')"
        )))
    }
}

fn get(ctx: &Context, path_and_query: &str) -> Result<Request, Error> {
    Ok(Request::get(format!("{}{path_and_query}", base_url(ctx)?)))
}

fn authorized(request: Request) -> Result<Request, Error> {
    Ok(request
        .header(
            "authorization",
            format!("Bearer {}", secrets::placeholder("token")?),
        )
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28")
        .header("user-agent", "cordon-github-connector"))
}

fn fetch_issues(ctx: &Context, owner: &str, repo: &str, query: &str) -> Result<Vec<Issue>, Error> {
    let path = format!(
        "/repos/{}/{}/issues?{query}",
        segment("owner", owner)?,
        segment("repo", repo)?
    );
    let response = authorized(get(ctx, &path)?)?.send()?.error_for_status()?;
    response.json()
}

fn list_issues(ctx: &Context, input: ListIssues) -> Result<Vec<Issue>, Error> {
    let state = input.state.as_deref().unwrap_or("open");
    if !matches!(state, "open" | "closed" | "all") {
        return Err(Error::invalid_input(format!(
            "state {state:?} must be open, closed or all"
        )));
    }
    let per_page = input.per_page.unwrap_or(30).clamp(1, 100);
    let mut query = format!("state={state}&per_page={per_page}");
    if !input.labels.is_empty() {
        let labels: Vec<String> = input.labels.iter().map(|l| percent_encode(l)).collect();
        query.push_str(&format!("&labels={}", labels.join(",")));
    }
    fetch_issues(ctx, &input.owner, &input.repo, &query)
}

fn create_issue(ctx: &Context, input: CreateIssue) -> Result<Issue, Error> {
    if input.title.trim().is_empty() {
        return Err(Error::invalid_input("title must not be empty"));
    }
    let url = format!(
        "{}/repos/{}/{}/issues",
        base_url(ctx)?,
        segment("owner", &input.owner)?,
        segment("repo", &input.repo)?
    );
    let request = authorized(Request::post(url))?
        // GitHub ignores it, but a proxy or a fake in front of it can deduplicate retries.
        .header("idempotency-key", ctx.idempotency_key())
        .json(&input)?;
    request.send()?.error_for_status()?.json()
}

/// On the first poll it only records the newest issue number, so that turning the trigger on
/// does not start a run for every issue ever opened (as Logic Apps triggers behave).
fn new_issue(ctx: &Context, input: Repository, cursor: Option<Cursor>) -> Result<Poll<Issue, Cursor>, Error> {
    let mut issues: Vec<Issue> = fetch_issues(
        ctx,
        &input.owner,
        &input.repo,
        "state=all&sort=created&direction=desc&per_page=100",
    )?
    .into_iter()
    .filter(|i| i.pull_request.is_none())
    .collect();
    let newest = issues.iter().map(|i| i.number).max();
    let Some(cursor) = cursor else {
        return Ok(Poll {
            items: Vec::new(),
            state: Cursor {
                last_number: newest.unwrap_or(0),
            },
        });
    };
    issues.retain(|i| i.number > cursor.last_number);
    issues.sort_by_key(|i| i.number);
    Ok(Poll {
        state: Cursor {
            last_number: newest.unwrap_or(0).max(cursor.last_number),
        },
        items: issues,
    })
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
