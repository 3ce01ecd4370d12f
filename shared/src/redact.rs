//! Secrets as they may be shown after they were first given: masked, so a reader can tell
//! which secret is set without being able to use it. URLs that carry a bearer token (a
//! Lark/Feishu or Slack bot's hook, `?token=`) are shown with the token masked wherever they
//! leave the endpoint's own settings: attempts, dead letters, operational events and logs.

use crate::EndpointKind;

/// What a masked secret is made of between its prefix and its last characters.
const ELLIPSIS: &str = "****";
/// Characters of a secret shown at its end: enough to tell two secrets apart, too few to
/// help guess one (a secret that short is shown not at all).
const SHOWN_TAIL: usize = 4;
const SHORTEST_WITH_TAIL: usize = 16;

/// Query parameter names whose values are credentials.
const SECRET_PARAMS: &[&str] = &[
    "token",
    "access_token",
    "key",
    "api_key",
    "apikey",
    "secret",
    "sig",
    "signature",
    "password",
    "auth",
    "code",
];

/// `whsec_****Ab3d`: the secret's kind prefix (up to its first `_`), then its last characters.
pub fn mask(secret: &str) -> String {
    let prefix = secret
        .split_once('_')
        .filter(|(p, _)| p.len() <= 8 && p.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(|(p, _)| format!("{p}_"))
        .unwrap_or_default();
    let chars: Vec<char> = secret.chars().collect();
    let tail: String = if chars.len() >= SHORTEST_WITH_TAIL {
        chars[chars.len() - SHOWN_TAIL..].iter().collect()
    } else {
        String::new()
    };
    format!("{prefix}{ELLIPSIS}{tail}")
}

/// Is `given` the mask of `stored`? A settings write that sends back what it read keeps the
/// stored secret rather than setting the mask as the secret.
pub fn is_mask_of(given: &str, stored: &str) -> bool {
    given.contains(ELLIPSIS) && given == mask(stored)
}

/// Is `value` a mask (of any secret)? Such a value is never accepted as a new secret.
pub fn looks_masked(value: &str) -> bool {
    value.contains(ELLIPSIS)
}

/// The endpoint's URL as attempts, letters, operational events and logs show it.
pub fn endpoint_url(url: &str, kind: EndpointKind) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return url.to_owned();
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
    }
    if parsed.query().is_some() {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let secret = SECRET_PARAMS.contains(&k.to_ascii_lowercase().as_str());
                (
                    k.into_owned(),
                    if secret { mask(&v) } else { v.into_owned() },
                )
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    let token_in_path = kind == EndpointKind::LarkBot
        || parsed.host_str() == Some("hooks.slack.com")
        || parsed
            .host_str()
            .is_some_and(|h| h.ends_with("feishu.cn") || h.ends_with("larksuite.com"))
            && parsed.path().contains("/hook/");
    if token_in_path {
        // The bot's token is the last path segment (`…/bot/v2/hook/{token}`,
        // `…/services/T…/B…/{token}`).
        let mut segments: Vec<String> = parsed
            .path_segments()
            .map(|s| s.map(str::to_owned).collect())
            .unwrap_or_default();
        if let Some(last) = segments.last_mut().filter(|s| !s.is_empty()) {
            *last = mask(last);
        }
        parsed.set_path(&segments.join("/"));
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_the_prefix_and_a_short_tail() {
        assert_eq!(
            mask("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            "whsec_****LaSw"
        );
        assert_eq!(mask("shortsecret"), "****");
        assert!(is_mask_of(
            "whsec_****LaSw",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        ));
        assert!(!is_mask_of(
            "whsec_****LaSw",
            "whsec_other000000000000000000000"
        ));
        assert!(!is_mask_of(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        ));
    }

    #[test]
    fn token_bearing_urls_are_masked() {
        let lark = endpoint_url(
            "https://open.feishu.cn/open-apis/bot/v2/hook/2f6b0c7e-aaaa-bbbb-cccc-1234567890ab",
            EndpointKind::LarkBot,
        );
        assert_eq!(
            lark,
            "https://open.feishu.cn/open-apis/bot/v2/hook/****90ab"
        );
        let slack = endpoint_url(
            "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX",
            EndpointKind::Webhook,
        );
        assert_eq!(slack, "https://hooks.slack.com/services/T000/B000/****XXXX");
        let q = endpoint_url(
            "https://user:pw@example.com/hook?token=abcdefghijklmnopqrstuvwxyz&team=1",
            EndpointKind::Webhook,
        );
        assert_eq!(q, "https://example.com/hook?token=****wxyz&team=1");
        assert_eq!(
            endpoint_url("https://example.com/hook", EndpointKind::Webhook),
            "https://example.com/hook"
        );
    }
}
