//! The WebSocket API's `$connect` authorizer (`bootstrap` with `MESH_MODE=authorizer`): a
//! Lambda REQUEST authorizer. Browsers cannot set headers on a WebSocket, so the dashboard sends
//! its key as the `api_key` query parameter (`encodeURIComponent`); API Gateway hands it over
//! percent-decoded in `queryStringParameters`, and this function compares it in constant time
//! with the keys of `MESH_API_KEYS` / `MESH_API_KEYS_FILE` ([`ApiKeys`]). An `x-api-key`
//! header is accepted as well (non-browser clients). It loads no model.

use mesh_core::keys::ApiKeys;
use serde_json::{json, Value};

/// The key an authorizer event presents: the `api_key` query parameter, else the `x-api-key`
/// header (any case).
fn presented_key(event: &Value) -> Option<&str> {
    if let Some(key) = event["queryStringParameters"]["api_key"].as_str() {
        return Some(key);
    }
    event["headers"]
        .as_object()?
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("x-api-key"))
        .and_then(|(_, v)| v.as_str())
}

/// The authorizer's answer to one `$connect`: an IAM policy allowing `execute-api:Invoke` on
/// the event's `methodArn` for a valid key (principal: the key's client id, never the key),
/// denying it otherwise.
pub fn authorize(keys: &ApiKeys, event: &Value) -> Value {
    let method_arn = event["methodArn"].as_str().unwrap_or("*");
    let client = presented_key(event).and_then(|k| keys.check(k));
    let (principal, effect) = match &client {
        Some(id) => (id.as_str(), "Allow"),
        None => ("anonymous", "Deny"),
    };
    if client.is_none() {
        tracing::info!(
            key_given = presented_key(event).is_some(),
            "WebSocket connection refused"
        );
    }
    json!({
        "principalId": principal,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": method_arn}]
        },
        "context": {"client": principal}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(query: Value, headers: Value) -> Value {
        json!({"type": "REQUEST", "methodArn": "arn:aws:execute-api:us-east-1:1:ws1/production/$connect",
            "queryStringParameters": query, "headers": headers})
    }

    fn effect(v: &Value) -> &str {
        v["policyDocument"]["Statement"][0]["Effect"]
            .as_str()
            .unwrap()
    }

    /// The dashboard's key `a+b= c` arrives as API Gateway decodes `?api_key=a%2Bb%3D%20c`.
    #[test]
    fn allows_a_valid_key_from_the_query_or_the_header_and_denies_the_rest() {
        let keys = ApiKeys::from_keys(["a+b= c"]);
        let allowed = authorize(&keys, &event(json!({"api_key": "a+b= c"}), json!({})));
        assert_eq!(effect(&allowed), "Allow");
        assert!(allowed["principalId"].as_str().unwrap().starts_with("key:"));
        assert_eq!(
            allowed["policyDocument"]["Statement"][0]["Resource"],
            "arn:aws:execute-api:us-east-1:1:ws1/production/$connect"
        );
        let header = authorize(&keys, &event(Value::Null, json!({"X-Api-Key": "a+b= c"})));
        assert_eq!(effect(&header), "Allow");
        for denied in [
            event(json!({"api_key": "a%2Bb%3D%20c"}), json!({})),
            event(json!({"api_key": "wrong"}), json!({})),
            event(Value::Null, Value::Null),
        ] {
            let answer = authorize(&keys, &denied);
            assert_eq!(effect(&answer), "Deny", "{denied}");
            assert_eq!(answer["principalId"], "anonymous");
        }
        assert_eq!(
            effect(&authorize(
                &ApiKeys::default(),
                &event(json!({"api_key": ""}), json!({}))
            )),
            "Deny"
        );
    }
}
