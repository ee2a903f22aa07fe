use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{Context, Error};

type ActionHandler = Box<dyn Fn(&Context, &str) -> Result<String, Error>>;
type TriggerHandler = Box<dyn Fn(&Context, &str, Option<&str>) -> Result<(Vec<String>, String), Error>>;

/// The signature of a polling trigger: configuration and last state in, items and next state out.
pub type TriggerFn<I, Item, State> = fn(&Context, I, Option<State>) -> Result<Poll<Item, State>, Error>;

/// A connector: its manifest and its operations. Build one with [`Connector::new`] and export
/// it with [`export_connector!`](crate::export_connector).
pub struct Connector {
    pub(crate) id: String,
    pub(crate) version: String,
    pub(crate) display_name: String,
    pub(crate) description: String,
    pub(crate) hosts: Vec<String>,
    pub(crate) secrets: Vec<Secret>,
    pub(crate) parameters: Vec<Parameter>,
    pub(crate) operations: Vec<Operation>,
}

pub(crate) struct Operation {
    pub(crate) id: String,
    pub(crate) description: String,
    // Schemas are generated only when `describe` asks for them: every call builds the
    // connector afresh (a fresh instance per call), so eager generation would cost every call.
    pub(crate) input_schema: fn() -> String,
    pub(crate) output_schema: fn() -> String,
    pub(crate) handler: Handler,
}

pub(crate) enum Handler {
    Action(ActionHandler),
    Trigger(TriggerHandler),
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("id", &self.id)
            .field("version", &self.version)
            .field(
                "operations",
                &self.operations.iter().map(|o| &o.id).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// What one poll of a trigger found: new items (each starts a run) and the state the host
/// passes to the next poll.
#[derive(Debug, Clone)]
pub struct Poll<Item, State> {
    pub items: Vec<Item>,
    pub state: State,
}

/// A secret the connector asks to use.
#[derive(Debug, Clone)]
pub struct Secret {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) hosts: Vec<String>,
    pub(crate) plaintext: bool,
}

impl Secret {
    /// A secret used through a `{{secret:NAME}}` placeholder in request headers.
    pub fn new(name: impl Into<String>) -> Self {
        Secret {
            name: name.into(),
            description: String::new(),
            hosts: Vec::new(),
            plaintext: false,
        }
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Restricts where the secret may be sent. Without this, it may go to any host the
    /// connector may reach.
    pub fn host(mut self, pattern: impl Into<String>) -> Self {
        self.hosts.push(pattern.into());
        self
    }

    /// Asks to read the plaintext with [`secrets::reveal`](crate::secrets::reveal). The
    /// operator must grant this separately; prefer placeholders.
    pub fn plaintext(mut self) -> Self {
        self.plaintext = true;
        self
    }
}

/// A non-secret value a connection supplies, such as a base URL.
#[derive(Debug, Clone)]
pub struct Parameter {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) required: bool,
    pub(crate) default: Option<serde_json::Value>,
}

impl Parameter {
    pub fn new(name: impl Into<String>) -> Self {
        Parameter {
            name: name.into(),
            description: String::new(),
            required: false,
            default: None,
        }
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    pub fn default_value(mut self, value: serde_json::Value) -> Self {
        self.default = Some(value);
        self
    }
}

fn schema_of<T: JsonSchema>() -> String {
    serde_json::to_string(&schemars::schema_for!(T)).unwrap_or_else(|_| "{}".to_owned())
}

impl Connector {
    /// A connector with no operations, no network access and no secrets.
    pub fn new(id: impl Into<String>, version: impl Into<String>) -> Self {
        let id = id.into();
        Connector {
            display_name: id.clone(),
            id,
            version: version.into(),
            description: String::new(),
            hosts: Vec::new(),
            secrets: Vec::new(),
            parameters: Vec::new(),
            operations: Vec::new(),
        }
    }

    pub fn display_name(mut self, name: impl Into<String>) -> Self {
        self.display_name = name.into();
        self
    }

    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Requests outbound access to hosts matching `pattern` (`scheme://host[:port]`). The
    /// connector gets a host only if the operator grants a matching pattern too.
    pub fn host(mut self, pattern: impl Into<String>) -> Self {
        self.hosts.push(pattern.into());
        self
    }

    pub fn secret(mut self, secret: Secret) -> Self {
        self.secrets.push(secret);
        self
    }

    pub fn parameter(mut self, parameter: Parameter) -> Self {
        self.parameters.push(parameter);
        self
    }

    /// Adds an action. Its input and output schemas are derived from `I` and `O`; the host
    /// validates the input against the schema before calling `handler`.
    pub fn action<I, O>(
        mut self,
        id: impl Into<String>,
        description: impl Into<String>,
        handler: fn(&Context, I) -> Result<O, Error>,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema + 'static,
        O: Serialize + JsonSchema + 'static,
    {
        let handler = move |context: &Context, input: &str| -> Result<String, Error> {
            let input: I = serde_json::from_str(input)
                .map_err(|e| Error::invalid_input(format!("input does not fit the operation: {e}")))?;
            let output = handler(context, input)?;
            Ok(serde_json::to_string(&output)?)
        };
        self.operations.push(Operation {
            id: id.into(),
            description: description.into(),
            input_schema: schema_of::<I>,
            output_schema: schema_of::<O>,
            handler: Handler::Action(Box::new(handler)),
        });
        self
    }

    /// Adds a polling trigger. `handler` gets its configuration `I` and the state it returned
    /// last time (`None` on the first poll), and returns new items and the next state.
    pub fn trigger<I, Item, State>(
        mut self,
        id: impl Into<String>,
        description: impl Into<String>,
        handler: TriggerFn<I, Item, State>,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema + 'static,
        Item: Serialize + JsonSchema + 'static,
        State: Serialize + DeserializeOwned + 'static,
    {
        let handler = move |context: &Context, input: &str, state: Option<&str>| {
            let input: I = serde_json::from_str(input)
                .map_err(|e| Error::invalid_input(format!("input does not fit the trigger: {e}")))?;
            let state: Option<State> = match state {
                None => None,
                Some(text) => Some(serde_json::from_str(text).map_err(|e| {
                    Error::invalid_input(format!("trigger state is not what this trigger wrote: {e}"))
                })?),
            };
            let poll = handler(context, input, state)?;
            let items = poll
                .items
                .iter()
                .map(serde_json::to_string)
                .collect::<Result<Vec<_>, _>>()?;
            Ok((items, serde_json::to_string(&poll.state)?))
        };
        self.operations.push(Operation {
            id: id.into(),
            description: description.into(),
            input_schema: schema_of::<I>,
            output_schema: schema_of::<Item>,
            handler: Handler::Trigger(Box::new(handler)),
        });
        self
    }
}
