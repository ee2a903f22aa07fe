//! The glue between the generated `Guest` trait and a [`Connector`].

use crate::bindings::cordon::connector::types::{
    ConnectionParameter, ConnectorError, InvocationContext, Manifest, Operation as WitOperation,
    OperationKind, PollResult, SecretRequest,
};
use crate::connector::Handler;
use crate::{Connector, Context, Error};

pub fn describe(connector: &Connector) -> Manifest {
    Manifest {
        id: connector.id.clone(),
        version: connector.version.clone(),
        display_name: connector.display_name.clone(),
        description: connector.description.clone(),
        operations: connector
            .operations
            .iter()
            .map(|op| WitOperation {
                id: op.id.clone(),
                kind: match op.handler {
                    Handler::Action(_) => OperationKind::Action,
                    Handler::Trigger(_) => OperationKind::Trigger,
                },
                display_name: op.id.replace('_', " "),
                description: op.description.clone(),
                input_schema: (op.input_schema)(),
                output_schema: (op.output_schema)(),
            })
            .collect(),
        hosts: connector.hosts.clone(),
        secrets: connector
            .secrets
            .iter()
            .map(|s| SecretRequest {
                name: s.name.clone(),
                description: s.description.clone(),
                hosts: s.hosts.clone(),
                plaintext: s.plaintext,
            })
            .collect(),
        parameters: connector
            .parameters
            .iter()
            .map(|p| ConnectionParameter {
                name: p.name.clone(),
                description: p.description.clone(),
                required: p.required,
                default_value: p.default.as_ref().map(|v| v.to_string()),
            })
            .collect(),
    }
}

pub fn invoke(
    connector: &Connector,
    operation: String,
    context: InvocationContext,
    input: String,
) -> Result<String, ConnectorError> {
    let context = Context::from_wit(context).map_err(Error::into_wit)?;
    let op = connector.operations.iter().find(|op| op.id == operation);
    match op.map(|op| &op.handler) {
        Some(Handler::Action(handler)) => handler(&context, &input).map_err(Error::into_wit),
        Some(Handler::Trigger(_)) => Err(ConnectorError::InvalidInput(format!(
            "{operation:?} is a trigger; call poll, not invoke"
        ))),
        None => Err(ConnectorError::NotFound(format!(
            "connector {:?} has no operation {operation:?}",
            connector.id
        ))),
    }
}

pub fn poll(
    connector: &Connector,
    trigger: String,
    context: InvocationContext,
    input: String,
    state: Option<String>,
) -> Result<PollResult, ConnectorError> {
    let context = Context::from_wit(context).map_err(Error::into_wit)?;
    let op = connector.operations.iter().find(|op| op.id == trigger);
    match op.map(|op| &op.handler) {
        Some(Handler::Trigger(handler)) => handler(&context, &input, state.as_deref())
            .map(|(items, state)| PollResult { items, state })
            .map_err(Error::into_wit),
        Some(Handler::Action(_)) => Err(ConnectorError::InvalidInput(format!(
            "{trigger:?} is an action; call invoke, not poll"
        ))),
        None => Err(ConnectorError::NotFound(format!(
            "connector {:?} has no trigger {trigger:?}",
            connector.id
        ))),
    }
}
