//! Request bodies for the benchmarks that read like real webhooks: a payment provider's
//! invoice event in the generic sources' envelope with random ids, so what compresses in it is what compresses in a real
//! one (a body of one repeated character would make compression look free).

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const WORDS: &[&str] = &[
    "annual",
    "seats",
    "usage",
    "overage",
    "credit",
    "support",
    "priority",
    "storage",
    "team",
    "renewal",
    "discount",
    "proration",
    "invoice",
    "plan",
    "addon",
    "region",
    "europe",
];

fn id(rng: &mut StdRng, prefix: &str, len: usize) -> String {
    let tail: String = (0..len)
        .map(|_| char::from(ALNUM[rng.random_range(0..ALNUM.len())]))
        .collect();
    format!("{prefix}{tail}")
}

/// A JSON invoice event of exactly `bytes` bytes (at least about 400), different for each
/// `n`: ids and amounts random, field names and fixed values as a real sender repeats them.
pub fn invoice_event(n: u64, bytes: usize) -> String {
    let mut rng = StdRng::seed_from_u64(n);
    let created = 1_764_700_000 + n;
    let mut lines: Vec<String> = Vec::new();
    let head = format!(
        r#"{{"event_type":"invoice.paid","data":{{"id":"{}","object":"event","api_version":"2024-06-20","created":{created},"type":"invoice.paid","livemode":false,"data":{{"object":{{"id":"{}","object":"invoice","customer":"{}","amount_paid":{},"currency":"usd","status":"paid","lines":["#,
        id(&mut rng, "evt_", 24),
        id(&mut rng, "in_", 24),
        id(&mut rng, "cus_", 14),
        rng.random_range(100..100_000),
    );
    let mut used = head.len();
    let tail = |memo: &str| format!(r#"],"memo":"{memo}"}}}}}}}}"#);
    loop {
        let line = format!(
            r#"{{"id":"{}","amount":{},"description":"{} × {} {}","price":"{}"}}"#,
            id(&mut rng, "il_", 24),
            rng.random_range(100..10_000),
            rng.random_range(1..50),
            WORDS[rng.random_range(0..WORDS.len())],
            WORDS[rng.random_range(0..WORDS.len())],
            id(&mut rng, "price_", 24),
        );
        if used + line.len() + 1 + tail("").len() > bytes {
            break;
        }
        used += line.len() + 1;
        lines.push(line);
    }
    let mut body = head + &lines.join(",");
    let mut memo = String::new();
    loop {
        let room = bytes.saturating_sub(body.len() + tail(&memo).len());
        let word = WORDS[rng.random_range(0..WORDS.len())];
        let need = word.len() + usize::from(!memo.is_empty());
        if room == 0 {
            break;
        } else if need <= room {
            if !memo.is_empty() {
                memo.push(' ');
            }
            memo.push_str(word);
        } else {
            memo.push_str(&"-".repeat(room));
        }
    }
    body += &tail(&memo);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_json_of_the_size_asked_and_differs_by_n() {
        for bytes in [400, 1024, 4096] {
            let a = invoice_event(1, bytes);
            assert_eq!(a.len(), bytes, "{a}");
            serde_json::from_str::<serde_json::Value>(&a).expect("json");
            assert_ne!(a, invoice_event(2, bytes));
        }
    }
}
