//! Event type filters of endpoints: an exact type, `*` for everything, or `prefix.*` for a
//! family of types (`invoice.*` matches `invoice.paid` and `invoice.payment.failed`).

pub fn matches(filter: &str, event_type: &str) -> bool {
    if filter == "*" {
        return true;
    }
    match filter.strip_suffix(".*") {
        Some(prefix) => event_type
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.') && rest.len() > 1),
        None => filter == event_type,
    }
}

/// Why a filter is refused, for field-level validation messages.
pub fn validate(filter: &str) -> Result<(), &'static str> {
    if filter.is_empty() {
        return Err("must not be empty");
    }
    if filter.len() > 128 {
        return Err("must be at most 128 characters");
    }
    if filter == "*" {
        return Ok(());
    }
    let name = filter.strip_suffix(".*").unwrap_or(filter);
    if name.is_empty() || name.contains('*') {
        return Err("`*` is allowed only alone or as a final `.*`");
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_star_and_prefix() {
        assert!(matches("*", "anything"));
        assert!(matches("invoice.paid", "invoice.paid"));
        assert!(!matches("invoice.paid", "invoice.paid2"));
        assert!(matches("invoice.*", "invoice.paid"));
        assert!(matches("invoice.*", "invoice.payment.failed"));
        assert!(!matches("invoice.*", "invoice"));
        assert!(!matches("invoice.*", "invoice."));
        assert!(!matches("invoice.*", "invoices.paid"));
    }

    #[test]
    fn validation() {
        assert!(validate("*").is_ok());
        assert!(validate("a.*").is_ok());
        assert!(validate("a.b").is_ok());
        assert!(validate("").is_err());
        assert!(validate(".*").is_err());
        assert!(validate("a*").is_err());
        assert!(validate("a b").is_err());
    }
}
